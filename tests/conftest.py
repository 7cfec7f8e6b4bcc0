"""Shared fixtures: the tiny profile, its base model and tokenizer, and the shipped course adapters."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from lessons_lib.profiles import PROFILES  # noqa: E402


@pytest.fixture(scope="session")
def tiny():
    """The tiny profile."""
    import torch

    from lessons_lib.env import cpu_threads

    torch.set_num_threads(cpu_threads(2))
    return PROFILES["tiny"]


@pytest.fixture(scope="session")
def tokenizer(tiny):
    """The tiny model's tokenizer (left padding, pad != eos)."""
    from lessons_lib.models import load_tokenizer

    return load_tokenizer(tiny)


@pytest.fixture
def base(tiny):
    """A fresh tiny base model (0.05 s to load, so each test gets its own)."""
    from lessons_lib.models import load_base

    return load_base(tiny)


@pytest.fixture
def course_model(base, tiny):
    """A PeftModel with the shipped json, coding and support adapters loaded, json active."""
    from lessons_lib.adapters import load_with_adapters

    return load_with_adapters(base, tiny)


# The files that take longest on 2 CPUs, slowest first. With `--dist loadfile` each file runs whole on one worker,
# and xdist hands files out by test count (few-test files last), so a slow file picked up last bounds the wall
# time; handing the slow ones out first lets the many quick files fill in around them. Order only: nothing is skipped.
SLOW_FILES_FIRST = (
    "test_course_retraining.py",
    "test_tools_adapter.py",
    "test_ipywidgets7.py",
    "test_serve.py",
    "test_russian_edition.py",
    "test_course_adapters.py",
    "test_artifacts.py",
    "test_serve_limits.py",
    "test_benchmarks.py",
    "test_train_resume.py",
    "test_train.py",
    "test_colab_install.py",
)


def pytest_configure(config):
    """Keep the collection order below when xdist schedules files (its default reorders them by test count)."""
    if getattr(config.option, "loadscopereorder", None) is not None:
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    """Move the slow files to the front, keeping every file's tests together and in their own order."""
    rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
