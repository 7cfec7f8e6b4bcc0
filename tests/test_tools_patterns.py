"""A client's string `pattern` in the call grammar: rewritten for JSON-escaped bytes, refused where it can't be kept."""

from __future__ import annotations

import json
import re
import time

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lessons_lib.tools.calls import pattern_ok
from lessons_lib.tools.constrained import (
    MAX_ENUM_VALUES,
    MAX_GRAMMAR_CHARS,
    CallGrammar,
    GrammarError,
    string_body,
)
from lessons_lib.tools.functions import RULE_PATTERN
from lessons_lib.tools.patterns import MAX_CLASS_CHARS, PatternError, grammar_pattern, needs_timeout, schema_patterns
from lessons_lib.tools.schemas import tool_schemas

# Patterns the grammar keeps exactly (no \w-style classes, whose Unicode members it leaves out on purpose).
KEPT = [
    f"^{RULE_PATTERN}$",
    "^[a-z]{3,8}$",
    '^[a"\\\\]{3,8}$',  # a quote and a backslash: written \" and \\ in JSON
    "^\\n\\t$",
    "^[а-яё]+$",
    "^[0-9]{3}-[0-9]{4}$",
    "^[^@]+@[^@]+\\.[a-z]{2,}$",
    "^(?:[a-z]+,)*[a-z]+$",
    "^(ab|a)c$",
    "^[A-Z][a-z]*( [A-Z][a-z]*)*$",
    "^.{2,5}$",
    "^[^,\\n]*$",
]


def grammar_of(pattern: str) -> regex.Pattern:
    """The bytes regex of a JSON string value whose content the pattern constrains."""
    return regex.compile(('"(?:' + grammar_pattern(pattern, "t.s") + ')"').encode())


def written(text: str) -> bytes:
    """A string value as the model writes it (json.dumps, non-ASCII kept)."""
    return json.dumps(text, ensure_ascii=False).encode()


@pytest.mark.parametrize("pattern", KEPT)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_the_grammar_writes_exactly_the_strings_the_pattern_takes(pattern, data):
    grammar = grammar_of(pattern)
    taken = data.draw(st.from_regex(re.compile(pattern), fullmatch=True).filter(lambda s: len(s) <= 60))
    assert grammar.fullmatch(written(taken)), f"{taken!r} matches {pattern!r} but the grammar refuses it"
    other = data.draw(st.text(alphabet=st.sampled_from('ab,@."\\\n\tаё zZ-0'), max_size=12))
    if grammar.fullmatch(written(other)):
        assert pattern_ok(pattern, other), f"the grammar writes {other!r}, which {pattern!r} refuses"


def test_a_written_value_is_always_valid_json_even_when_the_pattern_allows_quotes_and_backslashes():
    grammar = grammar_of('^[a"\\\\]{3,8}$')
    assert grammar.fullmatch(b'"a\\"\\\\"') and json.loads(b'"a\\"\\\\"') == 'a"\\'
    assert not grammar.fullmatch(b'"a"\\"'), "a raw quote would end the JSON string"
    assert not grammar.fullmatch(b'"\xd0\xb0aa"'), 'a Cyrillic а is not in [a"\\\\]'
    cyrillic = grammar_of("^[а-яё]+$")
    assert cyrillic.fullmatch(written("ёжик")) and not cyrillic.fullmatch(written("ёж1"))
    assert not cyrillic.fullmatch(b'"\xd0"'), "half a character is not a character"


@pytest.mark.parametrize(
    "pattern, says",
    [
        ("^(a|aa){40,}$", "repeated part in two ways"),
        ("^(a+)+$", "repeated part in two ways"),
        ("^(a{1,3}){1,3}$", "repeated part in two ways"),
        ("^(a?)*$", "can match nothing"),
        ("a?a?a?aaa", "more than 2 places"),
        ("^(\\w+)\\1$", "backreference"),
        ("^a(?=b)", "lookahead"),
        ("(?i)abc", "inline flags"),
        ("^a$|^b$", "anchors"),
        ("^[a-z", "not a valid regular expression"),
        ("^[a-z]+$)|(.*", "not a valid regular expression"),
        ("[\\u4e00-\\u9fff]+", f"at most {MAX_CLASS_CHARS}"),
        ("^[^ё]+$", "only ASCII"),
        ("(?>ab)c", "use plain groups"),
    ],
)
def test_patterns_the_grammar_cannot_keep_get_a_clear_error_at_once(pattern, says):
    start = time.perf_counter()
    with pytest.raises(GrammarError, match=re.escape(says)) as caught:
        string_body({"type": "string", "pattern": pattern}, "tool.arg")
    assert str(caught.value).startswith("tool.arg: ")
    assert time.perf_counter() - start < 1.0, "the check itself must be quick"


def test_only_ambiguous_patterns_pay_for_the_match_timeout():
    assert not needs_timeout(f"^{RULE_PATTERN}$") and not needs_timeout("^[a-z]{3,8}$")
    assert needs_timeout("^[^@]+@[^@]+\\.[a-z]{2,}$")
    assert CallGrammar(tool_schemas()).timeout is None, "the course's own tools match at full speed"
    schema = tool("email", {"type": "string", "pattern": "^[^@]+@[^@]+\\.[a-z]{2,}$"})
    assert CallGrammar([schema]).timeout is not None
    assert schema_patterns({"properties": {"pattern": {"type": "string", "pattern": "^x$"}}}) == ["^x$"]


def tool(name: str, spec: dict) -> dict:
    """A one-argument tool schema."""
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": {"a": spec}, "required": ["a"]}},
    }


def test_a_constrained_call_with_a_kept_pattern_parses_and_matches_it():
    grammar = CallGrammar([tool("say", {"type": "string", "pattern": '^[a"\\\\]{3,8}$'})])
    call = b'{"tool": "say", "arguments": {"a": "a\\"\\\\a"}}'
    assert grammar.matches(call) and grammar.accepts_prefix(call[:-5])
    assert pattern_ok('^[a"\\\\]{3,8}$', json.loads(call)["arguments"]["a"])
    assert not grammar.accepts_prefix(b'{"tool": "say", "arguments": {"a": "a"a')


def test_schemas_too_big_to_match_quickly_are_refused_with_what_to_do():
    many = tool("pick", {"type": "string", "enum": [f"option_{i}" for i in range(MAX_ENUM_VALUES + 1)]})
    with pytest.raises(GrammarError, match=f"at most {MAX_ENUM_VALUES}"):
        CallGrammar([many])
    assert CallGrammar([tool("pick", {"type": "string", "enum": [f"option_{i}" for i in range(50)]})])
    wide = [tool(f"t{i}", {"type": "string", "enum": [f"{i}_{'x' * 60}_{j}" for j in range(400)]}) for i in range(4)]
    with pytest.raises(GrammarError, match=f"most kept is {MAX_GRAMMAR_CHARS:,}"):
        CallGrammar(wide)


def test_a_pattern_must_be_a_string():
    with pytest.raises(PatternError, match="must be a string"):
        grammar_pattern(["^a$"], "t.s")
