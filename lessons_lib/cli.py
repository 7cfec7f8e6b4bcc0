"""The course's command-line plumbing: an argparse parser that speaks the course language, and whole-number types."""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import re
import sys
from collections.abc import Callable
from typing import NoReturn

from .i18n import LANG_ENV_VAR, current, tr

USAGE_RU = "использование: "
USAGE_ERROR = 2  # the exit code argparse also uses for bad arguments
INTERRUPTED = 130  # what a shell reports for a command ended by Ctrl-C (128 + SIGINT)

# argparse's section titles and help lines, English as Python 3.10-3.13 write them ("optional arguments": 3.9).
TITLES_RU = {
    "positional arguments": "позиционные аргументы",
    "options": "параметры",
    "optional arguments": "параметры",
    "subcommands": "подкоманды",
}
HELP_LINES_RU = {
    "show this help message and exit": "показать эту справку и выйти",
    "show program's version number and exit": "показать версию программы и выйти",
}

# argparse's error messages (its msgids), matched as templates. Order matters where one template also matches
# another's text: the exact "expected one argument" before "expected %s argument", 3.14's "maybe you meant" first.
MESSAGES_RU = {
    "argument %(argument_name)s: %(message)s": "аргумент %(argument_name)s: %(message)s",
    "the following arguments are required: %s": "обязательны аргументы: %s",
    "one of the arguments %s is required": "нужен один из аргументов: %s",
    "unrecognized arguments: %s": "неизвестные аргументы: %s",
    "not allowed with argument %s": "нельзя указывать вместе с аргументом %s",
    "ignored explicit argument %r": "аргумент не принимает значения, а указано %r",
    "expected one argument": "нужно одно значение",
    "expected at most one argument": "нужно не больше одного значения",
    "expected at least one argument": "нужно хотя бы одно значение",
    "expected %s argument": "нужно значений: %s",
    "expected %s arguments": "нужно значений: %s",
    "ambiguous option: %(option)s could match %(matches)s": "неоднозначный параметр %(option)s: подходят %(matches)s",
    "unexpected option string: %s": "неожиданный параметр: %s",
    "invalid %(type)s value: %(value)r": "недопустимое значение типа %(type)s: %(value)r",
    "invalid choice: %(value)r, maybe you meant %(closest)r? (choose from %(choices)s)": (
        "недопустимый вариант: %(value)r, может быть, имелось в виду %(closest)r? (выберите из %(choices)s)"
    ),
    "invalid choice: %(value)r (choose from %(choices)s)": "недопустимый вариант: %(value)r (выберите из %(choices)s)",
    "unknown parser %(parser_name)r (choices: %(choices)s)": (
        "неизвестная команда %(parser_name)r (варианты: %(choices)s)"
    ),
    "can't open '%(filename)s': %(error)s": "не удалось открыть '%(filename)s': %(error)s",
}

PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[sr]")


def russian() -> bool:
    """Whether the course language now in effect is Russian."""
    return current() == "ru"


def named(template: str) -> str:
    """`template` with its bare %s/%r placeholders named %(_0)s, %(_1)s, ... in order."""
    count = itertools.count()
    return PLACEHOLDER.sub(lambda m: m.group(0) if m.group(1) else f"%(_{next(count)})s", template)


def template_pattern(msgid: str) -> re.Pattern[str]:
    """A regex matching the messages argparse formats from `msgid`, one named group per placeholder."""
    msgid = named(msgid)
    parts, start = [], 0
    for m in PLACEHOLDER.finditer(msgid):
        parts += [re.escape(msgid[start : m.start()]), f"(?P<{m.group(1)}>.*?)"]
        start = m.end()
    return re.compile("".join([*parts, re.escape(msgid[start:])]), re.DOTALL)


TEMPLATES_RU = [(template_pattern(en), named(ru)) for en, ru in MESSAGES_RU.items()]


def russian_message(message: str) -> str:
    """One of argparse's English messages in Russian, the names and values in it kept; any other stays as it is."""
    for pattern, russian_template in TEMPLATES_RU:
        match = pattern.fullmatch(message)
        if match:
            return fill(russian_template, match.groupdict())
    return message


def fill(template: str, values: dict[str, str]) -> str:
    """A named `template` with `values` put in as they are; a nested argparse `message` in Russian too."""
    values = {k: russian_message(v) if k == "message" else v for k, v in values.items()}
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def in_course_language(text: str | None, russian_texts: dict[str, str]) -> str | None:
    """`text` in Russian when it is one of argparse's own and the course speaks Russian, else unchanged."""
    return russian_texts.get(text, text) if isinstance(text, str) and russian() else text


