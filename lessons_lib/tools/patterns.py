"""A schema's string `pattern`, rewritten for the call grammar, which matches JSON-escaped UTF-8 bytes.

A client's `pattern` speaks of the decoded string ("a quote", "any character"), while the grammar reads the bytes the
model writes: `"` as `\\"`, a line break as `\\n`, "ё" as two bytes. `grammar_pattern` parses the pattern (Python's own
regex parser) and writes each character class as the bytes of its JSON-escaped characters, so every string the
grammar completes decodes to one the pattern matches (the grammar matches it whole, as if anchored: a tightening
of JSON Schema's search). What it cannot rewrite exactly is refused with a `PatternError` that says what to change:
backreferences, lookarounds, atomic groups, possessive repeats, word boundaries, inline flags, anchors inside the
pattern, and classes that list more than MAX_CLASS_CHARS non-ASCII characters. `\\d`, `\\w`, `\\s` and their negations
keep to ASCII (a tightening too). A pattern whose repeats are ambiguous, the kind a backtracking matcher can take
exponential time on (`(a|aa)+`, `(a+)+`, `a?a?a?aaa`), is refused too (`check_unambiguous`: Glushkov's
one-unambiguity test, with `x{m,n}` read as `x x*`), so one request's schema cannot stall the decoder that serves
every request. Where a kept pattern is ambiguous at all (`needs_timeout`), `CallGrammar` also stops any one match
after `constrained.MATCH_TIMEOUT_S`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache

try:  # Python 3.11+
    from re import _constants as sre
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as sre  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

MAX_PATTERN_CHARS = 1000  # a client pattern's length
MAX_CLASS_CHARS = 256  # the most non-ASCII characters one class may list
MAX_AMBIGUOUS_POINTS = 2  # places where the next character may belong to two parts (each can cost a factor of n)
MAX_REPEAT = 400  # an open repeat ({2,}, +, *) stops here, as free text does (constrained.MAX_STRING_CHARS)
# Any one non-ASCII character as UTF-8 bytes (the grammar's regex is compiled from this text as bytes).
NON_ASCII = r"(?:[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3})"
ASCII_CATEGORIES = {  # \d, \w, \s as ASCII ranges
    sre.CATEGORY_DIGIT: ((48, 57),),
    sre.CATEGORY_WORD: ((48, 57), (65, 90), (95, 95), (97, 122)),
    sre.CATEGORY_SPACE: ((9, 13), (32, 32)),
}
NEGATED_CATEGORIES = {
    sre.CATEGORY_NOT_DIGIT: sre.CATEGORY_DIGIT,
    sre.CATEGORY_NOT_WORD: sre.CATEGORY_WORD,
    sre.CATEGORY_NOT_SPACE: sre.CATEGORY_SPACE,
}
REFUSED = {  # parser nodes the grammar cannot rewrite, with what to do instead
    sre.GROUPREF: "a backreference (\\1): spell the repeated part out",
    sre.GROUPREF_EXISTS: "a conditional group (?(1)...): use an alternation",
    sre.ASSERT: "a lookahead or lookbehind: say it with plain characters and repeats",
    sre.ASSERT_NOT: "a negative lookahead or lookbehind: use a negated class [^...]",
}


class PatternError(ValueError):
    """A pattern the grammar cannot rewrite exactly (the message says what to change)."""


@dataclass
class CharSet:
    """The characters one position of the pattern matches: `ranges`, or (`negated`) every character but those."""

    ranges: list[tuple[int, int]] = field(default_factory=list)
    negated: bool = False
    ascii_only: bool = False  # a negated \W, \D or \S: only its ASCII members (Unicode ones are not listed)

    def has(self, code: int) -> bool:
        """Does the set hold character `code`?"""
        inside = any(low <= code <= high for low, high in self.ranges)
        if self.negated:
            return not inside and (code < 128 or not self.ascii_only)
        return inside

    def non_ascii(self) -> list[int] | None:
        """Its non-ASCII characters, listed (None: every one, for a negated set that names none)."""
        if self.negated:
            return [] if self.ascii_only else None
        return [c for low, high in self.ranges for c in range(max(low, 128), high + 1)]


def json_bytes(code: int) -> str:
    """The regex of one character as json.dumps writes it inside a string (non-ASCII kept)."""
    return re.escape(json.dumps(chr(code), ensure_ascii=False)[1:-1])


def class_regex(chars: CharSet, where: str) -> str:
    """The regex of one character of `chars`, as JSON-escaped UTF-8 bytes."""
    plain = [c for c in range(0x20, 0x80) if c not in (0x22, 0x5C) and chars.has(c)]
    escaped = [c for c in (*range(0x20), 0x22, 0x5C) if chars.has(c)]
    parts = []
    if plain:
        parts.append("[" + "".join(re.escape(chr(c)) if chr(c) in "-]^[\\" else chr(c) for c in plain) + "]")
    parts += [json_bytes(c) for c in escaped]
    others = chars.non_ascii()
    if others is None:
        parts.append(NON_ASCII)
    elif len(others) > MAX_CLASS_CHARS:
        raise PatternError(
            f"{where}: a class lists {len(others)} non-ASCII characters; the grammar lists at most {MAX_CLASS_CHARS}. "
            "Name fewer, or use a negated class such as [^,]."
        )
    else:
        parts += [re.escape(chr(c)) for c in others]
    if not parts:
        raise PatternError(f"{where}: a class matches no character a JSON string can hold.")
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def class_items(items: list, where: str) -> CharSet:
    """A CharSet from the items of a parsed [...] class."""
    chars = CharSet()
    for op, value in items:
        if op is sre.NEGATE:
            chars.negated = True
        elif op is sre.LITERAL:
            chars.ranges.append((value, value))
        elif op is sre.RANGE:
            chars.ranges.append(value)
        elif op is sre.CATEGORY and value in ASCII_CATEGORIES:
            chars.ranges += ASCII_CATEGORIES[value]
        elif op is sre.CATEGORY and value in NEGATED_CATEGORIES and len(items) == 1:
            return CharSet(list(ASCII_CATEGORIES[NEGATED_CATEGORIES[value]]), negated=True, ascii_only=True)
        else:
            raise PatternError(f"{where}: the class item {op} {value} is not kept; list the characters instead.")
    if chars.negated and any(high >= 128 for _, high in chars.ranges):
        raise PatternError(f"{where}: a negated class may name only ASCII characters ([^,;] is fine, [^ё] is not).")
    return chars


def char_set(op, value, where: str) -> CharSet | None:
    """The CharSet of a one-character node (None for any other node)."""
    if op is sre.LITERAL:
        return CharSet([(value, value)])
    if op is sre.NOT_LITERAL:
        if value >= 128:
            raise PatternError(f"{where}: a negated class may name only ASCII characters ([^,;] is fine, [^ё] is not).")
        return CharSet([(value, value)], negated=True)
    if op is sre.ANY:
        return CharSet([(10, 10)], negated=True)  # every character but a line break
    if op is sre.IN:
        return class_items(value, where)
    return None


# ---------------------------------------------------------------- the parse tree, with positions numbered
@dataclass
class Node:
    """A parsed pattern: a character (`chars`), a sequence, an alternation or a repeat."""

    kind: str  # "char", "seq", "alt", "repeat"
    chars: CharSet | None = None
    parts: list[Node] = field(default_factory=list)
    low: int = 1
    high: int = 1


def tree(parsed, where: str, top: bool = False) -> Node:
    """The Node of a parsed sequence (`top`: anchors allowed at its ends)."""
    items = list(parsed)
    if top:
        if items and items[0] == (sre.AT, sre.AT_BEGINNING) or items[:1] == [(sre.AT, sre.AT_BEGINNING_STRING)]:
            items = items[1:]
        if items and items[-1] in ((sre.AT, sre.AT_END), (sre.AT, sre.AT_END_STRING)):
            items = items[:-1]
    parts = []
    for op, value in items:
        chars = char_set(op, value, where)
        if chars is not None:
            parts.append(Node("char", chars=chars))
        elif op is sre.SUBPATTERN:
            _group, add_flags, del_flags, inner = value
            if add_flags or del_flags:
                raise PatternError(f"{where}: inline flags such as (?i) are not kept; spell the cases out ([Aa]).")
            parts.append(tree(inner, where))
        elif op is sre.BRANCH:
            parts.append(factored([tree(branch, where) for branch in value[1]]))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            low, high, inner = value
            high = MAX_REPEAT if high is sre.MAXREPEAT else high
            parts.append(Node("repeat", parts=[tree(inner, where)], low=low, high=max(high, low)))
        elif op in REFUSED:
            raise PatternError(f"{where}: the grammar cannot keep {REFUSED[op]}.")
        elif op is sre.AT:
            raise PatternError(f"{where}: anchors (^, $, \\b) are kept only at the pattern's two ends.")
        else:  # atomic groups, possessive repeats
            raise PatternError(f"{where}: {str(op).lower()} is not kept; use plain groups and greedy repeats.")
    return parts[0] if len(parts) == 1 else Node("seq", parts=parts)


def sequence(node: Node) -> list[Node]:
    """A Node as the list of the nodes written one after another."""
    return list(node.parts) if node.kind == "seq" else [node]


def literal(node: Node) -> int | None:
    """The one character a node matches, if it matches exactly one."""
    chars = node.chars
    if (
        node.kind == "char"
        and not chars.negated
        and len(chars.ranges) == 1
        and chars.ranges[0][0] == chars.ranges[0][1]
    ):
        return chars.ranges[0][0]
    return None


def as_node(parts: list[Node]) -> Node:
    """One Node for a list of nodes written in order."""
    return parts[0] if len(parts) == 1 else Node("seq", parts=parts)


def factored(alternatives: list[Node]) -> Node:
    """An alternation with the alternatives that start with the same character merged (min_x|max_y -> m(?:in_x|ax_y)),
    the same strings in a form where the next character decides (see `check_unambiguous`)."""
    groups: dict[int | None, list[list[Node]]] = {}
    order: list[tuple[int | None, int]] = []
    for i, alternative in enumerate(alternatives):
        items = sequence(alternative)
        first = literal(items[0]) if items else None
        key = first if first is not None else -1 - i  # alternatives not starting with one character stay apart
        if key not in groups:
            groups[key] = []
            order.append((key, i))
        groups[key].append(items)
    merged = []
    for key, _ in order:
        members = groups[key]
        if len(members) == 1:
            merged.append(as_node(members[0]))
        else:
            rest = factored([as_node(items[1:]) if len(items) > 1 else Node("seq") for items in members])
            merged.append(Node("seq", parts=[members[0][0], rest]))
    return merged[0] if len(merged) == 1 else Node("alt", parts=merged)


def regex_of(node: Node, where: str) -> str:
    """The grammar's regex (JSON-escaped UTF-8 bytes, as text) of a Node."""
    if node.kind == "char":
        return class_regex(node.chars, where)
    if node.kind == "seq":
        return "".join(regex_of(part, where) for part in node.parts)
    if node.kind == "alt":
        return "(?:" + "|".join(regex_of(part, where) for part in node.parts) + ")"
    inner = regex_of(node.parts[0], where)
    return f"(?:{inner}){{{node.low},{node.high}}}"


