"""Training robustness: a damaged file in the newest checkpoint is set aside, step counts are checked, the adapter's
folder is checked before any step runs, a profile can be named, and the learner-facing lines speak Russian too."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from lessons_lib.train import (
    SimulatedDisconnect,
    as_profile,
    checkpoint_problem,
    checkpoint_step,
    disconnect_after,
    last_checkpoint,
    set_aside,
    sft_config,
    train_domain,
)

FIRST, RESUMED, SAVE_EVERY = 4, 6, 2  # the first run leaves checkpoint-2 and checkpoint-4; the rerun goes to 6


def fake_checkpoint(folder: Path, step: int) -> Path:
    """A complete checkpoint-N with every file the Trainer writes for a named adapter (tiny contents)."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    checkpoint = folder / f"checkpoint-{step}"
    (checkpoint / "json").mkdir(parents=True)
    save_file({"w": torch.zeros(4)}, str(checkpoint / "json" / "adapter_model.safetensors"))
    (checkpoint / "json" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    for name in ("optimizer.pt", "scheduler.pt", "scaler.pt"):
        torch.save({"state": step}, checkpoint / name)
    rng = {"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()}
    torch.save(rng, checkpoint / "rng_state.pth")  # as the Trainer saves it: numpy state included
    torch.save({"args": "x" * 64}, checkpoint / "training_args.bin")
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return checkpoint


def truncate(path: Path, size: int = 300) -> None:
    """Cut a file to `size` bytes, as `truncate -s` does."""
    with path.open("r+b") as handle:
        handle.truncate(size)


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda c: truncate(c / "rng_state.pth"), "rng_state.pth is cut short"),
        (lambda c: (c / "rng_state.pth").write_bytes(b""), "rng_state.pth is cut short"),
        (lambda c: truncate(c / "json" / "adapter_config.json", 10), "json/adapter_config.json is not valid JSON"),
        (lambda c: (c / "json" / "adapter_config.json").unlink(), "json/adapter_config.json is missing"),
        (lambda c: (c / "json" / "adapter_config.json").write_text("[1, 2]"), "adapter_config.json is not a JSON"),
        (lambda c: truncate(c / "scaler.pt"), "scaler.pt is cut short"),
        (lambda c: truncate(c / "training_args.bin"), "training_args.bin is cut short"),
        (lambda c: truncate(c / "optimizer.pt"), "optimizer.pt is cut short"),
    ],
    ids=["rng-cut", "rng-empty", "config-cut", "no-config", "config-list", "scaler-cut", "args-cut", "optimizer-cut"],
)
def test_every_file_the_trainer_loads_on_resume_is_checked(tmp_path, damage, problem):
    for step in (2, 4):
        fake_checkpoint(tmp_path, step)
    assert checkpoint_problem(tmp_path / "checkpoint-4") is None, "a whole checkpoint (numpy RNG state too) passes"
    damage(tmp_path / "checkpoint-4")
    assert problem in checkpoint_problem(tmp_path / "checkpoint-4")
    logs = []
    assert checkpoint_step(last_checkpoint(tmp_path, log=logs.append)) == 2
    assert (tmp_path / ".incomplete-checkpoint-4").is_dir() and not (tmp_path / "checkpoint-4").exists()
    assert len(logs) == 1 and problem in logs[0]


def test_optional_files_may_be_absent(tmp_path):
    """A checkpoint without rng_state.pth, scaler.pt or training_args.bin still resumes (the Trainer skips them)."""
    checkpoint = fake_checkpoint(tmp_path, 2)
    for name in ("rng_state.pth", "scaler.pt", "training_args.bin"):
        (checkpoint / name).unlink()
    assert checkpoint_problem(checkpoint) is None


@pytest.fixture(scope="module")
def first_run(tiny, tmp_path_factory) -> Path:
    """The reproduction's first call: 4 steps of the json adapter, a checkpoint every 2."""
    out = tmp_path_factory.mktemp("first") / "json"
    run(tiny, out, FIRST, log=lambda *_: None)
    return out


def run(profile, out: Path, steps: int, **kwargs):
    """The same training call each time, for `steps` steps."""
    return train_domain(
        "json",
        profile,
        out,
        n_rows=64,
        max_steps=steps,
        save_steps=SAVE_EVERY,
        adapter_name="json",
        keep_checkpoints=5,
        disable_tqdm=True,
        **kwargs,
    )


