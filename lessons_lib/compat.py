"""Check that an adapter folder fits the loaded base *before* PEFT injects anything into the model.

`check_adapter(model, folder, name)` validates the name, the files, the safetensors header, the base the
adapter was trained on, its target modules and the shapes of its LoRA matrices, and returns a
`CompatReport`. `load_adapter_checked(model, folder, name)` runs that check and then loads the adapter with
PEFT; if anything fails, the adapters that were already loaded stay loaded, active and unchanged.

The check also reads the weights: NaN/inf values, zero-filled tensors and a `lora_alpha / r` scale outside
SCALE_RANGE are errors, and so is a config whose target modules disagree with the tensors (either way: PEFT
would load a partial adapter or add untrained layers). A fresh LoRA has every lora_B at zero by design (it
starts as a no-op), so an all-zero lora_B with random lora_A is not damage but an *untrained* adapter: it
loads, with an AdapterWarning and a line in the report, because it answers exactly like the base.

SCALE_RANGE: the scale multiplies every LoRA update (alpha / r, or alpha / sqrt(r) with use_rslora). Common
settings give 0.25 (QLoRA's r=64, alpha=16) to 4 (alpha = 4r); the course uses 2. Outside 1/64..16 the
adapter is either nearly inert or swamps the base: a trained r=8 adapter whose config says lora_alpha=1600
(scale 200) answers with empty text.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .i18n import tr
from .manifest import MANIFEST_FILE, Manifest, base_fingerprint, base_model_id
from .storage import ADAPTER_FILES, active_adapters, check_name

REQUIRED_FILES = ADAPTER_FILES
CONFIG_FILE, WEIGHTS_FILE = REQUIRED_FILES
BOM = b"\xef\xbb\xbf"  # the UTF-8 byte-order mark some editors write first
PEFT_PREFIX = "base_model.model."
LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>A|B)(?:\.[^.]+)?\.weight$")
SCALE_RANGE = (1 / 64, 16.0)  # allowed lora_alpha / r (see the module docstring)
ALL_LINEAR = "all-linear"


class AdapterCompatError(ValueError):
    """An adapter that cannot be loaded into this model; the message says why and what to do."""


class AdapterNameError(AdapterCompatError):
    """An adapter name that is unsafe as a folder name or unusable as a PEFT adapter name."""


class AdapterFilesError(AdapterCompatError, FileNotFoundError):
    """The adapter folder or one of its required files is missing."""


class CorruptAdapterError(AdapterCompatError):
    """adapter_config.json or adapter_model.safetensors cannot be parsed."""


class BaseMismatchError(AdapterCompatError):
    """The adapter was trained on another base model than the one loaded."""


class TargetModulesError(AdapterCompatError):
    """The adapter targets modules the loaded base does not have."""


class AdapterLoadError(AdapterCompatError):
    """PEFT failed while loading an adapter that passed the check; the model was rolled back."""


class DamagedWeightsError(CorruptAdapterError):
    """The weights parse but cannot be right: NaN/inf values or zero-filled LoRA matrices."""


class AdapterConfigError(CorruptAdapterError):
    """adapter_config.json parses but holds values PEFT would load into a broken adapter (type, rank, scale)."""


class AdapterWarning(UserWarning):
    """An adapter that loads but will not change the answers (e.g. untrained: every lora_B is zero)."""


@dataclass(frozen=True)
class CompatReport:
    """What the check found: both bases, where the adapter's base came from, rank and targets."""

    name: str
    folder: Path
    adapter_base: str
    adapter_fingerprint: str | None
    loaded_base: str
    loaded_fingerprint: str
    base_source: str
    rank: int
    ranks: tuple[int, ...]
    lora_alpha: float | None
    target_modules: tuple[str, ...]
    modules_matched: int
    notes: tuple[str, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def rows(self) -> list[tuple[str, str]]:
        """(item, value) pairs for a small table."""
        per_module = "" if set(self.ranks) <= {self.rank} else f" (per module: {sorted(set(self.ranks))})"
        return [
            ("adapter", self.name),
            ("folder", str(self.folder)),
            ("adapter's base", f"{self.adapter_base} ({self.base_source})"),
            ("adapter's fingerprint", self.adapter_fingerprint or "not recorded"),
            ("loaded base", self.loaded_base),
            ("loaded fingerprint", self.loaded_fingerprint),
            ("rank r", f"{self.rank}{per_module}"),
            ("lora_alpha", str(self.lora_alpha)),
            ("target modules", ", ".join(self.target_modules)),
            ("LoRA modules matched", str(self.modules_matched)),
            *(("note", note) for note in self.notes),
            *(("WARNING", text) for text in self.warnings),
        ]

    def summary(self) -> str:
        """The report as aligned text (item names in the course language)."""
        rows = [
            (tr(en=k, ru=REPORT_ROWS_RU.get(k, k)), tr(en=v, ru=REPORT_VALUES_RU.get(v, v))) for k, v in self.rows()
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


REPORT_ROWS_RU = {
    "adapter": "адаптер",
    "folder": "папка",
    "adapter's base": "базовая модель адаптера",
    "adapter's fingerprint": "отпечаток адаптера",
    "loaded base": "загруженная базовая модель",
    "loaded fingerprint": "отпечаток загруженной",
    "rank r": "ранг r",
    "target modules": "целевые модули",
    "LoRA modules matched": "совпало модулей LoRA",
    "note": "примечание",
    "WARNING": "ПРЕДУПРЕЖДЕНИЕ",
}
REPORT_VALUES_RU = {"not recorded": "не записан"}


# ---------------------------------------------------------------- the single checks
def check_adapter_name(name: str) -> str:
    """Return `name` if it is a safe adapter name, else raise AdapterNameError saying what to use (the store's rule)."""
    return check_name(name)


def check_adapter_files(folder: str | Path) -> Path:
    """Return the folder if it holds adapter_config.json and adapter_model.safetensors, else say what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AdapterFilesError(
            tr(
                en=f"Adapter folder {folder} does not exist (or is not a folder). Check the path, or get "
                "the adapter with lessons_lib.adapters.adapter_dir / lessons_lib.storage first.",
                ru=f"Папки адаптера {folder} нет (или это не папка). Проверьте путь или сначала получите "
                "адаптер через lessons_lib.adapters.adapter_dir / lessons_lib.storage.",
            )
        )
    for filename in REQUIRED_FILES:
        if not (folder / filename).is_file():
            extra = (
                tr(
                    en=" An adapter_model.bin (old pickle format) is there: load it once with PEFT and re-save it "
                    "with save_pretrained(), which writes safetensors.",
                    ru=" В папке есть adapter_model.bin (старый формат pickle): загрузите его один раз через PEFT "
                    "и пересохраните через save_pretrained(), который пишет safetensors.",
                )
                if filename == WEIGHTS_FILE and (folder / "adapter_model.bin").is_file()
                else ""
            )
            raise AdapterFilesError(
                tr(
                    en=f"{folder} has no {filename}: it is not a complete PEFT adapter. A saved adapter "
                    f"needs {' and '.join(REQUIRED_FILES)}; re-save it with "
                    f"model.save_pretrained(folder) or copy the missing file.{extra}",
                    ru=f"В {folder} нет {filename}: это не полный адаптер PEFT. Сохранённому адаптеру "
                    f"нужны {' и '.join(REQUIRED_FILES)}; пересохраните его через "
                    f"model.save_pretrained(folder) или скопируйте недостающий файл.{extra}",
                )
            )
    return folder


def read_adapter_config(folder: Path) -> dict:
    """adapter_config.json as a dict, with a clear error when it is not valid JSON or not LoRA."""
    path = folder / CONFIG_FILE
    if path.read_bytes().startswith(BOM):  # PEFT's json.load refuses it too; the file is not damaged, only re-saved
        raise CorruptAdapterError(
            tr(
                en=f"{path} starts with a UTF-8 byte-order mark (an editor added it when saving), which PEFT cannot "
                "read. Save the file again as UTF-8 without BOM.",
                ru=f"{path} начинается с метки порядка байтов UTF-8 (её добавил редактор при сохранении), а PEFT такой "
                "файл не читает. Сохраните файл заново в UTF-8 без BOM.",
            )
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptAdapterError(
            tr(
                en=f"{path} is not valid JSON ({err}). The file is damaged: copy or download the "
                "adapter again, or re-save it with save_pretrained().",
                ru=f"{path} — невалидный JSON ({err}). Файл повреждён: скопируйте или скачайте "
                "адаптер заново или пересохраните его через save_pretrained().",
            )
        ) from err
    if not isinstance(config, dict):
        raise CorruptAdapterError(
            tr(
                en=f"{path} does not hold a JSON object; copy or download the adapter again.",
                ru=f"В {path} не объект JSON; скопируйте или скачайте адаптер заново.",
            )
        )
    if "peft_type" not in config:  # PEFT reads it first (a KeyError, without saying which file)
        raise CorruptAdapterError(
            tr(
                en=f"{path} has no peft_type, so PEFT cannot tell what adapter it is. Re-save the adapter with "
                'save_pretrained(), or add "peft_type": "LORA" if the file was edited by hand.',
                ru=f"В {path} нет peft_type, и PEFT не может понять, что это за адаптер. Пересохраните адаптер через "
                'save_pretrained() или добавьте "peft_type": "LORA", если файл правили вручную.',
            )
        )
    if config["peft_type"] != "LORA":
        raise AdapterCompatError(
            tr(
                en=f"{path} describes a {config.get('peft_type')} adapter; this course loads LoRA adapters only.",
                ru=f"{path} описывает адаптер {config.get('peft_type')}; курс загружает только адаптеры LoRA.",
            )
        )
    return config


def _positive_int(value) -> bool:
    """Whether `value` is an int above 0 (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _positive_number(value) -> bool:
    """Whether `value` is a finite int or float above 0 (a bool is not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def lora_scale(r: int, alpha: float, rslora: bool = False) -> float:
    """The factor PEFT multiplies every LoRA update by: alpha / r (alpha / sqrt(r) with use_rslora)."""
    return alpha / (math.sqrt(r) if rslora else r)


def check_lora_config(folder: Path, config: dict) -> None:
    """Refuse a config whose rank, lora_alpha, scale or target_modules PEFT would turn into a broken adapter."""
    path = folder / CONFIG_FILE
    fix = tr(
        en="Fix the value in that file (the course's adapters use r=8..16, lora_alpha=2*r) or copy the adapter again.",
        ru="Исправьте значение в этом файле (адаптеры курса используют r=8..16, lora_alpha=2*r) или скопируйте "
        "адаптер заново.",
    )
    r, alpha = config.get("r", 8), config.get("lora_alpha", 8)
    if not _positive_int(r):
        raise AdapterConfigError(
            tr(
                en=f"{path}: 'r' must be a positive whole number, got {r!r}. {fix}",
                ru=f"{path}: 'r' должно быть целым положительным числом, получено {r!r}. {fix}",
            )
        )
    if not _positive_number(alpha):
        raise AdapterConfigError(
            tr(
                en=f"{path}: 'lora_alpha' must be a positive number, got {alpha!r}. {fix}",
                ru=f"{path}: 'lora_alpha' должно быть положительным числом, получено {alpha!r}. {fix}",
            )
        )
    ranks = config.get("rank_pattern") or {}
    alphas = config.get("alpha_pattern") or {}
    if not isinstance(ranks, dict) or not isinstance(alphas, dict):
        raise AdapterConfigError(
            tr(
                en=f"{path}: 'rank_pattern' and 'alpha_pattern' must be objects. {fix}",
                ru=f"{path}: 'rank_pattern' и 'alpha_pattern' должны быть объектами JSON. {fix}",
            )
        )
    rslora = config.get("use_rslora") is True
    low, high = SCALE_RANGE
    for key in ["", *sorted(set(ranks) | set(alphas))]:
        r_k, alpha_k = ranks.get(key, r), alphas.get(key, alpha)
        where = tr(en=f" for modules matching {key!r}", ru=f" для модулей по шаблону {key!r}") if key else ""
        if not _positive_int(r_k) or not _positive_number(alpha_k):
            raise AdapterConfigError(
                tr(
                    en=f"{path}: rank {r_k!r} / lora_alpha {alpha_k!r}{where} must be positive numbers. {fix}",
                    ru=f"{path}: ранг {r_k!r} / lora_alpha {alpha_k!r}{where} должны быть положительными числами. "
                    f"{fix}",
                )
            )
        scale = lora_scale(r_k, alpha_k, rslora)
        if not low <= scale <= high:
            formula = "lora_alpha / sqrt(r)" if rslora else "lora_alpha / r"
            raise AdapterConfigError(
                tr(
                    en=f"{path}: the LoRA scale {formula} = {alpha_k:g} / {r_k}{where} = {scale:g} is outside "
                    f"{low:g}..{high:g}: the adapter would {'barely change' if scale < low else 'swamp'} the base "
                    f"(a scale of 200 gives empty answers). lora_alpha must be the value the adapter was trained "
                    f"with: restore it (the course trains with lora_alpha = 2 * r), or copy the adapter again.",
                    ru=f"{path}: масштаб LoRA {formula} = {alpha_k:g} / {r_k}{where} = {scale:g} вне диапазона "
                    f"{low:g}..{high:g}: адаптер {'почти не изменит' if scale < low else 'заглушит'} базовую модель "
                    f"(при масштабе 200 ответы пустые). lora_alpha должно быть тем значением, с которым адаптер "
                    f"обучали: восстановите его (курс обучает с lora_alpha = 2 * r) или скопируйте адаптер заново.",
                )
            )
    targets = config.get("target_modules")
    if (
        targets is not None
        and not isinstance(targets, str)
        and not (isinstance(targets, list) and all(isinstance(t, str) and t for t in targets))
    ):
        raise AdapterConfigError(
            tr(
                en=f"{path}: 'target_modules' must be a list of module names (e.g. [\"q_proj\", "
                f'"v_proj"]) or a regular expression, got {targets!r}. {fix}',
                ru=f"{path}: 'target_modules' должно быть списком имён модулей (например, [\"q_proj\", "
                f'"v_proj"]) или регулярным выражением, получено {targets!r}. {fix}',
            )
        )


def read_weight_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from adapter_model.safetensors (header only, no weights are read)."""
    from safetensors import safe_open

    path = folder / WEIGHTS_FILE
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118 - a safe_open handle has keys() but no __contains__/__iter__
    except Exception as err:  # safetensors raises its own SafetensorError and plain OSError/ValueError
        raise CorruptAdapterError(
            tr(
                en=f"{path} is not a readable safetensors file ({type(err).__name__}: {err}). It was "
                "probably cut off while copying or downloading: copy or download the adapter "
                "again, or re-save it with save_pretrained().",
                ru=f"{path} не читается как файл safetensors ({type(err).__name__}: {err}). Вероятно, он "
                "обрезан при копировании или скачивании: скопируйте или скачайте адаптер "
                "заново или пересохраните его через save_pretrained().",
            )
        ) from err
    if not any(LORA_KEY.match(key) for key in shapes):
        raise CorruptAdapterError(
            tr(
                en=f"{path} holds no LoRA weights (no '.lora_A.'/'.lora_B.' tensors among "
                f"{len(shapes)} tensors). Re-save the adapter with save_pretrained().",
                ru=f"В {path} нет весов LoRA (среди тензоров ({len(shapes)}) нет '.lora_A.'/'.lora_B.'). "
                "Пересохраните адаптер через save_pretrained().",
            )
        )
    return shapes


def adapter_base(folder: Path, config: dict) -> tuple[str, str | None, str]:
    """(base id, base fingerprint or None, where it came from): manifest.json first, else adapter_config.json."""
    if (folder / MANIFEST_FILE).is_file():
        try:
            manifest = Manifest.load(folder)
        except (ValueError, TypeError) as err:
            raise CorruptAdapterError(
                tr(
                    en=f"{folder / MANIFEST_FILE} cannot be read ({err}). Fix or delete it; without "
                    "it the check falls back to adapter_config.json.",
                    ru=f"{folder / MANIFEST_FILE} не читается ({err}). Исправьте или удалите его; без "
                    "манифеста проверка берёт данные из adapter_config.json.",
                )
            ) from err
        wrong = [
            f"{field}={value!r}"
            for field, value in (("base_model", manifest.base_model), ("base_fingerprint", manifest.base_fingerprint))
            if not isinstance(value, str)
        ]
        if wrong:
            raise CorruptAdapterError(
                tr(
                    en=f"{folder / MANIFEST_FILE} has {', '.join(wrong)}: these fields must be text. "
                    "Fix or delete the manifest (re-save the adapter with lessons_lib.storage).",
                    ru=f"В {folder / MANIFEST_FILE} {', '.join(wrong)}: эти поля должны быть строками. "
                    "Исправьте или удалите манифест (пересохраните адаптер через lessons_lib.storage).",
                )
            )
        return manifest.base_model, manifest.base_fingerprint, MANIFEST_FILE
    return str(config.get("base_model_name_or_path") or ""), None, CONFIG_FILE


def _unwrap(model):
    """The underlying transformers model (a PeftModel's base), whose modules the adapter targets."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _same_base(recorded: str, base) -> bool:
    """Whether a recorded base id names the loaded base (its course id, Hub id or local folder)."""
    config = base.config
    names = {base_model_id(base), str(getattr(config, "_name_or_path", "") or "")}
    names.discard("")
    if recorded in names:
        return True
    for name in names:  # a local folder may be written relative, absolute or with a trailing slash
        try:
            if Path(name).exists() and Path(recorded).exists() and Path(name).resolve() == Path(recorded).resolve():
                return True
        except OSError:
            continue
    return False


def _what_to_do(name: str, recorded: str, base=None) -> str:
    """What to do about an adapter that does not fit the loaded base: load its own base, unless that is the one loaded
    (then its files were changed since training)."""
    if base is not None and recorded and _same_base(recorded, base):
        return tr(
            en=f"Adapter {name!r} records this very base, so its files changed after training (damaged, edited or "
            "mixed with another adapter's): copy or download the adapter again, or retrain it (notebook 01).",
            ru=f"Адаптер {name!r} записал именно эту базовую модель, значит, его файлы изменились после обучения "
            "(повреждены, отредактированы или смешаны с файлами другого адаптера): скопируйте или скачайте адаптер "
            "заново либо обучите его снова (ноутбук 01).",
        )
    return tr(
        en=f"Load the base {recorded!r} before loading adapter {name!r}, or use an adapter trained on the loaded "
        "base (retrain it in notebook 01 for this profile).",
        ru=f"Загрузите базовую модель {recorded!r}, прежде чем загружать адаптер {name!r}, или возьмите адаптер, "
        "обученный на загруженной базовой модели (переобучите его в ноутбуке 01 для этого профиля).",
    )


def check_base(
    name: str, folder: Path, config: dict, base, strict: bool = True
) -> tuple[str, str | None, str, list[str]]:
    """Compare the adapter's recorded base with the loaded one; BaseMismatchError names both."""
    recorded, fingerprint, source = adapter_base(folder, config)
    loaded, loaded_fp = base_model_id(base), base_fingerprint(base)
    notes: list[str] = []
    if fingerprint is not None and fingerprint != loaded_fp:
        raise BaseMismatchError(
            tr(
                en=f"Adapter {name!r} was trained on base {recorded!r} (architecture fingerprint "
                f"{fingerprint}), but the loaded base is {loaded!r} (fingerprint {loaded_fp}): their "
                f"layer shapes differ. {_what_to_do(name, recorded, base)}",
                ru=f"Адаптер {name!r} обучен на базовой модели {recorded!r} (отпечаток архитектуры "
                f"{fingerprint}), а загружена базовая модель {loaded!r} (отпечаток {loaded_fp}): формы их слоёв "
                f"различаются. {_what_to_do(name, recorded, base)}",
            )
        )
    if not recorded:
        notes.append(
            tr(
                en="the adapter does not record its base; only target modules and shapes were checked",
                ru="адаптер не записывает свою базовую модель; проверены только целевые модули и формы",
            )
        )
    elif not _same_base(recorded, base):
        if strict:
            raise BaseMismatchError(
                tr(
                    en=f"Adapter {name!r} was trained on base {recorded!r} (from {source}), but the "
                    f"loaded base is {loaded!r}. Even when the shapes fit, an adapter only works on "
                    f"the weights it was trained with. {_what_to_do(name, recorded)} If you know both "
                    "names are the same model, pass strict=False.",
                    ru=f"Адаптер {name!r} обучен на базовой модели {recorded!r} (из {source}), а загружена "
                    f"базовая модель {loaded!r}. Даже если формы совпадают, адаптер работает только с теми весами, "
                    f"на которых его обучали. {_what_to_do(name, recorded)} Если вы знаете, что оба имени "
                    "обозначают одну и ту же модель, передайте strict=False.",
                )
            )
        notes.append(
            tr(
                en=f"base ids differ ({recorded!r} vs {loaded!r}); accepted because strict=False",
                ru=f"id базовых моделей различаются ({recorded!r} и {loaded!r}); принято, так как strict=False",
            )
        )
    return recorded, fingerprint, source, notes


def check_targets(
    name: str, config: dict, shapes: dict[str, tuple[int, ...]], base, recorded: str
) -> tuple[int, list[int]]:
    """Every LoRA tensor must sit on an existing module with matching in/out sizes; returns (modules, ranks)."""
    loaded = base_model_id(base)
    modules = _lora_modules(shapes)
    missing, wrong, ranks = [], [], []
    for path, pair in sorted(modules.items()):
        try:
            module = base.get_submodule(path)
        except AttributeError:
            missing.append(path)
            continue
        in_f, out_f = getattr(module, "in_features", None), getattr(module, "out_features", None)
        a, b = pair.get("A"), pair.get("B")
        if a is not None:
            ranks.append(a[0])
        if in_f is None or out_f is None or a is None or b is None:
            continue
        if len(a) == 2 and len(b) == 2 and (a[1] != in_f or b[0] != out_f):
            wrong.append(f"{path}: adapter {b[0]}x{a[1]}, base {out_f}x{in_f}")
    targets = config.get("target_modules")
    unknown = tr(en="<the base it was trained on>", ru="<базовая модель, на которой его обучали>")
    advice = _what_to_do(name, recorded or unknown, base)
    if missing:
        names = sorted({p.rsplit(".", 1)[-1] for p in missing})
        raise TargetModulesError(
            tr(
                en=f"Adapter {name!r} (trained on {recorded or 'an unrecorded base'!r}) targets "
                f"{len(missing)} modules the loaded base {loaded!r} does not have, e.g. "
                f"{missing[0]!r} ({', '.join(names)}). It was trained on another architecture: "
                f"{advice}",
                ru=f"Адаптер {name!r} (обучен на {recorded or 'неизвестной базовой модели'!r}) нацелен на "
                f"модули ({len(missing)}), которых нет в загруженной базовой модели {loaded!r}, например "
                f"{missing[0]!r} ({', '.join(names)}). Его обучали на другой архитектуре: "
                f"{advice}",
            )
        )
    if wrong:
        raise BaseMismatchError(
            tr(
                en=f"Adapter {name!r} (trained on {recorded or 'an unrecorded base'!r}) does not fit the "
                f"loaded base {loaded!r}: {len(wrong)} layer shapes differ, e.g. {wrong[0]}. "
                f"{advice}",
                ru=f"Адаптер {name!r} (обучен на {recorded or 'неизвестной базовой модели'!r}) не подходит к "
                f"загруженной базовой модели {loaded!r}: различаются формы {len(wrong)} слоёв, например {wrong[0]}. "
                f"{advice}",
            )
        )
    if isinstance(targets, list):
        have = {n.rsplit(".", 1)[-1] for n, _ in base.named_modules()}
        absent = [t for t in targets if t.rsplit(".", 1)[-1] not in have]
        if absent:
            raise TargetModulesError(
                tr(
                    en=f"Adapter {name!r} lists target modules {absent} that the loaded base {loaded!r} "
                    f"does not have. {advice}",
                    ru=f"Адаптер {name!r} перечисляет целевые модули {absent}, которых нет в загруженной базовой "
                    f"модели {loaded!r}. {advice}",
                )
            )
    return len(modules), ranks


def _lora_modules(shapes: dict[str, tuple[int, ...]]) -> dict[str, dict[str, tuple[int, ...]]]:
    """Module path (as in the base) -> {"A": shape, "B": shape} for the LoRA tensors in the file."""
    modules: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, shape in shapes.items():
        match = LORA_KEY.match(key)
        if match:
            modules.setdefault(match["module"].removeprefix(PEFT_PREFIX), {})[match["which"]] = shape
    return modules


def _inside_lora(path: str) -> bool:
    """Whether `path` is a part of an injected LoRA layer (its base_layer, lora_A, lora_B ...), not a target."""
    return any(part == "base_layer" or part.startswith("lora_") for part in path.split("."))


def _config_targets(config: dict, base) -> set[str] | None:
    """The Linear module paths of `base` PEFT would wrap for this config, or None if that is not decidable here."""
    from types import SimpleNamespace

    from peft.tuners.tuners_utils import check_target_module_exists

    targets = config.get("target_modules")
    if targets is None:
        return None
    linear = {
        path: module
        for path, module in base.named_modules()
        if hasattr(module, "in_features") and hasattr(module, "out_features") and not _inside_lora(path)
    }
    if targets == ALL_LINEAR:  # PEFT's shorthand: the names of every linear layer but the output layer
        output = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
        targets = sorted({path.rsplit(".", 1)[-1] for path, module in linear.items() if module is not output})
    view = SimpleNamespace(
        target_modules=targets,
        target_parameters=config.get("target_parameters"),
        exclude_modules=config.get("exclude_modules"),
        modules_to_save=config.get("modules_to_save"),
        layers_to_transform=config.get("layers_to_transform"),
        layers_pattern=config.get("layers_pattern"),
    )
    return {path for path in linear if check_target_module_exists(view, path)}


def _examples(paths: set[str], limit: int = 3) -> str:
    """A few of `paths`, quoted, for an error message."""
    return ", ".join(repr(p) for p in sorted(paths)[:limit]) + (" ..." if len(paths) > limit else "")


def check_target_agreement(name: str, folder: Path, config: dict, shapes: dict[str, tuple[int, ...]], base) -> None:
    """adapter_config.json's targets and rank must describe exactly the LoRA tensors in the weights file."""
    modules = _lora_modules(shapes)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    half = sorted(path for path, pair in modules.items() if set(pair) != {"A", "B"})
    if half:
        raise DamagedWeightsError(
            tr(
                en=f"{weights_path} holds only one of lora_A/lora_B for {len(half)} modules (e.g. "
                f"{half[0]!r}): the file is incomplete. Copy or download adapter {name!r} again, "
                "or re-save it with save_pretrained().",
                ru=f"В {weights_path} только одна из матриц lora_A/lora_B для модулей ({len(half)}, например "
                f"{half[0]!r}): файл неполный. Скопируйте или скачайте адаптер {name!r} заново "
                "или пересохраните его через save_pretrained().",
            )
        )
    try:
        expected = _config_targets(config, base)
    except (re.error, TypeError, ValueError) as err:
        raise AdapterConfigError(
            tr(
                en=f"{config_path}: target_modules / layers_to_transform / exclude_modules cannot be "
                f"matched against the model ({type(err).__name__}: {err}). Restore the original "
                "adapter_config.json or re-save the adapter with save_pretrained().",
                ru=f"{config_path}: target_modules / layers_to_transform / exclude_modules не удаётся "
                f"сопоставить с моделью ({type(err).__name__}: {err}). Восстановите исходный "
                "adapter_config.json или пересохраните адаптер через save_pretrained().",
            )
        ) from err
    if expected is not None:
        unlisted, untrained = set(modules) - expected, expected - set(modules)
        if unlisted:
            added = sorted({p.rsplit(".", 1)[-1] for p in unlisted})
            raise TargetModulesError(
                tr(
                    en=f"{weights_path} holds LoRA weights for {len(unlisted)} modules that {config_path} does not "
                    f"target (target_modules={config.get('target_modules')!r}), e.g. {_examples(unlisted)}: PEFT "
                    f"would skip them and load a partial adapter {name!r}. Add {added} "
                    "to target_modules (or restore the original adapter_config.json).",
                    ru=f"В {weights_path} есть веса LoRA для модулей ({len(unlisted)}), на которые {config_path} не "
                    f"нацелен (target_modules={config.get('target_modules')!r}), например {_examples(unlisted)}: "
                    f"PEFT пропустит их и загрузит адаптер {name!r} не полностью. Добавьте {added} "
                    "в target_modules (или восстановите исходный adapter_config.json).",
                )
            )
        if untrained:
            raise TargetModulesError(
                tr(
                    en=f"{config_path} targets {len(untrained)} modules with no weights in {weights_path}, e.g. "
                    f"{_examples(untrained)}: PEFT would add them untrained. The two files come from different "
                    f"saves: restore the matching adapter_config.json, or re-save adapter {name!r} with "
                    "save_pretrained().",
                    ru=f"{config_path} нацелен на модули ({len(untrained)}), для которых в {weights_path} нет весов, "
                    f"например {_examples(untrained)}: PEFT добавит их необученными. Эти два файла из разных "
                    f"сохранений: восстановите подходящий adapter_config.json или пересохраните адаптер {name!r} "
                    "через save_pretrained().",
                )
            )
    r = config.get("r")
    if isinstance(r, int) and not config.get("rank_pattern"):
        wrong = sorted(
            path
            for path, pair in modules.items()
            if len(pair["A"]) != 2 or len(pair["B"]) != 2 or pair["A"][0] != r or pair["B"][1] != r
        )
        if wrong:
            pair = modules[wrong[0]]
            raise TargetModulesError(
                tr(
                    en=f"{config_path} says r={r}, but the LoRA matrices in {weights_path} have another "
                    f"rank (e.g. {wrong[0]!r}: lora_A {pair['A']}, lora_B {pair['B']}). The two "
                    "files come from different saves: restore the matching adapter_config.json, "
                    f"or re-save adapter {name!r} with save_pretrained().",
                    ru=f"В {config_path} указано r={r}, но у матриц LoRA в {weights_path} другой "
                    f"ранг (например, {wrong[0]!r}: lora_A {pair['A']}, lora_B {pair['B']}). Эти два "
                    "файла из разных сохранений: восстановите подходящий adapter_config.json "
                    f"или пересохраните адаптер {name!r} через save_pretrained().",
                )
            )


def check_weight_values(name: str, folder: Path) -> list[str]:
    """Refuse NaN/inf or zero-filled weights; return warnings (an untrained adapter: every lora_B is zero)."""
    import torch
    from safetensors import safe_open

    path = folder / WEIGHTS_FILE
    again = tr(
        en=f"Copy or download adapter {name!r} again, or re-save it from the trained model with save_pretrained().",
        ru=f"Скопируйте или скачайте адаптер {name!r} заново или пересохраните его из обученной модели через "
        "save_pretrained().",
    )
    non_finite: list[str] = []
    zero: dict[str, list[str]] = {"A": [], "B": []}
    counts = {"A": 0, "B": 0}
    try:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - a safe_open handle has keys() but no __contains__/__iter__
                tensor = handle.get_tensor(key)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    non_finite.append(key)
                match = LORA_KEY.match(key)
                if match:
                    counts[match["which"]] += 1
                    if not bool(tensor.any()):
                        zero[match["which"]].append(key)
    except Exception as err:  # a header that parses but data that does not
        raise CorruptAdapterError(
            tr(
                en=f"{path} cannot be read ({type(err).__name__}: {err}). {again}",
                ru=f"{path} не читается ({type(err).__name__}: {err}). {again}",
            )
        ) from err
    if non_finite:
        raise DamagedWeightsError(
            tr(
                en=f"{path} holds NaN or infinite values in {len(non_finite)} tensors (e.g. "
                f"{non_finite[0]!r}): adapter {name!r} would give empty or garbage answers. If "
                "it comes from your training run, the run diverged: retrain with a lower learning "
                f"rate (or bf16/fp32 instead of fp16). Otherwise: {again}",
                ru=f"В {path} есть NaN или бесконечные значения в тензорах ({len(non_finite)}, например "
                f"{non_finite[0]!r}): адаптер {name!r} давал бы пустые или бессмысленные ответы. Если "
                "он из вашего запуска обучения, обучение разошлось: переобучите с меньшей скоростью обучения "
                f"(learning rate) (или в bf16/fp32 вместо fp16). Иначе: {again}",
            )
        )
    if counts["A"] and len(zero["A"]) == counts["A"] and len(zero["B"]) == counts["B"]:
        raise DamagedWeightsError(
            tr(
                en=f"Every LoRA tensor in {path} is zero ({counts['A'] + counts['B']} tensors): adapter "
                f"{name!r} would answer exactly like the base. The file was zero-filled or damaged "
                f"(a fresh LoRA has random lora_A). {again}",
                ru=f"Все тензоры LoRA в {path} нулевые (тензоров: {counts['A'] + counts['B']}): адаптер "
                f"{name!r} отвечал бы в точности как базовая модель. Файл заполнен нулями или повреждён "
                f"(у свежего LoRA случайная lora_A). {again}",
            )
        )
    if zero["A"]:
        raise DamagedWeightsError(
            tr(
                en=f"lora_A is all zero in {len(zero['A'])} of {counts['A']} modules in {path} (e.g. "
                f"{zero['A'][0]!r}): PEFT starts lora_A random and training never zeroes it, so "
                f"those tensors are damaged and their modules would do nothing. {again}",
                ru=f"lora_A целиком нулевая в {len(zero['A'])} из {counts['A']} модулей в {path} (например, "
                f"{zero['A'][0]!r}): PEFT инициализирует lora_A случайно, и обучение её не обнуляет, поэтому "
                f"эти тензоры повреждены, а их модули ничего не делали бы. {again}",
            )
        )
    if zero["B"] and len(zero["B"]) == counts["B"]:
        return [
            tr(
                en=f"adapter {name!r} is untrained: every lora_B in {path} is zero (how PEFT initialises a fresh "
                "LoRA), so it answers exactly like the base. Train it first (notebook 01), or load the trained copy.",
                ru=f"адаптер {name!r} не обучен: все lora_B в {path} нулевые (так PEFT инициализирует свежий LoRA), "
                "поэтому он отвечает в точности как базовая модель. Сначала обучите его (ноутбук 01) или загрузите "
                "обученную копию.",
            )
        ]
    if zero["B"]:
        return [
            tr(
                en=f"lora_B is zero in {len(zero['B'])} of {counts['B']} modules of adapter {name!r} (e.g. "
                f"{zero['B'][0]!r}): those modules are untrained and change nothing.",
                ru=f"lora_B нулевая в {len(zero['B'])} из {counts['B']} модулей адаптера {name!r} (например, "
                f"{zero['B'][0]!r}): эти модули не обучены и ничего не меняют.",
            )
        ]
    return []


# ---------------------------------------------------------------- the check and the safe load
def check_adapter(model, folder: str | Path, name: str, strict: bool = True) -> CompatReport:
    """Run every check on `folder` against `model`'s base without touching the model; raise on the first problem."""
    check_adapter_name(name)
    loaded_names = list(getattr(model, "peft_config", {}) or {})
    if name in loaded_names:
        raise AdapterNameError(
            tr(
                en=f"An adapter named {name!r} is already loaded (loaded: {loaded_names}); loading again "
                f"would overwrite it. Pick another name, or call model.delete_adapter({name!r}) first.",
                ru=f"Адаптер с именем {name!r} уже загружен (загружены: {loaded_names}); повторная загрузка "
                f"перезапишет его. Выберите другое имя или сначала вызовите model.delete_adapter({name!r}).",
            )
        )
    folder = check_adapter_files(folder)
    config = read_adapter_config(folder)
    check_lora_config(folder, config)
    shapes = read_weight_shapes(folder)
    base = _unwrap(model)
    recorded, fingerprint, source, notes = check_base(name, folder, config, base, strict)
    matched, ranks = check_targets(name, config, shapes, base, recorded)
    check_target_agreement(name, folder, config, shapes, base)
    found = check_weight_values(name, folder)
    for text in found:
        warnings.warn(text, AdapterWarning, stacklevel=2)
    targets = config.get("target_modules") or []
    targets = (targets,) if isinstance(targets, str) else tuple(sorted(targets))
    rank = int(config.get("r") or (ranks[0] if ranks else 0))
    return CompatReport(
        name=name,
        folder=folder,
        adapter_base=recorded or "not recorded",
        adapter_fingerprint=fingerprint,
        loaded_base=base_model_id(base),
        loaded_fingerprint=base_fingerprint(base),
        base_source=source,
        rank=rank,
        ranks=tuple(ranks),
        lora_alpha=config.get("lora_alpha"),
        target_modules=targets,
        modules_matched=matched,
        notes=tuple(notes),
        warnings=tuple(found),
    )


def load_adapter_checked(model, folder: str | Path, name: str, strict: bool = True, activate: bool = False, log=None):
    """Check `folder` against `model`, then load it as adapter `name`; returns (PeftModel, CompatReport).

    `model` is a plain transformers model (wrapped with `PeftModel.from_pretrained`) or a PeftModel (adapter
    added with `load_adapter`, not activated unless `activate`). On failure nothing already loaded changes.
    """
    from peft import PeftModel

    report = check_adapter(model, folder, name, strict)
    if log is not None:
        log(report.summary())
    if not isinstance(model, PeftModel):
        try:
            model = PeftModel.from_pretrained(model, str(report.folder), adapter_name=name, is_trainable=False)
        except Exception as err:
            _strip_injected(model, name)
            raise AdapterLoadError(
                tr(
                    en=f"PEFT could not load adapter {name!r} from {report.folder} "
                    f"({type(err).__name__}: {err}); the base model was restored.",
                    ru=f"PEFT не смог загрузить адаптер {name!r} из {report.folder} "
                    f"({type(err).__name__}: {err}); базовая модель восстановлена.",
                )
            ) from err
        model.eval()
        return model, report
    previous = next(iter(active_adapters(model)), None)
    try:
        model.load_adapter(str(report.folder), adapter_name=name, is_trainable=False)
        if activate:
            model.set_adapter(name, inference_mode=True)
    except Exception as err:
        if name in model.peft_config:
            model.delete_adapter(name)
        if previous is not None and previous in model.peft_config:
            model.set_adapter(previous, inference_mode=True)
        raise AdapterLoadError(
            tr(
                en=f"PEFT could not load adapter {name!r} from {report.folder} "
                f"({type(err).__name__}: {err}); it was removed again and the adapters already "
                f"loaded ({list(model.peft_config)}) are unchanged.",
                ru=f"PEFT не смог загрузить адаптер {name!r} из {report.folder} "
                f"({type(err).__name__}: {err}); он снова удалён, а уже загруженные адаптеры "
                f"({list(model.peft_config)}) не изменились.",
            )
        ) from err
    return model, report


def _strip_injected(base, name: str) -> None:
    """Undo a half-finished in-place injection of adapter `name` into a plain base model."""
    from peft.tuners.lora import LoraLayer

    for module in base.modules():
        if isinstance(module, LoraLayer) and name in getattr(module, "lora_A", {}):
            module.delete_adapter(name)
    for parent in list(base.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, LoraLayer) and not child.lora_A and hasattr(child, "base_layer"):
                setattr(parent, child_name, child.base_layer)
