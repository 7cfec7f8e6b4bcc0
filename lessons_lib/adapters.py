"""The course's trained artifacts (three domain adapters, the router, the tool adapter): where each one is
found, and a quick training run where none is.

One search order for every notebook, so each lesson runs standalone in a fresh runtime:
shipped (tiny profile only) → the local work dir → the course folder on Google Drive (where notebook 01
saves with USE_DRIVE) → a Hub namespace (where notebook 01 pushes) → otherwise train a quick version
right there, saying so with a time estimate. Following the course never ends in FileNotFoundError.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import domains, paths
from .i18n import plural_ru, term, tr
from .paths import (
    ADAPTERS_FOLDER,  # noqa: F401 - notebook 01 imports it from here
    DRIVE_COURSE_DIR,
    DRIVE_MOUNT,
    TINY_ADAPTERS_DIR,
    adapters_folder,
    default_work_dir,
)
from .profiles import Profile

COURSE_ADAPTERS = domains.names()  # one adapter per domain registered at import (lessons_lib.domains)
ROUTER = "router"
TOOLS = "tools"
ARTIFACTS = (*COURSE_ADAPTERS, ROUTER, TOOLS)
FULL_RUN_NOTEBOOK = {ROUTER: "04", TOOLS: "05"}  # the notebook whose full run trains an artifact; domains: 01


def full_run_notebook(name: str) -> str:
    """The notebook whose full run trains artifact `name`: 01 for the domain adapters, 04 the router, 05 tools."""
    return FULL_RUN_NOTEBOOK.get(name, "01")


@dataclass(frozen=True)
class Found:
    """Where an artifact was found: the folder and which source ("shipped", "local", "drive", "hub", "trained")."""

    name: str
    folder: Path
    source: str


def check_artifact(name: str) -> str:
    """Return `name` if the course knows how to find or train it, else raise ValueError listing the names."""
    if name not in ARTIFACTS:
        raise ValueError(
            tr(
                en=f"Unknown course artifact {name!r}; the course has {', '.join(ARTIFACTS)}.",
                ru=f"Неизвестный артефакт курса {name!r}; в курсе есть {', '.join(ARTIFACTS)}.",
            )
        )
    return name


def hub_repo_name(name: str, profile: Profile) -> str:
    """The Hub repo name notebook 01 pushes an artifact to: `lora-lab-<profile>-<name>`."""
    return f"lora-lab-{profile.name}-{name}"


def shipped_dir(name: str) -> Path:
    """Where the tiny profile's trained artifact ships in assets/."""
    if name == ROUTER:
        from .router import shipped_router_dir

        return shipped_router_dir()
    return TINY_ADAPTERS_DIR / name


def local_dir(name: str, work_dir: Path | str) -> Path:
    """Where a profile keeps (and quick-trains) an artifact in its work dir: `<work dir>/adapters/<name>`."""
    return adapters_folder(work_dir) / name


def drive_dir(name: str, profile: Profile) -> Path:
    """Where notebook 01 saves an artifact on Google Drive (`USE_DRIVE = True`): its Drive work dir."""
    return local_dir(name, DRIVE_COURSE_DIR / profile.name)


def drive_mounted() -> bool:
    """True when Google Drive is mounted (Colab, after `drive.mount`)."""
    return paths.drive_mounted(DRIVE_MOUNT)


def is_adapter(folder: Path) -> bool:
    """True for a complete, readable saved PEFT adapter folder (see `adapter_problem`)."""
    return adapter_problem(folder) is None


def adapter_problem(folder: Path) -> str | None:
    """Why `folder` is not a usable saved PEFT adapter, e.g. "adapter_config.json is missing", or None if it is."""
    found = adapter_file_problem(folder)
    return None if found is None else f"{found[0]} {found[1]}"


