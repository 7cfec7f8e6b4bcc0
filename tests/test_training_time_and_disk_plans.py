"""What a notebook says before a long run: training-time estimates (01's demo run, 02–06's quick trainings) and the
free-disk check before 03's merged checkpoints."""

from __future__ import annotations

import errno
import re
from collections import namedtuple
from dataclasses import replace

import pytest

from lessons_lib import budget
from lessons_lib.lesson import Lesson, plan_quick_training
from lessons_lib.paths import NOTEBOOKS_DIR, TINY_ADAPTERS_DIR
from lessons_lib.profiles import PROFILES

Usage = namedtuple("Usage", "total used free")
SHIPPED_JSON = TINY_ADAPTERS_DIR / "json"


# ------------------------------------------------------------------ notebook 01: demo lengths and its intro's numbers
def test_gpu_profiles_have_a_demo_run_shorter_than_their_full_run():
    for name in ("t4", "7b"):
        profile = PROFILES[name]
        assert profile.demo_train_steps is not None and profile.demo_train_steps < profile.train_steps
    assert (PROFILES["t4"].demo_train_steps, PROFILES["7b"].demo_train_steps) == (100, 20)


def stand_in_lengths(domain: str, target, tokenizer) -> list[int]:
    """Section 8's stand-in row lengths: 64 task rows, plus one FineTome chat filling max_length per five."""
    from lessons_lib.data import sft_rows

    task = budget.row_lengths(sft_rows(domain, 64), tokenizer, target.max_length)
    return task + [target.max_length] * (len(task) // 5)


def test_notebook_01_intro_states_the_course_estimate(tokenizer):
    """The times in 01's intro are what section 8's estimate computes (stand-in tokenizer, assumed rates)."""
    from lessons_lib.adapters import COURSE_ADAPTERS

    source = (NOTEBOOKS_DIR / "src" / "01_fine_tune.py").read_text(encoding="utf-8")
    demo, loop = {}, {}
    for name in ("t4", "7b"):
        target = PROFILES[name]
        lengths = {d: stand_in_lengths(d, target, tokenizer) for d in COURSE_ADAPTERS}
        demo[name] = budget.estimate_seconds(target, target.demo_train_steps, lengths["json"]) / 60
        loop[name] = sum(budget.estimate_seconds(target, target.train_steps, lengths[d]) for d in COURSE_ADAPTERS)
    en = (
        f"the demo run in section 5 takes about {demo['t4']:.0f} min on t4 and {demo['7b']:.0f} min on 7b, and "
        f"section 9's three\n# full adapters about {loop['t4'] / 3600:.1f} h on t4 and {loop['7b'] / 3600:.0f} h on 7b"
    )
    ru = (
        f"около {demo['t4']:.0f} мин\n# на t4 и {demo['7b']:.0f} мин на 7b, а три полных адаптера раздела 9 — около "
        f"{loop['t4'] / 3600:.1f} ч на t4 и {loop['7b'] / 3600:.0f} ч на 7b"
    )
    assert en in source and ru in source
    assert demo["t4"] <= 15, "t4's demo run stays within about a quarter of an hour by the course's own estimate"


# ------------------------------------------------------------------ 02–06: what is trained before the lesson
def lesson_for(profile, work_dir) -> Lesson:
    """A lesson on `profile` whose work dir is `work_dir` (no Drive, no Hub)."""
    return Lesson("02", profile, "test", "cpu", "float32", False, work_dir, None, None)


def test_nothing_is_announced_when_everything_is_found(tiny, tmp_path):
    printed = []
    assert plan_quick_training(lesson_for(tiny, tmp_path), log=printed.append) == {}
    assert printed == []  # the tiny profile's adapters ship


def test_a_rehearsal_names_what_it_trains_without_minutes(tmp_path):
    printed = []
    profile = PROFILES["t4-rehearsal"]
    plan = plan_quick_training(lesson_for(profile, tmp_path), ("json", "tools"), {"tools": 5}, log=printed.append)
    assert plan == {"json": profile.quick_train_steps, "tools": 5}
    assert printed == [
        f"Not found, so trained in this notebook first (estimated): json {profile.quick_train_steps} steps, tools 5 "
        "steps: a CPU rehearsal: seconds."
    ]


def test_the_sum_of_what_will_be_trained_is_printed_before_the_first_training(tiny, tmp_path):
    """A profile with a rate and nothing shipped: one line, each artifact's minutes and their sum."""
    profile, printed = replace(tiny, name="tiny-unshipped", ships_adapters=False), []
    plan = plan_quick_training(lesson_for(profile, tmp_path), ("json", "router"), {"router": 50}, log=printed.append)
    assert plan == {"json": profile.quick_train_steps, "router": 50}
    parts = {name: budget.artifact_seconds(name, profile, steps) for name, steps in plan.items()}
    assert all(seconds > 0 for seconds in parts.values())
    (line,) = printed
    for name, seconds in parts.items():
        assert f"{name} {plan[name]} steps ≈ {seconds / 60:.1f} min" in line
    assert f"in all {budget.duration(sum(parts.values()))} at ~{profile.train_tokens_per_second:.0f}" in line
    assert "(measured)" in line and "plus loading the base model for each" in line


def test_artifact_seconds_grow_with_steps(tiny):
    one, two = budget.artifact_seconds("json", tiny, 10), budget.artifact_seconds("json", tiny, 20)
    assert two == pytest.approx(2 * one)
    assert budget.artifact_seconds("json", PROFILES["7b-rehearsal"], 10) is None


@pytest.mark.parametrize(
    "seconds, text", [(0.2, "about 1 s"), (42, "about 42 s"), (89, "about 89 s"), (150, "about 2 min")]
)
def test_duration_is_in_seconds_under_a_minute_and_a_half(seconds, text):
    assert budget.duration(seconds) == text


# ------------------------------------------------------------------ 03: room on the disk for a merged checkpoint
def test_merged_checkpoint_sizes_are_the_fp16_models_or_the_tiny_files(tiny):
    assert budget.merged_bytes(PROFILES["7b"]) == pytest.approx(14.5e9)
    assert budget.merged_bytes(PROFILES["t4"]) == pytest.approx(2.2e9)
    assert 1e6 < budget.merged_bytes(tiny) == 2 * budget.merged_bytes(PROFILES["7b-rehearsal"]) < 1e8


@pytest.mark.parametrize("name", ["tiny", "t4-rehearsal"])
def test_merged_size_of_the_tiny_weights_is_what_a_merge_writes(name, tmp_path):
    """tiny merges in fp32 in memory, a rehearsal streams an fp16 merge: the estimate is the written size."""
    import torch

    from lessons_lib.mixing import folder_bytes, merge_checkpoint
    from lessons_lib.models import model_source

    profile = PROFILES[name]
    dtype = torch.float32 if profile.dtype == "float32" else torch.float16
    out = merge_checkpoint(model_source(profile), SHIPPED_JSON, tmp_path / "merged", dtype, log=lambda *_: None)
    written = sum(p.stat().st_size for p in out.glob("*.safetensors"))
    assert written == pytest.approx(budget.merged_bytes(profile), rel=0.01), folder_bytes(out)


def test_free_space_check_passes_with_room_and_says_how_much(monkeypatch, tmp_path):
    monkeypatch.setattr(budget.shutil, "disk_usage", lambda _: Usage(100e9, 50e9, 50e9))
    line = budget.check_free_space(tmp_path / "not-yet" / "there", 14.5e9, "merged-mix")
    assert line == f"merged-mix: about 14.5 GB in {tmp_path / 'not-yet' / 'there'}; 50.0 GB free there"


def test_free_space_check_refuses_before_writing_when_the_disk_is_too_full(monkeypatch, tmp_path):
    monkeypatch.setattr(budget.shutil, "disk_usage", lambda _: Usage(100e9, 90e9, 10e9))
    with pytest.raises(OSError) as err:
        budget.check_free_space(tmp_path, 14.5e9, "merged-mix")
    assert err.value.errno == errno.ENOSPC
    expected = r"merged-mix: about 14\.5 GB in .*; 10\.0 GB free there\. Not enough: free some space"
    assert re.search(expected, str(err.value))


def test_free_space_is_read_from_the_nearest_existing_folder(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(budget.shutil, "disk_usage", lambda folder: seen.append(folder) or Usage(1, 1, 1))
    budget.free_bytes(tmp_path / "a" / "b")
    assert seen == [tmp_path]
