"""A composition file: the base, its adapters (each with a weight and a precision), named mixes, router, server.

`python -m lessons_lib.serve --config FILE` serves exactly what the file declares (TOML, read with the standard
library's tomllib). The course's default ships as assets/compositions/course.toml:

    [base]
    profile = "tiny"                  # whose settings apply (dtype, 4-bit, lengths); required
    # model = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"   # optional: another base, a local folder or a Hub id

    [adapters.json]
    path = "../adapters/json"         # a PEFT adapter folder, relative to this file -- or hub = "owner/repo"
    weight = 1.0                      # 0..2, 1 = as trained (default 1)
    precision = "fp32"                # fp32 | fp16 | bf16: the dtype of the LoRA weights (default fp32)

    [mixes]
    json_support = { json = 1.0, support = 0.5 }   # a named mix, answerable as model="json_support"

    [router]
    kind = "ngram"                    # ngram | keyword | learned | embedding | none (no table: no router, no `auto`)

    [server]
    host = "127.0.0.1"
    port = 8000
    max_batch = 32
    window_ms = 10.0                  # (also max_body_bytes; --host/--port/... on the command line override these)

An adapter's `weight` scales its LoRA scaling factor once, at load (PEFT's `LoraLayer.set_scale`): the adapter
answers under its own name at that strength, mixed batches stay one forward pass, and weight 0 makes it answer
like the base. Mixes are built from the adapters as served, so a mix weight multiplies the adapter's weight. An
adapter that trained full copies of modules (`modules_to_save`: the tools adapter's lm_head) is served at weight 1
only and is refused in a mix: neither a scale nor a weighted mix can apply to such a copy.
Every mistake in the file is a CompositionError naming the file, the line where it can be found, the key and
what to do, in the course language ($LESSONS_LANG; keys, values and paths stay as written).
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import tomllib

from ..i18n import tr
from ..profiles import PROFILES, Profile
from .loading import ServedModel

MAX_ADAPTER_WEIGHT = 2.0
PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
ROUTER_KINDS = ("keyword", "learned", "embedding", "ngram", "none")
RESERVED_MODELS = ("base", "auto", "mix")
SECTIONS = ("base", "adapters", "mixes", "router", "server")
BASE_KEYS = ("profile", "model")
ADAPTER_KEYS = ("path", "hub", "weight", "precision")
ROUTER_KEYS = ("kind",)
SERVER_KEYS = ("host", "port", "max_batch", "window_ms", "max_body_bytes")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class CompositionError(ValueError):
    """A composition file that cannot be served; the message names the file, line, key and the fix."""


@dataclass(frozen=True)
class AdapterSpec:
    """One adapter of a composition: where it comes from and how it is served."""

    name: str
    source: str  # "path" (a local folder) or "hub" (a Hub repo id)
    location: str  # the resolved folder, or the Hub id
    weight: float = 1.0
    precision: str = "fp32"


@dataclass(frozen=True)
class ServerSettings:
    """The `[server]` table (each has a default)."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 32
    window_ms: float = 10.0
    max_body_bytes: int | None = None  # None: the app's default


@dataclass(frozen=True)
class Composition:
    """A parsed, checked composition file."""

    path: Path
    profile: Profile  # with model_id replaced when [base] names another model
    adapters: dict[str, AdapterSpec]
    mixes: dict[str, dict[str, float]]
    router: str  # one of ROUTER_KINDS
    server: ServerSettings = ServerSettings()
    written: frozenset[str] = frozenset()  # the dotted keys the file sets ("server.port", "adapters.json.weight")


@dataclass
class ComposedModel(ServedModel):
    """A ServedModel plus the composition's named mixes and per-adapter weights (the app lists both)."""

    mixes: dict[str, dict[str, float]] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------- reading and checking the file
