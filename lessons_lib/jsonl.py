"""Reading course data files: one JSON object per line, with errors that name the file and line.

Lines are split on b"\\n" only (str.splitlines would also split at U+2028 and other separators that JSON
allows inside strings), decoded as UTF-8 one at a time, and their nesting is measured before parsing, so a
damaged or hostile line gives an error naming file:line and what to do, never a UnicodeDecodeError without
a line or a RecursionError.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .i18n import tr

MAX_DEPTH = 64  # course rows nest 4-5 levels (row > messages > message > tool_calls > arguments)
STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
NOT_BRACKET = re.compile(r"[^\[\]{}]+")
SURROGATE = re.compile(r"[\ud800-\udfff]")
BOM = "\ufeff"


class DataFileError(ValueError):
    """A line of a data file that cannot be used; the message names file:line and what to do."""


def read_objects(path: str | Path, shape: str) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line; `shape` describes a line in the errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            tr(
                en=f"No data file at {path}. Give a JSONL file with one {shape} object per line.",
                ru=f"Нет файла данных {path}. Укажите файл JSONL, в каждой строке которого один объект {shape}.",
            )
        )
    objects = []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        text = decode_line(path, number, raw)
        if not text.strip():
            continue
        row = parse_line(path, number, text)
        if not isinstance(row, dict):
            kind = type(row).__name__
            raise DataFileError(
                tr(
                    en=f"{path}:{number} must be a {shape} object, got a JSON {kind}. Write one object per line.",
                    ru=f"{path}:{number}: нужен объект {shape}, а получен JSON-тип {kind}. Пишите по одному объекту "
                    "в строке.",
                )
            )
        objects.append((number, row))
    if not objects:
        raise DataFileError(
            tr(
                en=f"{path} has no rows. Give one {shape} object per line.",
                ru=f"В {path} нет строк. Запишите по одному объекту {shape} в строке.",
            )
        )
    return objects


def decode_line(path: Path, number: int, raw: bytes) -> str:
    """One line as text (UTF-8, a leading byte-order mark and a trailing \\r dropped), or an error saying where."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        column = len(raw[: err.start].decode("utf-8", errors="replace")) + 1
        byte = raw[err.start : err.start + 1]
        raise DataFileError(
            tr(
                en=f"{path}:{number}:{column} is not UTF-8 (byte {byte!r}). Save "
                "the file as UTF-8 (in an editor: 'Save with encoding: UTF-8'; in a shell: iconv -f "
                "cp1252 -t utf-8 old.jsonl > new.jsonl, with the file's real encoding).",
                ru=f"{path}:{number}:{column} — не UTF-8 (байт {byte!r}). Сохраните файл в UTF-8 (в редакторе: "
                "«Сохранить с кодировкой UTF-8»; в терминале: iconv -f cp1252 -t utf-8 old.jsonl > new.jsonl, "
                "указав настоящую кодировку файла).",
            )
        ) from None
    if number == 1:
        text = text.removeprefix(BOM)
    return text.removesuffix("\r")


def json_problem(err: json.JSONDecodeError, where: str | None = None) -> str:
    """A JSONDecodeError's message, with `where` it happened ("Expecting value at column 1") or without; Python's
    "Unterminated string starting at" ends in its own "at": "... starting at column 10" or "Unterminated string",
    never "at at" or a dangling "at"."""
    if where is None:
        return re.sub(r"(?: starting)? at$", "", err.msg)
    return f"{err.msg.removesuffix(' at')} at {where}"


def nesting_depth(text: str) -> int:
    """How deeply `[`/`{` nest in a JSON text, counted without recursion (brackets inside strings ignored)."""
    depth = deepest = 0
    for bracket in NOT_BRACKET.sub("", STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def parse_line(path: Path, number: int, text: str):
    """The JSON value on one line; nesting, syntax and lone surrogates are errors naming file:line."""
    if nesting_depth(text) > MAX_DEPTH:
        raise DataFileError(
            tr(
                en=f"{path}:{number} nests deeper than {MAX_DEPTH} levels of [ ] or {{ }}; no course row "
                "is that deep. The line is damaged or not course data: fix or remove it.",
                ru=f"{path}:{number}: вложенность глубже {MAX_DEPTH} уровней [ ] или {{ }}; ни одна строка курса "
                "не бывает такой глубокой. Строка повреждена или это не данные курса: исправьте или удалите её.",
            )
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFileError(
            tr(
                en=f"{path}:{number} is not valid JSON ({json_problem(err, f'column {err.colno}')}). Fix the line "
                "or remove it; every line must be one JSON object.",
                ru=f"{path}:{number} — невалидный JSON ({json_problem(err)}, столбец {err.colno}). Исправьте строку "
                "или удалите её; каждая строка должна быть одним объектом JSON.",
            )
        ) from None
    except RecursionError:  # not reached after the depth check; kept so no input can crash the reader
        raise DataFileError(
            tr(
                en=f"{path}:{number} nests too deeply to read. Fix or remove the line.",
                ru=f"{path}:{number}: вложенность слишком глубокая для чтения. Исправьте или удалите строку.",
            )
        ) from None
    bad = _first_surrogate(value)
    if bad is not None:
        raise DataFileError(
            tr(
                en=f"{path}:{number} holds an unpaired UTF-16 surrogate escape ({bad!r}), which is not "
                "text. Fix the \\uD8xx escapes on that line or remove it.",
                ru=f"{path}:{number}: непарная суррогатная escape-последовательность UTF-16 ({bad!r}), это не "
                "текст. Исправьте экранирования \\uD8xx в этой строке или удалите её.",
            )
        )
    return value


def _first_surrogate(value) -> str | None:
    """The first string (key or value) holding a lone surrogate, walking the value without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if SURROGATE.search(item):
                return item[:40]
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None
