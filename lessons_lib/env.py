"""Facts about the machine the lesson runs on: Colab or not, GPU or not, which dtype is safe."""

from __future__ import annotations

import importlib.util
import os
import sys


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def cuda_available() -> bool:
    """True when torch sees a CUDA device."""
    import torch

    return torch.cuda.is_available()


def compute_capability() -> tuple[int, int] | None:
    """The CUDA device's compute capability, or None without a GPU."""
    if not cuda_available():
        return None
    import torch

    return tuple(torch.cuda.get_device_capability(0))  # type: ignore[return-value]


def native_bf16(capability: tuple[int, int] | None) -> bool:
    """Whether the GPU runs bf16 natively (Ampere, compute capability 8.0, or newer).

    `torch.cuda.is_bf16_supported()` says True on a T4 (7.5) because it emulates bf16,
    which is slow and breaks mixed-precision training there, so we look at the capability.
    """
    return capability is not None and capability[0] >= 8


def has_package(name: str) -> bool:
    """True when a package can be imported without importing it."""
    return importlib.util.find_spec(name) is not None


def bitsandbytes_usable() -> bool:
    """True when 4-bit loading can work: bitsandbytes is installed and a GPU is present."""
    return has_package("bitsandbytes") and cuda_available()


def cpu_threads(limit: int = 4) -> int:
    """Threads for torch on CPU: $OMP_NUM_THREADS when set (shared machines), else the cores up to `limit`."""
    requested = os.environ.get("OMP_NUM_THREADS", "")
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    return max(1, min(limit, os.cpu_count() or 1))
