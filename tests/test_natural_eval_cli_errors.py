"""Bad input to `python -m lessons_lib.natural_eval`: one `error:` line saying what to do, exit code 2, before any
model loads, and nothing written or lost; manifests are rewritten so that a kill mid-write cannot truncate them.

The evaluation and the model loading are replaced by a function that fails the test if it is ever called, so every
test here runs in well under a second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from lessons_lib import natural_eval
from lessons_lib.manifest import MANIFEST_FILE
from lessons_lib.paths import TINY_ADAPTERS_DIR

CYRILLIC = re.compile("[а-яё]{4,}", re.IGNORECASE)


def never(*args, **kwargs):
    """Stands in for the evaluation and model loading: reaching it means the bad input was not caught first."""
    raise AssertionError("the evaluation started although the input was bad")


@pytest.fixture(autouse=True)
def no_long_work(monkeypatch):
    """Every test here must stop before the base model loads."""
    monkeypatch.setattr(natural_eval, "evaluate", never)
    monkeypatch.setattr(natural_eval, "load_models", never)


def one_error_line(err: str) -> str:
    """The single `error:` line of the CLI's stderr (no traceback); `ошибка:` under LESSONS_LANG=ru."""
    prefix = "ошибка: " if os.environ.get("LESSONS_LANG") == "ru" else "error: "
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), err
    return lines[0]


def truncated_copy(tmp_path: Path, name: str = "json") -> Path:
    """A copy of a shipped adapter whose weights file was cut off halfway, as an interrupted copy leaves it."""
    folder = shutil.copytree(TINY_ADAPTERS_DIR / name, tmp_path / name)
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return folder


def test_an_out_that_cannot_be_written_is_refused_before_evaluating(tmp_path, capsys):
    """Before: the whole evaluation ran, then a FileExistsError / PermissionError traceback and exit 1."""
    blocker = tmp_path / "a-file"
    blocker.write_text("kept")
    out = blocker / "rows.json"  # its folder is a file: fails the same way for root, unlike chmod 555
    assert natural_eval.main(["--adapters", "--sets", "json", "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"Cannot write the results to {out} ({blocker} is a file, not a folder)" in line
    assert "Nothing was evaluated: pass --out a file in a writable folder" in line
    assert blocker.read_text() == "kept"


def test_an_out_that_is_a_folder_is_refused_before_evaluating(tmp_path, capsys):
    assert natural_eval.main(["--adapters", "--sets", "json", "--out", str(tmp_path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    said = f"--out {tmp_path} is a folder; give a file to write the rows to, e.g. --out {tmp_path / 'natural.json'}"
    assert said in line
    assert list(tmp_path.iterdir()) == []


def test_an_out_in_a_read_only_folder_is_refused_before_evaluating(tmp_path, capsys, monkeypatch):
    """A folder the user may not write to (the write test is refused as chmod 555 refuses it for a non-root user)."""
    locked = tmp_path / "locked"
    locked.mkdir()

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(locked / ".rows.json.write-test"))

    monkeypatch.setattr(natural_eval.tempfile, "NamedTemporaryFile", refused)
    assert natural_eval.main(["--adapters", "--sets", "json", "--out", str(locked / "rows.json")]) == 2
    assert "(Permission denied). Nothing was evaluated" in one_error_line(capsys.readouterr().err)
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("option", ["--adapters", "--update-manifests"])
def test_a_truncated_adapter_is_one_error_line_naming_it(tmp_path, capsys, option):
    """Before: a SafetensorError traceback from PEFT (after the base had loaded) and exit 1."""
    folder = truncated_copy(tmp_path)
    manifest = (folder / MANIFEST_FILE).read_bytes()
    assert natural_eval.main([option, str(folder)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{folder / 'adapter_model.safetensors'} is not a readable safetensors file" in line
    assert "copy or download the adapter again, or re-save it with save_pretrained()" in line
    assert (folder / MANIFEST_FILE).read_bytes() == manifest, "the manifest was not touched"


def test_every_adapter_is_checked_before_the_first_is_measured(tmp_path, capsys):
    """A damaged second folder stops --update-manifests before the first one is measured and rewritten."""
    good = shutil.copytree(TINY_ADAPTERS_DIR / "support", tmp_path / "support")
    before = (good / MANIFEST_FILE).read_bytes()
    bad = truncated_copy(tmp_path)
    assert natural_eval.main(["--update-manifests", str(good), str(bad)]) == 2
    assert str(bad / "adapter_model.safetensors") in one_error_line(capsys.readouterr().err)
    assert (good / MANIFEST_FILE).read_bytes() == before


def test_a_base_that_is_no_model_is_one_error_line(tmp_path, capsys):
    """Before: `OSError: Repo id must use alphanumeric chars ...` from transformers, as a traceback."""
    missing = tmp_path / "nonexistent"
    assert natural_eval.main(["--base", str(missing), "--adapters"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"--base {missing}: no saved model there (a folder with config.json and the weights)" in line
    assert "Leave --base out for the course's tiny model" in line and "Repo id" not in line


def test_the_errors_are_russian(tmp_path, capsys, ru):
    assert natural_eval.main(["--base", str(tmp_path / "nonexistent"), "--adapters"]) == 2
    assert CYRILLIC.search(one_error_line(capsys.readouterr().err))
    assert natural_eval.main(["--adapters", "--sets", "json", "--out", str(tmp_path)]) == 2
    assert CYRILLIC.search(one_error_line(capsys.readouterr().err))


def test_the_rows_are_still_written_to_a_new_folder(tmp_path, monkeypatch, capsys):
    """The checks refuse only bad input: --out in a folder that does not exist yet gets the rows."""
    row = {"model": "base", "set": "json", "n": 1, "valid": 1.0, "copy": 1.0, "task": 1.0}
    monkeypatch.setattr(natural_eval, "evaluate", lambda *args, **kwargs: [row])
    out = tmp_path / "new" / "rows.json"
    assert natural_eval.main(["--adapters", "--sets", "json", "--out", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["rows"] == [row]
    assert [p.name for p in out.parent.iterdir()] == ["rows.json"], "no write probe or temporary file is left"


def test_a_kill_while_a_manifest_is_rewritten_leaves_the_old_one_whole(tmp_path, monkeypatch):
    """Before: `write_text` truncated manifest.json first, so a kill mid-write left it cut off (here: no error)."""
    folder = shutil.copytree(TINY_ADAPTERS_DIR / "support", tmp_path / "support")
    before = (folder / MANIFEST_FILE).read_bytes()

    def killed(fd):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        natural_eval.add_manifest_metrics(folder, {"natural_task": 0.5})
    assert (folder / MANIFEST_FILE).read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (TINY_ADAPTERS_DIR / "support").iterdir())