def adapter_file_problem(folder: Path) -> tuple[str, str] | None:
    """The first file of the saved PEFT adapter in `folder` that cannot be used and why, or None when both are whole.

    E.g. ("adapter_config.json", "is missing"). The one check of an adapter folder: the artifact search and the
    checkpoint check (train.checkpoint_problem) both use it. Cheap: the config is parsed and the weights'
    safetensors header is checked against the file size.
    """
    import json

    from .storage import ADAPTER_FILES

    folder = Path(folder)
    config_file, weights_file = ADAPTER_FILES
    for file in ADAPTER_FILES:
        if not (folder / file).is_file():
            return file, tr(en="is missing", ru="отсутствует")
    try:
        config = json.loads((folder / config_file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return config_file, tr(
            en="is not valid JSON (cut short or damaged)", ru="— невалидный JSON (файл обрезан или повреждён)"
        )
    if not isinstance(config, dict):
        return config_file, tr(en="is not a JSON object", ru="— не объект JSON")
    if not readable_safetensors(folder / weights_file):
        return weights_file, tr(en="is empty, cut short or damaged", ru="пуст, обрезан или повреждён")
    return None


def readable_safetensors(path: Path) -> bool:
    """True when `path` is a whole safetensors file (its header covers exactly the bytes on disk)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt"):
            return True
    except (SafetensorError, OSError):
        return False


def damaged_message(name: str, source: str, folder: Path, problem: str) -> str:
    """The line `find_artifact` prints when it skips a damaged copy of an artifact."""
    return tr(
        en=f"{name}: skipping the {term(source)} copy in {folder}: {problem}. Looking further; delete or replace "
        "that folder (copy or download the adapter again, or retrain it).",
        ru=f"{name}: пропускаем копию «{term(source)}» в {folder}: {problem}. Ищем дальше; удалите или замените "
        "эту папку (скопируйте или скачайте адаптер заново либо обучите его снова).",
    )


def work_dir_or_default(work_dir: Path | str | None, profile: Profile) -> Path:
    """The given work dir, or the profile's default one (where notebook 01 saves without Drive)."""
    return Path(work_dir) if work_dir is not None else default_work_dir(profile.name)


def candidates(name: str, profile: Profile, work_dir: Path | str | None) -> list[tuple[str, Path]]:
    """The folders searched, in order, as (source, folder); no work dir means the profile's default one."""
    places = []
    if profile.ships_adapters:
        places.append(("shipped", shipped_dir(name)))
    places.append(("local", local_dir(name, work_dir_or_default(work_dir, profile))))
    if drive_mounted():
        places.append(("drive", drive_dir(name, profile)))
    return places


def find_artifact(
    name: str, profile: Profile, work_dir: Path | str | None = None, hub_namespace: str | None = None, log=print
) -> Found | None:
    """The first place that holds a readable copy of the artifact (shipped → local → Drive → Hub), or None.

    A copy that is there but damaged (a file cut short or empty) is skipped with a line in `log` naming it; one that a
    killed save left aside (`.NAME.old`, see `storage.recover_saves`) is put back first.
    """
    from .storage import recover_saves

    check_artifact(name)
    for source, folder in candidates(name, profile, work_dir):
        if source != "shipped":
            recover_saves(folder.parent)
        if not folder.is_dir():
            continue
        problem = adapter_problem(folder)
        if problem is None:
            return Found(name, folder, source)
        if any(folder.iterdir()):  # an empty folder is "not there", not damaged
            log(damaged_message(name, source, folder, problem))
    if hub_namespace:
        folder = download_from_hub(name, profile, hub_namespace, work_dir, log)
        if folder is not None:
            problem = adapter_problem(folder)
            if problem is None:
                return Found(name, folder, "hub")
            log(damaged_message(name, "hub", folder, problem))
    return None


def download_from_hub(
    name: str, profile: Profile, namespace: str, work_dir: Path | str | None, log=print
) -> Path | None:
    """The artifact downloaded from `<namespace>/lora-lab-<profile>-<name>`, or None (saying why) if it can't be."""
    from . import storage

    repo = hub_repo_name(name, profile)
    cache = work_dir_or_default(work_dir, profile) / "hub-cache"
    try:
        return storage.load_adapter_folder(repo, storage.AdapterStore("hub", namespace), cache_dir=cache)
    except (FileNotFoundError, storage.StorageError) as err:
        log(
            tr(
                en=f"{name}: not on the Hub as {namespace}/{repo} ({err})",
                ru=f"{name}: нет на Hugging Face Hub как {namespace}/{repo} ({err})",
            )
        )
        return None


def where_searched(name: str, profile: Profile, work_dir: Path | str | None, hub_namespace: str | None) -> str:
    """The places searched for an artifact, as one readable phrase."""
    places = [f"{term(src)} {folder}" for src, folder in candidates(name, profile, work_dir)]
    if not drive_mounted():
        places.append(tr(en="Google Drive (not mounted)", ru="Google Диск (не подключён)"))
    places.append(
        tr(en="the Hub", ru="Hugging Face Hub")
        + (
            f" ({hub_namespace}/{hub_repo_name(name, profile)})"
            if hub_namespace
            else tr(en=" (no HUB_NAMESPACE given)", ru=" (HUB_NAMESPACE не задан)")
        )
    )
    return "; ".join(places)


def adapter_dir(
    name: str, profile: Profile, work_dir: Path | str | None = None, hub_namespace: str | None = None
) -> Path:
    """The folder of a trained course artifact, found without training; FileNotFoundError saying where it looked."""
    found = find_artifact(name, profile, work_dir, hub_namespace)
    if found is None:
        raise not_found_error(name, profile, work_dir, hub_namespace)
    return found.folder


def not_found_error(
    name: str, profile: Profile, work_dir: Path | str | None, hub_namespace: str | None
) -> FileNotFoundError:
    """The error for an artifact found nowhere: where the search looked and how to get one."""
    hint = (
        tr(
            en="The tiny adapters ship in assets/adapters; rebuild them with `python -m lessons_lib.tiny build`.",
            ru="Адаптеры tiny поставляются в assets/adapters; пересоберите их командой "
            "`python -m lessons_lib.tiny build`.",
        )
        if profile.ships_adapters
        else tr(
            en="Train it in notebook 01 (or 04 for the router, 05 for the tool adapter), or call "
            "lessons_lib.adapters.resolve_artifact, which trains a quick version when none is found.",
            ru="Обучите его в ноутбуке 01 (или 04 для маршрутизатора, 05 для адаптера инструментов) или вызовите "
            "lessons_lib.adapters.resolve_artifact: он быстро обучит версию, если ничего не найдено.",
        )
    )
    where = where_searched(name, profile, work_dir, hub_namespace)
    return FileNotFoundError(
        tr(
            en=f"Adapter {name!r} for the {profile.name} profile not found. Looked in: {where}. {hint}",
            ru=f"Адаптер {name!r} для профиля {profile.name} не найден. Где искали: {where}. {hint}",
        )
    )


# ------------------------------------------------------------------ the quick-training fallback
def quick_rows(profile: Profile, steps: int) -> int:
    """Enough training rows for `steps` optimizer steps of the profile's quick-training batch (at least 64)."""
    return max(64, steps * profile.batch_size * profile.quick_grad_accum)


def quick_train_domain(name: str, profile: Profile, out_dir: Path, steps: int, log=print) -> None:
    """Train a domain adapter with the notebook-01 recipe (`quick_grad_accum` micro-batches a step) for `steps` steps
    (resumable)."""
    from .train import train_domain

    train_domain(
        name,
        profile,
        out_dir,
        n_rows=quick_rows(profile, steps),
        max_steps=steps,
        save_steps=max(1, steps // 2),
        log=log,
        adapter_name=name,
        gradient_accumulation_steps=profile.quick_grad_accum,
    )


def quick_train_router(name: str, profile: Profile, out_dir: Path, steps: int, log=print) -> None:
    """Train the learned router (LoRA SEQ_CLS) with notebook 04's recipe for `steps` steps."""
    from .router.learned import train_and_save

    train_and_save(profile, out_dir, steps, log=log)


def quick_train_tools(name: str, profile: Profile, out_dir: Path, steps: int, log=print) -> None:
    """Train the tool-use adapter with notebook 05's recipe for `steps` steps (resumable)."""
    from .tools.adapter import train_tool_adapter

    train_tool_adapter(
        profile,
        out_dir,
        n_requests=quick_rows(profile, steps),
        max_steps=steps,
        save_steps=max(1, steps // 2),
        log=log,
        adapter_name=name,
    )


QUICK_TRAINERS: dict[str, Callable] = {
    **{d: quick_train_domain for d in COURSE_ADAPTERS},
    ROUTER: quick_train_router,
    TOOLS: quick_train_tools,
}


def quick_train(name: str, profile: Profile, work_dir: Path | str, steps: int | None = None, log=print) -> Found:
    """Train a quick version of an artifact into the work dir and save it there with its manifest."""
    from .budget import describe_estimate

    steps = steps or profile.quick_train_steps
    target = local_dir(name, work_dir)
    estimate = describe_estimate(name, profile, steps)
    notebook = full_run_notebook(name)
    log(
        tr(
            en=f"{name}: training a quick version here ({steps} steps; {estimate}). "
            f"A full run (notebook {notebook}) gives a better one.",
            ru=f"{name}: обучаем здесь быструю версию ({steps} {plural_ru(steps, 'шаг', 'шага', 'шагов')}; "
            f"{estimate}). Полный запуск (ноутбук {notebook}) даст лучшую.",
        )
    )
    start = time.time()
    scratch = Path(work_dir) / "quick-training" / name
    if name == ROUTER:
        shutil.rmtree(scratch, ignore_errors=True)  # the router's loop does not resume: start clean
    with quiet_datasets():  # the trainer's own progress bar stays; datasets' per-map bars go
        QUICK_TRAINERS[name](name, profile, scratch, steps, log)
    if name == ROUTER:  # a complete folder appears under its name in one rename, so a kill never leaves half
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        scratch.rename(target)
    else:
        save_trained(name, profile, scratch, work_dir, steps)
    from .models import free_memory

    free_memory()  # the training base is gone: give its GPU memory back before the lesson loads its own
    log(
        tr(
            en=f"{name}: quick version trained in {time.time() - start:.0f}s, saved to {target}",
            ru=f"{name}: быстрая версия обучена за {time.time() - start:.0f} с, сохранена в {target}",
        )
    )
    return Found(name, target, "trained")


@contextlib.contextmanager
def quiet_datasets():
    """Hide datasets' map/tokenize progress bars for a while, restoring the learner's setting after."""
    import datasets

    was_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_on:
            datasets.enable_progress_bars()


def save_trained(name: str, profile: Profile, trained: Path, work_dir: Path | str, steps: int) -> Path:
    """Save a freshly trained adapter folder (with a manifest) as `name` in the work dir's store."""
    from transformers import AutoConfig

    from . import storage
    from .manifest import Manifest
    from .models import model_source

    config = AutoConfig.from_pretrained(model_source(profile))
    manifest = Manifest.for_model(
        name,
        config,
        profile.name,
        domain=name,
        steps=steps,
        data={"source": "lessons_lib.adapters.quick_train", "quick": True},
    )
    store = storage.local_store(adapters_folder(work_dir))
    return Path(storage.save_adapter(trained, name, store, manifest, overwrite=True))


def resolve_artifact(
    name: str,
    profile: Profile,
    work_dir: Path | str,
    hub_namespace: str | None = None,
    train: bool = True,
    steps: int | None = None,
    log=print,
) -> Found:
    """Find an artifact (shipped → local → Drive → Hub) or, when `train`, quick-train it in the work dir."""
    found = find_artifact(name, profile, work_dir, hub_namespace, log=log)
    if found is not None:
        log(f"{name}: {term(found.source)} ({found.folder})")
        return found
    if not train:
        raise not_found_error(name, profile, work_dir, hub_namespace)
    log(
        tr(en="{name}: not found ({where}).", ru="{name}: не найден ({where}).").format(
            name=name, where=where_searched(name, profile, work_dir, hub_namespace)
        )
    )
    return quick_train(name, profile, work_dir, steps, log=log)


def course_artifacts(lesson, names: Sequence[str] = COURSE_ADAPTERS, log=print) -> dict[str, Path]:
    """The folders of several artifacts for a lesson (found or quick-trained), by name."""
    return {
        name: resolve_artifact(name, lesson.profile, lesson.work_dir, lesson.hub_namespace, log=log).folder
        for name in names
    }


def load_with_adapters(
    base,
    profile: Profile,
    names: Sequence[str] = COURSE_ADAPTERS,
    work_dir: Path | None = None,
    folders: dict[str, Path] | None = None,
):
    """Wrap `base` in a PeftModel holding every named adapter (the first one active)."""
    from peft import PeftModel

    from .mixing import install_merge_guard

    install_merge_guard()  # a wrapper whose adapters were merged away refuses set_adapter instead of ignoring it
    if not names:
        raise ValueError(tr(en="Give at least one adapter name.", ru="Укажите хотя бы одно имя адаптера."))
    folders = folders or {name: adapter_dir(name, profile, work_dir) for name in names}
    model = PeftModel.from_pretrained(base, folders[names[0]], adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(folders[name], adapter_name=name)
    model.set_adapter(names[0])
    model.eval()
    return model