class Checker:
    """Raises CompositionErrors that point at the file, the line and the key."""

    def __init__(self, path: Path, text: str):
        self.path, self.lines = path, text.splitlines()

    def line_of(self, key: str) -> int | None:
        """The line (1-based) where dotted `key` is written: its [table] header, or `leaf =` after its table."""
        parts = key.split(".")
        for cut in range(len(parts), 0, -1):
            table, rest = ".".join(parts[:cut]), parts[cut:]
            header = re.compile(rf"^\s*\[\s*{re.escape(table)}\s*\]")
            for number, line in enumerate(self.lines, 1):
                if header.match(line):
                    if not rest:
                        return number
                    leaf = re.compile(rf"^\s*\"?{re.escape(rest[0])}\"?\s*=")
                    for offset, after in enumerate(self.lines[number:], number + 1):
                        if after.lstrip().startswith("["):
                            break
                        if leaf.match(after):
                            return offset
        leaf = re.compile(rf"^\s*\"?{re.escape(parts[-1])}\"?\s*=|[{{,]\s*\"?{re.escape(parts[-1])}\"?\s*=")
        return next((n for n, line in enumerate(self.lines, 1) if leaf.search(line)), None)

    def error(self, key: str, problem: str, fix: str) -> CompositionError:
        line = self.line_of(key) if key else None
        where = f"{self.path}" + (tr(en=f", line {line}", ru=f", строка {line}") if line else "")
        return CompositionError(f"{where}: {key + ': ' if key else ''}{problem}. {fix}")

    def table(self, data, key: str, allowed: tuple[str, ...] | None, example: str) -> dict:
        """`data` as a table whose keys are all in `allowed` (None: any key)."""
        if not isinstance(data, dict):
            kind = type(data).__name__
            raise self.error(
                key,
                tr(en=f"expected a table, got {kind} {data!r}", ru=f"ожидалась таблица, а получено {kind} {data!r}"),
                tr(en=f"Write it as {example}", ru=f"Запишите так: {example}"),
            )
        unknown = [k for k in data if allowed is not None and k not in allowed]
        if unknown:
            raise self.error(
                f"{key}.{unknown[0]}" if key else unknown[0],
                tr(en="unknown key", ru="неизвестный ключ"),
                tr(
                    en=f"Allowed here: {', '.join(allowed)} (check the spelling; a key that is not "
                    "understood is never ignored)",
                    ru=f"Здесь допустимы: {', '.join(allowed)} (проверьте написание: непонятный ключ никогда не "
                    "пропускается молча)",
                ),
            )
        return data

    def number(self, value, key: str, low: float, high: float, what: str, allow_low: bool = True) -> float:
        """A real number in [low, high] ((low, high] without allow_low); `what` names it in the course language."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise self.error(
                key,
                tr(en=f"{value!r} is not a number", ru=f"{value!r} — не число"),
                tr(en=f"Write {what}, e.g. 1.0 (no quotes)", ru=f"Укажите {what}, например 1.0 (без кавычек)"),
            )
        if value > high or value < low or (value == low and not allow_low):
            if allow_low:
                span = tr(en=f"from {low:g} up to {high:g}", ru=f"от {low:g} до {high:g}")
            else:
                span = tr(en=f"greater than {low:g} and up to {high:g}", ru=f"больше {low:g} и не больше {high:g}")
            raise self.error(
                key,
                tr(en=f"{value:g} is out of range", ru=f"{value:g} вне допустимого диапазона"),
                tr(en=f"Use {what}: a number {span}", ru=f"Укажите {what}: число {span}"),
            )
        return float(value)

    def string(self, value, key: str, fix: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(
                key,
                tr(
                    en=f"expected a non-empty string, got {value!r}",
                    ru=f"ожидалась непустая строка, а получено {value!r}",
                ),
                fix,
            )
        return value.strip()

    def integer(self, value, key: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(
                key,
                tr(
                    en=f"{value!r} is not a whole number from {low} to {high}",
                    ru=f"{value!r} — не целое число от {low} до {high}",
                ),
                tr(en="Fix the value", ru="Исправьте значение"),
            )
        return value


def load_composition(path: str | Path) -> Composition:
    """Read and check a composition file; CompositionError (naming file, line, key and fix) for any problem."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.toml"))
        listed = ", ".join(found)
        inside = tr(en=f" It holds {listed}.", ru=f" В ней лежат: {listed}.") if found else ""
        example = path / (found[0] if found else "course.toml")
        raise CompositionError(
            tr(
                en=f"{path} is a folder, not a composition file.{inside} Name a .toml file, e.g. {example}.",
                ru=f"{path} — это папка, а не файл композиции.{inside} Укажите файл .toml, например {example}.",
            )
        )
    if not path.is_file():
        raise CompositionError(
            tr(
                en=f"Composition file {path} does not exist. Pass a TOML file, e.g. "
                "assets/compositions/course.toml (copy it and edit).",
                ru=f"Файла композиции {path} нет. Передайте файл TOML, например assets/compositions/course.toml "
                "(скопируйте его и отредактируйте).",
            )
        )
    if path.suffix.lower() not in (".toml", ""):
        raise CompositionError(
            tr(
                en=f"{path}: a composition file is TOML (.toml); got {path.suffix!r}. Write it as TOML "
                "like assets/compositions/course.toml.",
                ru=f"{path}: файл композиции пишется в формате TOML (.toml), а получен {path.suffix!r}. Запишите "
                "его в TOML, как assets/compositions/course.toml.",
            )
        )
    text = read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CompositionError(
            tr(
                en=f"{path}: not valid TOML ({err}). Fix the syntax there: strings in quotes, "
                "tables as [name], one key = value per line.",
                ru=f"{path}: некорректный TOML ({err}). Исправьте там синтаксис: строки в кавычках, таблицы в "
                "виде [name], по одной паре key = value на строку.",
            )
        ) from err
    return parse_composition(data, path.resolve(), text)


