"""Self-checks that hold on GPU kernels: exact on fp32, tolerances and answer agreement on fp16 or bf16 / 4-bit."""

import pytest
import torch

from lessons_lib import checks
from lessons_lib.profiles import PROFILES


def test_only_fp32_cpu_kernels_are_exact(monkeypatch):
    from lessons_lib import env

    monkeypatch.setattr(env, "cuda_available", lambda: False)
    assert checks.exact_kernels(PROFILES["tiny"])
    assert not checks.exact_kernels(PROFILES["t4-rehearsal"]) and not checks.exact_kernels(PROFILES["7b-rehearsal"])
    monkeypatch.setattr(env, "cuda_available", lambda: True)
    assert not checks.exact_kernels(PROFILES["t4"])


def test_quality_is_claimed_everywhere_but_in_rehearsals():
    assert checks.expects_quality(PROFILES["tiny"]) and checks.expects_quality(PROFILES["t4"])
    assert not checks.expects_quality(PROFILES["t4-rehearsal"])


def test_tolerances_accept_kernel_noise_and_reject_another_adapter():
    a = torch.randn(4, 16, 2048) * 5
    noise = a + torch.randn_like(a) * 1e-5
    fp16_noise = a.half().float() + torch.randn_like(a) * 1e-2
    other = a + torch.randn_like(a) * 0.5  # what a different adapter does to logits
    assert checks.logits_close(a, noise, PROFILES["tiny"])
    assert not checks.logits_close(a, fp16_noise, PROFILES["tiny"])
    assert checks.logits_close(a, fp16_noise, PROFILES["t4-rehearsal"])
    assert not checks.logits_close(a, other, PROFILES["t4-rehearsal"])


def test_answer_agreement():
    assert checks.agreement(["a", "b"], ["a", "c"]) == 0.5
    assert checks.answers_agree(["a"] * 5, ["a"] * 4 + ["b"], PROFILES["t4-rehearsal"])
    assert not checks.answers_agree(["a"] * 5, ["a"] * 4 + ["b"], PROFILES["tiny"])
    with pytest.raises(ValueError, match="one to one"):
        checks.agreement(["a"], [])


def test_bf16_kernels_get_the_bf16_tolerance(monkeypatch):
    from lessons_lib import env

    monkeypatch.setattr(env, "cuda_available", lambda: False)
    monkeypatch.delenv(env.CAPABILITY_ENV_VAR, raising=False)
    t4, b7 = PROFILES["t4-rehearsal"], PROFILES["7b-rehearsal"]  # fp16 as on a T4; bf16 as on an A100 or L4
    assert checks.tolerance(t4) == checks.HALF_TOLERANCE and checks.tolerance(b7) == checks.BF16_TOLERANCE
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 2048, generator=g) * 5
    bf16_noise = (a + torch.randn(a.shape, generator=g) * 0.03).bfloat16().float()  # reordered sums, rounded
    other = a + torch.randn(a.shape, generator=g) * 0.5
    assert checks.logits_close(a, bf16_noise, b7) and not checks.logits_close(a, bf16_noise, t4)
    assert not checks.logits_close(a, other, b7)


def test_the_mean_difference_tells_an_adapter_from_rounding_where_the_largest_cannot():
    g = torch.Generator().manual_seed(0)
    own = torch.randn(4096, generator=g) * 5
    rounded = own.clone()
    rounded[torch.randperm(4096, generator=g)[:40]] += 0.25  # a kernel's reordering: a few logits, two bf16 steps
    other = own + torch.randn(4096, generator=g) * 0.03  # a barely trained other adapter: every logit, a little
    assert (rounded - own).abs().max() >= (other - own).abs().max()
    assert checks.logit_distance(rounded, own) < checks.logit_distance(other, own) / 5
