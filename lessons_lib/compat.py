"""Check that an adapter folder fits the loaded base *before* PEFT injects anything into the model.

`check_adapter(model, folder, name)` validates the name, the files, the safetensors header, the base the
adapter was trained on, its target modules and the shapes of its LoRA matrices, and returns a
`CompatReport`. `load_adapter_checked(model, folder, name)` runs that check and then loads the adapter with
PEFT; if anything fails, the adapters that were already loaded stay loaded, active and unchanged.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .manifest import MANIFEST_FILE, Manifest, base_fingerprint, base_model_id

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE)
RESERVED_NAMES = ("__base__",)  # PEFT's name for "no adapter" in a mixed batch
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
PEFT_PREFIX = "base_model.model."
LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>A|B)(?:\.[^.]+)?\.weight$")


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

    def rows(self) -> list[tuple[str, str]]:
        """(item, value) pairs for a small table."""
        per_module = "" if set(self.ranks) <= {self.rank} else f" (per module: {sorted(set(self.ranks))})"
        return [("adapter", self.name), ("folder", str(self.folder)),
                ("adapter's base", f"{self.adapter_base} ({self.base_source})"),
                ("adapter's fingerprint", self.adapter_fingerprint or "not recorded"),
                ("loaded base", self.loaded_base), ("loaded fingerprint", self.loaded_fingerprint),
                ("rank r", f"{self.rank}{per_module}"),
                ("lora_alpha", str(self.lora_alpha)), ("target modules", ", ".join(self.target_modules)),
                ("LoRA modules matched", str(self.modules_matched)),
                *(("note", note) for note in self.notes)]

    def summary(self) -> str:
        """The report as aligned text."""
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


# ---------------------------------------------------------------- the single checks
def check_adapter_name(name: str) -> str:
    """Return `name` if it is a safe adapter name, else raise AdapterNameError saying what to use."""
    hint = "Use a short name of letters, digits, '_' or '-', starting with a letter (e.g. 'json' or 'support_v2')."
    if not isinstance(name, str) or not name.strip():
        raise AdapterNameError(f"The adapter name is empty ({name!r}). {hint}")
    if "/" in name or "\\" in name or ".." in name:
        raise AdapterNameError(f"Adapter name {name!r} contains a path separator or '..': an adapter name is not "
                               f"a path. Pass the folder separately and name the adapter itself. {hint}")
    if name in RESERVED_NAMES:
        raise AdapterNameError(f"Adapter name {name!r} is reserved by PEFT for 'the base model without adapters' "
                               f"in mixed batches. {hint}")
    if not NAME_PATTERN.match(name):
        raise AdapterNameError(f"Adapter name {name!r} is not allowed (PEFT uses it as a module key, so no dots, "
                               f"spaces or other symbols). {hint}")
    return name


def check_adapter_files(folder: str | Path) -> Path:
    """Return the folder if it holds adapter_config.json and adapter_model.safetensors, else say what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AdapterFilesError(f"Adapter folder {folder} does not exist (or is not a folder). Check the path, or get "
                                "the adapter with lessons_lib.adapters.adapter_dir / lessons_lib.storage first.")
    for filename in REQUIRED_FILES:
        if not (folder / filename).is_file():
            extra = (" An adapter_model.bin (old pickle format) is there: load it once with PEFT and re-save it with "
                     "save_pretrained(), which writes safetensors." if filename == WEIGHTS_FILE
                     and (folder / "adapter_model.bin").is_file() else "")
            raise AdapterFilesError(f"{folder} has no {filename}: it is not a complete PEFT adapter. A saved adapter "
                                    f"needs {' and '.join(REQUIRED_FILES)}; re-save it with "
                                    f"model.save_pretrained(folder) or copy the missing file.{extra}")
    return folder


