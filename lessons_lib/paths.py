"""Where the course keeps its shipped assets and its working files: every location is defined here, once."""

from __future__ import annotations

import os
from pathlib import Path

from .i18n import tr

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
NOTEBOOKS_DIR = REPO_DIR / "notebooks"
ASSETS_DIR = Path(os.environ.get("LESSONS_ASSETS", REPO_DIR / "assets"))
TINY_MODEL_DIR = ASSETS_DIR / "tiny-model"
TINY_ADAPTERS_DIR = ASSETS_DIR / "adapters"
QUIZ_DIR = ASSETS_DIR / "quizzes"
CHAT_TEMPLATES_DIR = ASSETS_DIR / "chat_templates"
BUILD_DIR = Path(os.environ.get("LESSONS_BUILD", REPO_DIR / "build"))
WORK_ROOT = BUILD_DIR / "work"  # <profile>/ under it is a lesson's work dir when Drive is not used
# <profile>/ under it holds big files a lesson deletes again (merged full checkpoints): always on the local disk,
# never on Drive, even when the work dir is there
SCRATCH_ROOT = BUILD_DIR / "scratch"
DRIVE_MOUNT = Path("/content/drive")
MY_DRIVE = "MyDrive"  # the learner's files, under the mount
DRIVE_COURSE_DIR = DRIVE_MOUNT / MY_DRIVE / "lora-adapter-lab"  # <profile>/ under it is a lesson's work dir
ADAPTERS_FOLDER = "adapters"  # <work dir>/adapters/<name>: a work dir's adapter store, on a local disk or on Drive


def default_work_dir(profile_name: str) -> Path:
    """The work dir of a profile when none is given: where notebook 01 saves (without Drive) and the server looks."""
    return WORK_ROOT / profile_name


def scratch_dir(profile_name: str) -> Path:
    """A profile's local folder for big short-lived files (merged checkpoints): on this machine's disk, not Drive."""
    return SCRATCH_ROOT / profile_name


def adapters_folder(work_dir: str | Path) -> Path:
    """The adapter store folder of a work dir."""
    return Path(work_dir) / ADAPTERS_FOLDER


def drive_mounted(mount: str | Path = DRIVE_MOUNT) -> bool:
    """True when Google Drive is mounted at `mount` (Colab, after `drive.mount`)."""
    return (Path(mount) / MY_DRIVE).is_dir()


def require_dir(path: Path, what: str, hint: str) -> Path:
    """Return `path` if it is a folder, else raise FileNotFoundError saying how to get it."""
    if not Path(path).is_dir():
        raise FileNotFoundError(
            tr(en=f"{what} not found at {path}. {hint}", ru=f"{what}: не найдено по пути {path}. {hint}")
        )
    return Path(path)
