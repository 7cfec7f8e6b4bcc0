"""The course's three tools: typed functions with Google-style docstrings and input checks that say what to do."""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from typing import Literal

from ..jsonl import nesting_depth

TEMPLATE_TYPES = ("instruction", "email", "bug_report", "meeting_notes")
TemplateType = Literal["instruction", "email", "bug_report", "meeting_notes"]
PARAMETRIC_RULES = ("max_length", "min_words")
SIMPLE_RULES = ("non_empty", "has_headings", "is_email", "valid_json", "no_trailing_spaces")
RULES = SIMPLE_RULES + PARAMETRIC_RULES
# Upper bounds on every argument, so no call (from a model or a person) costs more than a moment and a few MB.
MAX_TEXT_CHARS = 10_000  # text_formatter and content_validator
MAX_TOPIC_CHARS = 1_000  # template_generator
MAX_WIDTH = 1_000
MAX_INDENT = 100  # worst case (width = indent + 1): each character on its own line, ~1 MB for the longest text
MAX_RULES = 16
MAX_RULE_DIGITS = 5  # max_length:N and min_words:N take N from 0 to 99999
MAX_JSON_DEPTH = 512  # valid_json: deeper texts fail the rule instead of overflowing Python's recursive parser
RULE_PATTERN = (
    "(?:" + "|".join(SIMPLE_RULES + tuple(f"{r}:[0-9]{{1,{MAX_RULE_DIGITS}}}" for r in PARAMETRIC_RULES)) + ")"
)
# The same bounds as JSON Schema keywords, per tool and argument ("name[]": each item of an array).
LIMITS = {
    "text_formatter": {
        "text": {"maxLength": MAX_TEXT_CHARS},
        "width": {"minimum": 1, "maximum": MAX_WIDTH},
        "indent": {"minimum": 0, "maximum": MAX_INDENT},
    },
    "template_generator": {"topic": {"maxLength": MAX_TOPIC_CHARS}},
    "content_validator": {"text": {"maxLength": MAX_TEXT_CHARS}, "rules": {"minItems": 1, "maxItems": MAX_RULES}},
}
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
HEADING = re.compile(r"^#{1,6} \S", re.M)


class ToolError(ValueError):
    """A tool was called with arguments it cannot use; the message says what to pass instead."""


def shown_number(value: int) -> str:
    """An integer for a message: its digits, or its size when it has too many digits to print."""
    if abs(value).bit_length() <= 256:  # up to 77 digits; Python refuses to print more than 4300
        return str(value)
    sign = "a negative" if value < 0 else "a"
    return f"{sign} number of about {int(abs(value).bit_length() * 0.30103) + 1} digits"


def check_text_size(name: str, text: str, limit: int) -> None:
    """Raise ToolError when a string argument is longer than `limit` characters."""
    if len(text) > limit:
        raise ToolError(
            f"{name} is {len(text)} characters long; this tool takes at most {limit}. "
            f"Split it and call the tool once per part of up to {limit} characters."
        )


def text_formatter(text: str, width: int = 40, indent: int = 0) -> str:
    """Wrap text into lines no longer than `width` characters, each starting with `indent` spaces.

    Args:
        text: The text to wrap; words are kept in order, runs of whitespace become one space.
        width: The longest allowed line, in characters, counting the indent.
        indent: How many spaces start every line.
    """
    if not isinstance(text, str):
        raise ToolError(f"text must be a string, got {type(text).__name__}; pass the text to wrap.")
    for name, value in (("width", width), ("indent", indent)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ToolError(
                f"{name} must be a whole number, got {value!r}; pass e.g. {name}=40."
                if name == "width"
                else f"indent must be a whole number, got {value!r}; pass e.g. indent=2."
            )
    if width <= 0:
        raise ToolError(f"width must be 1 or more characters, got {shown_number(width)}; pass e.g. width=40.")
    if width > MAX_WIDTH:
        raise ToolError(
            f"width must be at most {MAX_WIDTH} characters, got {shown_number(width)}; "
            f"pass a width from 1 to {MAX_WIDTH}."
        )
    if indent < 0:
        raise ToolError(f"indent must be 0 or more spaces, got {shown_number(indent)}; pass indent=0 for no indent.")
    if indent > MAX_INDENT:
        raise ToolError(
            f"indent must be at most {MAX_INDENT} spaces, got {shown_number(indent)}; "
            f"pass an indent from 0 to {MAX_INDENT}."
        )
    check_text_size("text", text, MAX_TEXT_CHARS)
    if indent >= width:
        raise ToolError(
            f"indent ({indent}) leaves no room for text in width {width}; "
            f"use an indent below {width} or a larger width."
        )
    words = text.split()
    if not words:
        raise ToolError("text is empty: pass the text you want wrapped.")
    room, lines, line = width - indent, [], ""
    for word in words:
        while len(word) > room:  # a word longer than a line is cut, so no line ever exceeds the width
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:room])
            word = word[room:]
        if not word:
            continue
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= room:
            line += " " + word
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return "\n".join(" " * indent + ln for ln in lines)


