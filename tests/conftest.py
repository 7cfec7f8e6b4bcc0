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