# ---------------------------------------------------------------- ambiguity (Glushkov's one-unambiguity test)
def overlap(a: CharSet, b: CharSet) -> bool:
    """Can one character match both sets?"""
    if any(a.has(c) and b.has(c) for c in range(128)):
        return True
    more_a, more_b = a.non_ascii(), b.non_ascii()
    if more_a is None or more_b is None:
        return (more_a is None or bool(more_a)) and (more_b is None or bool(more_b))
    return bool(set(more_a) & set(more_b))


@dataclass
class Glushkov:
    """Positions (one per character node, repeats unrolled as x x*) with the first/last/follow sets."""

    chars: list[CharSet] = field(default_factory=list)
    follow: dict[int, set[int]] = field(default_factory=dict)

    def build(self, node: Node) -> tuple[bool, set[int], set[int]]:
        """(nullable, first, last) of `node`, adding its positions and follow edges."""
        if node.kind == "char":
            self.chars.append(node.chars)
            p = len(self.chars) - 1
            self.follow[p] = set()
            return False, {p}, {p}
        if node.kind == "alt":
            built = [self.build(part) for part in node.parts]
            return any(b[0] for b in built), set().union(*(b[1] for b in built)), set().union(*(b[2] for b in built))
        if node.kind == "seq":
            nullable, first, last = True, set(), set()
            for part in node.parts:
                n, f, la = self.build(part)
                for p in last:
                    self.follow[p] |= f
                first = first | f if nullable else first
                last = last | la if n else la
                nullable = nullable and n
            return nullable, first, last
        body, low, high = node.parts[0], node.low, node.high
        if high == 0:
            return True, set(), set()
        if high == 1:
            nullable, first, last = self.build(body)
            return nullable or low == 0, first, last
        nullable, first, last = self.build(body)
        if nullable:
            raise PatternError(
                "a repeated part that can match nothing (such as (a?)* ) is ambiguous; make it required."
            )
        if low == 0:  # x*: x follows itself
            for p in last:
                self.follow[p] |= first
            return True, first, last
        _, loop_first, loop_last = self.build(body)  # x{m,n} with m >= 1, read as x x*: a fresh copy of x loops
        for p in last | loop_last:
            self.follow[p] |= loop_first
        return False, first, last | loop_last

    def ambiguous_points(self, first: set[int]) -> int:
        """How many places (the start, or after a position) have two next positions that share a character."""
        return sum(
            any(overlap(self.chars[p], self.chars[q]) for p, q in pairs(group))
            for group in [first, *self.follow.values()]
        )


