"""Where the course keeps its shipped assets and its working files."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
ASSETS_DIR = Path(os.environ.get("LESSONS_ASSETS", REPO_DIR / "assets"))
TINY_MODEL_DIR = ASSETS_DIR / "tiny-model"
TINY_ADAPTERS_DIR = ASSETS_DIR / "adapters"
QUIZ_DIR = ASSETS_DIR / "quizzes"
CHAT_TEMPLATES_DIR = ASSETS_DIR / "chat_templates"
BUILD_DIR = Path(os.environ.get("LESSONS_BUILD", REPO_DIR / "build"))
DRIVE_MOUNT = Path("/content/drive")
DRIVE_COURSE_DIR = DRIVE_MOUNT / "MyDrive" / "lora-adapter-lab"  # <profile>/ under it is a lesson's work dir


def require_dir(path: Path, what: str, hint: str) -> Path:
    """Return `path` if it is a folder, else raise FileNotFoundError saying how to get it."""
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{what} not found at {path}. {hint}")
    return Path(path)