class CourseHelpWords(argparse.HelpFormatter):
    """A help formatter mixin: argparse's usage prefix, section titles and -h help line in the course language."""

    def add_usage(self, usage, actions, groups, prefix=None) -> None:
        """As argparse; the default prefix is Russian under LESSONS_LANG=ru (wrapped lines follow its width)."""
        super().add_usage(usage, actions, groups, USAGE_RU if prefix is None and russian() else prefix)

    def start_section(self, heading) -> None:
        """As argparse, with argparse's own section titles in the course language."""
        super().start_section(in_course_language(heading, TITLES_RU))

    def _get_help_string(self, action: argparse.Action) -> str | None:
        """As argparse, with argparse's own help lines (-h, --version) in the course language."""
        return in_course_language(super()._get_help_string(action), HELP_LINES_RU)


@functools.cache
def course_formatter(formatter_class: type[argparse.HelpFormatter]) -> type[argparse.HelpFormatter]:
    """`formatter_class` with the course's help words (one class per formatter class)."""
    if issubclass(formatter_class, CourseHelpWords):
        return formatter_class
    return type(f"Course{formatter_class.__name__}", (CourseHelpWords, formatter_class), {})


class CourseArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser in the course language: Russian usage, help and errors under LESSONS_LANG=ru.

    Under English it prints exactly what argparse prints. The language is read when the help or the error is
    printed; argparse itself is left unchanged. Sub-parsers from add_subparsers are of this class too.
    """

    def __init__(self, *args, **kwargs) -> None:
        check_language()
        kwargs["formatter_class"] = course_formatter(kwargs.get("formatter_class", argparse.HelpFormatter))
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """The usage, then `PROG: error: MESSAGE` on stderr, exit code 2 (in Russian under LESSONS_LANG=ru)."""
        if russian():
            self.print_usage(sys.stderr)
            self.exit(2, f"{self.prog}: ошибка: {russian_message(message)}\n")
        super().error(message)


def check_language() -> None:
    """End a course CLI with one `error:` line and exit code 2 when $LESSONS_LANG is neither en nor ru (its first
    step: every message after it is in that language)."""
    try:
        current()
    except ValueError:
        given = os.environ.get(LANG_ENV_VAR)
        print(
            f"error: {LANG_ENV_VAR} is {given!r}; set it to en or ru (export {LANG_ENV_VAR}=ru), or unset it for "
            "English.",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


def error_line(message: str) -> str:
    """The line a course CLI prints for an error of its own: `error: MESSAGE` (`ошибка: MESSAGE` under ru)."""
    return f"{tr(en='error', ru='ошибка')}: {message}"


def until_interrupted(main: Callable[[], int]) -> int:
    """Run a CLI's `main`; Ctrl-C ends it with one line and exit code 130 (as a shell reports SIGINT), no traceback."""
    try:
        return main()
    except KeyboardInterrupt:
        print(f"\n{error_line(tr(en='interrupted (Ctrl-C).', ru='прервано (Ctrl-C).'))}", file=sys.stderr, flush=True)
        return INTERRUPTED


def fail(message: str) -> int:
    """Print one `error:` line to stderr and return the usage-error exit code."""
    print(error_line(message), file=sys.stderr)
    return USAGE_ERROR


def os_error_text(err: OSError) -> str:
    """An OSError as one line: our own messages as they are, the system's as 'PATH: reason'."""
    return f"{err.filename}: {err.strerror}" if err.strerror and err.filename else str(err)


def one_line(err: Exception) -> str:
    """An error's message on one line (compat's messages may wrap)."""
    return " ".join(str(err).split())


def whole_number(text: str, low: int, high: int | None, what: str) -> int:
    """argparse type helper: `text` as a whole number from `low` to `high` (None: no bound), else a usage error."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(whole_number_problem(text, low, high, what))
    return value


def whole_number_problem(text: str, low: int, high: int | None, what: str) -> str:
    """What is wrong with `text` as `what`, a whole number from `low` to `high` (None: at least `low`)."""
    if high is None:
        return tr(
            en=f"expected {what}: a whole number of at least {low}, got {text!r}",
            ru=f"{what}: нужно целое число не меньше {low}, а получено {text!r}",
        )
    return tr(
        en=f"expected {what}: a whole number from {low} to {high}, got {text!r}",
        ru=f"{what}: нужно целое число от {low} до {high}, а получено {text!r}",
    )