def read_text(path: Path) -> str:
    """The file as text: UTF-8, a leading byte-order mark dropped (editors on Windows write one); a CompositionError
    naming the line of a byte that is not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        byte = data[err.start : err.start + 1]
        raise CompositionError(
            tr(
                en=f"{path}, line {line}: byte {byte!r} is not UTF-8 text. Save the file as "
                "UTF-8 (TOML files are UTF-8), or retype the characters on that line.",
                ru=f"{path}, строка {line}: байт {byte!r} — не текст в UTF-8. Сохраните файл в UTF-8 (файлы TOML "
                "всегда в UTF-8) или наберите символы этой строки заново.",
            )
        ) from err


def parse_composition(data: dict, path: Path, text: str = "") -> Composition:
    """Check the parsed TOML `data` of the file at `path` (relative adapter paths are relative to its folder)."""
    check = Checker(path, text)
    check.table(data, "", SECTIONS, "[base], [adapters.NAME], [mixes], [router], [server]")
    profile = parse_base(check, data.get("base"), path.parent)
    adapters = parse_adapters(check, data.get("adapters"), path.parent)
    mixes = parse_mixes(check, data.get("mixes", {}), adapters)
    router_table = check.table(data.get("router", {"kind": "none"}), "router", ROUTER_KEYS, 'kind = "keyword"')
    kinds = ", ".join(ROUTER_KINDS)
    if "kind" not in router_table:
        raise check.error(
            "router",
            tr(en="has no kind", ru="не задан kind"),
            tr(en=f"Write kind = one of {kinds}", ru=f"Укажите kind = одно из: {kinds}"),
        )
    router = check.string(router_table["kind"], "router.kind", one_of(kinds))
    if router not in ROUTER_KINDS:
        raise check.error(
            "router.kind",
            tr(en=f"unknown router {router!r}", ru=f"неизвестный маршрутизатор {router!r}"),
            tr(
                en=f"Use one of {kinds} (or leave out [router] to serve without `auto`)",
                ru=f"Используйте одно из: {kinds} (или уберите [router], чтобы сервер работал без `auto`)",
            ),
        )
    return Composition(
        path=path,
        profile=profile,
        adapters=adapters,
        mixes=mixes,
        router=router,
        server=parse_server(check, data.get("server", {})),
        written=written_keys(data),
    )


def one_of(names: str) -> str:
    """The fix "Use one of NAMES" in the course language."""
    return tr(en=f"Use one of {names}", ru=f"Используйте одно из: {names}")


def written_keys(data: dict) -> frozenset[str]:
    """The settings a checked file writes: [server] keys and each adapter's keys, dotted."""
    keys = {f"server.{key}" for key in data.get("server", {})}
    keys |= {f"adapters.{name}.{key}" for name, table in data.get("adapters", {}).items() for key in table}
    return frozenset(keys)