TEMPLATES = {
    "en": {
        "instruction": "### Instruction:\n{topic}\n\n### Input:\n\n### Response:\n",
        "email": "Subject: {topic}\n\nHello,\n\n[message]\n\nBest regards,\n[name]",
        "bug_report": "Bug: {topic}\nSteps: [steps]\nExpected: [expected]\nActual: [actual]",
        "meeting_notes": "Meeting: {topic}\nAttendees: [names]\nDecisions: [decisions]\nActions: [actions]",
    },
    "ru": {
        "instruction": "### Инструкция:\n{topic}\n\n### Вход:\n\n### Ответ:\n",
        "email": "Тема: {topic}\n\nЗдравствуйте,\n\n[сообщение]\n\nС уважением,\n[имя]",
        "bug_report": "Ошибка: {topic}\nШаги: [шаги]\nОжидалось: [ожидалось]\nПолучилось: [получилось]",
        "meeting_notes": "Встреча: {topic}\nУчастники: [имена]\nРешения: [решения]\nЗадачи: [задачи]",
    },
}


def template_generator(template_type: TemplateType, topic: str, language: Literal["en", "ru"] = "en") -> str:
    """Fill a text template (instruction/input/response prompt, e-mail, bug report, meeting notes) with a topic.

    Args:
        template_type: Which template to fill.
        topic: What the template is about: the instruction, the e-mail subject, the bug or the meeting.
        language: The language of the template's labels.
    """
    if template_type not in TEMPLATE_TYPES:
        raise ToolError(f"Unknown template_type {template_type!r}; choose one of: {', '.join(TEMPLATE_TYPES)}.")
    if language not in TEMPLATES:
        raise ToolError(f"Unknown language {language!r}; choose one of: {', '.join(TEMPLATES)}.")
    if not isinstance(topic, str) or not topic.strip():
        raise ToolError("topic is empty: say what the template is about, e.g. topic='login page crashes'.")
    check_text_size("topic", topic, MAX_TOPIC_CHARS)
    return TEMPLATES[language][template_type].format(topic=" ".join(topic.split()))


def parse_rule(rule: str) -> tuple[str, int | None]:
    """Split 'max_length:80' into ('max_length', 80); raise ToolError for unknown or malformed rules."""
    if not isinstance(rule, str):
        raise ToolError(f"Each rule must be a string such as 'non_empty' or 'max_length:80', got {rule!r}.")
    name, sep, arg = rule.strip().partition(":")
    if name not in RULES:
        raise ToolError(
            f"Unknown rule {rule!r}; valid rules: {', '.join(SIMPLE_RULES)}, "
            f"{', '.join(r + ':N' for r in PARAMETRIC_RULES)}."
        )
    if name in PARAMETRIC_RULES:
        if not sep or not (arg.strip().isascii() and arg.strip().isdigit()):
            raise ToolError(f"Rule {name!r} needs a whole-number limit after a colon, e.g. '{name}:80'.")
        if len(arg.strip()) > MAX_RULE_DIGITS:
            raise ToolError(
                f"Rule {name!r} takes a limit from 0 to {10**MAX_RULE_DIGITS - 1}, got "
                f"{len(arg.strip())} digits; write e.g. '{name}:80'."
            )
        return name, int(arg)
    if sep:
        raise ToolError(f"Rule {name!r} takes no limit; write just '{name}'.")
    return name, None