def pairs(group: set[int]):
    """Every unordered pair of distinct members."""
    listed = sorted(group)
    return ((p, q) for i, p in enumerate(listed) for q in listed[i + 1 :])


def ambiguity(node: Node) -> int:
    """`Glushkov.ambiguous_points` of a pattern."""
    glushkov = Glushkov()
    _nullable, first, _last = glushkov.build(node)
    return glushkov.ambiguous_points(first)


def repeats(node: Node):
    """Every repeat of more than once in the pattern, outermost first."""
    if node.kind == "repeat" and node.high > 1:
        yield node
    for part in node.parts:
        yield from repeats(part)


def check_unambiguous(node: Node, where: str) -> None:
    """Refuse what a backtracking matcher can take exponential time on: a repeat whose next character can continue
    it in two ways ((a|aa)+, (a+)+), or more than MAX_AMBIGUOUS_POINTS such places in the whole pattern. Ambiguity
    between consecutive parts ([^@]+@[^@]+\\.[a-z]+: is a "." the domain's or the dot?) costs polynomial time and is
    kept, within that limit."""
    advice = (
        "; the grammar refuses such patterns, since matching them can take exponential time. Rewrite it so the next "
        "character decides (a(?:a)?, a+, [a-z]+)."
    )
    try:
        for loop in repeats(node):
            if ambiguity(loop):
                raise PatternError(
                    "the pattern is ambiguous: one character can continue a repeated part in two ways (as in "
                    "(a|aa)+ or (a+)+)" + advice
                )
        if ambiguity(node) > MAX_AMBIGUOUS_POINTS:
            raise PatternError(
                f"the pattern is ambiguous at more than {MAX_AMBIGUOUS_POINTS} places (one character could continue "
                "it in two ways, as in a?a?a?aaa)" + advice
            )
    except PatternError as err:
        raise PatternError(f"{where}: {err}") from None