def parse_base(check: Checker, base, folder: Path) -> Profile:
    """The [base] table: a profile, optionally with another model (a local folder or a Hub id)."""
    missing = tr(en="missing", ru="отсутствует")
    if base is None:
        raise check.error(
            "base",
            missing,
            tr(
                en='Add a [base] table with profile = "tiny" (or t4, 7b, ...)',
                ru='Добавьте таблицу [base] с profile = "tiny" (или t4, 7b, ...)',
            ),
        )
    check.table(base, "base", BASE_KEYS, 'profile = "tiny"')
    profiles = ", ".join(PROFILES)
    if "profile" not in base:
        raise check.error(
            "base.profile",
            missing,
            tr(
                en=f"Say whose settings apply: profile = one of {profiles} (also needed when base.model names another "
                "model)",
                ru=f"Укажите, чьи настройки применять: profile = одно из: {profiles} (нужно и тогда, когда base.model "
                "называет другую модель)",
            ),
        )
    name = check.string(base["profile"], "base.profile", one_of(profiles))
    if name not in PROFILES:
        raise check.error(
            "base.profile", tr(en=f"unknown profile {name!r}", ru=f"неизвестный профиль {name!r}"), one_of(profiles)
        )
    profile = PROFILES[name]
    if "model" not in base:
        return profile
    model = check.string(
        base["model"],
        "base.model",
        tr(
            en="Write a local folder or a Hub id (owner/name)",
            ru="Укажите локальную папку или id модели на Hub (owner/name)",
        ),
    )
    local = (folder / model).resolve() if not Path(model).is_absolute() else Path(model)
    if local.is_dir():
        return replace(profile, model_id=str(local))
    if model.startswith((".", "/", "~")) or not HUB_ID.match(model):
        raise check.error(
            "base.model",
            tr(
                en=f"{model!r} is neither a folder (looked at {local}) nor a Hub id",
                ru=f"{model!r} — не папка (искали {local}) и не id модели на Hub",
            ),
            tr(
                en="Give an existing folder (relative to the composition file) or a Hub id like owner/name",
                ru="Укажите существующую папку (путь от файла композиции) или id на Hub вида owner/name",
            ),
        )
    return replace(profile, model_id=model)