def _is_json(text: str) -> bool:
    """True when `text` parses as JSON nested at most MAX_JSON_DEPTH levels (deeper: False, never a RecursionError)."""
    if nesting_depth(text) > MAX_JSON_DEPTH:
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


CHECKS = {
    "non_empty": lambda text, _: bool(text.strip()),
    "has_headings": lambda text, _: bool(HEADING.search(text)),
    "is_email": lambda text, _: bool(EMAIL.match(text.strip())),
    "valid_json": lambda text, _: _is_json(text),
    "no_trailing_spaces": lambda text, _: all(line == line.rstrip() for line in text.split("\n")),
    "max_length": lambda text, limit: len(text) <= limit,
    "min_words": lambda text, limit: len(text.split()) >= limit,
}


def content_validator(text: str, rules: list[str]) -> dict:
    """Check a text against rules and report which pass and which fail.

    Args:
        text: The text to check.
        rules: Rule names: non_empty, has_headings, is_email, valid_json, no_trailing_spaces, max_length:N, min_words:N.
    """
    if not isinstance(text, str):
        raise ToolError(f"text must be a string, got {type(text).__name__}; pass the text to check.")
    if not isinstance(rules, (list, tuple)) or not rules:
        raise ToolError(
            f"rules must be a non-empty list (at least 1 rule name), e.g. ['non_empty', 'max_length:80']; "
            f"valid rules: {', '.join(RULES)}."
        )
    if len(rules) > MAX_RULES:
        raise ToolError(
            f"rules has {len(rules)} entries; pass at most {MAX_RULES} rules per call "
            "(call the tool again for the rest)."
        )
    check_text_size("text", text, MAX_TEXT_CHARS)
    parsed = [parse_rule(rule) for rule in rules]
    passed, failed = [], []
    for rule, (name, limit) in zip(rules, parsed):
        (passed if CHECKS[name](text, limit) else failed).append(rule.strip())
    return {"ok": not failed, "passed": passed, "failed": failed}


TOOLS = {f.__name__: f for f in (text_formatter, template_generator, content_validator)}


@dataclass(frozen=True)
class Below:
    """In a call to `tool`, integer `low` must stay below `high`: a rule JSON Schema cannot state. `high_default`:
    what `high` is when a call leaves it out (None: such calls are not checked)."""

    tool: str
    low: str
    high: str
    high_default: int | None = None


# The tools' cross-argument rules; the schema-constrained decoder enforces them too (`constrained.CallGrammar`).
BELOW = (Below("text_formatter", "indent", "width", inspect.signature(text_formatter).parameters["width"].default),)

# Arguments that take a whole text: quoted from a request (`constrained.CallGrammar`), one ends where a sentence, a
# line or a quotation does, never at a comma inside a sentence (text_formatter wraps what it is given, so a text cut at
# its first comma is a wrong call that looks right). content_validator's text is not one: it may be one address in
# the middle of a sentence.
WHOLE_TEXTS = (("text_formatter", "text"),)

# List arguments whose order does not change what the tool does: content_validator runs every rule either way.
UNORDERED_LISTS = {"content_validator": ("rules",)}


def with_defaults(tool: str, args: dict) -> dict:
    """`args` with the defaults of `tool`'s signature filled in (as given when they do not bind to it)."""
    try:
        bound = inspect.signature(TOOLS[tool]).bind(**args)
    except (KeyError, TypeError):
        return dict(args)
    bound.apply_defaults()
    return dict(bound.arguments)


def same_arguments(tool: str, got: dict, want: dict) -> bool:
    """Do two argument dicts ask `tool` for the same thing? An omitted argument is its default; lists in
    UNORDERED_LISTS compare as multisets."""
    unordered = UNORDERED_LISTS.get(tool, ())

    def as_asked(args: dict) -> dict:
        return {
            k: sorted(map(json.dumps, v)) if k in unordered and isinstance(v, list) else v
            for k, v in with_defaults(tool, args).items()
        }

    return as_asked(got) == as_asked(want)