@pytest.mark.parametrize(
    "damaged, lang",
    [("rng_state.pth", "en"), ("json/adapter_config.json", "ru")],
    ids=["rng_state", "adapter_config-in-russian"],
)
def test_a_damaged_file_in_the_newest_checkpoint_is_set_aside_and_the_rerun_resumes(
    tmp_path, tiny, first_run, monkeypatch, damaged, lang
):
    """Before: every rerun failed (OSError from torch.load, or CorruptAdapterError advising to download again)."""
    monkeypatch.setenv("LESSONS_LANG", lang)
    out, logs = tmp_path / "json", []
    shutil.copytree(first_run, out)
    truncate(out / "checkpoints" / "checkpoint-4" / damaged)

    result = run("tiny", out, RESUMED, log=logs.append)  # a profile given by name works too
    assert checkpoint_step(result.resumed_from) == 2 and result.steps == RESUMED and result.steps_run == 4
    assert (out / "checkpoints" / ".incomplete-checkpoint-4").is_dir()
    assert checkpoint_problem(out / "checkpoints" / "checkpoint-6") is None
    aside = next(line for line in logs if ".incomplete-checkpoint-4" in line)
    assert damaged in aside
    if lang == "ru":
        assert "Контрольная точка checkpoint-4 неполная" in aside
        assert any(line.startswith("Продолжаем с ") and "(шаг 2 из 6)" in line for line in logs), logs
        assert any(line.startswith("json: 6 шагов за ") for line in logs), logs
    else:
        assert any(line.startswith("Resuming from ") and "(step 2 of 6)" in line for line in logs), logs
        assert any(line.startswith("json: 6 steps in ") for line in logs), logs


@pytest.mark.parametrize("field", ["max_steps", "save_steps"])
@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_step_counts_below_one_are_refused_not_replaced_by_the_default(tmp_path, tiny, field, value):
    with pytest.raises(ValueError, match=f"{field} must be at least 1"):
        sft_config(tiny, tmp_path, **{field: value})
    with pytest.raises(ValueError, match=f"{field} must be at least 1"):
        train_domain("json", tiny, tmp_path / "out", n_rows=8, **{field: value})
    assert not (tmp_path / "out").exists(), "refused before anything was loaded or written"


def test_none_still_means_the_profile_default_and_explicit_counts_are_kept(tmp_path, tiny):
    default = sft_config(tiny, tmp_path)
    assert default.max_steps == tiny.train_steps and default.save_steps == tiny.sft_recipe.save_steps(tiny.train_steps)
    one = sft_config(tiny, tmp_path, max_steps=1, save_steps=1)
    assert (one.max_steps, one.save_steps) == (1, 1)


def test_a_profile_can_be_given_by_name_and_anything_else_is_a_clear_type_error(tiny):
    assert as_profile("tiny") is tiny and as_profile(" Tiny ") is tiny and as_profile(tiny) is tiny
    with pytest.raises(ValueError, match="Unknown profile 'tinyy'"):
        as_profile("tinyy")
    with pytest.raises(TypeError, match=r"profile must be a Profile .* or a profile name, not int"):
        train_domain("json", 42, "unused")


def test_an_unwritable_output_dir_is_refused_before_any_step(tmp_path, monkeypatch):
    """Before: every step ran, then write_adapter_files raised a bare PermissionError."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    logs = []
    with pytest.raises(OSError, match=r"Cannot write the trained adapter to .*a-file/out .*pass a writable folder"):
        run("tiny", blocker / "out", FIRST, checkpoint_dir=tmp_path / "ckpt", log=logs.append)
    assert not list((tmp_path / "ckpt").glob("checkpoint-*")), "no step ran"
    monkeypatch.setenv("LESSONS_LANG", "ru")
    with pytest.raises(OSError, match="Не удаётся записать обученный адаптер"):
        run("tiny", blocker / "out", FIRST, checkpoint_dir=tmp_path / "ckpt", log=logs.append)


def test_a_read_only_output_dir_is_refused_with_permission_error(tmp_path, monkeypatch):
    """As root a chmod does not stop writes, so the refusal a learner's read-only folder gives is simulated."""
    import tempfile

    read_only = tmp_path / "ro"
    real = tempfile.NamedTemporaryFile

    def refuse(*args, dir=None, **kwargs):
        if Path(dir) == read_only:
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(PermissionError, match=r"Cannot write the trained adapter .*\(Permission denied\)"):
        run("tiny", read_only, FIRST, checkpoint_dir=tmp_path / "ckpt", log=lambda *_: None)
    assert not list((tmp_path / "ckpt").glob("checkpoint-*")), "no step ran"


def test_training_lines_speak_russian(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONS_LANG", "ru")
    disconnect = disconnect_after(2)
    with pytest.raises(SimulatedDisconnect, match="Имитация разрыва соединения после шага 2 из 6"):
        disconnect.on_step_end(None, SimpleNamespace(global_step=2, max_steps=6), None)
    logs = []
    (tmp_path / "checkpoint-3").mkdir()
    set_aside(tmp_path / "checkpoint-3", "no optimizer.pt", logs.append)
    assert "Контрольная точка checkpoint-3 неполная (no optimizer.pt)" in logs[0]
