"""Self-checks that hold on every profile: exact where kernels are exact (fp32 CPU), within stated tolerances
on fp16 or bf16 / 4-bit GPU kernels (batched and batch-1 kernels round differently), and no quality claim where
the artifacts were quick-trained for a rehearsal."""

from __future__ import annotations

from collections.abc import Sequence

from .i18n import tr
from .profiles import Profile

# fp32 on a CPU: the same math in another order (batching, BLAS build) moves logits by ~1e-5.
FP32_TOLERANCE = dict(rtol=1e-4, atol=1e-4)
# fp16 compute (4-bit weights dequantized to fp16): batched vs batch-1 kernels differ by ~1e-2 on logits.
HALF_TOLERANCE = dict(rtol=2e-2, atol=5e-2)
# bf16 compute keeps 8 significant bits to fp16's 11: one rounding of a logit near 10 moves it by 0.06. On an H200
# batched vs batch-1 kernels moved the tiny rehearsal's logits by up to 0.11 (merges run in fp16: Profile.merge_dtype).
BF16_TOLERANCE = dict(rtol=4e-2, atol=0.25)
# Greedy answers under fp16 kernels: a near-tie can flip one token and the rest of the answer with it.
HALF_MIN_AGREEMENT = 0.8


def exact_kernels(profile: Profile) -> bool:
    """True where outputs are bitwise reproducible across batchings: fp32 on the CPU (the tiny profile)."""
    return not profile.gpu_path()


def expects_quality(profile: Profile) -> bool:
    """False for rehearsals: their artifacts are quick-trained for a few steps, so only the code path is checked."""
    return not profile.rehearsal


def tolerance(profile: Profile) -> dict:
    """rtol/atol for comparing logits of two computations that should agree on this profile (and this GPU's dtype)."""
    if exact_kernels(profile):
        return FP32_TOLERANCE
    import torch

    return BF16_TOLERANCE if profile.torch_dtype() == torch.bfloat16 else HALF_TOLERANCE


def logits_close(a, b, profile: Profile) -> bool:
    """Whether two logit tensors agree within the profile's tolerance."""
    import torch

    return torch.allclose(a.float(), b.float(), **tolerance(profile))


def logit_distance(a, b) -> float:
    """The mean |difference| of two logit vectors: which adapter a row ran, told apart from kernel rounding.

    Rounding moves single logits by a step or two; another adapter moves most of them. So the mean separates adapters
    where the largest difference cannot: in bf16 one rounding step (0.06) is as large as a barely trained adapter's.
    """
    return (a.float() - b.float()).abs().mean().item()


def agreement(a: Sequence[str], b: Sequence[str]) -> float:
    """The share of positions where two lists of answers are identical."""
    if len(a) != len(b):
        raise ValueError(
            tr(
                en=f"Compare answers one to one: got {len(a)} and {len(b)}.",
                ru=f"Сравнивайте ответы один к одному: получено {len(a)} и {len(b)}.",
            )
        )
    return sum(x == y for x, y in zip(a, b)) / max(len(a), 1)


def min_agreement(profile: Profile) -> float:
    """How many greedy answers must match exactly: all of them on exact kernels, most of them on fp16."""
    return 1.0 if exact_kernels(profile) else HALF_MIN_AGREEMENT


def answers_agree(a: Sequence[str], b: Sequence[str], profile: Profile) -> bool:
    """Identical answers on exact kernels; at least HALF_MIN_AGREEMENT of them identical on fp16/4-bit."""
    return agreement(a, b) >= min_agreement(profile)