def parse_adapters(check: Checker, adapters, folder: Path) -> dict[str, AdapterSpec]:
    """The [adapters.NAME] tables."""
    from ..compat import AdapterNameError, check_adapter_name

    if adapters is None:
        return {}
    check.table(
        adapters, "adapters", None, tr(en='[adapters.json] with path = "..."', ru='[adapters.json] с path = "..."')
    )
    specs = {}
    for name, table in adapters.items():
        key = f"adapters.{name}"
        try:
            check_adapter_name(name)
        except AdapterNameError as err:
            raise check.error(key, tr(en="bad adapter name", ru="недопустимое имя адаптера"), str(err)) from err
        if name in RESERVED_MODELS:
            raise check.error(
                key,
                tr(en=f"{name!r} is a reserved model name", ru=f"{name!r} — зарезервированное имя модели"),
                tr(en="Rename the adapter", ru="Переименуйте адаптер"),
            )
        check.table(table, key, ADAPTER_KEYS, 'path = "../adapters/json"')
        if ("path" in table) == ("hub" in table):
            raise check.error(
                key,
                tr(en="needs exactly one of path or hub", ru="нужен ровно один из ключей path и hub"),
                tr(
                    en='Write path = "folder" (relative to this file) or hub = "owner/repo"',
                    ru='Укажите path = "folder" (путь от этого файла) или hub = "owner/repo"',
                ),
            )
        weight = check.number(
            table.get("weight", 1.0),
            f"{key}.weight",
            0.0,
            MAX_ADAPTER_WEIGHT,
            tr(
                en="the adapter's weight (1 = as trained, 0 = off)",
                ru="вес адаптера (1 — как при обучении, 0 — адаптер выключен)",
            ),
        )
        precision = table.get("precision", "fp32")
        if not isinstance(precision, str) or precision not in PRECISIONS:
            precisions = ", ".join(PRECISIONS)
            raise check.error(
                f"{key}.precision",
                tr(en=f"unknown precision {precision!r}", ru=f"неизвестная точность {precision!r}"),
                tr(
                    en=f'Use one of {precisions}, as one string: precision = "fp16"',
                    ru=f'Используйте одно из: {precisions}, одной строкой: precision = "fp16"',
                ),
            )
        if "path" in table:
            given = check.string(
                table["path"],
                f"{key}.path",
                tr(en="Write the adapter folder as a string", ru="Укажите папку адаптера строкой"),
            )
            location = Path(given).expanduser()
            location = location if location.is_absolute() else (folder / location).resolve()
            if not (location / "adapter_config.json").is_file():
                if not location.exists():
                    problem = tr(en=f"{location} does not exist", ru=f"{location} не существует")
                else:
                    problem = tr(
                        en=f"{location} has no adapter_config.json", ru=f"в {location} нет adapter_config.json"
                    )
                raise check.error(
                    f"{key}.path",
                    problem,
                    tr(
                        en="Point it at a saved PEFT adapter folder (adapter_config.json + "
                        "adapter_model.safetensors); relative paths start at the composition file's folder",
                        ru="Укажите папку сохранённого адаптера PEFT (adapter_config.json + "
                        "adapter_model.safetensors); относительные пути отсчитываются от папки файла композиции",
                    ),
                )
            specs[name] = AdapterSpec(name, "path", str(location), weight, precision)
        else:
            hub = check.string(
                table["hub"],
                f"{key}.hub",
                tr(en="Write the Hub repo id as owner/repo", ru="Укажите id репозитория на Hub в виде owner/repo"),
            )
            if not HUB_ID.match(hub):
                raise check.error(
                    f"{key}.hub",
                    tr(en=f"{hub!r} is not a Hub repo id", ru=f"{hub!r} — не id репозитория на Hub"),
                    tr(en="Write it as owner/repo", ru="Запишите его в виде owner/repo"),
                )
            specs[name] = AdapterSpec(name, "hub", hub, weight, precision)
    return specs


def parse_mixes(check: Checker, mixes, adapters: dict[str, AdapterSpec]) -> dict[str, dict[str, float]]:
    """The [mixes] table: name -> {adapter: weight}, each weight in (0, 2]."""
    from ..compat import AdapterNameError, check_adapter_name

    check.table(mixes, "mixes", None, "name = { json = 1.0, support = 0.5 }")
    parsed = {}
    for name, parts in mixes.items():
        key = f"mixes.{name}"
        try:
            check_adapter_name(name)
        except AdapterNameError as err:
            why = str(err)
            raise check.error(
                key,
                tr(en="bad mix name", ru="недопустимое имя смеси"),
                tr(
                    en=why.replace("adapter name", "mix name"),
                    ru=why.replace("Имя адаптера", "Имя смеси").replace("имя адаптера", "имя смеси"),
                ),
            ) from err
        if name in RESERVED_MODELS or name in adapters:
            raise check.error(
                key,
                tr(
                    en=f"{name!r} is already the name of {'an adapter' if name in adapters else 'a model'}",
                    ru=f"{name!r} — уже имя {'адаптера' if name in adapters else 'модели'}",
                ),
                tr(en="Give the mix its own name", ru="Дайте смеси собственное имя"),
            )
        check.table(parts, key, None, f"{name} = {{ json = 1.0, support = 0.5 }}")
        if not parts:
            raise check.error(
                key,
                tr(en="the mix names no adapter", ru="в смеси не указан ни один адаптер"),
                tr(en="List at least one adapter with its weight", ru="Перечислите хотя бы один адаптер с его весом"),
            )
        weights = {}
        for adapter, weight in parts.items():
            if adapter not in adapters:
                declared = ", ".join(adapters)
                raise check.error(
                    f"{key}.{adapter}",
                    tr(en=f"unknown adapter {adapter!r}", ru=f"неизвестный адаптер {adapter!r}"),
                    tr(
                        en=f"A mix combines the composition's adapters: {declared or 'none declared'}",
                        ru=f"Смесь составляется из адаптеров композиции: {declared or 'не объявлено ни одного'}",
                    ),
                )
            weights[adapter] = check.number(
                weight,
                f"{key}.{adapter}",
                0.0,
                MAX_ADAPTER_WEIGHT,
                tr(
                    en="a mix weight (remove the entry to leave the adapter out)",
                    ru="вес в смеси (чтобы не включать адаптер, удалите эту запись)",
                ),
                allow_low=False,
            )
        parsed[name] = weights
    return parsed


