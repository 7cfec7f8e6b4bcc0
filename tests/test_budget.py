"""Time and memory estimates: padded tokens per step, GB per precision, a lesson's peak against a T4."""

import pytest

from lessons_lib import budget
from lessons_lib.profiles import PROFILES


def test_padded_length_is_the_batch_maximum():
    assert budget.padded_length([10] * 50, 4) == 10
    assert budget.padded_length([10, 100], 8) > 95  # with 8 draws the long row is almost always in the batch
    assert budget.padded_length([10, 100], 1) == pytest.approx(55, abs=10)


def test_tokens_per_step_counts_padding_and_accumulation():
    t4 = PROFILES["t4"]
    assert budget.tokens_per_step(t4, [100] * 10) == t4.batch_size * t4.grad_accum * 100


def test_time_estimate_uses_the_profile_throughput():
    t4 = PROFILES["t4"]
    seconds = budget.estimate_seconds(t4, 200, [100] * 10)
    assert seconds == pytest.approx(200 * 16 * 100 / t4.train_tokens_per_second)
    assert budget.estimate_seconds(PROFILES["t4-rehearsal"], 10, [100]) is None


@pytest.mark.parametrize("name, low, high", [("t4", 0.6, 1.0), ("7b", 3.6, 4.6)])
def test_4bit_sizes_match_what_bitsandbytes_loads(name, low, high):
    size = budget.MODEL_SIZES[name]
    assert low < size.gigabytes("4bit") < high
    assert size.gigabytes("fp16") == pytest.approx(2 * size.params / 1e9)


def test_memory_plan_flags_what_does_not_fit(monkeypatch):
    monkeypatch.setitem(budget.LESSON_PEAKS, "99", [("two fp16 copies", "fp16", 2)])
    assert "does NOT fit" in budget.memory_plan(PROFILES["7b"], "99")
    assert "fits a T4" in budget.memory_plan(PROFILES["t4"], "99")
    assert "no GPU memory plan" in budget.memory_plan(PROFILES["tiny"], "01")
    assert not budget.fits_t4(PROFILES["7b"], "fp16") and budget.fits_t4(PROFILES["7b"], "4bit", 2)


@pytest.mark.parametrize("lesson", sorted(budget.LESSON_PEAKS))
@pytest.mark.parametrize("profile", ["t4", "7b"])
def test_every_lesson_fits_a_t4(lesson, profile):
    """The course's promise: each lesson's peak (bases freed in between) fits a Colab T4."""
    plan = budget.memory_plan(PROFILES[profile], lesson)
    assert plan.endswith("fits a T4 (15 GB)"), plan
    assert budget.memory_plan(PROFILES[f"{profile}-rehearsal"], lesson) == plan


def test_the_tool_adapters_estimate_counts_its_own_batch_not_the_profiles():
    """Before: notebook 05 on tiny printed "8x1 rows, max_length 320", then "5018 padded tokens per step" (16 rows)."""
    from lessons_lib.tools.adapter import tool_recipe

    tiny = PROFILES["tiny"]
    recipe = tool_recipe(tiny)
    assert (recipe.batch_size, recipe.grad_accum) != (tiny.batch_size, tiny.grad_accum)  # else this test proves nothing
    lengths = budget.sample_lengths("tools", tiny)
    per_step = recipe.batch_size * recipe.grad_accum * budget.padded_length(lengths, recipe.batch_size)
    assert per_step <= recipe.batch_size * recipe.grad_accum * max(lengths)
    assert budget.artifact_seconds("tools", tiny, 10) == pytest.approx(10 * per_step / tiny.train_tokens_per_second)
    assert f"{per_step:.0f} padded tokens per step" in budget.describe_estimate("tools", tiny, 10)
