"""Bad input to the router, tools, quiz and course CLIs: one `error:` line and exit code 2, checked before any
training, and nothing silently ignored (an outside probe's items 2, 3, 7, 8, 9, 17, 19, 20).

Training is replaced by a function that fails the test if it is ever called, so every test here runs in seconds.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from lessons_lib import course
from lessons_lib.quiz.__main__ import main as quiz_cli
from lessons_lib.router.__main__ import main as router_cli
from lessons_lib.tools.__main__ import main as tools_cli

CYRILLIC = re.compile("[а-яё]{4,}", re.IGNORECASE)


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder that cannot be created: its parent is a file (fails the same way for root)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return blocker / "out"


def never(*args, **kwargs):
    """Stands in for training: reaching it means the bad input was not caught first."""
    raise AssertionError("training started although the input was bad")


def one_error_line(err: str) -> str:
    """The single `error:` line of a CLI's stderr (no traceback); `ошибка:` under LESSONS_LANG=ru."""
    prefix = "ошибка: " if os.environ.get("LESSONS_LANG") == "ru" else "error: "
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), err
    return lines[0]


def argparse_exit(main, argv: list[str], capsys) -> str:
    """Run a CLI whose argparse refuses `argv`: exit code 2; returns stderr."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- router CLI
def test_router_train_checks_an_unwritable_out_before_training(monkeypatch, unwritable, capsys):
    """Before: about a minute of training, then a peft traceback and exit 1."""
    monkeypatch.setattr("lessons_lib.router.learned.train_and_save", never)
    assert router_cli(["train", "--steps", "1", "--out", str(unwritable)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"Cannot write the router to {unwritable}" in line and "Nothing was trained" in line


def test_router_train_ngram_checks_an_unwritable_out_before_training(monkeypatch, unwritable, capsys):
    """Before: 9 s of tuning, then a NotADirectoryError traceback and exit 1."""
    monkeypatch.setattr("lessons_lib.router.ngram.tune", never)
    assert router_cli(["train-ngram", "--out", str(unwritable)]) == 2
    assert f"Cannot write the router to {unwritable}" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "option, value, said",
    [
        ("--steps", "-5", "expected a number of training steps: a whole number of at least 1, got '-5'"),
        ("--steps", "0", "expected a number of training steps: a whole number of at least 1, got '0'"),
        ("--steps", "x", "expected a number of training steps: a whole number of at least 1, got 'x'"),
        ("--lr", "nan", "must be a finite number above 0"),
        ("--lr", "0", "must be a finite number above 0"),
        ("--lr", "-1e-3", "must be a finite number above 0"),
    ],
)
def test_router_train_refuses_non_positive_numbers(monkeypatch, tmp_path, capsys, option, value, said):
    """Before: `--steps -5` trained nothing (loss nan) and saved the untrained router, exit 0."""
    monkeypatch.setattr("lessons_lib.router.learned.train_and_save", never)
    err = argparse_exit(router_cli, ["train", f"{option}={value}", "--out", str(tmp_path / "r")], capsys)
    assert f"argument {option}: {said}" in err


@pytest.mark.parametrize(
    "argv, shipped_name",
    [
        (["train", "--steps", "200"], "adapter"),
        (["train", "--lr", "0.01"], "adapter"),
        (["train-ngram", "--seed", "3"], "ngram"),
    ],
)
def test_a_changed_recipe_without_out_does_not_replace_the_shipped_router(
    monkeypatch, tmp_path, capsys, argv, shipped_name
):
    """Before: `train --steps 200` (no --out) overwrote assets/router/adapter, the router the notebooks load."""
    monkeypatch.setattr("lessons_lib.router.shipped_router_dir", lambda: tmp_path / "adapter")
    monkeypatch.setattr("lessons_lib.router.ngram.shipped_ngram_dir", lambda: tmp_path / "ngram")
    monkeypatch.setattr("lessons_lib.router.learned.train_and_save", never)
    monkeypatch.setattr("lessons_lib.router.ngram.tune", never)
    assert router_cli(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{argv[1]} {argv[2]} changes the course recipe" in line
    assert f"replace the shipped router in {tmp_path / shipped_name}" in line and "--out" in line
    assert not (tmp_path / shipped_name).exists()


def test_the_default_recipe_rebuilds_the_shipped_router_and_says_so(monkeypatch, tmp_path, capsys):
    """`make tiny-model` runs `router train` without --out: still allowed, and the output says what it replaces."""
    from lessons_lib.router.learned import ROUTER_FILE

    calls = []

    def fake_train(profile, folder, steps, seed, learning_rate=None, heldout=None):
        calls.append((Path(folder), steps, seed, learning_rate))
        (Path(folder) / ROUTER_FILE).write_text(json.dumps({"heldout_accuracy": 0.9, "threshold": 0.5}))
        return Path(folder)

    monkeypatch.setattr("lessons_lib.router.shipped_router_dir", lambda: tmp_path / "adapter")
    monkeypatch.setattr("lessons_lib.router.learned.train_and_save", fake_train)
    assert router_cli(["train"]) == 0
    out = capsys.readouterr().out
    assert f"no --out: rebuilding the shipped router in {tmp_path / 'adapter'}" in out
    assert calls == [(tmp_path / "adapter", 100, 0, None)]
    from lessons_lib.profiles import PROFILES
    from lessons_lib.router.learned import router_learning_rate

    course_rate = router_learning_rate(PROFILES["tiny"])  # given explicitly, it is still the course's recipe
    assert router_cli(["train", "--lr", repr(course_rate)]) == 0
    assert calls[-1] == (tmp_path / "adapter", 100, 0, None)


def test_router_data_row_with_empty_text_names_the_line(tmp_path, capsys, monkeypatch):
    """Before: `error: Empty prompt: ...` from the router, without the file and line (and English under ru)."""
    data = tmp_path / "rows.jsonl"
    data.write_text('{"text": "give me json", "label": "json"}\n{"text": "  ", "label": "json"}\n')
    assert router_cli(["evaluate", "--router", "keyword", "--data", str(data)]) == 2
    assert f'{data}:2 has an empty "text"' in one_error_line(capsys.readouterr().err)
    monkeypatch.setenv("LESSONS_LANG", "ru")
    assert router_cli(["evaluate", "--router", "keyword", "--data", str(data)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f'{data}:2: поле "text" пустое' in line


def test_router_errors_are_russian(ru):
    from lessons_lib.router import KeywordRouter, load_router

    with pytest.raises(ValueError, match="Пустой промпт"):
        KeywordRouter().route("   ")
    with pytest.raises(ValueError, match="Неизвестный вид маршрутизатора 'foo'"):
        load_router("foo")


def test_router_help_describes_every_train_option(capsys):
    """Before: --profile, --steps and --seed of `train` and --seed of `train-ngram` had no help."""
    for command in ("train", "train-ngram"):
        with pytest.raises(SystemExit):
            router_cli([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--seed SEED seed of" in text and "--out OUT folder to save into" in text
    with pytest.raises(SystemExit):
        router_cli(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--profile PROFILE tiny (default)" in text and "--steps STEPS training steps, at least 1" in text


# -------------------------------------------------------------------------------------------------- tools CLI
def test_tools_build_adapter_checks_an_unwritable_out_before_training(monkeypatch, unwritable, capsys):
    """Before: a traceback ending in check_writable's OSError and exit 1 (the docstring promised exit 2)."""
    monkeypatch.setattr("lessons_lib.tools.adapter.build_tool_adapter", never)
    assert tools_cli(["build-adapter", "--steps", "1", "--out", str(unwritable)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"Cannot write the tool adapter to {unwritable}" in line


def test_tools_ship_checks_an_unwritable_out_before_scoring(monkeypatch, unwritable, capsys):
    from lessons_lib.paths import TINY_ADAPTERS_DIR

    monkeypatch.setattr("lessons_lib.tools.adapter.ship_tool_adapter", never)
    assert tools_cli(["build-adapter", "--ship", str(TINY_ADAPTERS_DIR / "tools"), "--out", str(unwritable)]) == 2
    assert "Cannot write the tool adapter" in one_error_line(capsys.readouterr().err)


def test_tools_other_steps_without_out_do_not_replace_the_shipped_adapter(monkeypatch, capsys):
    monkeypatch.setattr("lessons_lib.tools.adapter.build_tool_adapter", never)
    assert tools_cli(["build-adapter", "--steps", "5"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--steps 5 changes the course recipe" in line and "--out build/tools-5" in line


def test_tools_unknown_data_name_lists_the_named_sets(capsys, ru):
    """Before: `No data file at heldot.` with no word of heldout, dev, handwritten ... (and English)."""
    assert tools_cli(["evaluate", "--data", "heldot"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "heldot" in line and "heldout, dev, handwritten, dev-handwritten, dev2-handwritten" in line
    assert CYRILLIC.search(line)


def test_tools_usage_errors_are_russian(capsys, ru):
    err = argparse_exit(tools_cli, ["evaluate", "--steps", "5"], capsys)
    assert "--steps не относится к evaluate" in err


# --------------------------------------------------------------------------------------------------- quiz CLI
def test_quiz_t4_summary_that_is_missing_is_an_error(tmp_path, capsys):
    """Before: exit 0, the T4 column silently kept the estimates."""
    missing = tmp_path / "absent.json"
    code = quiz_cli(["teacher-kit", "--out", str(tmp_path / "kit"), "--only", "01", "--t4-summary", str(missing)])
    assert code == 2 and f"--t4-summary {missing}: no such file" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "kit").exists()


@pytest.mark.parametrize(
    "content, said",
    [
        ("{bad", "Expecting property name"),
        ('["a list"]', 'a "notebooks" list'),
        ('{"notebooks": [{"notebook": "01_x.ipynb"}]}', 'row 1 of "notebooks" needs'),
    ],
)
@pytest.mark.parametrize("option", ["--summary", "--t4-summary"])
def test_quiz_summary_that_is_not_a_course_summary_is_an_error(tmp_path, capsys, content, said, option):
    """Before: `--summary` with bad JSON was reported as 'not found', `--t4-summary` silently ignored."""
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert quiz_cli(["teacher-kit", "--out", str(tmp_path / "kit"), "--only", "01", option, str(bad)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{bad} is not a course summary" in line and said in line and "not found" not in line
    assert not (tmp_path / "kit").exists()


def test_quiz_t4_summary_that_is_valid_replaces_the_estimates(tmp_path):
    t4 = tmp_path / "t4.json"
    t4.write_text(json.dumps({"notebooks": [{"notebook": "01_fine_tune.ipynb", "seconds": 300.0, "status": "ok"}]}))
    assert quiz_cli(["teacher-kit", "--out", str(tmp_path / "kit"), "--only", "01", "--t4-summary", str(t4)]) == 0
    assert "| 5.0 min | measured on a T4 |" in (tmp_path / "kit" / "run-times.md").read_text()


def test_quiz_show_lang_errors_name_the_option(capsys):
    """Before: Python advice (os.environ[...]) for `--lang de`, and `--lang ""` silently meant English."""
    for value in ("de", ""):
        assert quiz_cli(["show", "02", "--lang", value]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert f"Unknown language {value!r} in --lang; use --lang en or --lang ru" in line and "os.environ" not in line


def test_quiz_show_bad_notebook_gives_cli_advice(capsys, ru):
    """Before: `use e.g. show_quiz("01")`, a Python call, in a command-line error."""
    assert quiz_cli(["show", "../../etc/passwd"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "python -m lessons_lib.quiz show 01" in line and "show_quiz(" not in line and CYRILLIC.search(line)


def test_quiz_teacher_kit_only_needs_a_number(capsys, tmp_path):
    """Before: `--only` with no number silently meant every notebook."""
    err = argparse_exit(quiz_cli, ["teacher-kit", "--out", str(tmp_path / "kit"), "--only"], capsys)
    assert "argument --only: expected at least one argument" in err


def test_quiz_teacher_kit_with_an_unknown_notebook_writes_no_folder(capsys, tmp_path):
    """Before: `--only 99` was refused after creating the (empty) --out folder."""
    assert quiz_cli(["teacher-kit", "--out", str(tmp_path / "kit"), "--only", "99"]) == 2
    assert "99" in one_error_line(capsys.readouterr().err) and not (tmp_path / "kit").exists()


# ------------------------------------------------------------------------------------------------- course CLI
@pytest.fixture
def fake_run(monkeypatch) -> list[list[str]]:
    """Replace the notebook runs: returns the list of notebook names each run would execute."""
    ran: list[list[str]] = []
    monkeypatch.setattr(
        course, "run_all", lambda notebooks, out_dir, jobs: ran.append([p.name[:2] for p in notebooks]) or []
    )
    monkeypatch.setattr(course, "write_summary", lambda *a: {})
    return ran


def test_course_only_reads_single_digits_as_lesson_numbers(fake_run):
    """Before: `--only 1 03` ran only 03 and `--only 2` said 'No notebooks found in notebooks/.'"""
    assert course.main(["run", "--keep-work", "--only", "1", "03"]) == 0
    assert course.main(["run", "--keep-work", "--only", "2"]) == 0
    assert fake_run == [["01", "03"], ["02"]]


def test_course_only_names_the_selectors_that_match_nothing(fake_run, capsys):
    assert course.main(["run", "--keep-work", "--only", "09", "02", "x"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--only 09, x: no such lesson" in line and "the lessons are 01, 02, 03, 04, 05, 06" in line
    assert fake_run == []


@pytest.mark.parametrize("jobs", ["0", "-5"])
def test_course_jobs_below_one_is_a_usage_error(fake_run, capsys, jobs):
    """Before: quietly treated as 1."""
    assert course.main(["run", "--keep-work", "--jobs", jobs]) == 2
    assert f"--jobs must be at least 1, not {jobs}" in one_error_line(capsys.readouterr().err)
    assert fake_run == []


def test_course_errors_are_russian(fake_run, capsys, ru):
    assert course.main(["run", "--keep-work", "--only", "09"]) == 2
    assert CYRILLIC.search(one_error_line(capsys.readouterr().err))


def test_router_evaluate_refuses_a_profile_its_router_would_not_use(capsys):
    """Before: `--router ngram --profile 7b` ran on and printed the n-gram router's table as if for 7b."""
    for kind in ("ngram", "keyword"):
        assert (
            router_cli(["evaluate", "--router", kind, "--data", "assets/router/heldout.jsonl", "--profile", "7b"]) == 2
        )
        said = one_error_line(capsys.readouterr().err)
        assert f"the {kind} router uses none" in said and "leave --profile out" in said


def test_ctrl_c_ends_a_cli_with_one_line_and_exit_code_130(capsys):
    """Before: tools, router, natural_eval, quiz and course printed a KeyboardInterrupt traceback (exit code -2)."""
    from lessons_lib.cli import until_interrupted

    def interrupted() -> int:
        raise KeyboardInterrupt

    assert until_interrupted(interrupted) == 130
    assert one_error_line(capsys.readouterr().err) == "error: interrupted (Ctrl-C)."
    assert until_interrupted(lambda: 0) == 0
