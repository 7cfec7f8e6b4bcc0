"""Adapter store: save a LoRA adapter (only) with its manifest to a local folder, Google Drive or the Hub.

Every saved adapter is a standard PEFT folder (`adapter_config.json` + `adapter_model.safetensors`)
plus `manifest.json`, so `PeftModel.from_pretrained(base, folder)` loads it anywhere. Saving never
replaces an existing adapter unless `overwrite=True`, and a failed save leaves the old one intact;
what a killed save leaves behind is rolled back or forward by the next call on that store.

This module owns adapter folders: the one name rule (`check_name`, which lessons_lib.compat and the server use
too), the base-id stamp, file copying, the active-adapter lookup, and listing a folder's adapters; the tiny and
tool-adapter builders and lessons_lib.adapters' quick training save through `save_adapter`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .files import write_text_atomic
from .i18n import tr
from .manifest import MANIFEST_FILE, Manifest
from .paths import DRIVE_MOUNT, drive_mounted

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# One rule for every adapter name: a store folder, a Hub repo, a PEFT adapter (a module key, so no dots) and a
# served model id all use it. \Z, not $: "json\n" must not pass.
NAME_PATTERN = re.compile(r"\A[A-Za-z][A-Za-z0-9_-]{0,63}\Z")
RESERVED_NAMES = ("__base__",)  # PEFT's name for "no adapter" in a mixed batch
NAME_HINT = "Use a short name of letters, digits, '_' or '-', starting with a letter (e.g. 'json' or 'support_v2')."
NAME_HINT_RU = (
    "Возьмите короткое имя из латинских букв, цифр, '_' или '-', начинающееся с буквы (например, 'json' или "
    "'support_v2')."
)
# A Hub user or organisation name (not an adapter name): may start with a digit or hold dots.
NAMESPACE_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,95}\Z")
BACKUP_SUFFIX = ".old"
# What save_adapter leaves if killed: `.NAME.old` (the replaced adapter), `.NAME.saving-HOST-PID-XXXX` (staging).
LEFTOVER = re.compile(r"\.(?P<name>.+?)(?:(?P<backup>\.old)|\.saving-(?:(?P<host>.+)-(?P<pid>[0-9]+)-)?[a-z0-9_]+)")
STALE_SAVE_SECONDS = 3600


class StorageError(RuntimeError):
    """A store that cannot be used as asked (missing mount, existing adapter, unknown name)."""


class HubError(StorageError):
    """The Hugging Face Hub cannot be used: no token, no network, or the request failed."""


@dataclass(frozen=True)
class AdapterStore:
    """Where adapters live: a folder (`local`, `drive`) or a Hub namespace (`hub`)."""

    kind: str
    location: str
    private: bool = True

    @property
    def folder(self) -> Path:
        """The root folder of a local or Drive store."""
        if self.kind == "hub":
            raise StorageError(
                tr(
                    en="A Hub store has no local folder; use load_adapter_folder() to download an adapter.",
                    ru="У хранилища на Hub нет локальной папки; скачайте адаптер через load_adapter_folder().",
                )
            )
        return Path(self.location)

    def __str__(self) -> str:
        return f"{self.kind}:{self.location}"


def local_store(folder: str | Path) -> AdapterStore:
    """A store in a local folder (created if missing)."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except PermissionError as err:
        raise not_writable(Path(folder), err) from None
    return AdapterStore("local", str(Path(folder).resolve()))


def not_writable(folder: Path, err: OSError) -> StorageError:
    """The error for a store folder this process may not write into (names the folder, not a staging path)."""
    return StorageError(
        tr(
            en=f"Cannot write into the adapter store folder {folder} ({err.strerror or err}). Make it writable "
            "(e.g. `chmod u+w` on it, or copy the adapters somewhere you own), or save to another store "
            "(local_store('some/folder/you/own')).",
            ru=f"Нельзя записывать в папку хранилища адаптеров {folder} ({err.strerror or err}). Сделайте её "
            "доступной для записи (например, `chmod u+w`, или скопируйте адаптеры в свою папку) или сохраните "
            "в другое хранилище (local_store('ваша/папка')).",
        )
    )