def read_adapter_config(folder: Path) -> dict:
    """adapter_config.json as a dict, with a clear error when it is not valid JSON or not LoRA."""
    path = folder / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptAdapterError(f"{path} is not valid JSON ({err}). The file is damaged: copy or download the "
                                  "adapter again, or re-save it with save_pretrained().") from err
    if not isinstance(config, dict):
        raise CorruptAdapterError(f"{path} does not hold a JSON object; copy or download the adapter again.")
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterCompatError(f"{path} describes a {config.get('peft_type')} adapter; this course loads LoRA "
                                 "adapters only.")
    return config


def read_weight_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from adapter_model.safetensors (header only, no weights are read)."""
    from safetensors import safe_open

    path = folder / WEIGHTS_FILE
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as err:  # safetensors raises its own SafetensorError and plain OSError/ValueError
        raise CorruptAdapterError(f"{path} is not a readable safetensors file ({type(err).__name__}: {err}). It was "
                                  "probably cut off while copying or downloading: copy or download the adapter "
                                  "again, or re-save it with save_pretrained().") from err
    if not any(LORA_KEY.match(key) for key in shapes):
        raise CorruptAdapterError(f"{path} holds no LoRA weights (no '.lora_A.'/'.lora_B.' tensors among "
                                  f"{len(shapes)} tensors). Re-save the adapter with save_pretrained().")
    return shapes


def adapter_base(folder: Path, config: dict) -> tuple[str, str | None, str]:
    """(base id, base fingerprint or None, where it came from): manifest.json first, else adapter_config.json."""
    if (folder / MANIFEST_FILE).is_file():
        try:
            manifest = Manifest.load(folder)
        except (ValueError, TypeError) as err:
            raise CorruptAdapterError(f"{folder / MANIFEST_FILE} cannot be read ({err}). Fix or delete it; without "
                                      "it the check falls back to adapter_config.json.") from err
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


def _what_to_do(name: str, recorded: str) -> str:
    return (f"Load the base {recorded!r} before loading adapter {name!r}, or use an adapter trained on the loaded "
            "base (retrain it in notebook 01 for this profile).")


def check_base(name: str, folder: Path, config: dict, base,
               strict: bool = True) -> tuple[str, str | None, str, list[str]]:
    """Compare the adapter's recorded base with the loaded one; BaseMismatchError names both."""
    recorded, fingerprint, source = adapter_base(folder, config)
    loaded, loaded_fp = base_model_id(base), base_fingerprint(base)
    notes: list[str] = []
    if fingerprint is not None and fingerprint != loaded_fp:
        raise BaseMismatchError(f"Adapter {name!r} was trained on base {recorded!r} (architecture fingerprint "
                                f"{fingerprint}), but the loaded base is {loaded!r} (fingerprint {loaded_fp}): their "
                                f"layer shapes differ. {_what_to_do(name, recorded)}")
    if not recorded:
        notes.append("the adapter does not record its base; only target modules and shapes were checked")
    elif not _same_base(recorded, base):
        if strict:
            raise BaseMismatchError(f"Adapter {name!r} was trained on base {recorded!r} (from {source}), but the "
                                    f"loaded base is {loaded!r}. Even when the shapes fit, an adapter only works on "
                                    f"the weights it was trained with. {_what_to_do(name, recorded)} If you know both "
                                    "names are the same model, pass strict=False.")
        notes.append(f"base ids differ ({recorded!r} vs {loaded!r}); accepted because strict=False")
    return recorded, fingerprint, source, notes


