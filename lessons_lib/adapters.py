"""Where the course adapters live for each profile, and loading several onto one base."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .paths import TINY_ADAPTERS_DIR
from .profiles import Profile

COURSE_ADAPTERS = ("json", "coding", "support")


def adapter_dir(name: str, profile: Profile, work_dir: Path | None = None) -> Path:
    """The folder of a course adapter: shipped in assets/ for tiny, trained by notebook 01 otherwise."""
    if profile.name == "tiny":
        folder = TINY_ADAPTERS_DIR / name
        hint = "The tiny adapters ship in assets/adapters; rebuild them with `python -m lessons_lib.tiny build`."
    else:
        folder = Path(work_dir or ".") / "adapters" / name
        hint = (f"Adapters for the {profile.name} profile are trained in notebook 01 (or loaded from your "
                "Drive/Hub with lessons_lib.storage); run it first or point work_dir at them.")
    if not (folder / "adapter_config.json").is_file():
        raise FileNotFoundError(f"Adapter {name!r} not found at {folder}. {hint}")
    return folder


def load_with_adapters(base, profile: Profile, names: Sequence[str] = COURSE_ADAPTERS,
                       work_dir: Path | None = None):
    """Wrap `base` in a PeftModel holding every named adapter (the first one active)."""
    from peft import PeftModel

    if not names:
        raise ValueError("Give at least one adapter name.")
    model = PeftModel.from_pretrained(base, adapter_dir(names[0], profile, work_dir), adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(adapter_dir(name, profile, work_dir), adapter_name=name)
    model.set_adapter(names[0])
    model.eval()
    return model
