"""`setup_lesson`: the one call at the top of every notebook (seed, profile, folders, Drive on Colab)."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import env
from .i18n import tr
from .paths import DRIVE_COURSE_DIR, DRIVE_MOUNT, default_work_dir, scratch_dir
from .profiles import Profile, choose_profile, reason_text

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
    drive_wanted: bool = False  # Drive was asked for (USE_DRIVE, or its default on Colab): no drive_dir = it failed

    def summary_rows(self) -> list[tuple[str, str]]:
        """(setting, value) pairs for the setup table."""
        p, reason = self.profile, reason_text(self.reason)
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

    @property
    def scratch_dir(self) -> Path:
        """A local folder for big files the lesson deletes again (merged checkpoints): never on Drive."""
        return scratch_dir(self.profile.name)

    def fresh_scratch(self, name: str, log=print) -> Path:
        """An empty local folder for one merged full checkpoint, once the disk has room for it (else OSError)."""
        import shutil

        from .budget import check_free_space, merged_bytes

        folder = self.scratch_dir / name
        shutil.rmtree(folder, ignore_errors=True)  # what an interrupted run left
        folder.parent.mkdir(parents=True, exist_ok=True)
        what = tr(en=f"{name}, a merged full checkpoint", ru=f"{name}, объединённая полная модель")
        log(check_free_space(folder.parent, merged_bytes(self.profile), what))
        return folder

    def remove_scratch(self, folder: str | Path, log=print) -> None:
        """Delete a merged checkpoint the lesson is done with, saying how much space that gives back."""
        import shutil

        from .mixing import folder_bytes

        folder = Path(folder)
        if self.scratch_dir not in folder.parents:
            raise ValueError(
                tr(
                    en=f"{folder} is not in this lesson's scratch folder {self.scratch_dir}: remove_scratch deletes "
                    "only what fresh_scratch made.",
                    ru=f"{folder} не лежит во временной папке урока {self.scratch_dir}: remove_scratch удаляет только "
                    "то, что создала fresh_scratch.",
                )
            )
        size = folder_bytes(folder)
        shutil.rmtree(folder)
        log(
            tr(
                en=f"deleted {folder} ({size / 1e6:,.1f} MB): the lesson no longer needs it",
                ru=f"удалена {folder} ({size / 1e6:,.1f} МБ): уроку она больше не нужна",
            )
        )

    def where_kept(self) -> str:
        """One sentence: where the lesson keeps its work and whether that outlives this runtime."""
        if self.drive_dir is not None:
            return tr(
                en=f"Work is kept in {self.work_dir}, on your Google Drive: it outlives this runtime, and the other "
                "notebooks find it there.",
                ru=f"Работа хранится в {self.work_dir}, на вашем Google Диске: она переживёт эту среду выполнения, и "
                "другие ноутбуки найдут её там.",
            )
        if self.colab and self.drive_wanted:
            return tr(
                en=f"Work is kept in {self.work_dir}, on this Colab runtime's own disk, because Google Drive could not "
                "be mounted (above): it disappears when the runtime is disconnected or recycled, and the other "
                "notebooks do not see it. To keep it, rerun this cell and allow Drive access when Colab asks.",
                ru=f"Работа хранится в {self.work_dir}, на диске этой среды выполнения Colab, потому что Google Диск "
                "подключить не удалось (см. выше): она исчезнет, когда среда отключится или будет пересоздана, и "
                "другие ноутбуки её не увидят. Чтобы сохранить её, запустите эту ячейку снова и разрешите доступ к "
                "Google Диску, когда Colab спросит.",
            )
        if self.colab:
            return tr(
                en=f"Work is kept in {self.work_dir}, on this Colab runtime's own disk: it disappears when the runtime "
                "is disconnected or recycled, and the other notebooks (each opens its own runtime) do not see it. To "
                "keep it, set USE_DRIVE = True in the parameters cell (and allow Drive access when Colab asks), then "
                "rerun this cell.",
                ru=f"Работа хранится в {self.work_dir}, на диске этой среды выполнения Colab: она исчезнет, когда "
                "среда отключится или будет пересоздана, и другие ноутбуки (каждый открывает свою среду) её не "
                "увидят. Чтобы сохранить её, задайте USE_DRIVE = True в ячейке параметров (и разрешите доступ к "
                "Google Диску, когда Colab спросит), затем запустите эту ячейку снова.",
            )
        return tr(
            en=f"Work is kept in {self.work_dir}, a local folder: it stays until you delete it.",
            ru=f"Работа хранится в {self.work_dir}, в локальной папке: она останется, пока вы её не удалите.",
        )


def quiet_library_notices() -> None:
    """Keep lesson and program output (notebooks, the tools/router CLIs, the server's log) to what the learner reads:
    the trainer's own progress bar, not datasets' per-map bars, not transformers 5.23's rename notice for
    gradient_checkpointing (PEFT and Colab's release use the old name), not PEFT's note on the tool adapter's untied
    lm_head, not transformers' checkpoint-ordering note, not bitsandbytes' CPU kernel notice. The one place that
    silences them."""
    import warnings

    import datasets

    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
    # The tiny model ties lm_head to its input embeddings; the tool adapter keeps an untied lm_head copy on purpose
    # (recipes.TOOL_MODULES_TO_SAVE), and PEFT says so at every load of it.
    warnings.filterwarnings("ignore", message=TIED_HEAD_NOTICE, category=UserWarning)
    # Colab's pyarrow 18.1 + dill 0.3.8: datasets cannot pickle pyarrow's MonthDayNano type when it fingerprints a
    # map (TRL maps in every trainer), so dill warns twice and datasets logs that it used a random hash (harmless:
    # the map just runs again instead of coming from the cache).
    warnings.filterwarnings("ignore", message=MONTH_DAY_NANO, category=dill_warning())
    logging.getLogger("datasets.fingerprint").addFilter(_not_random_hash_note)
    # Fast CPU runs write checkpoints within a second: transformers then orders them by step number (right anyway)
    # and says so on stderr.
    logging.getLogger("transformers.trainer_utils").addFilter(_not_mtime_note)  # addFilter adds a filter once
    # bitsandbytes (imported with peft) logs on import that an optional fast CPU kernel package (`kernels`) is missing;
    # set before that import (setup_lesson runs first in every notebook), the level holds for the module's logger.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


TIED_HEAD_NOTICE = r"Model has `tie_word_embeddings=True` and a tied layer is part of the adapter"
MONTH_DAY_NANO = r"Cannot (locate reference to|pickle) <class '(pyarrow\.lib\.)?MonthDayNano'>"


def dill_warning() -> type[Warning]:
    """dill's PicklingWarning (dill comes with datasets), or Warning if dill is missing."""
    try:
        from dill import PicklingWarning
    except ImportError:
        return Warning
    return PicklingWarning


def _not_random_hash_note(record: logging.LogRecord) -> bool:
    """False for datasets' note that a map's function could not be hashed and a random fingerprint was used."""
    return "couldn't be hashed properly, a random hash was used instead" not in record.getMessage()


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
    try:
        from google.colab import drive  # type: ignore[import-not-found]

        drive.mount(str(DRIVE_MOUNT))
        DRIVE_COURSE_DIR.mkdir(parents=True, exist_ok=True)
    except Exception as err:  # noqa: BLE001 - declined, timed out or no Drive: the lesson goes on in a local folder
        log(
            tr(
                en=f"Google Drive could not be mounted ({type(err).__name__}: {err}); keeping work in a local folder "
                "instead.",
                ru=f"Не удалось подключить Google Диск ({type(err).__name__}: {err}); работа будет храниться в "
                "локальной папке.",
            )
        )
        return None
    return DRIVE_COURSE_DIR


def drive_wanted(use_drive: bool | None, colab: bool, profile: Profile) -> bool:
    """Whether to keep work on Google Drive: as asked (True/False), or by default (None) on Colab with a real model.

    The tiny profile and the CPU rehearsals run on the course's own tiny weights in minutes (tiny's trained
    adapters ship with the course), so they keep their work locally unless asked.
    """
    if use_drive is None:
        return colab and not profile.tiny_weights
    return bool(use_drive)


def _not_mtime_note(record: logging.LogRecord) -> bool:
    """False for transformers' note that checkpoints written within a second are ordered by step, not file time."""
    return "mtime may not be reliable" not in record.getMessage()


def setup_lesson(
    name: str,
    profile: str | None = None,
    seed: int = 0,
    use_drive: bool | None = None,
    hub_namespace: str | None = None,
    log=print,
) -> Lesson:
    """Seed, choose the profile (argument > $LESSONS_PROFILE > GPU or not), pick folders, print a table.

    With Drive (`use_drive` True, or None on Colab with a real model: `drive_wanted`) the work dir is the course
    folder on Google Drive, so a later runtime finds what this one trained; if Drive cannot be mounted the work
    stays local, saying so. `hub_namespace` is where the course artifacts may also be downloaded from.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    quiet_library_notices()
    chosen, reason = choose_profile(profile)
    seed_everything(seed)
    import torch

    from .models import freeze_imports

    freeze_imports()  # after the heavy imports, before any model: full garbage collections skip them
    device = "cuda" if env.cuda_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(env.cpu_threads())
    wanted = drive_wanted(use_drive, env.in_colab(), chosen)
    drive_dir = mount_drive(log) if wanted else None
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
        wanted,
    )
    log(lesson.summary())
    log(lesson.where_kept())
    if chosen.access_note:
        log(f"\n{tr(en='Before the first download', ru='Перед первой загрузкой')}: {chosen.access_note}")
    return lesson


def plan_quick_training(
    lesson: Lesson,
    names: Sequence[str] | None = None,
    steps: Mapping[str, int] | None = None,
    log=print,
) -> dict[str, int]:
    """Before the first quick training starts: which artifacts this notebook will train, and the estimated sum.

    `names` are the artifacts the notebook needs (default: the three domain adapters), each trained for
    `steps[name]` steps if given, else the profile's quick_train_steps. Those found (shipped, work dir, Drive,
    Hub) are left out; nothing is printed when all are found. Returns {name: steps} of the ones to train.
    """
    from .adapters import COURSE_ADAPTERS, find_artifact
    from .budget import describe_plan

    steps = steps or {}
    wanted = {name: steps.get(name, lesson.profile.quick_train_steps) for name in names or COURSE_ADAPTERS}
    missing = {
        name: n
        for name, n in wanted.items()
        if find_artifact(name, lesson.profile, lesson.work_dir, lesson.hub_namespace, log=_silent) is None
    }
    if missing:
        plan = describe_plan(missing, lesson.profile)
        log(
            tr(
                en=f"Not found, so trained in this notebook first (estimated): {plan}.",
                ru=f"Не найдены, поэтому сначала обучаются в этом ноутбуке (оценка): {plan}.",
            )
        )
    return missing


def _silent(*_args) -> None:
    """A log that prints nothing (the search runs again, aloud, when the artifacts are resolved)."""