def grammar_pattern(pattern: str, where: str) -> str:
    """The grammar's regex for the content of a string that a schema's `pattern` constrains (see the module doc)."""
    if not isinstance(pattern, str):
        raise PatternError(f"{where}: pattern must be a string, got {type(pattern).__name__}.")
    return rewritten(pattern, where)


@lru_cache(maxsize=256)
def rewritten(pattern: str, where: str) -> str:
    """`grammar_pattern` of a string pattern, kept: a grammar is built for every request (~20 ms a pattern)."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"{where}: the pattern has {len(pattern)} characters; the grammar keeps up to 1000.")
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, OverflowError, RecursionError) as err:
        raise PatternError(f"{where}: not a valid regular expression ({err}); fix the pattern.") from None
    if parsed.state.flags & ~sre.SRE_FLAG_UNICODE:
        raise PatternError(f"{where}: inline flags such as (?i) are not kept; spell the cases out ([Aa]).")
    node = tree(parsed, where, top=True)
    check_unambiguous(node, where)
    return regex_of(node, where)


@lru_cache(maxsize=256)
def needs_timeout(pattern: str) -> bool:
    """Is a pattern `grammar_pattern` keeps ambiguous anywhere (matching it can cost more than linear time)?"""
    try:
        return ambiguity(tree(sre_parse.parse(pattern), "pattern", top=True)) > 0
    except (re.error, PatternError, OverflowError, RecursionError):
        return True


def schema_patterns(schema) -> list[str]:
    """Every string `pattern` keyword anywhere in a JSON schema (a property named "pattern" is not one)."""
    found = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "pattern" and isinstance(value, str):
                found.append(value)
            elif key == "properties" and isinstance(value, dict):
                found += [p for spec in value.values() for p in schema_patterns(spec)]
            else:
                found += schema_patterns(value)
    elif isinstance(schema, list):
        found += [p for item in schema for p in schema_patterns(item)]
    return found
