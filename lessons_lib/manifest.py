"""The small manifest every saved adapter carries: which base it belongs to, how it was trained, its scores."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .files import write_text_atomic
from .i18n import tr

MANIFEST_FILE = "manifest.json"
TINY_MODEL_ID = "lora-adapter-lab/tiny-course-model"
FINGERPRINT_KEYS = (
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
)


def base_model_id(model_or_config) -> str:
    """A stable name for a base model: the course id for the tiny model, else the Hub id or path."""
    config = getattr(model_or_config, "config", model_or_config)
    return getattr(config, "course_model_id", None) or getattr(config, "_name_or_path", "") or "unknown"


def base_fingerprint(model_or_config) -> str:
    """A short hash of the base's architecture: adapters only fit a base with the same shapes."""
    config = getattr(model_or_config, "config", model_or_config)
    shape = {k: getattr(config, k, None) for k in FINGERPRINT_KEYS}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def library_versions() -> dict:
    """Versions of the libraries that shape an adapter's files."""
    import importlib.metadata as md

    out = {}
    for name in ("torch", "transformers", "peft", "trl"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


@dataclass
class Manifest:
    """What we know about one adapter."""

    name: str
    base_model: str
    base_fingerprint: str
    profile: str
    domain: str | None = None
    data: dict = field(default_factory=dict)
    steps: int | None = None
    metrics: dict = field(default_factory=dict)
    versions: dict = field(default_factory=library_versions)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def save(self, folder: str | Path) -> Path:
        """Write manifest.json into the adapter folder (whole or not at all: the old one stays until then)."""
        path = Path(folder) / MANIFEST_FILE
        write_text_atomic(path, json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Manifest:
        """Read manifest.json from an adapter folder, with a clear error if it is missing or broken."""
        path = Path(folder) / MANIFEST_FILE
        if not path.is_file():
            raise FileNotFoundError(
                tr(
                    en=f"No {MANIFEST_FILE} in {folder}: save adapters with lessons_lib.storage "
                    "(or write a Manifest) so the course can check which base they belong to.",
                    ru=f"В {folder} нет {MANIFEST_FILE}: сохраняйте адаптеры через lessons_lib.storage "
                    "(или запишите Manifest), чтобы курс мог проверить, к какой базовой модели они относятся.",
                )
            )
        resave = tr(
            en="re-save the adapter (or fix the file by hand).",
            ru="сохраните адаптер заново (или исправьте файл вручную).",
        )
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise ValueError(
                tr(
                    en=f"{path} is not UTF-8 text (byte {err.object[err.start : err.start + 1]!r} at offset "
                    f"{err.start}); {resave}",
                    ru=f"{path} — не текст в UTF-8 (байт {err.object[err.start : err.start + 1]!r} по смещению "
                    f"{err.start}); {resave}",
                )
            ) from None
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as err:
            raise ValueError(
                tr(
                    en=f"{path} is not valid JSON ({err}); re-save the adapter.",
                    ru=f"{path} — невалидный JSON ({err}); сохраните адаптер заново.",
                )
            ) from err
        if not isinstance(raw, dict):
            kind = type(raw).__name__
            raise ValueError(
                tr(
                    en=f"{path} holds a JSON {kind}, not an object with the manifest's fields; {resave}",
                    ru=f"В {path} JSON {kind}, а не объект с полями манифеста; {resave}",
                )
            )
        required = [k for k in ("name", "base_model", "base_fingerprint", "profile") if k not in raw]
        if required:
            missing = ", ".join(required)
            raise ValueError(
                tr(
                    en=f"{path} lacks the field(s) {missing}; {resave}",
                    ru=f"В {path} нет полей: {missing}; {resave}",
                )
            )
        wrong = [k for k in ("name", "base_model", "base_fingerprint", "profile") if not isinstance(raw[k], str)]
        if wrong:
            shown = ", ".join(f"{k}={raw[k]!r}" for k in wrong)
            raise ValueError(
                tr(
                    en=f"{path}: the field(s) {shown} must be text (a JSON string); {resave}",
                    ru=f"{path}: поля {shown} должны быть текстом (строкой JSON); {resave}",
                )
            )
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)

    @classmethod
    def for_model(cls, name: str, model, profile: str, **extra) -> Manifest:
        """A manifest describing an adapter trained on `model`'s base."""
        base = getattr(model, "get_base_model", lambda: model)()
        return cls(
            name=name, base_model=base_model_id(base), base_fingerprint=base_fingerprint(base), profile=profile, **extra
        )
