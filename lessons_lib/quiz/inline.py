"""Inline formatting of bank text: `code spans` and identifiers such as set_adapter or adapter_names render
as code in Markdown and HTML (so `__base__` never turns into bold), everything else is escaped."""

from __future__ import annotations

import html
import re

CODE_SPAN = re.compile(r"`([^`]+)`")
_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
IDENTIFIER = re.compile(
    r"(?<![A-Za-z0-9_/.])(?:"
    + _NAME
    + r"\([^()]*\)"  # a call: f(x, y=1)
    + r"|(?=[A-Za-z0-9_.]*[A-Za-z])[A-Za-z0-9.]*_(?:[A-Za-z0-9_.]*[A-Za-z0-9_])?(?:\(\))?"  # snake_case
    + r"|[A-Za-z_][A-Za-z0-9_]+(?:\.[A-Za-z_][A-Za-z0-9_]*)+(?:\(\))?"  # dotted.name
    + r")"
)
MD_SPECIAL = re.compile(r"([\\*_<\[\]])")


def segments(text: str) -> list[tuple[bool, str]]:
    """Split text into (is_code, piece): explicit `code` spans and bare identifiers with underscores are code."""
    out: list[tuple[bool, str]] = []
    pos = 0
    for match in CODE_SPAN.finditer(text):
        out += _identifiers(text[pos : match.start()])
        out.append((True, match.group(1)))
        pos = match.end()
    out += _identifiers(text[pos:])
    return [(code, piece) for code, piece in out if piece]


def _identifiers(plain: str) -> list[tuple[bool, str]]:
    out, pos = [], 0
    for match in IDENTIFIER.finditer(plain):
        out += [(False, plain[pos : match.start()]), (True, match.group(0))]
        pos = match.end()
    out.append((False, plain[pos:]))
    return out


def md(text: str) -> str:
    """Bank text as Markdown."""
    return "".join(f"`{piece}`" if code else MD_SPECIAL.sub(r"\\\1", piece) for code, piece in segments(text))


def to_html(text: str) -> str:
    """Bank text as an HTML fragment."""
    return "".join(
        f"<code>{html.escape(piece)}</code>" if code else html.escape(piece) for code, piece in segments(text)
    )


def plain(text: str) -> str:
    """Bank text for plain-text labels (widget choices): backticks dropped."""
    return CODE_SPAN.sub(r"\1", text)
