"""`setup_lesson`: the one call at the top of every notebook (seed, profile, folders, Drive on Colab)."""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path

from . import env
from .i18n import tr
from .paths import DRIVE_COURSE_DIR, DRIVE_MOUNT, default_work_dir
from .profiles import Profile, choose_profile

SETTINGS_RU = {
    "lesson": "урок",
    "profile": "профиль",
    "model": "модель",
    "device": "устройство",
    "4-bit": "4-битная",
    "train steps": "шагов обучения",
    "work dir": "рабочая папка",
    "drive": "Google Диск",
    "hub": "Hugging Face Hub",
}  # dtype, max_length, colab are identifiers
REASONS_RU = {  # profiles.choose_profile's reasons as the Russian edition prints them
    "asked for in the notebook's parameters cell": "задан в ячейке параметров ноутбука",
    "a CUDA GPU is present": "есть GPU с CUDA",
    "no CUDA GPU: the offline tiny model runs on CPU": "нет GPU с CUDA: офлайн-модель tiny работает на CPU",
    "set by $LESSONS_PROFILE": "задан через $LESSONS_PROFILE",
}


@dataclass(frozen=True)
class Lesson:
    """What the setup chose, so every later cell reads it from one place."""

    name: str
    profile: Profile
    reason: str
    device: str
    dtype: str
    colab: bool
    work_dir: Path
    drive_dir: Path | None
    hub_namespace: str | None = None  # where notebook 01 pushed this profile's artifacts (lora-lab-<profile>-<name>)

    def summary_rows(self) -> list[tuple[str, str]]:
        """(setting, value) pairs for the setup table."""
        p, reason = self.profile, tr(en=self.reason, ru=REASONS_RU.get(self.reason, self.reason))
        rows = [
            ("lesson", self.name),
            ("profile", f"{p.name} ({reason})"),
            ("model", p.model_id),
            ("device", self.device),
            ("dtype", self.dtype),
            ("4-bit", str(p.load_in_4bit and p.gpu_path())),
            ("max_length", str(p.max_length)),
            ("train steps", str(p.train_steps)),
            ("colab", str(self.colab)),
            ("work dir", str(self.work_dir)),
            ("drive", str(self.drive_dir) if self.drive_dir else tr(en="not mounted", ru="не подключён")),
            ("hub", self.hub_namespace or tr(en="not used", ru="не используется")),
        ]
        return [(tr(en=key, ru=SETTINGS_RU.get(key, key)), value) for key, value in rows]

    def summary(self) -> str:
        """The setup table as text."""
        rows = self.summary_rows()
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def quiet_library_notices() -> None:
    """Keep lesson output to what the learner reads: the trainer's own progress bar, not datasets' per-map bars,
    not transformers 5.23's rename notice for gradient_checkpointing (PEFT and Colab's release use the old name),
    not transformers' checkpoint-ordering note, not bitsandbytes' CPU kernel notice. The one place that silences them.
    """
    import warnings

    import datasets

    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
    # Fast CPU runs write checkpoints within a second: transformers then orders them by step number (right anyway)
    # and says so on stderr.
    logging.getLogger("transformers.trainer_utils").addFilter(_not_mtime_note)  # addFilter adds a filter once
    # bitsandbytes (imported with peft) logs on import that an optional fast CPU kernel package (`kernels`) is missing;
    # set before that import (setup_lesson runs first in every notebook), the level holds for the module's logger.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a rerun gives the same numbers."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def mount_drive(log=print) -> Path | None:
    """Mount Google Drive on Colab and return the course folder in it; elsewhere do nothing."""
    if not env.in_colab():
        log(
            tr(
                en="Google Drive is only mounted on Colab; saving to a local folder instead.",
                ru="Google Диск подключается только в Colab; сохраняем в локальную папку.",
            )
        )
        return None
    from google.colab import drive  # type: ignore[import-not-found]

    drive.mount(str(DRIVE_MOUNT))
    folder = DRIVE_COURSE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _not_mtime_note(record: logging.LogRecord) -> bool:
    """False for transformers' note that checkpoints written within a second are ordered by step, not file time."""
    return "mtime may not be reliable" not in record.getMessage()


def setup_lesson(
    name: str,
    profile: str | None = None,
    seed: int = 0,
    use_drive: bool = False,
    hub_namespace: str | None = None,
    log=print,
) -> Lesson:
    """Seed, choose the profile (argument > $LESSONS_PROFILE > GPU or not), pick folders, print a table.

    With `use_drive` the work dir is the course folder on Google Drive (Colab), so a later runtime finds
    what this one trained; `hub_namespace` is where the course artifacts may also be downloaded from.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    quiet_library_notices()
    chosen, reason = choose_profile(profile)
    seed_everything(seed)
    import torch

    device = "cuda" if env.cuda_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(env.cpu_threads())
    drive_dir = mount_drive(log) if use_drive else None
    work_dir = drive_dir / chosen.name if drive_dir else default_work_dir(chosen.name)
    work_dir.mkdir(parents=True, exist_ok=True)
    lesson = Lesson(
        name,
        chosen,
        reason,
        device,
        str(chosen.torch_dtype()).replace("torch.", ""),
        env.in_colab(),
        work_dir,
        drive_dir,
        hub_namespace,
    )
    log(lesson.summary())
    if chosen.access_note:
        log(f"\n{tr(en='Before the first download', ru='Перед первой загрузкой')}: {chosen.access_note}")
    return lesson
