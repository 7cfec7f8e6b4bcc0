"""argparse's own words in the course CLIs: Russian under LESSONS_LANG=ru, argparse's exact output under English.

Each CLI runs in-process. Its English output is compared with a twin run in which the module's CourseArgumentParser
is replaced by plain argparse.ArgumentParser, so "byte-identical to argparse" is checked, not assumed.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
from pathlib import Path

import pytest

from lessons_lib.cli import CourseArgumentParser, whole_number
from lessons_lib.paths import REPO_DIR

ROUTER = "lessons_lib.router.__main__"
SERVE = "lessons_lib.serve.__main__"
QUIZ = "lessons_lib.quiz.__main__"
ENGLISH_WORDS = ("usage:", "error:", "options:", "positional arguments", "show this help", "argument ", "invalid")

# (CLI module, argv that argparse refuses with exit code 2, what the Russian error holds)
RUSSIAN_CASES = [
    (ROUTER, ["evaluate"], "python -m lessons_lib.router evaluate: ошибка: обязательны аргументы: --data\n"),
    (ROUTER, ["evaluate", "--data", "x.jsonl", "--bogus", "1"], ": ошибка: неизвестные аргументы: --bogus 1\n"),
    (ROUTER, ["evaluate", "--router", "nope", "--data", "x.jsonl"], "аргумент --router: недопустимый вариант: 'nope'"),
    (ROUTER, ["nope"], "ошибка: аргумент command: недопустимый вариант: 'nope' (выберите из "),
    (ROUTER, ["train", "--seed", "x"], "ошибка: аргумент --seed: недопустимое значение типа int: 'x'\n"),
    (ROUTER, ["train", "--steps", "0"], "аргумент --steps: число шагов обучения: нужно целое число не меньше 1"),
    (SERVE, ["--port", "x"], "аргумент --port: номер TCP-порта: нужно целое число от 1 до 65535, а получено 'x'\n"),
    (SERVE, ["--profile", "nope"], "ошибка: аргумент --profile: недопустимый вариант: 'nope' (выберите из "),
    (SERVE, ["--bogus"], "python -m lessons_lib.serve: ошибка: неизвестные аргументы: --bogus\n"),
    (SERVE, ["ask"], "python -m lessons_lib.serve ask: ошибка: обязательны аргументы: prompt\n"),
    (SERVE, ["ask", "hi", "--max-tokens"], "ошибка: аргумент --max-tokens: нужно одно значение\n"),
    (QUIZ, [], "python -m lessons_lib.quiz: ошибка: обязательны аргументы: command\n"),
    (QUIZ, ["show"], "python -m lessons_lib.quiz show: ошибка: обязательны аргументы: notebook\n"),
    (QUIZ, ["show", "01", "--answers", "maybe"], "аргумент --answers: недопустимый вариант: 'maybe'"),
    (QUIZ, ["teacher-kit", "--only"], "ошибка: аргумент --only: нужно хотя бы одно значение\n"),
]
HELP_CASES = [(ROUTER, ["--help"]), (ROUTER, ["train", "--help"]), (SERVE, ["--help"]), (QUIZ, ["show", "--help"])]


@pytest.fixture(autouse=True)
def fixed_width(monkeypatch):
    """The same help layout on every terminal."""
    monkeypatch.setenv("COLUMNS", "80")


@pytest.fixture
def ru(monkeypatch):
    monkeypatch.setenv("LESSONS_LANG", "ru")


@pytest.fixture
def en(monkeypatch):
    monkeypatch.delenv("LESSONS_LANG", raising=False)


def captured(call) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `call()` run in-process; argparse's exits are caught."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = call()
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def run_cli(main, argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a CLI run in-process."""
    return captured(lambda: main(argv))


def run_module(module: str, argv: list[str]) -> tuple[int, str, str]:
    """Run the `main` of a course CLI module."""
    return run_cli(importlib.import_module(module).main, argv)


def run_with_plain_argparse(monkeypatch, module: str, argv: list[str]) -> tuple[int, str, str]:
    """The same CLI run with plain argparse.ArgumentParser in place of CourseArgumentParser."""
    with monkeypatch.context() as patch:
        patch.setattr(f"{module}.CourseArgumentParser", argparse.ArgumentParser)
        return run_module(module, argv)


# ---------------------------------------------------------------- English: exactly argparse
@pytest.mark.parametrize("module, argv", [*HELP_CASES, *((module, argv) for module, argv, _ in RUSSIAN_CASES)], ids=str)
def test_english_output_is_plain_argparse_output(en, monkeypatch, module, argv):
    course = run_module(module, argv)
    assert course == run_with_plain_argparse(monkeypatch, module, argv)
    assert course[0] == (0 if "--help" in argv else 2)


def test_english_words_are_argparse_words(en):
    code, out, _ = run_module(ROUTER, ["--help"])
    assert code == 0 and out.startswith("usage: python -m lessons_lib.router [-h]")
    assert "\npositional arguments:\n" in out and "\noptions:\n" in out and "show this help message and exit" in out
    code, _, err = run_module(ROUTER, ["evaluate"])
    assert code == 2 and err.startswith("usage: python -m lessons_lib.router evaluate")
    assert err.endswith("python -m lessons_lib.router evaluate: error: the following arguments are required: --data\n")