def check_targets(name: str, config: dict, shapes: dict[str, tuple[int, ...]], base,
                  recorded: str) -> tuple[int, list[int]]:
    """Every LoRA tensor must sit on an existing module with matching in/out sizes; returns (modules, ranks)."""
    loaded = base_model_id(base)
    modules: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, shape in shapes.items():
        match = LORA_KEY.match(key)
        if match:
            path = match["module"].removeprefix(PEFT_PREFIX)
            modules.setdefault(path, {})[match["which"]] = shape
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
    if missing:
        names = sorted({p.rsplit(".", 1)[-1] for p in missing})
        raise TargetModulesError(f"Adapter {name!r} (trained on {recorded or 'an unrecorded base'!r}) targets "
                                 f"{len(missing)} modules the loaded base {loaded!r} does not have, e.g. "
                                 f"{missing[0]!r} ({', '.join(names)}). It was trained on another architecture: "
                                 f"{_what_to_do(name, recorded or '<the base it was trained on>')}")
    if wrong:
        raise BaseMismatchError(f"Adapter {name!r} (trained on {recorded or 'an unrecorded base'!r}) does not fit the "
                                f"loaded base {loaded!r}: {len(wrong)} layer shapes differ, e.g. {wrong[0]}. "
                                f"{_what_to_do(name, recorded or '<the base it was trained on>')}")
    if isinstance(targets, list):
        have = {n.rsplit(".", 1)[-1] for n, _ in base.named_modules()}
        absent = [t for t in targets if t.rsplit(".", 1)[-1] not in have]
        if absent:
            raise TargetModulesError(f"Adapter {name!r} lists target modules {absent} that the loaded base {loaded!r} "
                                     f"does not have. {_what_to_do(name, recorded or '<the base it was trained on>')}")
    return len(modules), ranks


# ---------------------------------------------------------------- the check and the safe load
def check_adapter(model, folder: str | Path, name: str, strict: bool = True) -> CompatReport:
    """Run every check on `folder` against `model`'s base without touching the model; raise on the first problem."""
    check_adapter_name(name)
    loaded_names = list(getattr(model, "peft_config", {}) or {})
    if name in loaded_names:
        raise AdapterNameError(f"An adapter named {name!r} is already loaded (loaded: {loaded_names}); loading again "
                               f"would overwrite it. Pick another name, or call model.delete_adapter({name!r}) first.")
    folder = check_adapter_files(folder)
    config = read_adapter_config(folder)
    shapes = read_weight_shapes(folder)
    base = _unwrap(model)
    recorded, fingerprint, source, notes = check_base(name, folder, config, base, strict)
    matched, ranks = check_targets(name, config, shapes, base, recorded)
    targets = config.get("target_modules") or []
    targets = (targets,) if isinstance(targets, str) else tuple(sorted(targets))
    rank = int(config.get("r") or (ranks[0] if ranks else 0))
    return CompatReport(name=name, folder=folder, adapter_base=recorded or "not recorded",
                        adapter_fingerprint=fingerprint, loaded_base=base_model_id(base),
                        loaded_fingerprint=base_fingerprint(base), base_source=source, rank=rank,
                        ranks=tuple(ranks), lora_alpha=config.get("lora_alpha"), target_modules=targets,
                        modules_matched=matched, notes=tuple(notes))


def _active(model) -> str | None:
    active = getattr(model, "active_adapter", None)
    return active[0] if isinstance(active, (list, tuple)) and active else active


def load_adapter_checked(model, folder: str | Path, name: str, strict: bool = True, activate: bool = False,
                         log=None):
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
            raise AdapterLoadError(f"PEFT could not load adapter {name!r} from {report.folder} "
                                   f"({type(err).__name__}: {err}); the base model was restored.") from err
        model.eval()
        return model, report
    previous = _active(model)
    try:
        model.load_adapter(str(report.folder), adapter_name=name, is_trainable=False)
        if activate:
            model.set_adapter(name, inference_mode=True)
    except Exception as err:
        if name in model.peft_config:
            model.delete_adapter(name)
        if previous is not None and previous in model.peft_config:
            model.set_adapter(previous, inference_mode=True)
        raise AdapterLoadError(f"PEFT could not load adapter {name!r} from {report.folder} "
                               f"({type(err).__name__}: {err}); it was removed again and the adapters already "
                               f"loaded ({list(model.peft_config)}) are unchanged.") from err
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