def parse_server(check: Checker, server) -> ServerSettings:
    """The [server] table."""
    check.table(server, "server", SERVER_KEYS, "port = 8000")
    settings = ServerSettings()
    if "host" in server:
        fix = tr(en='Write e.g. "127.0.0.1"', ru='Укажите, например, "127.0.0.1"')
        settings = replace(settings, host=check.string(server["host"], "server.host", fix))
    if "port" in server:
        settings = replace(settings, port=check.integer(server["port"], "server.port", 1, 65535))
    if "max_batch" in server:
        settings = replace(settings, max_batch=check.integer(server["max_batch"], "server.max_batch", 1, 4096))
    if "window_ms" in server:
        settings = replace(
            settings,
            window_ms=check.number(
                server["window_ms"],
                "server.window_ms",
                0,
                10_000,
                tr(
                    en="milliseconds the engine gathers a batch",
                    ru="время в миллисекундах, за которое движок собирает батч",
                ),
            ),
        )
    if "max_body_bytes" in server:
        settings = replace(
            settings, max_body_bytes=check.integer(server["max_body_bytes"], "server.max_body_bytes", 1, 1 << 40)
        )
    return settings


# ---------------------------------------------------------------- loading what the file declares
def adapter_folder(spec: AdapterSpec) -> Path:
    """The local folder of an adapter (a Hub adapter is downloaded, or taken from the cache)."""
    if spec.source == "path":
        return Path(spec.location)
    from .. import storage

    owner, repo = spec.location.split("/", 1)
    return storage.load_adapter_folder(repo, storage.AdapterStore("hub", owner))


def lora_layers(model, name: str):
    """The LoRA layers of `model` that hold adapter `name`."""
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer) and name in m.lora_A]


def apply_weight(model, name: str, weight: float) -> int:
    """Scale adapter `name`'s LoRA scaling to `weight` × as trained; returns how many layers were scaled."""
    layers = lora_layers(model, name)
    for layer in layers:
        layer.set_scale(name, weight)
    return len(layers)


def apply_precision(model, name: str, precision: str) -> int:
    """Cast adapter `name`'s LoRA weights to `precision` (fp32/fp16/bf16); returns how many layers were cast."""
    import torch

    dtype = getattr(torch, PRECISIONS[precision])
    layers = lora_layers(model, name)
    for layer in layers:
        layer.lora_A[name].to(dtype)
        layer.lora_B[name].to(dtype)
    return len(layers)