# ---------------------------------------------------------------- Russian
@pytest.mark.parametrize("module, argv, said", RUSSIAN_CASES, ids=str)
def test_russian_errors(ru, module, argv, said):
    code, out, err = run_module(module, argv)
    assert code == 2 and not out
    assert err.startswith("использование: python -m lessons_lib.") and said in err, err
    assert not any(word in err for word in ENGLISH_WORDS), err


@pytest.mark.parametrize("module, argv", HELP_CASES, ids=str)
def test_russian_help(ru, module, argv):
    code, out, err = run_module(module, argv)
    assert code == 0 and not err
    assert out.startswith("использование: python -m lessons_lib.")
    assert "\nпараметры:\n" in out and "  -h, --help" in out and "показать эту справку и выйти" in out
    assert not any(word in out for word in ("usage:", "\noptions:", "positional arguments", "show this help")), out


def test_russian_help_names_the_positional_arguments(ru):
    code, out, _ = run_module(QUIZ, ["show", "--help"])
    assert code == 0 and "\nпозиционные аргументы:\n  notebook" in out
    code, out, _ = run_module(ROUTER, ["--help"])
    assert code == 0 and "\nпозиционные аргументы:\n  {evaluate,train,train-ngram}" in out


def test_russian_usage_wraps_under_the_russian_prefix(ru):
    """Continuation lines of a long usage line up after "использование: PROG ", as argparse lines them up."""
    _, out, _ = run_module(SERVE, ["--help"])
    lines = out.splitlines()
    first = "использование: python -m lessons_lib.serve "
    assert lines[0].startswith(first) and lines[0][len(first)] == "["
    assert lines[1].startswith(" " * len(first)) and lines[1][len(first)] == "["


# ---------------------------------------------------------------- the parser itself
def odd_type(text: str) -> str:
    """A type whose message argparse never wrote."""
    raise argparse.ArgumentTypeError(f"a message argparse never wrote: {text}")


def demo_parser() -> CourseArgumentParser:
    parser = CourseArgumentParser(prog="demo")
    parser.add_argument("--x", type=odd_type)
    return parser


def test_an_unknown_message_stays_english_in_a_russian_line(ru):
    code, _, err = run_cli(demo_parser().parse_args, ["--x", "1"])
    said = "demo: ошибка: аргумент --x: a message argparse never wrote: 1\n"
    assert code == 2 and err == f"использование: demo [-h] [--x X]\n{said}"
    code, _, err = captured(lambda: demo_parser().error("something the course wrote: 'x' (y)"))
    assert code == 2 and err.endswith("\ndemo: ошибка: something the course wrote: 'x' (y)\n")


def test_the_language_is_read_when_the_error_is_shown(monkeypatch):
    monkeypatch.delenv("LESSONS_LANG", raising=False)
    parser = demo_parser()
    monkeypatch.setenv("LESSONS_LANG", "ru")
    _, _, err = run_cli(parser.parse_args, ["--y"])
    assert err == "использование: demo [-h] [--x X]\ndemo: ошибка: неизвестные аргументы: --y\n"
    monkeypatch.setenv("LESSONS_LANG", "en")
    _, out, _ = run_cli(parser.parse_args, ["-h"])
    plain = argparse.ArgumentParser(prog="demo")
    plain.add_argument("--x", type=odd_type)
    assert out == plain.format_help()


def test_argparse_itself_stays_english(ru):
    """Other code in the same kernel (a Jupyter notebook) keeps argparse's English."""
    run_cli(demo_parser().parse_args, ["--y"])
    code, _, err = run_cli(argparse.ArgumentParser(prog="other").parse_args, ["--y"])
    assert code == 2 and err == "usage: other [-h]\nother: error: unrecognized arguments: --y\n"


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_whole_number(monkeypatch, lang):
    monkeypatch.setenv("LESSONS_LANG", lang)
    assert whole_number("5", 1, None, "steps") == whole_number("5", 1, 5, "steps") == 5
    for text, high in [("0", None), ("x", None), ("6", 5), ("2.5", 5)]:
        with pytest.raises(argparse.ArgumentTypeError) as caught:
            whole_number(text, 1, high, "steps")
        bound = ("at least 1", "не меньше 1") if high is None else ("from 1 to 5", "от 1 до 5")
        said = str(caught.value)
        assert repr(text) in said and bound[lang == "ru"] in said and ("целое" in said) == (lang == "ru"), said


def test_no_course_cli_builds_a_plain_argparse_parser():
    """A new CLI cannot forget the Russian edition: every parser under lessons_lib/ is a CourseArgumentParser."""
    plain = []
    for path in sorted((REPO_DIR / "lessons_lib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and "ArgumentParser" in (
                getattr(node.func, "id", None),
                getattr(node.func, "attr", None),
            ):
                plain.append(f"{Path(path).relative_to(REPO_DIR)}:{node.lineno}")
    assert not plain, f"use lessons_lib.cli.CourseArgumentParser instead of argparse.ArgumentParser at {plain}"
