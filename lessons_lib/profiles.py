"""The three course profiles (tiny, t4, 7b) and how one is chosen."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

from . import env
from .paths import TINY_MODEL_DIR

PROFILE_ENV_VAR = "LESSONS_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Everything that changes between a laptop CPU, a Colab T4 and a 7B run."""

    name: str
    model_id: str
    description: str
    load_in_4bit: bool
    max_length: int
    max_new_tokens: int
    train_steps: int
    batch_size: int
    grad_accum: int
    learning_rate: float
    lora_r: int
    lora_alpha: int
    gradient_checkpointing: bool
    eval_examples: int
    dtype: str = "auto"  # "float32", or "auto": fp16/bf16 chosen from the GPU's compute capability

    def torch_dtype(self, capability: tuple[int, int] | None = None):
        """The torch dtype for weights and compute: fp32 on CPU, bf16 only where it is native."""
        import torch

        if self.dtype == "float32":
            return torch.float32
        cap = capability if capability is not None else env.compute_capability()
        if cap is None:
            return torch.float32
        return torch.bfloat16 if env.native_bf16(cap) else torch.float16


PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny",
        model_id=str(TINY_MODEL_DIR),
        description="the course's own 2M-parameter Llama, CPU, offline",
        dtype="float32",
        load_in_4bit=False,
        max_length=256,
        max_new_tokens=112,
        train_steps=120,
        batch_size=16,
        grad_accum=1,
        learning_rate=2e-3,
        lora_r=8,
        lora_alpha=16,
        gradient_checkpointing=False,
        eval_examples=40,
    ),
    "t4": Profile(
        name="t4",
        model_id="TinyLlama/TinyLlama-1.1B-Chat-v1.0",
        description="TinyLlama-1.1B-Chat on a Colab T4, fp16 compute, 4-bit weights",
        load_in_4bit=True,
        max_length=512,
        max_new_tokens=160,
        train_steps=200,
        batch_size=4,
        grad_accum=4,
        learning_rate=2e-4,
        lora_r=16,
        lora_alpha=32,
        gradient_checkpointing=True,
        eval_examples=40,
    ),
    "7b": Profile(
        name="7b",
        model_id="mistralai/Mistral-7B-Instruct-v0.3",
        description="Mistral-7B-Instruct in 4-bit (QLoRA), as in the original course",
        load_in_4bit=True,
        max_length=1024,
        max_new_tokens=200,
        train_steps=300,
        batch_size=2,
        grad_accum=8,
        learning_rate=1e-4,
        lora_r=16,
        lora_alpha=32,
        gradient_checkpointing=True,
        eval_examples=40,
    ),
}


def get_profile(name: str) -> Profile:
    """Look a profile up by name, with an error that lists the valid names."""
    key = name.strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"Unknown profile {name!r}. Choose one of {', '.join(PROFILES)} "
            f"(pass profile=... or set {PROFILE_ENV_VAR}=tiny|t4|7b)."
        )
    return PROFILES[key]


def choose_profile(requested: str | None = None) -> tuple[Profile, str]:
    """Pick the profile: an explicit name, then $LESSONS_PROFILE, then tiny on CPU / t4 on GPU.

    Returns the profile and a sentence saying why it was chosen.
    """
    if requested:
        return get_profile(requested), "asked for in the notebook's parameters cell"
    from_env = os.environ.get(PROFILE_ENV_VAR, "").strip()
    if from_env:
        return get_profile(from_env), f"set by ${PROFILE_ENV_VAR}"
    if env.cuda_available():
        return PROFILES["t4"], "a CUDA GPU is present"
    return PROFILES["tiny"], "no CUDA GPU: the offline tiny model runs on CPU"


def with_overrides(profile: Profile, **changes) -> Profile:
    """A copy of `profile` with some fields changed (e.g. fewer steps for a quick run)."""
    return replace(profile, **changes)
