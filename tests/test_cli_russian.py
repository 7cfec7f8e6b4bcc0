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
import re
from pathlib import Path

import pytest

from lessons_lib.cli import CourseArgumentParser, whole_number
from lessons_lib.paths import REPO_DIR

ROUTER = "lessons_lib.router.__main__"
SERVE = "lessons_lib.serve.__main__"
QUIZ = "lessons_lib.quiz.__main__"
TOOLS = "lessons_lib.tools.__main__"
COURSE = "lessons_lib.course"
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
# Every help page a learner can ask for: each CLI and each of its sub-commands.
HELP_PAGES = [
    (ROUTER, []),
    (ROUTER, ["evaluate"]),
    (ROUTER, ["train"]),
    (ROUTER, ["train-ngram"]),
    (TOOLS, []),
    (QUIZ, []),
    (QUIZ, ["teacher-kit"]),
    (QUIZ, ["show"]),
    (SERVE, []),
    (SERVE, ["ask"]),
    (SERVE, ["vllm"]),
    (COURSE, []),
]
# (CLI module, sub-command, sentences of its English help, whitespace aside)
ENGLISH_HELP = [
    (ROUTER, [], ["The --out folder is checked before any training starts."]),
    (ROUTER, ["evaluate"], ["which router to score (default: learned)", "tiny | t4 | 7b (default: $LESSONS_PROFILE"]),
    (ROUTER, ["train"], ["a changed recipe needs --out.", "seed of the data split and the training (default 0)"]),
    (ROUTER, ["train-ngram"], ["It needs no base model, so it has no --profile.", "seed of the train/dev split"]),
    (TOOLS, [], ["Tool-use adapter commands.", "score an already trained adapter folder and ship it with a manifest"]),
    (QUIZ, [], ["write printable quizzes, answer keys and a run-time table", "print one notebook's quiz as Markdown"]),
    (QUIZ, ["teacher-kit"], ["folder to write the kit into", "repeatable; default: both"]),
    (QUIZ, ["show"], ["notebook number, e.g. 01", "en | ru (default: $LESSONS_LANG, else English)"]),
    (SERVE, [], ["Serve the base model and its LoRA adapters over HTTP", "ask a running server (see `ask --help`)"]),
    (SERVE, ["ask"], ["Send one prompt to a running server", "print the answer as it is generated (SSE)"]),
    (SERVE, ["vllm"], ["the adapters of a composition file", "where notebook 01 saved the adapters (GPU profiles)"]),
    (COURSE, [], ["lesson numbers to run, e.g. 01 03 (default: every lesson)"]),
]


@pytest.fixture(autouse=True)
def fixed_width(monkeypatch):
    """The same help layout on every terminal."""
    monkeypatch.setenv("COLUMNS", "80")


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


# ---------------------------------------------------------------- the CLIs' own words: helps, descriptions, errors
# Not prose: `code`, {JSON} and {choices}, quoted values, $VARIABLES, --options, paths, file and dotted names,
# identifiers (base_url, NAME=PATH, tiny|t4|7b), and upper-case metavars and acronyms (DIR, JSONL, PEFT).
CODE = re.compile(
    r"`[^`]*`|\{[^}]*\}|'[^']*'|\"[^\"]*\"|\$\w+|(?<!\w)--?\w[\w-]*|\S*(?:[/_=|<]|\w\.\w)\S*|\b[A-Z][A-Z0-9]+\b"
)
WORD = r"(?<![\w'-])[A-Za-z]+(?:['-][A-Za-z]+)*(?![\w'-])"
ENGLISH_PROSE = re.compile(rf"{WORD}(?:[ \t]+{WORD}){{2,}}")  # three English words in a row
CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)
ARGPARSE_WORDS = {"positional arguments:", "options:", "show this help message and exit"}
ARGUMENT_LINE = re.compile(r" {1,4}\S.*?(?: {2,}(?P<help>\S.*))?")  # "  --out OUT    help", help maybe on the next line


def help_entries(page: str) -> list[str]:
    """A help page's texts but its usage: paragraphs, section titles and each argument's help, wrapped lines joined."""
    entries: list[str] = []
    fresh = True  # the next line starts an entry
    for line in page.split("\n\n", 1)[1].splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if not line.strip():
            fresh = True
        elif 1 <= indent <= 4:  # an argument (or a sub-command) with the start of its help
            entries.append(ARGUMENT_LINE.fullmatch(line)["help"] or "")
            fresh = False
        elif fresh:
            entries.append(line.strip())
            fresh = False
        else:  # a wrapped line; argparse may have broken a hyphenated word after its hyphen
            joint = "" if entries[-1].endswith("-") else " "
            entries[-1] = f"{entries[-1]}{joint}{line.strip()}".strip()
    return [entry for entry in entries if entry]


def english_prose(text: str) -> list[str]:
    """The runs of three or more English words in `text`, code-like tokens left out."""
    return ENGLISH_PROSE.findall(CODE.sub(" ¦ ", text))


def untranslated(text: str) -> bool:
    """Whether `text` is not Russian: no Russian word, or English prose left in it."""
    return not CYRILLIC.search(text) or bool(english_prose(text))


