"""`python -m lessons_lib.tools`: options of the other command are usage errors, --n applies to every data source,
and a damaged adapter or one for another base or task ends with one `error:` line and exit code 2."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from lessons_lib.cli import USAGE_ERROR
from lessons_lib.paths import TINY_ADAPTERS_DIR
from lessons_lib.tools.__main__ import main

REQUEST = {
    "lang": "en",
    "request": "Is this an e-mail? a@b.org",
    "tool": "content_validator",
    "arguments": {"text": "a@b.org", "rules": ["is_email"]},
}


def requests_file(folder: Path, n: int) -> Path:
    """A JSONL file of `n` hand-written requests."""
    path = folder / "mine.jsonl"
    path.write_text("".join(json.dumps(REQUEST) + "\n" for _ in range(n)), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "argv, option",
    [
        (["evaluate", "--steps", "5"], "--steps does not apply to evaluate; it is an option of: build-adapter"),
        (["evaluate", "--out", "/tmp/x"], "--out does not apply to evaluate"),
        (["evaluate", "--ship", "/tmp/x"], "--ship does not apply to evaluate"),
        (["build-adapter", "--adapter", "some/folder"], "--adapter does not apply to build-adapter"),
        (["build-adapter", "--data", "dev"], "--data does not apply to build-adapter"),
        (["build-adapter", "--n", "3"], "--n does not apply to build-adapter"),
        (["build-adapter", "--tool-choice", "auto"], "--tool-choice does not apply to build-adapter"),
        (["evaluate", "--n", "0"], "--n must be at least 1, not 0"),
        (["build-adapter", "--steps", "0"], "--steps must be at least 1, not 0"),
        (["evaluate", "--warm-steps", "3"], "--warm-steps does not apply to evaluate"),
        (["build-adapter", "--warm-steps", "-1"], "--warm-steps must be at least 0, not -1"),
    ],
)
def test_options_that_do_not_apply_are_usage_errors(capsys, argv, option):
    """Before: accepted and silently ignored (or 0 silently meant the default)."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == USAGE_ERROR
    assert option in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, steps, warm",
    [
        ([], 2160, 900),  # the shipped recipe
        (["--steps", "4"], 4, 2),  # a trial run: the recipe's share of warm-up (was the full 900 before 4 steps)
        (["--steps", "4", "--warm-steps", "0"], 4, 0),
        (["--warm-steps", "300"], 2160, 300),
    ],
)
def test_build_adapter_warm_up_follows_the_steps_unless_given(monkeypatch, tmp_path, argv, steps, warm):
    """Before: every build trained 900 warm-up steps first, whatever --steps said (`--steps 2` took ~8 minutes)."""
    asked = {}
    monkeypatch.setattr("lessons_lib.tools.adapter.build_tool_adapter", lambda **kwargs: asked.update(kwargs) or {})
    assert main(["build-adapter", *argv, "--out", str(tmp_path / "tools")]) == 0
    assert (asked["steps"], asked["warm_steps"]) == (steps, warm)


@pytest.mark.parametrize(
    "argv, said",
    [
        (["--warm-steps", "0"], "--warm-steps 0 changes the course recipe (2160 steps after 900 warm-up steps)"),
        (["--steps", "8", "--warm-steps", "1"], "--steps 8 --warm-steps 1 changes the course recipe"),
    ],
)
def test_another_warm_up_without_out_keeps_the_shipped_adapter(monkeypatch, capsys, argv, said):
    monkeypatch.setattr("lessons_lib.tools.adapter.build_tool_adapter", lambda **kwargs: pytest.fail("trained"))
    assert main(["build-adapter", *argv]) == USAGE_ERROR
    err = capsys.readouterr().err
    assert said in err and ("build/tools-warm0" in err or "build/tools-8-warm1" in err)


def test_the_recipe_given_explicitly_rebuilds_the_shipped_adapter(monkeypatch):
    asked = {}
    monkeypatch.setattr("lessons_lib.tools.adapter.build_tool_adapter", lambda **kwargs: asked.update(kwargs) or {})
    assert main(["build-adapter", "--steps", "2160", "--warm-steps", "900"]) == 0
    assert (asked["out_dir"], asked["steps"], asked["warm_steps"]) == (TINY_ADAPTERS_DIR / "tools", 2160, 900)


def test_evaluate_prints_the_table_and_no_library_notice(capsys):
    """Before: PEFT's tie_word_embeddings UserWarning and transformers' is_gradient_checkpointing FutureWarning above
    the table (the tool adapter keeps an untied lm_head copy on purpose)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # every warning raised is recorded, unless the CLI silences it
        assert main(["evaluate", "--n", "1"]) == 0
    assert [f"{w.category.__name__}: {w.message}" for w in seen] == []
    assert capsys.readouterr().out.splitlines()[
        0
    ] == f"heldout: 1 requests, adapter {TINY_ADAPTERS_DIR / 'tools'}, " + ("tool_choice=auto")


def test_n_takes_the_first_requests_of_a_data_file(tmp_path, capsys):
    """Before: `--data FILE --n 1` scored every row of the file."""
    path = requests_file(tmp_path, 3)
    assert main(["evaluate", "--data", str(path), "--n", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{path}: 1 requests" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["base"], ["tools"])]
    assert [r[:2] for r in rows] == [["base", "1"], ["tools", "1"]]


def one_error_line(capsys) -> str:
    """The command's stderr, asserted to be exactly one `error:` line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_an_empty_weights_file_is_one_error_line(tmp_path, capsys):
    """Before: a SafetensorError traceback and exit code 1."""
    folder = shutil.copytree(TINY_ADAPTERS_DIR / "tools", tmp_path / "tools")
    (folder / "adapter_model.safetensors").write_bytes(b"")
    assert main(["evaluate", "--adapter", str(folder), "--data", str(requests_file(tmp_path, 1))]) == USAGE_ERROR
    assert str(folder / "adapter_model.safetensors") in one_error_line(capsys)


def test_an_adapter_for_another_base_is_one_error_line(tmp_path, capsys):
    folder = shutil.copytree(TINY_ADAPTERS_DIR / "tools", tmp_path / "tools")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(base_model="someone/another-model", base_fingerprint="0123456789abcdef")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert main(["evaluate", "--adapter", str(folder), "--data", str(requests_file(tmp_path, 1))]) == USAGE_ERROR
    assert "someone/another-model" in one_error_line(capsys)


def test_an_adapter_trained_for_another_task_is_refused(tmp_path, capsys):
    """Before: the json adapter scored 0.0 as if it were a bad tool adapter."""
    assert main(["evaluate", "--adapter", str(TINY_ADAPTERS_DIR / "json"), "--data", str(requests_file(tmp_path, 1))])
    line = one_error_line(capsys)
    assert "trained for the 'json' task" in line and "not for tool use" in line