def drive_store(folder: str | Path, mount: str | Path = DRIVE_MOUNT) -> AdapterStore:
    """A store in a Google Drive folder (e.g. `paths.adapters_folder(lesson.work_dir)`); `mount` must be mounted."""
    mount, folder = Path(mount), Path(folder)
    if not drive_mounted(mount):
        raise StorageError(
            tr(
                en=f"Google Drive is not mounted at {mount}. On Colab run "
                "`from google.colab import drive; drive.mount('/content/drive')` first; "
                "elsewhere use local_store(folder) instead.",
                ru=f"Google Drive не подключён в {mount}. В Colab сначала выполните "
                "`from google.colab import drive; drive.mount('/content/drive')`; "
                "в других местах используйте local_store(folder).",
            )
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except PermissionError as err:
        raise not_writable(folder, err) from None
    return AdapterStore("drive", str(folder))


def hub_store(namespace: str | None = None, private: bool = True, token: str | None = None) -> AdapterStore:
    """A store on the Hugging Face Hub under `namespace` (your user name if None; needs a token then)."""
    if namespace is None:
        namespace = _hub_call(lambda api: api.whoami(token=require_token(token))["name"], "find your user name")
    check_namespace(namespace)
    return AdapterStore("hub", namespace, private)


def name_problem(name: str, what: str = "Adapter name") -> str | None:
    """Why `name` cannot name an adapter (store folder, Hub repo, PEFT adapter, served model), or None if it can."""
    what_ru = "Имя адаптера" if what == "Adapter name" else what
    if not isinstance(name, str):
        kind = type(name).__name__
        return tr(
            en=f"{what} {name!r} is not allowed: it must be a string (text), got {kind}. {NAME_HINT}",
            ru=f"{what_ru} {name!r} недопустимо: это должна быть строка (текст), а получен {kind}. {NAME_HINT_RU}",
        )
    if not name.strip():
        return tr(
            en=f"{what} {name!r} is not allowed: it is empty. {NAME_HINT}",
            ru=f"{what_ru} {name!r} недопустимо: оно пустое. {NAME_HINT_RU}",
        )
    if "/" in name or "\\" in name or ".." in name:
        return tr(
            en=f"{what} {name!r} is not allowed: it contains a path separator or '..', and an adapter name is not "
            f"a path. Pass the folder separately and name the adapter itself. {NAME_HINT}",
            ru=f"{what_ru} {name!r} недопустимо: в нём разделитель пути или '..', а имя адаптера — не путь. "
            f"Передайте папку отдельно, а адаптеру дайте собственное имя. {NAME_HINT_RU}",
        )
    if name in RESERVED_NAMES:
        return tr(
            en=f"{what} {name!r} is not allowed: it is reserved by PEFT for 'the base model without adapters' in "
            f"mixed batches. {NAME_HINT}",
            ru=f"{what_ru} {name!r} недопустимо: PEFT резервирует его для «базовой модели без адаптеров» в "
            f"смешанных батчах. {NAME_HINT_RU}",
        )
    if not NAME_PATTERN.fullmatch(name):
        return tr(
            en=f"{what} {name!r} is not allowed (PEFT uses it as a module key, so no dots, spaces or other "
            f"symbols). {NAME_HINT}",
            ru=f"{what_ru} {name!r} недопустимо (PEFT использует его как ключ модуля, поэтому без точек, пробелов "
            f"и других символов). {NAME_HINT_RU}",
        )
    return None


def check_name(name: str, what: str = "Adapter name") -> str:
    """Return `name` if it can name an adapter, else raise compat.AdapterNameError (a ValueError) saying why."""
    problem = name_problem(name, what)
    if problem is not None:
        from .compat import AdapterNameError

        raise AdapterNameError(problem)
    return name


def check_namespace(namespace: str) -> str:
    """Return `namespace` if it is a valid Hub user/organisation name, else raise ValueError saying why."""
    if not isinstance(namespace, str) or not NAMESPACE_PATTERN.fullmatch(namespace) or ".." in namespace:
        raise ValueError(
            tr(
                en=f"Hub namespace {namespace!r} is not allowed: use your Hugging Face user or organisation "
                "name (letters, digits, '-', '_' or '.', starting with a letter or digit).",
                ru=f"Пространство имён Hub {namespace!r} недопустимо: укажите имя своего пользователя или "
                "организации на Hugging Face (латинские буквы, цифры, '-', '_' или '.', начиная с буквы или цифры).",
            )
        )
    return namespace


def active_adapters(model) -> list[str]:
    """The adapters active in a PeftModel, in order ([] for a model without adapters)."""
    if not getattr(model, "peft_config", None):
        return []
    active = getattr(model, "active_adapters", None)
    if active is None or callable(active):  # transformers' adapter mixin has a method of that name
        active = getattr(model, "active_adapter", None)
    if active is None or callable(active):
        return []
    return [active] if isinstance(active, str) else list(active)


def adapter_folders(folder: str | Path) -> list[Path]:
    """The saved PEFT adapter folders directly inside `folder` (hidden ones excluded), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and (p / ADAPTER_FILES[0]).is_file())


# ---------------------------------------------------------------- writing the adapter folder
def write_adapter_files(model, folder: str | Path, adapter_name: str | None = None) -> Path:
    """Save one adapter of a PeftModel (or copy a saved PEFT folder) flat into `folder`.

    PEFT saves a non-"default" adapter into a subfolder named after it; this flattens that layout.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(model, (str, Path)):
        source = Path(model)
        missing = [f for f in ADAPTER_FILES if not (source / f).is_file()]
        if missing:
            raise StorageError(
                tr(
                    en=f"{source} is not a saved PEFT adapter (missing {', '.join(missing)}).",
                    ru=f"{source} — не сохранённый адаптер PEFT (нет {', '.join(missing)}).",
                )
            )
        copy_adapter_files(source, folder)
        return folder
    if not hasattr(model, "peft_config"):
        kind = type(model).__name__
        raise TypeError(
            tr(
                en="save_adapter needs a PeftModel (or the folder of a saved adapter), "
                f"got {kind}: wrap the base with get_peft_model or PeftModel.from_pretrained.",
                ru="save_adapter нужна PeftModel (или папка сохранённого адаптера), "
                f"а получен {kind}: оберните базовую модель через get_peft_model или PeftModel.from_pretrained.",
            )
        )
    adapter = adapter_name or (active_adapters(model) or ["default"])[0]
    if adapter not in model.peft_config:
        has = sorted(model.peft_config)
        raise StorageError(
            tr(
                en=f"The model has no adapter {adapter!r}; it has {has}.",
                ru=f"У модели нет адаптера {adapter!r}; есть {has}.",
            )
        )
    # Scratch inside `folder`: a kill leaves nothing that looks like an adapter next to it (in the store).
    with tempfile.TemporaryDirectory(prefix=".scratch-", dir=folder) as scratch:
        model.save_pretrained(scratch, selected_adapters=[adapter])
        saved = Path(scratch) / adapter if adapter != "default" else Path(scratch)
        for name in ADAPTER_FILES:
            shutil.move(str(saved / name), folder / name)
    return folder


def copy_adapter_files(source: Path, folder: Path) -> None:
    """Copy a saved adapter's PEFT files (config + weights) from `source` into `folder`."""
    for name in ADAPTER_FILES:
        shutil.copy2(source / name, folder / name)


def stamp_base(folder: str | Path, base_id: str) -> None:
    """Record the portable base id (not this machine's path) in adapter_config.json."""
    path = Path(folder) / ADAPTER_FILES[0]
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_id
    write_text_atomic(path, json.dumps(config, indent=2, sort_keys=True) + "\n")


def stage_adapter(model, folder: Path, manifest: Manifest, adapter_name: str | None = None) -> Path:
    """Write adapter files + manifest into a fresh folder."""
    write_adapter_files(model, folder, adapter_name)
    stamp_base(folder, manifest.base_model)
    manifest.save(folder)
    return folder


# ---------------------------------------------------------------- the three operations
def save_adapter(
    model,
    name: str,
    store: AdapterStore,
    manifest: Manifest,
    overwrite: bool = False,
    adapter_name: str | None = None,
    token: str | None = None,
) -> str:
    """Save one adapter (not the base) as `name` in `store`; returns its folder or Hub repo id.

    `model` is a PeftModel (its active adapter, or `adapter_name`) or the folder of a saved adapter.
    """
    check_name(name)
    if not isinstance(manifest, Manifest):
        raise TypeError(
            tr(
                en="manifest must be a lessons_lib.manifest.Manifest (see Manifest.for_model).",
                ru="manifest должен быть lessons_lib.manifest.Manifest (см. Manifest.for_model).",
            )
        )
    if store.kind == "hub":
        return _save_to_hub(model, name, store, manifest, overwrite, adapter_name, token)
    try:
        store.folder.mkdir(parents=True, exist_ok=True)
    except PermissionError as err:
        raise not_writable(store.folder, err) from None
    recover_saves(store.folder)
    target = store.folder / name
    if target.exists() and not overwrite:
        raise FileExistsError(
            tr(
                en=f"An adapter named {name!r} already exists in {store}. Pick another name, "
                "or pass overwrite=True to replace it.",
                ru=f"Адаптер с именем {name!r} уже есть в {store}. Выберите другое имя "
                "или передайте overwrite=True, чтобы заменить его.",
            )
        )
    if not os.access(store.folder, os.W_OK | os.X_OK):
        raise not_writable(store.folder, PermissionError(13, "Permission denied"))
    try:
        with replacing_folder(target) as staging:
            stage_adapter(model, staging, manifest, adapter_name)
    except PermissionError as err:  # a read-only file or sub-folder: name the store, not the hidden staging path
        raise not_writable(store.folder, err) from None
    return str(target)


@contextmanager
def replacing_folder(target: str | Path) -> Iterator[Path]:
    """Yield a fresh staging folder beside `target`; once the block ends without error it replaces `target` whole.

    A kill at any moment leaves the old folder or the new one (perhaps aside, which settle_leftovers settles).
    """
    target = Path(os.path.abspath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    settle_leftovers(target)
    staging = new_staging(target)
    try:
        yield staging
        move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def new_staging(target: Path) -> Path:
    """A new empty hidden sibling of `target`, `.NAME.saving-HOST-PID-XXXXXXXX`, to build its next version in."""
    staging = target.with_name(f".{target.name}.saving-{_save_owner()}-{secrets.token_hex(4)}")
    staging.mkdir()  # unlike mkdtemp's 0700, the folder gets the usual permissions, as the one it replaces had
    return staging


def move_into_place(staging: Path, target: Path) -> None:
    """Replace `target` by the complete `staging` folder; the old one is at `.NAME.old` only between the renames."""
    if not target.exists():
        staging.rename(target)
        return
    backup = target.with_name(f".{target.name}{BACKUP_SUFFIX}")
    target.rename(backup)
    staging.rename(target)
    shutil.rmtree(backup, ignore_errors=True)  # the new folder is in place: a backup left here is settled later


def load_adapter_folder(
    name: str, store: AdapterStore, cache_dir: str | Path | None = None, token: str | None = None
) -> Path:
    """The local folder of adapter `name` (downloaded from the Hub if needed), ready for PeftModel.from_pretrained."""
    check_name(name)
    if store.kind == "hub":
        return _download_from_hub(name, store, cache_dir, token)
    recover_saves(store.folder)
    folder = store.folder / name
    if not (folder / "adapter_config.json").is_file():
        odd = ", ".join(unusable_folders(store))
        known = ", ".join(p.name for p in adapter_folders(store.folder) if name_problem(p.name) is None)
        known = known or tr(en="none", ru="нет")
        skipped = (
            tr(
                en=f" Folders skipped because their names are not adapter names: {odd} (rename them). {NAME_HINT}",
                ru=f" Пропущены папки, чьи имена не годятся в имена адаптеров: {odd} (переименуйте их). {NAME_HINT_RU}",
            )
            if odd
            else ""
        )
        raise FileNotFoundError(
            tr(
                en=f"No adapter {name!r} in {store} (adapters there: {known}).{skipped}",
                ru=f"В {store} нет адаптера {name!r} (адаптеры там: {known}).{skipped}",
            )
        )
    return folder


def list_adapters(store: AdapterStore, token: str | None = None) -> list[str]:
    """Names of the adapters in a store that load_adapter_folder accepts, sorted (see unusable_folders for the rest)."""
    if store.kind == "hub":
        models = _hub_call(
            lambda api: list(api.list_models(author=store.location, token=token or _token())),
            f"list the models of {store.location}",
        )
        prefix = store.location + "/"
        return sorted(m.id[len(prefix) :] for m in models if m.id.startswith(prefix))
    recover_saves(store.folder)
    skipped = unusable_folders(store)
    if skipped:
        import warnings

        why = "; ".join(f"{store.folder / name}: {problem}" for name, problem in skipped.items())
        warnings.warn(
            tr(
                en=f"Not listed (load_adapter_folder would refuse them; rename the folders): {why}",
                ru=f"Не показаны (load_adapter_folder их не примет; переименуйте папки): {why}",
            ),
            stacklevel=2,
        )
    return [p.name for p in adapter_folders(store.folder) if p.name not in skipped]


def unusable_folders(store: AdapterStore) -> dict[str, str]:
    """Folders of a local/Drive store that list_adapters leaves out, each with why (the name breaks the rule)."""
    if store.kind == "hub":
        return {}
    return {p.name: problem for p in adapter_folders(store.folder) if (problem := name_problem(p.name)) is not None}


def read_manifest(name: str, store: AdapterStore, **kwargs) -> Manifest:
    """The manifest of a stored adapter."""
    return Manifest.load(load_adapter_folder(name, store, **kwargs))


# ---------------------------------------------------------------- what an interrupted save leaves behind
def recover_saves(folder: Path) -> None:
    """Settle what interrupted saves left in a store folder: `.NAME.old` backups and staging folders.

    A save killed between its two renames leaves the old adapter at `.NAME.old` and nothing at NAME: it is put
    back (rolled back; the interrupted call never returned, so rerun it). Killed after them, the new adapter is
    in place and `.NAME.old` is deleted (rolled forward). Staging folders of saves that cannot finish are deleted.
    """
    for entry, match in _leftovers(folder):
        if NAME_PATTERN.fullmatch(match["name"]):
            _settle(entry, match, folder / match["name"])


def settle_leftovers(target: str | Path) -> None:
    """Settle what interrupted saves of the one folder `target` left beside it, as recover_saves does for a store."""
    target = Path(os.path.abspath(target))
    for entry, match in _leftovers(target.parent):
        if match["name"] == target.name:
            _settle(entry, match, target)


def _leftovers(folder: Path) -> list[tuple[Path, re.Match]]:
    """The entries of `folder` named like a backup or staging folder of a save, with their name's parts."""
    if not folder.is_dir():
        return []
    return [(entry, match) for entry in list(folder.iterdir()) if (match := LEFTOVER.fullmatch(entry.name))]


def _settle(entry: Path, match: re.Match, target: Path) -> None:
    """Put back or drop one backup of `target`, or drop one staging folder whose save cannot finish."""
    if match["backup"]:
        _settle_backup(entry, target)
    elif _abandoned(entry, match["host"], match["pid"]):
        shutil.rmtree(entry, ignore_errors=True)


def _settle_backup(backup: Path, target: Path) -> None:
    """Roll an interrupted overwrite forward (new adapter in place: drop the backup) or back (restore it)."""
    if target.exists():
        shutil.rmtree(backup, ignore_errors=True)
    else:
        backup.rename(target)


def _save_owner() -> str:
    """`HOST-PID` of this process, put in staging folder names so a later call can tell whether the save is alive."""
    return f"{re.sub(r'[^A-Za-z0-9.]', '_', socket.gethostname())[:64]}-{os.getpid()}"


def _abandoned(staging: Path, host: str | None, pid: str | None) -> bool:
    """True when no running save can still be writing `staging`.

    Its process has exited (same machine), or, when that cannot be checked (another machine sharing a Drive
    folder, or a folder from an older version), nothing in it changed for STALE_SAVE_SECONDS.
    """
    if pid and host == _save_owner().rsplit("-", 1)[0] and os.name == "posix":
        return not _process_alive(int(pid))
    return time.time() - _last_change(staging) > STALE_SAVE_SECONDS


def _process_alive(pid: int) -> bool:
    """True when a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        pass
    return True


def _last_change(folder: Path) -> float:
    """The newest modification time of `folder` and everything in it (0 if it vanished meanwhile)."""
    try:
        return max(p.stat().st_mtime for p in [folder, *folder.rglob("*")])
    except OSError:
        return 0.0


# ---------------------------------------------------------------- Hugging Face Hub
def _token() -> str | None:
    import huggingface_hub

    return huggingface_hub.get_token()


def require_token(token: str | None = None) -> str:
    """The Hub token (argument, HF_TOKEN / Colab secret, or saved login); HubError if there is none."""
    token = token or _token()
    if not token:
        raise HubError(
            tr(
                en="No Hugging Face token found. On Colab add a secret named HF_TOKEN (key icon, left bar); "
                "elsewhere run `huggingface_hub.login()` or set HF_TOKEN. Or save to a local/Drive store.",
                ru="Токен Hugging Face не найден. В Colab добавьте секрет HF_TOKEN (значок ключа на левой панели); "
                "в других местах выполните `huggingface_hub.login()` или задайте HF_TOKEN. Или сохраните в "
                "локальное хранилище либо на Drive.",
            )
        )
    return token


def _hub_call(action, what: str):
    """Run `action(HfApi())`, turning network and HTTP failures into a HubError that says what to do."""
    import httpx
    import huggingface_hub
    from huggingface_hub import errors

    try:
        return action(huggingface_hub.HfApi())
    except errors.OfflineModeIsEnabled as err:
        raise HubError(
            tr(
                en=f"Cannot {what}: HF_HUB_OFFLINE=1 is set (offline mode). Unset it to use the Hub, "
                "or use a local/Drive store.",
                ru=f"Не удалось: {what}. Задан HF_HUB_OFFLINE=1 (офлайн-режим). Снимите его, чтобы работать с Hub, "
                "или используйте локальное хранилище либо Drive.",
            )
        ) from err
    except errors.LocalEntryNotFoundError as err:
        raise HubError(
            tr(
                en=f"Cannot {what}: the Hub cannot be reached and nothing is cached locally ({err}). "
                "Check your network, or use a local/Drive store.",
                ru=f"Не удалось: {what}. Hub недоступен, а в локальном кэше ничего нет ({err}). "
                "Проверьте сеть или используйте локальное хранилище либо Drive.",
            )
        ) from err
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError, errors.EntryNotFoundError):
        raise
    except errors.HfHubHTTPError as err:
        raise HubError(
            tr(
                en=f"Cannot {what}: the Hub answered {err}. Check the token's write access and the name.",
                ru=f"Не удалось: {what}. Hub ответил {err}. Проверьте право токена на запись и имя.",
            )
        ) from err
    except (httpx.HTTPError, OSError) as err:
        raise HubError(
            tr(
                en=f"Cannot {what}: no connection to the Hugging Face Hub ({type(err).__name__}: {err}). "
                "Check your network, or use a local/Drive store.",
                ru=f"Не удалось: {what}. Нет соединения с Hugging Face Hub ({type(err).__name__}: {err}). "
                "Проверьте сеть или используйте локальное хранилище либо Drive.",
            )
        ) from err


def _save_to_hub(model, name, store, manifest, overwrite, adapter_name, token) -> str:
    token = require_token(token)
    repo_id = f"{store.location}/{name}"
    if not overwrite and _hub_call(
        lambda api: api.file_exists(repo_id, "adapter_config.json", token=token), f"check {repo_id}"
    ):
        raise FileExistsError(
            tr(
                en=f"{repo_id} already holds an adapter. Pick another name, or pass overwrite=True.",
                ru=f"В {repo_id} уже есть адаптер. Выберите другое имя или передайте overwrite=True.",
            )
        )
    with tempfile.TemporaryDirectory() as scratch:
        stage_adapter(model, Path(scratch) / name, manifest, adapter_name)
        _hub_call(
            lambda api: api.create_repo(repo_id, token=token, private=store.private, exist_ok=True), f"create {repo_id}"
        )
        _hub_call(
            lambda api: api.upload_folder(
                repo_id=repo_id,
                folder_path=str(Path(scratch) / name),
                token=token,
                commit_message=f"Adapter {name} ({manifest.profile} profile)",
            ),
            f"upload to {repo_id}",
        )
    return repo_id


def _download_from_hub(name, store, cache_dir, token) -> Path:
    import huggingface_hub

    repo_id = f"{store.location}/{name}"
    kwargs = {"token": token or _token(), "allow_patterns": [*ADAPTER_FILES, MANIFEST_FILE]}
    if cache_dir is not None:
        kwargs["local_dir"] = str(Path(cache_dir) / name)
    try:
        path = _hub_call(lambda api: huggingface_hub.snapshot_download(repo_id, **kwargs), f"download {repo_id}")
    except huggingface_hub.errors.RepositoryNotFoundError as err:
        raise FileNotFoundError(
            tr(
                en=f"No adapter repo {repo_id} on the Hub (or it is private and the token cannot read it).",
                ru=f"На Hub нет репозитория адаптера {repo_id} (или он закрытый и токен не может его читать).",
            )
        ) from err
    folder = Path(path)
    if not (folder / "adapter_config.json").is_file():
        raise FileNotFoundError(
            tr(
                en=f"{repo_id} has no adapter_config.json: it is not a PEFT adapter.",
                ru=f"В {repo_id} нет adapter_config.json: это не адаптер PEFT.",
            )
        )
    return folder
