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


# The GPU whose dtype decisions to take ("7.5": a T4's fp16, "8.0": bf16), to check one GPU's path on another
# or to rehearse it on a CPU; unset: the GPU's own (a rehearsal: its GPU's, profiles.REHEARSAL_GPUS).
CAPABILITY_ENV_VAR = "LESSONS_CAPABILITY"


def capability_override() -> tuple[int, int] | None:
    """$LESSONS_CAPABILITY as (major, minor), or None when unset; anything but MAJOR.MINOR is a clear error."""
    raw = os.environ.get(CAPABILITY_ENV_VAR, "").strip()
    if not raw:
        return None
    major, _, minor = raw.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        from .i18n import tr

        raise ValueError(
            tr(
                en=f"{CAPABILITY_ENV_VAR}={raw!r} is not a compute capability: set it like 7.5 (a T4: fp16) or 8.0 "
                "(bf16), or unset it to use the GPU's own.",
                ru=f"{CAPABILITY_ENV_VAR}={raw!r} — не вычислительная способность: задайте её как 7.5 (T4: fp16) "
                "или 8.0 (bf16) либо уберите переменную, чтобы взять значение самой видеокарты.",
            )
        )
    return int(major), int(minor)


def device_capability() -> tuple[int, int] | None:
    """The CUDA device's own compute capability, or None without a GPU."""
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