def load_composed(composition: Composition, log=print) -> ComposedModel:
    """Load the base, every adapter (at its weight and precision) and the router; any failure stops with why."""
    from ..compat import load_adapter_checked
    from ..manifest import base_model_id
    from ..mixing import saved_modules
    from ..models import load_base_and_tokenizer
    from .loading import UNREADABLE_ADAPTER, load_router, rows_without_saved_modules

    model, tokenizer = load_base_and_tokenizer(composition.profile, log=log)
    base_id = base_model_id(model)
    folders: dict[str, Path] = {}
    for name, spec in composition.adapters.items():
        where = f"{composition.path}: adapters.{name}"
        try:
            folder = adapter_folder(spec)
            model, _ = load_adapter_checked(model, folder, name)
        except (*UNREADABLE_ADAPTER, RuntimeError) as err:
            why = f"{type(err).__name__}: {err}"
            raise CompositionError(
                tr(
                    en=f"{where}: cannot load {spec.location} ({why}). Fix the "
                    "path or hub id, or remove the adapter from the file.",
                    ru=f"{where}: не удалось загрузить {spec.location} ({why}). Исправьте путь или id на Hub либо "
                    "уберите адаптер из файла.",
                )
            ) from err
        if apply_weight(model, name, spec.weight) == 0:
            raise CompositionError(
                tr(
                    en=f"{where}: no LoRA layer holds this adapter, so its weight cannot be applied.",
                    ru=f"{where}: ни один слой LoRA не содержит этот адаптер, поэтому его вес применить нельзя.",
                )
            )
        saved = ", ".join(saved_modules(model, name))
        if saved and spec.weight != 1.0:
            raise CompositionError(
                tr(
                    en=f"{where}.weight = {spec.weight:g}: besides LoRA matrices this adapter trained a full copy of "
                    f"{saved} (modules_to_save), which a weight cannot scale. Set weight = 1.0, or leave the "
                    "adapter out of the file.",
                    ru=f"{where}.weight = {spec.weight:g}: кроме матриц LoRA этот адаптер обучил полную копию {saved} "
                    "(modules_to_save), а её вес масштабировать не может. Задайте weight = 1.0 или уберите адаптер "
                    "из файла.",
                )
            )
        apply_precision(model, name, spec.precision)
        folders[name] = folder
        log(
            tr(
                en=f"adapter {name}: weight {spec.weight:g}, {spec.precision} ({spec.source} {spec.location})",
                ru=f"адаптер {name}: вес {spec.weight:g}, {spec.precision} ({spec.source} {spec.location})",
            )
        )
    model.eval()
    rows_without_saved_modules(model)  # a mixed batch may hold rows of adapters with and without saved copies
    check_mixes(model, composition)
    router, router_error = (
        None,
        tr(
            en='the composition declares no router (add [router] kind = "keyword")',
            ru='в композиции не объявлен маршрутизатор (добавьте [router] kind = "keyword")',
        ),
    )
    if composition.router != "none":
        router, router_error = load_router(composition.router, composition.profile, None, log)
        if router is None:
            kind = f"router.kind = {composition.router!r}"
            raise CompositionError(
                tr(
                    en=f"{composition.path}: {kind}: {router_error}. "
                    "Pick another kind, or remove [router] to serve without `auto`.",
                    ru=f"{composition.path}: {kind}: {router_error}. Выберите другой kind или уберите [router], "
                    "чтобы сервер работал без `auto`.",
                )
            )
    return ComposedModel(
        profile=composition.profile,
        model=model,
        tokenizer=tokenizer,
        folders=folders,
        base_id=base_id,
        router=router,
        router_kind=composition.router if router is not None else None,
        router_error=router_error,
        mixes={k: dict(v) for k, v in composition.mixes.items()},
        weights={name: spec.weight for name, spec in composition.adapters.items()},
    )


def check_mixes(model, composition: Composition) -> None:
    """Refuse a named mix of an adapter with modules_to_save copies (a mix would drop them), saying what to do."""
    from ..mixing import SavedModulesMixError, check_mixable, saved_modules

    for mix, weights in composition.mixes.items():
        try:
            check_mixable(model, list(weights))
        except SavedModulesMixError as err:
            saved = ", ".join(a for a in weights if saved_modules(model, a))
            raise CompositionError(
                tr(
                    en=f"{composition.path}: mixes.{mix}: {err} In this file: remove {saved} from mixes.{mix}.",
                    ru=f"{composition.path}: mixes.{mix}: {err} В этом файле: уберите {saved} из mixes.{mix}.",
                )
            ) from err