def help_page(module: str, sub_command: list[str]) -> str:
    """What `--help` prints for `module` (and its sub-command)."""
    code, out, err = run_module(module, [*sub_command, "--help"])
    assert code == 0 and not err, err
    return out


def test_help_entries_are_what_the_page_explains():
    page = """usage: demo [-h] [--out OUT]

A description that argparse
wraps.

options:
  -h, --help  show this help
  --only ONLY [ONLY ...]
              lesson numbers to run, e.g. 01 03 (the first
              line-
              break)
    show      print one quiz
"""
    assert help_entries(page) == [
        "A description that argparse wraps.",
        "options:",
        "show this help",
        "lesson numbers to run, e.g. 01 03 (the first line-break)",
        "print one quiz",
    ]


@pytest.mark.parametrize(
    "text, prose",
    [
        ("which router to score (default: learned)", ["which router to score"]),
        ("folder to save into (default: assets/router/ngram)", ["folder to save into"]),
        ("какой маршрутизатор оценить (по умолчанию: learned)", []),
        ('файл JSONL, строки вида {"text": ..., "label": ...}', []),
        ("адаптеры (TOML: base model) и --lora-modules NAME=PATH in vLLM", []),
        ("an option breaks a run: save the --out folder now", ["an option breaks a run"]),
        ("tiny | t4 | 7b (по умолчанию: $LESSONS_PROFILE or automatic)", []),
        ("по умолчанию: `python -m lessons_lib.course run`, assets/router/adapter, engine.lora_path", []),
    ],
)
def test_english_prose_skips_code_like_tokens(text, prose):
    assert english_prose(text) == prose


@pytest.mark.parametrize("module, sub_command", HELP_PAGES, ids=str)
def test_russian_help_pages_have_no_english_prose(ru, module, sub_command):
    """Every description, help text and section title of the page is Russian; names and values stay as they are."""
    entries = help_entries(help_page(module, sub_command))
    assert len(entries) >= 3, entries
    assert not [entry for entry in entries if untranslated(entry)]


@pytest.mark.parametrize("module, sub_command", HELP_PAGES, ids=str)
def test_the_check_fires_on_the_english_help(en, module, sub_command):
    """The check above can fail: it flags every text of the English page, and finds English prose in the CLI's own."""
    entries = help_entries(help_page(module, sub_command))
    assert all(untranslated(entry) for entry in entries), entries
    own = [entry for entry in entries if entry not in ARGPARSE_WORDS]
    assert any(english_prose(entry) for entry in own), own


@pytest.mark.parametrize("module, sub_command, sentences", ENGLISH_HELP, ids=str)
def test_english_help_keeps_its_words(en, module, sub_command, sentences):
    shown = " ".join(help_page(module, sub_command).split())
    for sentence in sentences:
        assert sentence in shown, sentence


@pytest.mark.parametrize(
    "argv, options",
    [
        (["--config", "c.toml", "--profile", "tiny", "--router", "none"], "--profile, --router"),
        (["vllm", "--config", "c.toml", "--adapters-dir", "store"], "--adapters-dir"),
    ],
)
@pytest.mark.parametrize(
    "lang, said",
    [
        (
            "en",
            "cannot be combined with --config: the composition file decides what is served. Edit the file (or drop "
            "--config).",
        ),
        (
            "ru",
            "нельзя указывать вместе с --config: что обслуживает сервер, решает файл композиции. Измените файл (или "
            "уберите --config).",
        ),
    ],
)
def test_options_beside_config_are_refused_in_the_course_language(monkeypatch, argv, options, lang, said):
    monkeypatch.setenv("LESSONS_LANG", lang)
    code, out, err = run_module(SERVE, argv)
    error = {"en": "error", "ru": "ошибка"}[lang]
    assert code == 2 and not out and err.endswith(f": {error}: {options} {said}\n"), err


# (CLI module, argv refused by the CLI itself, not by argparse)
OWN_ERRORS = [
    (ROUTER, ["evaluate", "--router", "keyword", "--data", "absent.jsonl"]),
    (TOOLS, ["evaluate", "--data", "heldot"]),
    (QUIZ, ["show", "01", "--lang", "de"]),
    (QUIZ, ["show", "x1"]),
    (SERVE, ["vllm", "--adapters-dir", "absent-store"]),
    (SERVE, ["--work-dir", "absent-folder"]),
    (COURSE, ["run", "--only", "09"]),
]


@pytest.mark.parametrize("module, argv", OWN_ERRORS, ids=str)
def test_own_errors_are_one_line_in_the_course_language(monkeypatch, module, argv):
    """A CLI's own error: one line, `error: ...` in English, `ошибка: ...` in Russian, the message translated."""
    for lang, prefix in (("en", "error: "), ("ru", "ошибка: ")):
        monkeypatch.setenv("LESSONS_LANG", lang)
        code, out, err = run_module(module, argv)
        assert code == 2 and not out and err.count("\n") == 1 and err.startswith(prefix), (lang, err)
        assert bool(CYRILLIC.search(err)) == (lang == "ru"), err


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
