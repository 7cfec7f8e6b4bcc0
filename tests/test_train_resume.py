"""An interrupted training run resumes from its newest checkpoint and still learns.

Kept apart from test_train.py so that with `--dist loadfile` the two slow halves run on different workers.
"""

from __future__ import annotations

import json

import pytest

from lessons_lib.train import SimulatedDisconnect, checkpoint_step, disconnect_after, last_checkpoint, train_domain

PLANNED, SAVE_EVERY, DISCONNECT_AT = 30, 10, 17


def test_interrupted_training_resumes_from_the_newest_checkpoint_and_learns(tmp_path, tiny, tokenizer):
    """A disconnect after step 17 leaves checkpoint-10; rerunning the same call resumes there and finishes at 30."""
    from peft import PeftModel

    from lessons_lib.evaluate import evaluate_model
    from lessons_lib.models import load_base

    out, logs = tmp_path / "json", []
    disconnect = disconnect_after(DISCONNECT_AT)

    def same_call():
        return train_domain(
            "json",
            tiny,
            out,
            n_rows=PLANNED * tiny.batch_size,
            max_steps=PLANNED,
            save_steps=SAVE_EVERY,
            keep_checkpoints=2,
            adapter_name="json",
            callbacks=[disconnect],
            log=logs.append,
            disable_tqdm=True,
        )

    with pytest.raises(SimulatedDisconnect, match="after step 17"):
        same_call()
    assert checkpoint_step(last_checkpoint(out)) == 10
    assert not (out / "adapter_model.safetensors").exists(), "an interrupted run must not look finished"

    result = same_call()
    assert checkpoint_step(result.resumed_from) == 10, "resumed from the newest checkpoint, not from step 0"
    assert result.steps == PLANNED and result.steps_run == PLANNED - 10
    assert any("Resuming from" in line and "checkpoint-10" in line for line in logs)
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-20", "checkpoint-30"], (
        "only the last two checkpoints are kept"
    )
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in out.iterdir()}
    assert not (out / "json").exists(), "the named adapter is saved flat, loadable as a plain PEFT folder"
    state = json.loads((out / "checkpoints" / f"checkpoint-{PLANNED}" / "trainer_state.json").read_text())
    assert state["global_step"] == PLANNED and any(h["step"] < 10 for h in state["log_history"] if "loss" in h), (
        "the loss log of the steps before the disconnect survives the resume"
    )

    model = PeftModel.from_pretrained(load_base(tiny), out).eval()
    report, outputs = evaluate_model(model, tokenizer, "json", 16, max_new_tokens=64)
    assert report.valid_rate >= 0.9 and report.correct_rate >= 0.5, (report, outputs[:3])


def test_rerunning_a_finished_run_trains_no_step_and_keeps_its_adapter(tmp_path, tiny):
    """Before: the rerun resumed from checkpoint-6 of 6 and trained step 7 ("step 7 of 6"), the cosine schedule
    starting over, and the next rerun changed the saved adapter; a kill during the final save did the same."""
    out, logs = tmp_path / "json", []

    def same_call():
        return train_domain("json", tiny, out, n_rows=64, max_steps=6, save_steps=3, log=logs.append, disable_tqdm=True)

    first = same_call()
    weights = out / "adapter_model.safetensors"
    trained = weights.read_bytes()
    again = same_call()
    assert (again.steps, again.steps_run) == (6, 0) and checkpoint_step(again.resumed_from) == 6
    assert weights.read_bytes() == trained and again.losses() == first.losses()
    assert any("nothing left to train" in line for line in logs)
    weights.unlink()  # as a kill during the final save leaves it
    assert same_call().steps_run == 0 and weights.read_bytes() == trained
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]
