"""Schema-constrained decoding: the decoder lets the model write only tool calls that parse and validate.

`CallGrammar` turns the tools' JSON schemas into one regular expression for the call format the course
trains (`{"tool": NAME, "arguments": {...}}`, keys in schema order) and, optionally, demands that free-text
arguments quote the user's request: a quote is a whole phrase of it, starting at a word and ending where a clause
does (punctuation, a line break, a quotation mark or the end), never inside brackets or a quotation that the request
closes later; a whole text (`functions.WHOLE_TEXTS`: the text a formatter wraps) ends only where a sentence, a line
or a quotation does, never at a comma inside a sentence (`ends_text`); it also prefers the request's own numbers
wherever the call can take one (`numbers_ok`).
`CallConstraint` is the `prefix_allowed_tokens_fn` that `model.generate` takes: at every step it allows only the
tokens that keep the reply a viable call. It finds them by walking a byte trie of the vocabulary (`TokenTrie`: a token
is tested only when its prefix passed), caches them by the call's structure, and inside free text reuses the
plain tokens' UTF-8 check, so a real model's 32k-token vocabulary costs a few ms per row and step, not tens
(`benchmarks/bench_constraint_vocab.py`).

Bounds agree with `calls.check_value`: an integer or a number (at most 6 decimals) with `minimum`/`maximum`
(or exclusive ones) matches exactly that range (an open side stops at ±999999, or that far past the other bound);
free-text strings hold `minLength` to `maxLength` characters and arrays `minItems` to `maxItems` items, capped by the
grammar's own limits below; `const`, an integer's `multipleOf` (its multiples in range, listed), `uniqueItems` on
items it can list (enum, const, boolean) and on strings (pydantic's `set[str]`: an item may go on while it can still
become a string not written yet), `anyOf`, `oneOf` (schemas of distinct types) and lists of types (pydantic's
Optional: a string or null) are kept too; a string's `pattern` is rewritten for the JSON-escaped bytes the model
writes (`patterns.grammar_pattern`, which refuses what it cannot rewrite exactly or match in reasonable time). Any
other constraining keyword (`format`, `allOf`, a pattern with a length, ...) is a GrammarError naming it, so a
client's schema is never silently loosened (KEPT_KEYWORDS, ANNOTATIONS); so is a schema too big to match quickly
(MAX_ENUM_VALUES, MAX_GRAMMAR_CHARS). Given `max_new_tokens`, strings and lists close in time for the call to end
within it (a quote then may stop mid-clause, at a word's end). So every call the grammar completes also validates.
Rules between two arguments, which no JSON Schema states, are kept too (`below`: by default the course tools'
`functions.BELOW`, the indent below the width), so the course's tools take every call the grammar completes. Left at
`max_new_tokens=None`, a call gets room to quote its request whole (`reply_budgets`).
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from functools import lru_cache

import regex

from ..models import budgets_per_row
from .calls import BadArguments, check_value, exclusive_bounds
from .functions import BELOW, WHOLE_TEXTS, Below
from .patterns import PatternError, grammar_pattern, needs_timeout, schema_patterns

TOOL_CHOICES = ("auto", "required")  # as in the OpenAI API: "required" makes the reply a call to some tool
MAX_STRING_CHARS = 400
MAX_ARRAY_ITEMS = 16
MAX_ARGUMENTS = 32  # a tool's most arguments (the pattern holds each about n/2 times)
MAX_ENUM_VALUES = 500  # an enum's most values (each is an alternative the matcher tries at every step)
MAX_GRAMMAR_CHARS = 100_000  # the call pattern's most characters (a schema's cost to build and to match)
MATCH_TIMEOUT_S = 1.0  # one match against a reply, where a client's pattern is ambiguous (patterns.needs_timeout)
# One character of a JSON string as UTF-8 bytes (so minLength and maxLength count characters, as Python's len does).
STRING_CHARS = (
    r"(?:[\x20\x21\x23-\x5b\x5d-\x7f]|[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
    r'|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})'
)
STRING_CHAR = re.compile(STRING_CHARS.encode())  # counts a written value's (whole) characters
# The items of an array of strings: each closed one and what follows it (", ", "]" or the end), or the one being
# written.
JSON_STRING_ITEM = re.compile(rb'(?P<closed>"(?:[^"\\]|\\.)*")(?P<end>,(?: |\Z)|\]|\Z)|(?P<open>"(?:[^"\\]|\\.)*\\?\Z)')
INTEGER = r"-?(?:0|[1-9][0-9]{0,5})"
INTEGER_LIMIT = 999_999  # the most an unbounded side of an integer reaches (6 digits, as INTEGER)
CLOSING_SHARE = 0.25  # once only this share of the token budget is left, strings and lists close so the call ends
# as JSON-escaped bytes; a dash between spaces also ends a clause ("{'a': 1} — is that JSON?")
CLAUSE_ENDS = (b".", b",", b";", b":", b"!", b"?", b")", b"\\n", b"\\r", b"\\t", b'\\"', " —".encode(), " –".encode())
CLOSING_MARKS = b'.!?")'  # a phrase that ends with one of these may end before a space
QUOTE_OPENERS = ("«".encode(), "“".encode())  # a phrase may start right after one
QUOTE_CLOSERS = ("»".encode(), "”".encode())  # a phrase may end before one (and before \\" or an apostrophe mark)
APOSTROPHES = (b"'", "’".encode())  # close a quotation only before a non-word (else an apostrophe: Fennimore's)
# Where a whole text (functions.WHOLE_TEXTS) may end, besides the request's end, a closing quotation mark
# (`closes_quotation`) and after . ! ? " ) » ” before a non-word: before a line break, a quote or a closing bracket.
TEXT_ENDS = (b"\\n", b"\\r", b'\\"', b")")
BRACKETS = ((b"(", b")"), (b"[", b"]"), (b"{", b"}"), ("«".encode(), "»".encode()))
ESCAPED_QUOTE = b'\\"'
DIGITS = b"0123456789"
REPLY_TOKENS = 128  # a reply's budget when it copies nothing long: a call's name, keys and numbers; a short answer
COPY_FRAME_TOKENS = 48  # beside a copied text: a call's name, keys and numbers, or an answer's lead-in
NUMBER_DECIMALS = 6  # a JSON number's most fraction digits (INTEGER + r"(?:\.[0-9]{1,6})?")
MAX_MULTIPLES = 1000  # an integer `multipleOf` is kept by listing its multiples in range, at most this many
ANNOTATIONS = frozenset(  # schema keywords that describe a value without constraining it
    {"description", "title", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly", "nullable"}
)
KEPT_KEYWORDS = {  # the constraining keywords the grammar keeps, by type; any other makes a GrammarError
    "string": {"type", "enum", "const", "pattern", "minLength", "maxLength"},
    "integer": {"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
    "number": {"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "boolean": {"type", "enum", "const"},
    "array": {"type", "items", "minItems", "maxItems", "uniqueItems"},
    "null": {"type"},
}
CHOICES = ("anyOf", "oneOf")  # a value that matches one of several schemas: the grammar writes any one of them
KEPT_OBJECT_KEYWORDS = {"type", "properties", "required", "additionalProperties"}  # of a tool's parameters


class GrammarError(ValueError):
    """A schema the grammar cannot express."""


def check_tool_choice(tool_choice: str) -> str:
    """Return `tool_choice` if it is one of TOOL_CHOICES, else raise a ValueError listing them."""
    if tool_choice not in TOOL_CHOICES:
        raise ValueError(f"Unknown tool_choice {tool_choice!r}; use one of: {', '.join(TOOL_CHOICES)}.")
    return tool_choice


def check_quote(quote: bool, tool_choice: str) -> None:
    """Quoting constrains the call, so it needs `tool_choice="required"`; otherwise a clear error."""
    if quote and tool_choice != "required":
        raise ValueError('quote=True constrains the call; pass tool_choice="required" with it.')


def is_free_text(spec: dict) -> bool:
    """A string argument without enum or pattern: free text, the kind that can be quoted from the request."""
    return spec.get("type") == "string" and "enum" not in spec and "pattern" not in spec


def is_word_byte(byte: int) -> bool:
    """A letter or digit byte (every byte of a non-ASCII character counts as one)."""
    return byte >= 0x80 or chr(byte).isalnum()


def starts_word(quote: bytes, at: int) -> bool:
    """Does a phrase of the JSON-escaped `quote` start at byte `at` (not inside a word, not at a space)?"""
    if quote[at : at + 1].isspace():
        return False
    if at == 0 or not is_word_byte(quote[at - 1]) or not is_word_byte(quote[at]):
        return True
    return quote[at - 2 : at - 1] == b"\\"  # after an escape such as \n


def starts_phrase(quote: bytes, at: int) -> bool:
    """Does a quoted phrase of the JSON-escaped `quote` start at byte `at`: at a word (`starts_word`), or right after
    an opening quotation mark such as « (whose UTF-8 bytes `starts_word` reads as a word's)?"""
    if starts_word(quote, at):
        return True
    return not quote[at : at + 1].isspace() and any(quote.endswith(mark, 0, at) for mark in QUOTE_OPENERS)


def closes_quotation(quote: bytes, end: int) -> bool:
    """Does the JSON-escaped `quote` close a quotation at byte `end` (», ”, or ' ’ before a non-word)?"""
    if any(quote.startswith(mark, end) for mark in QUOTE_CLOSERS):
        return True
    after = next((end + len(mark) for mark in APOSTROPHES if quote.startswith(mark, end)), None)
    return after is not None and (after == len(quote) or not is_word_byte(quote[after]))


def ends_clause(quote: bytes, end: int) -> bool:
    """Does a phrase of the JSON-escaped `quote` that ends at byte `end` end where a clause does (not at a space)?"""
    if quote[end - 1 : end].isspace():
        return False
    if end == len(quote) or any(quote.startswith(mark, end) for mark in CLAUSE_ENDS):
        return True
    if closes_quotation(quote, end):
        return True
    return quote[end - 1] in CLOSING_MARKS and not is_word_byte(quote[end])


def ends_text(quote: bytes, end: int) -> bool:
    """Does a whole text quoted from the JSON-escaped `quote` that ends at byte `end` end where a sentence, a line or a
    quotation does (see TEXT_ENDS), rather than at a comma or colon inside a sentence?"""
    if end == len(quote) or any(quote.startswith(mark, end) for mark in TEXT_ENDS) or closes_quotation(quote, end):
        return True
    closed = quote[end - 1] in CLOSING_MARKS or any(quote.endswith(mark, 0, end) for mark in QUOTE_CLOSERS)
    return closed and not is_word_byte(quote[end])


def closes_nesting(quote: bytes, at: int, end: int) -> bool:
    """Does the phrase `quote[at:end]` close every bracket and quotation it opens that the request closes later?"""
    phrase, rest = quote[at:end], quote[end:]
    if phrase.count(ESCAPED_QUOTE) % 2 and ESCAPED_QUOTE in rest:
        return False
    return not any(phrase.count(o) > phrase.count(c) and c in rest for o, c in BRACKETS)


def ends_word(quote: bytes, end: int) -> bool:
    """Does a piece of the JSON-escaped `quote` that ends at byte `end` end with a whole word?"""
    if quote[end - 1 : end].isspace():
        return False
    return end == len(quote) or not is_word_byte(quote[end]) or not is_word_byte(quote[end - 1])


def quotes_phrase(quote: bytes, value: bytes, closed: bool = False, clause: bool = True, whole: bool = False) -> bool:
    """Is `value` a phrase of `quote` (or, while still open, the start of one)? A closed phrase ends a clause (with
    `whole`, a sentence, line or quotation: `ends_text`) and leaves no bracket or quotation half-quoted;
    `clause=False`: it need only end with a whole word (or before a closing quotation mark)."""
    if not value:
        return not closed
    at = quote.find(value)
    while at >= 0:
        end = at + len(value)
        if starts_phrase(quote, at) and (
            not closed
            or (
                ends_clause(quote, end) and closes_nesting(quote, at, end) and (not whole or ends_text(quote, end))
                if clause
                else ends_word(quote, end) or closes_quotation(quote, end)
            )
        ):
            return True
        at = quote.find(value, at + 1)
    return False


def digits_pattern(low: str, high: str) -> str:
    """A regex for the decimal numbers from `low` to `high`, two digit strings of the same length."""
    if low == high:
        return low
    if len(low) == 1:
        return f"[{low}-{high}]"
    if low[0] == high[0]:
        return low[0] + digits_pattern(low[1:], high[1:])
    rest, parts = len(low) - 1, []
    if low[1:] != "0" * rest:
        parts.append(low[0] + digits_pattern(low[1:], "9" * rest))
        low = str(int(low[0]) + 1) + "0" * rest
    if high[1:] != "9" * rest:
        parts.append(high[0] + digits_pattern("0" * rest, high[1:]))
        high = str(int(high[0]) - 1) + "9" * rest
    if low[0] <= high[0]:
        parts.append(f"[{low[0]}-{high[0]}][0-9]{{{rest}}}")
    return "(?:" + "|".join(parts) + ")"


def natural_pattern(low: int, high: int) -> str:
    """A regex for the integers from `low` to `high` (0 <= low <= high) as JSON writes them (no leading zeros)."""
    parts = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        start, end = max(low, 10 ** (digits - 1) if digits > 1 else 0), min(high, 10**digits - 1)
        parts.append(digits_pattern(str(start), str(end)))
    return "(?:" + "|".join(parts) + ")"


def integer_pattern(low: int | None = None, high: int | None = None) -> str:
    """A regex for exactly the integers from `low` to `high`; an open side stops INTEGER_LIMIT past 0 or the other."""
    if low is None:
        low = min(-INTEGER_LIMIT, (high if high is not None else 0) - INTEGER_LIMIT)
    if high is None:
        high = max(INTEGER_LIMIT, low + INTEGER_LIMIT)
    if low > high:
        raise GrammarError(f"minimum {low} is above maximum {high}: no integer fits; fix the schema.")
    parts = []
    if low < 0:  # negative numbers: a minus sign before the magnitudes from max(1, -high) to -low
        parts.append("-" + natural_pattern(max(1, -high), -low))
    if high >= 0:
        parts.append(natural_pattern(max(0, low), high))
    return "(?:" + "|".join(parts) + ")"


def _schema_number(value) -> Fraction | None:
    """A bound as an exact fraction (None when absent or not a number)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return Fraction(str(value))


def _integer_bound(spec: dict, key: str) -> int | None:
    """A schema's whole-number `key` (minItems, minLength) rounded up (None when absent)."""
    value = _schema_number(spec.get(key))
    return None if value is None else math.ceil(value)


def fraction_pattern(low: int, high: int) -> str:
    """A number's fraction (".5", ".50", or none for zero) worth `low` to `high` millionths (0 <= low <= high)."""
    parts = [""] if low == 0 else []
    for digits in range(1, NUMBER_DECIMALS + 1):
        unit = 10 ** (NUMBER_DECIMALS - digits)
        first, last = -(-low // unit), high // unit  # the digit strings of this length whose value is in range
        if first <= last:
            parts.append(r"\." + digits_pattern(str(first).zfill(digits), str(last).zfill(digits)))
    return "(?:" + "|".join(parts) + ")"


def magnitude_pattern(low: int, high: int) -> str:
    """A regex for the non-negative numbers from `low` to `high` millionths, as JSON writes them."""
    scale = 10**NUMBER_DECIMALS
    (whole_low, part_low), (whole_high, part_high) = divmod(low, scale), divmod(high, scale)
    if whole_low == whole_high:
        return str(whole_low) + fraction_pattern(part_low, part_high)
    parts = [str(whole_low) + fraction_pattern(part_low, scale - 1)]
    if whole_low + 1 <= whole_high - 1:
        parts.append(natural_pattern(whole_low + 1, whole_high - 1) + fraction_pattern(0, scale - 1))
    parts.append(str(whole_high) + fraction_pattern(0, part_high))
    return "(?:" + "|".join(parts) + ")"


def number_pattern(low: int, high: int) -> str:
    """A regex for exactly the numbers from `low` to `high` millionths with at most NUMBER_DECIMALS decimals."""
    if low > high:
        raise GrammarError(f"no number with {NUMBER_DECIMALS} decimals fits between its bounds; fix the schema.")
    parts = []
    if low < 0:
        parts.append("-" + magnitude_pattern(max(1, -high), -low))
    if high >= 0:
        parts.append(magnitude_pattern(max(0, low), high))
    return "(?:" + "|".join(parts) + ")"


def bounds(spec: dict, unit: Fraction) -> tuple[int | None, int | None]:
    """The schema's lowest and highest value in steps of `unit` (1 for integers), rounded inwards; exclusive bounds
    (a number, or draft 4's `true` beside minimum/maximum) leave out the bound itself."""

    def inward(bound: Fraction, up: bool, exclusive: bool) -> int:
        steps = bound / unit
        whole = math.ceil(steps) if up else math.floor(steps)
        return whole + (1 if up else -1) if exclusive and whole == steps else whole

    above, below = (_schema_number(b) for b in exclusive_bounds(spec))
    low = None if spec.get("exclusiveMinimum") is True else _schema_number(spec.get("minimum"))
    high = None if spec.get("exclusiveMaximum") is True else _schema_number(spec.get("maximum"))
    lows = [inward(b, True, exclusive) for b, exclusive in ((low, False), (above, True)) if b is not None]
    highs = [inward(b, False, exclusive) for b, exclusive in ((high, False), (below, True)) if b is not None]
    return (max(lows) if lows else None), (min(highs) if highs else None)


def _bound(spec: dict, key: str, cap: int) -> int:
    """The schema's `key` bound if it is tighter than the grammar's own `cap`."""
    value = spec.get(key)
    return cap if not isinstance(value, int) or isinstance(value, bool) else min(value, cap)


def string_body(spec: dict, where: str) -> str:
    """A string's content: its `pattern`, else minLength (at least 1) to maxLength free characters."""
    if "pattern" in spec:
        if "minLength" in spec or "maxLength" in spec:
            raise GrammarError(
                f"{where}: the grammar keeps a pattern or a length, not both; put the length in the pattern "
                "(e.g. ^[a-z]{3,8}$) or drop minLength/maxLength."
            )
        try:
            return grammar_pattern(spec["pattern"], where)
        except PatternError as err:
            raise GrammarError(str(err)) from None
    most, least = _bound(spec, "maxLength", MAX_STRING_CHARS), max(_integer_bound(spec, "minLength") or 1, 1)
    if least > most:
        raise GrammarError(f"{where}: minLength {least} is more than the {most} characters the grammar allows.")
    return f"{STRING_CHARS}{{{least},{most}}}"


def kept_keywords(spec: dict) -> set[str] | None:
    """The constraining keywords the grammar keeps for this schema entry (None: it writes no such value)."""
    kind = spec.get("type")
    if any(key in spec for key in CHOICES):
        return set(CHOICES)
    if isinstance(kind, list):
        return {"type"}.union(*(KEPT_KEYWORDS.get(k, set()) for k in kind if isinstance(k, str)))
    if kind is None:
        return {"enum", "const"} if "enum" in spec or "const" in spec else None
    return KEPT_KEYWORDS.get(kind) if isinstance(kind, str) else None


def check_keywords(spec: dict, where: str) -> None:
    """Raise GrammarError for a constraining keyword the grammar would not keep (it would be silently ignored)."""
    kept = kept_keywords(spec)
    if kept is None:
        return  # no type the grammar writes: value_pattern refuses it
    unknown = sorted(set(spec) - kept - ANNOTATIONS)
    if unknown:
        raise GrammarError(
            f"{where}: the grammar cannot keep {', '.join(unknown)}; drop {'it' if len(unknown) == 1 else 'them'}, "
            f"say it with the keywords it keeps ({', '.join(sorted(kept))}), or decode without constraints."
        )


def choice_pattern(alternatives, key: str, where: str) -> str:
    """Any one of several schemas (anyOf, oneOf, a list of types); oneOf only when no value can match two."""
    if not isinstance(alternatives, list) or not alternatives or not all(isinstance(a, dict) for a in alternatives):
        raise GrammarError(f"{where}: {key} needs a list of schemas.")
    kinds = [a.get("type") for a in alternatives]
    if key == "oneOf" and not (
        all(isinstance(k, str) for k in kinds) and len(set(kinds)) == len(kinds) and {"integer", "number"} - set(kinds)
    ):
        raise GrammarError(
            f"{where}: the grammar keeps oneOf only when each schema has its own type (e.g. a string or null), so no "
            "value matches two; use anyOf if any of them will do."
        )
    return "(?:" + "|".join(value_pattern(a, f"{where}.{key}[{i}]") for i, a in enumerate(alternatives)) + ")"


def typed_part(spec: dict, kind: str) -> dict:
    """The part of a schema with a list of types that applies to values of one type."""
    return {k: v for k, v in spec.items() if k in KEPT_KEYWORDS.get(kind, set()) or k in ANNOTATIONS} | {"type": kind}


def allowed_values(spec: dict, where: str) -> list | None:
    """The values a finite schema allows (enum, const, boolean) that its other keywords take; None when not finite."""
    if "enum" in spec or "const" in spec:
        values = list(spec["enum"]) if "enum" in spec else [spec["const"]]
        if "const" in spec:
            values = [v for v in values if json.dumps(v) == json.dumps(spec["const"])]
    elif spec.get("type") == "boolean":
        values = [True, False]
    else:
        return None
    rest = {k: v for k, v in spec.items() if k not in ("enum", "const")}
    kept = []
    for value in values:
        try:
            check_value(where, value, rest)
        except BadArguments:
            continue
        kept.append(value)
    if not kept:
        raise GrammarError(f"{where}: none of the values its enum/const lists fits the rest of its schema.")
    if len(kept) > MAX_ENUM_VALUES:
        raise GrammarError(
            f"{where}: an enum of {len(kept)} values; the grammar keeps at most {MAX_ENUM_VALUES}. Ask for a free "
            "string (and check it yourself), or split the choice."
        )
    return kept


def as_written(value) -> str:
    """A value as the grammar writes it (json.dumps, non-ASCII kept)."""
    return json.dumps(value, ensure_ascii=False)


def value_pattern(spec: dict, where: str) -> str:
    """The regex of one JSON value as `json.dumps` writes it, for a schema entry."""
    check_keywords(spec, where)
    kind = spec.get("type")
    for key in CHOICES:
        if key in spec:
            return choice_pattern(spec[key], key, where)
    values = allowed_values(spec, where) if kind != "array" else None
    if values is not None:
        return "(?:" + "|".join(re.escape(as_written(v)) for v in values) + ")"
    if isinstance(kind, list) and kind and all(isinstance(k, str) for k in kind):
        return choice_pattern([typed_part(spec, k) for k in kind], "type", where)
    if kind == "null":
        return "null"
    if kind == "string":
        return f'"(?:{string_body(spec, where)})"'
    if kind == "integer":
        low, high = bounds(spec, Fraction(1))
        if "multipleOf" in spec:
            return integer_multiples(spec["multipleOf"], low, high, where)
        return integer_pattern(low, high)
    if kind == "number":
        low, high = bounds(spec, Fraction(1, 10**NUMBER_DECIMALS))
        if low is None and high is None:
            return INTEGER + rf"(?:\.[0-9]{{1,{NUMBER_DECIMALS}}})?"
        top = (INTEGER_LIMIT + 1) * 10**NUMBER_DECIMALS - 1
        return number_pattern(-top if low is None else low, top if high is None else high)
    if kind == "array":
        item_spec = spec.get("items")
        if not isinstance(item_spec, dict):
            raise GrammarError(
                f'{where}: an array needs `items`, one schema its items follow (e.g. {{"type": "string"}}).'
            )
        item = value_pattern(item_spec, f"{where}[]")
        most, least = _bound(spec, "maxItems", MAX_ARRAY_ITEMS), _integer_bound(spec, "minItems") or 0
        if spec.get("uniqueItems") is True:
            values = allowed_values(item_spec, f"{where}[]")
            if values is None and item_spec.get("type") != "string":
                raise GrammarError(
                    f"{where}: the grammar keeps uniqueItems only for strings and items it can list (enum, const, "
                    "boolean); list the values as an enum, or drop uniqueItems."
                )
            most = most if values is None else min(most, len(values))
        if least > most:
            raise GrammarError(f"{where}: minItems {least} is more than the {most} items the grammar allows.")
        if most < 1:
            return r"\[\]"
        items = rf"{item}(?:, {item}){{{max(least, 1) - 1},{most - 1}}}"
        return rf"\[{items}\]" if least else rf"\[(?:{items})?\]"
    combined = sorted(set(spec) & {"allOf", "$ref", "not", "if"})
    raise GrammarError(
        f"{where}: the grammar cannot express "
        + (f"{', '.join(combined)}; give the argument one type:" if combined else f"type {kind!r}; use")
        + " string, integer, number, boolean, array or enum arguments, or decode without constraints."
    )


def integer_multiples(step, low: int | None, high: int | None, where: str) -> str:
    """A regex listing the integers from `low` to `high` that are multiples of `step` (at most MAX_MULTIPLES)."""
    step = _schema_number(step)
    if step is None or step <= 0:
        raise GrammarError(f"{where}: multipleOf must be a number above 0.")
    whole = step.numerator  # the integers that are multiples of p/q (lowest terms) are the multiples of p
    first, last = (None, None) if low is None or high is None else (-(-low // whole), high // whole)
    if first is None or last - first + 1 > MAX_MULTIPLES:
        raise GrammarError(
            f"{where}: the grammar keeps multipleOf by listing the multiples, so it needs minimum and maximum "
            f"with at most {MAX_MULTIPLES} multiples between them."
        )
    if last < first:
        raise GrammarError(f"{where}: no multiple of {step} lies between its bounds; fix the schema.")
    return "(?:" + "|".join(str(k * whole) for k in range(first, last + 1)) + ")"


def arguments_pattern(name: str, parameters: dict) -> str:
    """The arguments object: required keys always, optional ones may be left out, in schema order."""
    unknown = sorted(set(parameters) - KEPT_OBJECT_KEYWORDS - ANNOTATIONS)
    if unknown:
        raise GrammarError(
            f"{name}: the grammar cannot keep {', '.join(unknown)} on the arguments object; drop "
            f"{'it' if len(unknown) == 1 else 'them'}, or decode without constraints."
        )
    props, required = parameters.get("properties", {}), set(parameters.get("required", []))
    missing = sorted(required - set(props))
    if missing:
        raise GrammarError(f"{name}: required lists {', '.join(missing)}, which properties does not define.")
    if len(props) > MAX_ARGUMENTS:
        raise GrammarError(f"{name}: {len(props)} arguments; the grammar writes at most {MAX_ARGUMENTS}.")
    keys = list(props)
    pair = {p: re.escape(json.dumps(p)) + ": " + value_pattern(props[p], f"{name}.{p}") for p in keys}

    def rest(start: int) -> str:
        """The keys after the first one written, each after its comma; optional ones may be left out."""
        return "".join(f"(?:, {pair[k]})" + ("" if k in required else "?") for k in keys[start:])

    firsts = []  # which key comes first: any up to the first required one (or none, when all are optional)
    for i, key in enumerate(keys):
        firsts.append(pair[key] + rest(i + 1))
        if key in required:
            break
    else:
        firsts.append("")
    return r"\{(?:" + "|".join(firsts) + r")\}"


def call_pattern(schemas: Sequence[dict]) -> str:
    """The regex of every valid call to any of the tools."""
    calls = []
    for schema in schemas:
        fn = schema.get("function", schema)
        calls.append(
            re.escape(json.dumps(fn["name"]))
            + r', "arguments": '
            + arguments_pattern(fn["name"], fn.get("parameters", {}))
        )
    return r'\{"tool": (?:' + "|".join(calls) + r")\}"


def call_head(tool: str) -> bytes:
    """How every call to `tool` starts, up to its first argument, as the grammar writes it."""
    return b'{"tool": ' + json.dumps(tool).encode() + b', "arguments": {'


def properties_by_tool(schemas: Sequence[dict]) -> dict[str, dict]:
    """Each tool's argument schemas by name, in schema order (the order the grammar writes them in)."""
    return {
        fn["name"]: fn.get("parameters", {}).get("properties", {}) for fn in (s.get("function", s) for s in schemas)
    }


class CallGrammar:
    """Which replies can still become a valid call (and, with `quote`, one whose free text quotes it).

    `below`: cross-argument rules (an integer below another; default: the course tools' `functions.BELOW` for the
    tools among `schemas`; pass `()` for tools of your own). `whole`: the (tool, argument) pairs whose quote is a
    whole text, ending where a sentence, line or quotation does (default: `functions.WHOLE_TEXTS`). `bare`: the
    reply is the one tool's arguments object alone (see `object_grammar`)."""

    def __init__(
        self,
        schemas: Sequence[dict],
        quote: str | None = None,
        below: Sequence[Below] | None = None,
        whole: Sequence[tuple[str, str]] | None = None,
        bare: bool = False,
    ):
        if bare and len(schemas) != 1:
            raise ValueError(f"A bare grammar writes one object: pass one schema, not {len(schemas)}.")
        fn = schemas[0].get("function", schemas[0]) if bare else None
        pattern = arguments_pattern(fn["name"], fn.get("parameters", {})) if fn else call_pattern(schemas)
        if len(pattern) > MAX_GRAMMAR_CHARS:
            raise GrammarError(
                f"The tools' schemas make a grammar of {len(pattern):,} characters; the most kept is "
                f"{MAX_GRAMMAR_CHARS:,}. Shorten enums and patterns, pass fewer tools, or decode without constraints."
            )
        self.pattern = regex.compile(pattern.encode())
        # only an ambiguous client pattern can make one match slow; the timeout costs ~30% of a match's time
        self.timeout = MATCH_TIMEOUT_S if any(needs_timeout(p) for p in schema_patterns(list(schemas))) else None
        head_of = (lambda tool: b"{") if bare else call_head  # noqa: E731  # where a tool's arguments start
        by_tool = properties_by_tool(schemas)
        # each rule that applies, with what the check needs at every step: the call's head, the keys after `high`
        self.below = [
            (
                r,
                head_of(r.tool),
                after(list(by_tool[r.tool]), r.high),
            )
            for r in (BELOW if below is None else below)
            if {r.low, r.high} <= set(by_tool.get(r.tool, {}))
        ]
        self.unique = [  # arrays whose items must differ: each with the items it may hold, as written (None: strings)
            (head_of(tool), key, None if values is None else [as_written(v).encode() for v in values])
            for tool, props in by_tool.items()
            for key, spec in props.items()
            if spec.get("type") == "array" and spec.get("uniqueItems") is True
            for values in [allowed_values(spec.get("items", {}), key)]
        ]
        self.unseen_cache: dict[tuple[bytes, bytes, frozenset[bytes]], bool] = {}
        keys = sorted({p for props in by_tool.values() for p, spec in props.items() if is_free_text(spec)})
        # a free-text value's length matters to the pattern only up to the longest minLength (else: empty or not)
        self.least_chars = max(
            [1] + [_integer_bound(spec, "minLength") or 1 for props in by_tool.values() for spec in props.values()]
        )
        self.quote = None if quote is None else json.dumps(quote, ensure_ascii=False)[1:-1].encode()
        self.numbers = numbers_in(self.quote or b"")
        key_choice = b"|".join(re.escape(k).encode() for k in keys) or b"(?!)"
        self.free_values = regex.compile(rb'"(' + key_choice + rb')": "((?:[^"\\]|\\.)*\\?)')
        self.whole = {
            (head_of(tool), json.dumps(arg).encode()[1:-1])
            for tool, arg in (WHOLE_TEXTS if whole is None else whole)
            if arg in by_tool.get(tool, {})
        }
        self.open_free_value = regex.compile(rb'"(?:' + key_choice + rb')": "((?:[^"\\]|\\.)*)\Z')
        self.closed_free_values = regex.compile(rb'("(?:' + key_choice + rb')": ")(?:[^"\\]|\\.)*(")')

    def structure(self, text: bytes) -> tuple[bytes, bytes]:
        """What the call pattern's verdict on `text` depends on: closed free-text values shrink to one letter."""
        return self.pattern.pattern, self.closed_free_values.sub(rb"\1x\2", text)

    def same_verdict(self, key: tuple[bytes, bytes], text: bytes) -> bytes:
        """A text the call pattern judges as `text`, whose `structure` is `key`: the structure's own, shorter text
        (closed free-text values as one letter) when every free-text value may be one letter, else `text`."""
        return key[1] if self.least_chars == 1 else text

    def accepts_prefix(self, text: bytes) -> bool:
        """Does the call pattern accept `text` as the start of a call (no UTF-8 or quote checks)?"""
        return self.matches(text, partial=True)

    def matches(self, text: bytes, partial: bool = False) -> bool:
        """Does the call pattern match `text` whole (`partial`: or its start)? A GrammarError after MATCH_TIMEOUT_S."""
        try:
            return self.pattern.fullmatch(text, partial=partial, timeout=self.timeout) is not None
        except TimeoutError:
            raise GrammarError(
                f"Matching the reply against the tools' schemas took over {MATCH_TIMEOUT_S} s; simplify their "
                "patterns, or decode without constraints."
            ) from None

    def quotes_ok(self, text: bytes, new_from: int = 0, loose: bool = False) -> bool:
        """Is every free-text value so far a phrase of the quoted request (always true without `quote`)?

        A value closed at byte `new_from` or later must end a clause (unless `loose`, when the budget runs out);
        earlier ones were checked when they closed, so they need only end with a whole word."""
        return self.quote is None or all(
            quotes_phrase(
                self.quote,
                m.group(2),
                closed=text[m.end() : m.end() + 1] == b'"',
                clause=m.end() >= new_from and not loose,
                whole=any(text.startswith(head) and m.group(1) == arg for head, arg in self.whole),
            )
            for m in self.free_values.finditer(text)
        )

    def numbers_ok(self, text: bytes, new_from: int = 0) -> bool:
        """With `quote`, is every number the arguments write outside free text one the request writes — and one still
        being written the start of one that can end the call's value there? True without `quote`, or when the
        request writes no number. Bytes before `new_from - 1` were checked already: with no digit from there on,
        `text` passes at once. (A preference, not a rule: `CallConstraint` falls back when no token keeps it.)"""
        if not self.numbers or not any(byte in DIGITS for byte in text[max(new_from - 1, 0) :]):
            return True
        bare = self.closed_free_values.sub(rb"\1x\2", text)  # free text quotes the request on its own
        inside = self.open_free_value.search(bare)
        start = bare.find(b'"arguments": ')
        if start < 0:
            return True
        bare = bare[start : inside.start(1) if inside else len(bare)]
        runs = list(re.finditer(rb"[0-9]+", bare))
        if any(run.group() not in self.numbers for run in runs if run.end() < len(bare) or inside):
            return False
        if not runs or runs[-1].end() < len(bare) or inside:
            return True
        written = runs[-1].group()  # the number still being written: some request number must finish it here
        return any(
            self.accepts_prefix(ended) and self.below_ok(ended)
            for number in self.numbers
            if number.startswith(written)
            for ended in (text + number[len(written) :] + end for end in (b",", b"}", b'"'))
        )

    def below_ok(self, text: bytes, final: bool = False) -> bool:
        """Can every `below` rule of the tool being called still hold (`final`: does it hold in the whole call)?

        A rule is checked once both numbers are known: `high` written whole, or left out and so its default (the
        call has moved past it, or ended); `low` written whole, or begun (a non-negative number only grows)."""
        for rule, head, later in self.below:
            if not text.startswith(head):
                continue
            args = text[len(head) :]
            low, high = integer_written(args, rule.low), integer_written(args, rule.high)
            if high is None:
                if rule.high_default is None or not (final or any(key_written(args, k) for k in later)):
                    continue
                high = (rule.high_default, True)
            if low is None or low[0] is None or not high[1]:
                continue
            if (low[1] or low[0] >= 0) and low[0] >= high[0]:
                return False
        return True

    def unique_ok(self, text: bytes) -> bool:
        """Are the items of every `uniqueItems` array written so far different, and can the item being written
        still become one not written yet?"""
        for head, key, values in self.unique:
            if not text.startswith(head):
                continue
            start = value_start(text[len(head) :], key)
            if start is None or text[len(head) + start : len(head) + start + 1] != b"[":
                continue
            at, seen = len(head) + start + 1, set()
            if values is None:
                if not self.unique_strings_ok(text, at):
                    return False
                continue
            while at < len(text) and text[at : at + 1] != b"]":
                done = next(
                    (
                        v
                        for v in values
                        if text.startswith(v, at) and text[at + len(v) : at + len(v) + 1] in (b",", b"]")
                    ),
                    None,
                )
                if done is None:  # the item being written
                    return any(v.startswith(text[at:]) and v not in seen for v in values)
                if done in seen:
                    return False
                seen.add(done)
                at += len(done) + (2 if text[at + len(done) : at + len(done) + 1] == b"," else 0)
        return True

    def unique_strings_ok(self, text: bytes, at: int) -> bool:
        """`unique_ok` for an array of strings that opens at byte `at`: the strings closed so far differ, and the one
        being written can still end as none of them."""
        seen: dict[object, bytes] = {}
        while at < len(text) and text[at : at + 1] != b"]":
            m = JSON_STRING_ITEM.match(text, at)
            if m is None:  # not a string item: the call pattern judges it
                return True
            if m.group("open") is not None:
                return self.may_become_unseen(text[:at], m.group("open"), frozenset(seen.values()))
            value = json.loads(m.group("closed"))
            if value in seen:
                return False
            seen[value], at = m.group("closed"), m.end()
            if m.group("end") == b"]":
                break
        return True

    def may_become_unseen(self, before: bytes, item: bytes, seen: frozenset[bytes]) -> bool:
        """Can the string item begun as `item` (after `before`) still close as a string not in `seen`?"""
        ahead = [s for s in seen if s.startswith(item)]
        if not ahead:
            return True
        key = (before, item, seen)  # the decoder asks again for every token it weighs
        if key not in self.unseen_cache:
            self.unseen_cache[key] = any(
                self.may_become_unseen(before, longer, seen)
                if any(s.startswith(longer) for s in ahead)
                else self.accepts_prefix(before + longer)
                for longer in (item + bytes([byte]) for byte in range(256))
                if longer not in seen
            )
        return self.unseen_cache[key]

    def viable(self, text: bytes) -> bool:
        """Can `text` (UTF-8, possibly ending mid-character) still be extended to a valid call?"""
        return (
            utf8_prefix_ok(text)
            and self.accepts_prefix(text)
            and self.quotes_ok(text)
            and self.below_ok(text)
            and self.unique_ok(text)
        )

    def complete(self, text: bytes) -> bool:
        """Is `text` a whole valid call?"""
        return (
            utf8_prefix_ok(text, final=True)
            and self.matches(text)
            and self.quotes_ok(text)
            and self.below_ok(text, final=True)
            and self.unique_ok(text)
        )


def object_grammar(schema: dict, name: str = "response") -> CallGrammar:
    """The grammar of a JSON object that follows `schema` (an object schema with properties), written alone: an answer
    under OpenAI's response_format json_schema. Keys in schema order, every keyword kept as for a call's arguments."""
    if not isinstance(schema, dict) or schema.get("type", "object") != "object" or not schema.get("properties"):
        raise GrammarError(f"{name}: the schema must be an object schema (type object) that lists its properties.")
    return CallGrammar([{"type": "function", "function": {"name": name, "parameters": schema}}], below=(), bare=True)


def after(keys: list[str], key: str) -> tuple[str, ...]:
    """The keys that come after `key` in `keys`."""
    return tuple(keys[keys.index(key) + 1 :])


def numbers_in(text: bytes) -> set[bytes]:
    """The numbers a (JSON-escaped) text writes, as digits: each run of digits, and without its leading zeros."""
    runs = re.findall(rb"[0-9]+", text)
    return set(runs) | {str(int(run)).encode() for run in runs}


def value_start(args: bytes, key: str) -> int | None:
    """Where the value of argument `key` starts in a call's arguments text (after its opening brace); None when the
    argument is not written."""
    found = key_pattern(key).search(args)
    return None if found is None else found.end()


@lru_cache(maxsize=256)
def key_pattern(key: str) -> re.Pattern:
    """The pattern of argument `key`'s name, as a call writes it before the value (compiled once per key)."""
    return re.compile(rb"(?:^| )" + re.escape(json.dumps(key).encode()) + rb": ")


def key_written(args: bytes, key: str) -> bool:
    """Has a call's arguments text (after its opening brace) begun the argument `key`?"""
    return value_start(args, key) is not None


def integer_written(args: bytes, key: str) -> tuple[int | None, bool] | None:
    """The integer argument `key` as a call's arguments text gives it so far: (value, written whole?), value None
    while only a minus sign is written; None when the argument is not written."""
    start = value_start(args, key)
    if start is None:
        return None
    sign, digits = re.match(rb"(-?)([0-9]*)", args[start:]).groups()
    value = None if not digits else -int(digits) if sign else int(digits)
    return value, start + len(sign) + len(digits) < len(args)


def utf8_prefix_ok(data: bytes, final: bool = False) -> bool:
    """Is `data` valid UTF-8, allowing (unless `final`) an unfinished character at the end?"""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return not final and err.reason == "unexpected end of data" and err.end == len(data)
    return True


def utf8_tail(data: bytes) -> bytes:
    """The last (possibly unfinished) character of `data`: enough to check what may follow it."""
    return data[-4:].lstrip(bytes(range(0x80, 0xC0)))


def token_bytes(tokenizer) -> list[bytes | None]:
    """The bytes each token id adds to a text (None for special ones), for byte-level and SentencePiece vocabularies."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    added = getattr(tokenizer, "added_tokens_encoder", {})  # a property that builds a new dict at every read
    special = set(tokenizer.all_special_ids) | {i for i, t in enumerate(vocab) if t in added}
    byte_level = any(t is not None and "Ġ" in t for t in vocab)
    decode = _byte_level_decoder() if byte_level else _sentencepiece_decoder()
    return [None if i in special or t is None else decode(t) for i, t in enumerate(vocab)]


@lru_cache(maxsize=4)
def token_bytes_of(tokenizer) -> tuple[bytes | None, ...]:
    """`token_bytes`, computed once per tokenizer (logprobs of every request read it)."""
    return tuple(token_bytes(tokenizer))


class TokenTrie:
    """Token ids in a byte trie of their texts, to find the ones a prefix test accepts without testing them all."""

    def __init__(self, pieces: Sequence[bytes | None], ids: Iterable[int] | None = None):
        self.root: dict = {}
        for i in range(len(pieces)) if ids is None else ids:
            if not pieces[i]:
                continue
            node = self.root
            for byte in pieces[i]:
                node = node.setdefault(byte, {})
            node.setdefault(None, []).append(i)  # the key None holds the ids whose text ends here

    def accepted(self, accepts: Callable[[bytes], bool]) -> list[int]:
        """The ids whose text `accepts` takes, sorted; a text is tested only when all its prefixes pass, so
        `accepts` must be prefix-closed (true for a text implies true for its prefixes), as a partial match is."""
        found, stack = [], [(b"", self.root)]
        while stack:
            prefix, node = stack.pop()
            for byte, child in node.items():
                if byte is None:
                    continue
                longer = prefix + bytes((byte,))
                if accepts(longer):
                    found.extend(child.get(None, ()))
                    stack.append((longer, child))
        return sorted(found)


def by_first_byte(pieces: Sequence[bytes | None]) -> dict[int, list[int]]:
    """Token ids grouped by the first byte of their text (tokens without text left out)."""
    groups: dict[int, list[int]] = {}
    for i, piece in enumerate(pieces):
        if piece:
            groups.setdefault(piece[0], []).append(i)
    return groups


def _byte_level_decoder():
    """GPT-2's printable stand-ins for bytes, inverted."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, n = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    to_byte = {chr(c): b for b, c in zip(printable, chars)}
    return lambda token: bytes(to_byte[c] for c in token) if all(c in to_byte for c in token) else None


def _sentencepiece_decoder():
    """'▁' is a space and '<0xHH>' a raw byte (byte fallback)."""

    def decode(token: str) -> bytes:
        if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
            return bytes([int(token[3:5], 16)])
        return token.replace("▁", " ").encode()

    return decode


class CallConstraint:
    """`prefix_allowed_tokens_fn` for `model.generate`: each row may only write a call its grammar accepts."""

    def __init__(
        self,
        tokenizer,
        grammars: Sequence[CallGrammar],
        prompt_length: int,
        max_new_tokens: int | Sequence[int] | None = None,
    ):
        self.grammars, self.prompt_length = list(grammars), prompt_length
        self.budgets = budgets_per_row(max_new_tokens, len(self.grammars))
        self.structural: dict[tuple[bytes, bytes], list[int]] = {}
        self.string_ends: dict[tuple[bytes, bytes], list[int]] = {}
        self.pieces = token_bytes(tokenizer)
        self.eos, self.pad = tokenizer.eos_token_id, tokenizer.pad_token_id
        self.by_first = by_first_byte(self.pieces)
        # Inside a free-text string any token without a quote, backslash or control byte keeps the string open.
        self.plain = [i for i, p in enumerate(self.pieces) if p and not any(b in b'"\\' or b < 0x20 for b in p)]
        plain = set(self.plain)
        self.plain_by_first = {first: [i for i in ids if i in plain] for first, ids in self.by_first.items()}
        self.other = [i for i, p in enumerate(self.pieces) if p and i not in plain]
        self.plain_after: dict[bytes, list[int]] = {}
        self.trie, self.other_trie = TokenTrie(self.pieces), TokenTrie(self.pieces, self.other)
        self.probe = b"\x7f" * max(len(p) for p in self.pieces if p)

    def for_rows(
        self, grammars: Sequence[CallGrammar], prompt_length: int, max_new_tokens: int | Sequence[int] | None = None
    ) -> CallConstraint:
        """The same constraint for another batch of rows (token tables and structure cache shared, not rebuilt)."""
        other = copy.copy(self)
        other.grammars, other.prompt_length = list(grammars), prompt_length
        other.budgets = budgets_per_row(max_new_tokens, len(other.grammars))
        return other

    def batches(self, grammars: Sequence[CallGrammar], max_new_tokens: int | Sequence[int] | None = None):
        """`generate_texts`' per-batch factory: the constraint for each batch's rows of `grammars` (and budgets)."""
        grammars, budgets = list(grammars), budgets_per_row(max_new_tokens, len(grammars))
        return lambda rows, prompt_length: self.for_rows(grammars[rows], prompt_length, budgets[rows])

    def closing_time(self, generated: int, row: int = 0) -> bool:
        """Is row `row`'s budget so nearly spent that open strings and lists must close now (see CLOSING_SHARE)?"""
        budget = self.budgets[row]
        return budget is not None and budget - generated <= budget * CLOSING_SHARE

    def __call__(self, batch_id: int, input_ids) -> list[int]:
        generated = input_ids[self.prompt_length :].tolist()
        if self.eos in generated:
            return [self.pad if self.pad is not None else self.eos]
        text = b"".join(self.pieces[i] or b"" for i in generated)
        grammar = self.grammars[batch_id]
        tail = utf8_tail(text)
        closing = self.closing_time(len(generated), batch_id)
        allowed = self.in_free_text(grammar, text, tail, closing)
        if allowed is None:
            allowed = [
                i
                for i in self.structurally_allowed(grammar, text)
                if utf8_prefix_ok(tail + self.pieces[i])
                and grammar.quotes_ok(text + self.pieces[i], len(text))
                and grammar.below_ok(text + self.pieces[i])
                and grammar.unique_ok(text + self.pieces[i])
            ]
            # with `quote`, numbers the request writes where the call can take one (else any the call can take)
            allowed = [i for i in allowed if grammar.numbers_ok(text + self.pieces[i], len(text))] or allowed
            if closing:  # late in the budget: end the array or object, or at least open no new item or key
                closers = [i for i in allowed if any(b in b"]}" for b in self.pieces[i])]
                allowed = closers or [i for i in allowed if b"," not in self.pieces[i]] or allowed
        if not allowed or grammar.complete(text):  # a dead end (none seen so far) ends the reply, unparsed
            allowed.append(self.eos)
        return allowed

    def structurally_allowed(self, grammar: CallGrammar, text: bytes) -> list[int]:
        """Tokens the call pattern accepts after `text`, cached by structure (rows share most of it)."""
        key = grammar.structure(text)
        if key not in self.structural:
            self.structural[key] = self.accepted_after(grammar, key, text, self.trie)
        return self.structural[key]

    @staticmethod
    def accepted_after(grammar: CallGrammar, key, text: bytes, trie: TokenTrie) -> list[int]:
        """The tokens of `trie` the call pattern accepts after `text`, whose structure is `key` (tested on the
        structure's shorter text where that gives the same verdict)."""
        shorter = grammar.same_verdict(key, text)
        return trie.accepted(lambda piece: grammar.accepts_prefix(shorter + piece))

    @staticmethod
    def extends(grammar: CallGrammar, text: bytes, tail: bytes, piece: bytes, loose: bool = False) -> bool:
        """Is `text + piece` viable, given that `text` is (only the new bytes need a UTF-8 check)?"""
        return (
            utf8_prefix_ok(tail + piece)
            and grammar.accepts_prefix(text + piece)
            and grammar.quotes_ok(text + piece, len(text), loose)
        )

    def in_free_text(self, grammar: CallGrammar, text: bytes, tail: bytes, closing: bool = False) -> list[int] | None:
        """The fast path inside a free-text string; None when `text` is not inside one. `closing`: only tokens that
        can end the string (a quote, an escape) unless none fits, so a long value still leaves room for the call."""
        if not grammar.accepts_prefix(text + self.probe):
            return None
        match = grammar.open_free_value.search(text)
        if grammar.quote is not None and match is None:
            return None
        enders = [
            i
            for i in self.string_enders(grammar, text, match)
            if utf8_prefix_ok(tail + self.pieces[i]) and grammar.quotes_ok(text + self.pieces[i], len(text))
        ]
        if closing:  # end the value, mid-clause (but at a word's end) if it must
            closes = lambda i: not grammar.open_free_value.search(text + self.pieces[i])  # noqa: E731
            closers = [i for i in enders if closes(i)] or [
                i for i in self.other if closes(i) and self.extends(grammar, text, tail, self.pieces[i], loose=True)
            ]
            if closers:
                return closers
        if grammar.quote is None:
            return self.plain_fitting(tail) + enders
        return [
            i for i in self.phrase_tokens(grammar.quote, match.group(1)) if utf8_prefix_ok(tail + self.pieces[i])
        ] + enders

    def plain_fitting(self, tail: bytes) -> list[int]:
        """The plain tokens that keep the text valid UTF-8 after `tail` (its last, maybe unfinished, character).

        Cached by the unfinished character (b"" after a whole one: UTF-8 restarts at every character), so the
        fast path does not re-check the whole vocabulary at every step (32k tokens on TinyLlama and Mistral)."""
        key = b"" if utf8_prefix_ok(tail, final=True) else tail
        if key not in self.plain_after:
            self.plain_after[key] = [i for i in self.plain if utf8_prefix_ok(key + self.pieces[i])]
        return self.plain_after[key]

    def string_enders(self, grammar: CallGrammar, text: bytes, open_value) -> list[int]:
        """The tokens with a quote, backslash or control byte that the call pattern accepts after `text`, inside a
        free-text string whose length bound is not near (`in_free_text` probed it). Only the string's length up to
        the longest minLength (`least_chars`; without one, its emptiness) matters to the pattern then, so they are
        cached by the structure before the string, with a stand-in of that many letters."""
        if open_value is None:
            return [i for i in self.other if grammar.accepts_prefix(text + self.pieces[i])]
        written = len(STRING_CHAR.findall(open_value.group(1)))
        stand_in = text[: open_value.start(1)] + b"a" * min(written, grammar.least_chars)
        key = grammar.structure(stand_in)
        if key not in self.string_ends:
            self.string_ends[key] = self.accepted_after(grammar, key, stand_in, self.other_trie)
        return self.string_ends[key]

    def phrase_tokens(self, quote: bytes, value: bytes) -> list[int]:
        """The plain tokens that keep `value + token` the start of a phrase of `quote` (see `quotes_phrase`)."""
        found: set[int] = set()
        at = quote.find(value)
        while at >= 0:
            end = at + len(value)
            if end < len(quote) and starts_phrase(quote, at):
                found.update(
                    i for i in self.plain_by_first.get(quote[end], ()) if quote.startswith(self.pieces[i], end)
                )
            at = quote.find(value, at + 1)
        return sorted(found)


def reply_budgets(
    tokenizer, copied: Sequence[str | None], max_new_tokens: int | Sequence[int] | None = None
) -> list[int]:
    """Each reply's budget: `max_new_tokens` when given (one, or one per reply); else room to copy its text whole (the
    tokens of `copied[i]`, JSON-escaped, plus COPY_FRAME_TOKENS) before a constrained call must start closing
    (CLOSING_SHARE), and at least REPLY_TOKENS."""
    if max_new_tokens is not None:
        return budgets_per_row(max_new_tokens, len(copied))
    texts = [json.dumps(text or "", ensure_ascii=False)[1:-1] for text in copied]
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []
    return [max(REPLY_TOKENS, math.ceil((n + COPY_FRAME_TOKENS) / (1 - CLOSING_SHARE))) for n in lengths]


@lru_cache(maxsize=4)
def vocabulary_constraint(tokenizer) -> CallConstraint:
    """A constraint with no rows yet: its token tables and structure cache, built once per tokenizer."""
    return CallConstraint(tokenizer, [], 0)


def constrained_generate(
    model,
    tokenizer,
    texts: Sequence[str],
    schemas: Sequence[dict],
    quotes: Sequence[str | None] | None = None,
    max_new_tokens: int | Sequence[int] | None = None,
    adapter_names: Sequence[str] | None = None,
    batch_size: int = 16,
) -> list[str]:
    """Greedy tool calls for rendered chat texts, constrained to the schemas (and to quoting `quotes[i]`);
    `max_new_tokens`: one budget, or one per text; None: room for each call to quote its request whole (see
    `reply_budgets`)."""
    from ..models import generate_texts

    quotes = list(quotes) if quotes is not None else [None] * len(texts)
    if len(quotes) != len(texts):
        raise ValueError(f"Got {len(texts)} texts but {len(quotes)} quotes; pass one quote (or None) per text.")
    budgets = reply_budgets(tokenizer, quotes, max_new_tokens)
    constraint = vocabulary_constraint(tokenizer).batches([CallGrammar(schemas, q) for q in quotes], budgets)
    return generate_texts(model, tokenizer, texts, budgets, adapter_names, batch_size, allowed_tokens=constraint)
