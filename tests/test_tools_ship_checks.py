"""`python -m lessons_lib.tools build-adapter --ship FOLDER` checks FOLDER as `evaluate --adapter` does (files, task,
base) before anything is scored or written, and replaces the shipped adapter only on purpose.

Scoring and saving are replaced by a function that fails the test if it is ever called; the shipped folder is a copy
in tmp_path (`paths.TINY_ADAPTERS_DIR` patched), so no test can touch assets/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lessons_lib.cli import USAGE_ERROR
from lessons_lib.paths import TINY_ADAPTERS_DIR
from lessons_lib.tools.__main__ import main


def never(*args, **kwargs):
    """Stands in for scoring and saving: reaching it means the bad input was not caught first."""
    raise AssertionError("scoring started although the input was bad")


@pytest.fixture
def shipped(tmp_path, monkeypatch) -> Path:
    """Where the shipped tool adapter lives for this test (an empty adapters folder in tmp_path)."""
    monkeypatch.setattr("lessons_lib.paths.TINY_ADAPTERS_DIR", tmp_path / "adapters")
    return tmp_path / "adapters" / "tools"


@pytest.fixture
def ship_calls(monkeypatch) -> list[dict]:
    """Replace scoring and saving: the arguments of each `ship_tool_adapter` call."""
    calls: list[dict] = []
    monkeypatch.setattr(
        "lessons_lib.tools.adapter.ship_tool_adapter",
        lambda folder, **kwargs: calls.append({"folder": Path(folder), **kwargs}) or {},
    )
    return calls


def one_error_line(capsys) -> str:
    """The command's stderr, asserted to be exactly one `error:` line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def copy_of(name: str, target: Path) -> Path:
    """A copy of the shipped `name` adapter at `target`."""
    return shutil.copytree(TINY_ADAPTERS_DIR / name, target)


def test_a_truncated_adapter_is_one_error_line_before_scoring(tmp_path, monkeypatch, shipped, capsys):
    """Before: --out was created, then a SafetensorError traceback from PEFT and exit 1."""
    monkeypatch.setattr("lessons_lib.tools.adapter.ship_tool_adapter", never)
    folder = copy_of("tools", tmp_path / "trained")
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    out = tmp_path / "out"
    assert main(["build-adapter", "--ship", str(folder), "--out", str(out)]) == USAGE_ERROR
    line = one_error_line(capsys)
    assert f"{weights} is not a readable safetensors file" in line and "copy or download the adapter again" in line
    assert not out.exists() and not shipped.exists()


def test_an_adapter_for_another_task_is_refused_before_scoring(tmp_path, monkeypatch, shipped, capsys):
    """Before: the json adapter went straight to ~8 minutes of scoring (evaluate --adapter refuses it)."""
    monkeypatch.setattr("lessons_lib.tools.adapter.ship_tool_adapter", never)
    folder = copy_of("json", tmp_path / "json")
    out = tmp_path / "out"
    assert main(["build-adapter", "--ship", str(folder), "--out", str(out)]) == USAGE_ERROR
    line = one_error_line(capsys)
    assert f"the adapter in {folder} was trained for the 'json' task" in line and "not for tool use" in line
    assert not out.exists()


def test_ship_without_out_does_not_replace_the_shipped_adapter(tmp_path, monkeypatch, shipped, capsys):
    """Before: `--ship FOLDER` without --out scored FOLDER and replaced the shipped adapter with it."""
    monkeypatch.setattr("lessons_lib.tools.adapter.ship_tool_adapter", never)
    before = copy_of("tools", shipped)
    folder = copy_of("tools", tmp_path / "trained")
    assert main(["build-adapter", "--ship", str(folder)]) == USAGE_ERROR
    line = one_error_line(capsys)
    assert f"--ship {folder} without --out would replace the shipped tool adapter in {shipped}" in line
    assert f"--out build/tools-shipped, or --out {shipped} to replace it on purpose" in line
    assert sorted(p.name for p in before.iterdir()) == sorted(p.name for p in (TINY_ADAPTERS_DIR / "tools").iterdir())


@pytest.mark.parametrize("to_shipped", [False, True], ids=["in-place", "out-shipped"])
def test_the_shipped_adapter_is_replaced_when_asked_to(tmp_path, shipped, ship_calls, to_shipped):
    """`--ship` of the shipped folder itself (re-scored in place), or `--out` naming it: on purpose, so allowed."""
    copy_of("tools", shipped)
    folder = copy_of("tools", tmp_path / "trained") if to_shipped else shipped
    argv = ["build-adapter", "--ship", str(folder)] + (["--out", str(shipped)] if to_shipped else [])
    assert main(argv) == 0
    assert [(call["folder"], call["out_dir"]) for call in ship_calls] == [(folder, shipped)]


def test_help_says_when_ship_needs_out(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "into --out (needed unless FOLDER is the shipped adapter, then re-scored in place)" in text
