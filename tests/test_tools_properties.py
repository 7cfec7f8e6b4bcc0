"""Property tests (hypothesis): nothing a model writes makes the call parser or validator raise anything but a
CallError, and a call that validates makes a tool raise nothing but a ToolError, with a bounded result."""

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lessons_lib.tools import TOOLS, tool_schemas
from lessons_lib.tools.calls import (
    MAX_DEPTH,
    CallError,
    MalformedCall,
    ToolCall,
    check_value,
    looks_like_call,
    parse_and_validate,
    parse_call,
    validate_call,
)
from lessons_lib.tools.functions import MAX_INDENT, MAX_TEXT_CHARS, ToolError
from lessons_lib.tools.schemas import schemas_by_name

SCHEMAS = schemas_by_name(tool_schemas())
NAMES = st.one_of(st.sampled_from(sorted(TOOLS)), st.text(max_size=12))
HUGE = st.sampled_from([5000, -5000]).map(lambda digits: (10 ** abs(digits) - 1) * (1 if digits > 0 else -1))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    HUGE,
    st.sampled_from(
        [
            10**9,
            -(10**9),
            2**64,
            "x" * (MAX_TEXT_CHARS + 1),
            "max_length:99999",
            "max_length:100000",
            "non_empty\n",
            float("nan"),
        ]
    ),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)),
    max_leaves=25,
)
ARGUMENT_NAMES = st.one_of(
    st.sampled_from(["text", "width", "indent", "template_type", "topic", "language", "rules"]), st.text(max_size=8)
)
ARGUMENTS = st.dictionaries(ARGUMENT_NAMES, JSON_VALUES, max_size=5)
PIECES = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        '"',
        "\\",
        ":",
        ",",
        " ",
        "\n",
        "```",
        "[TOOL_CALLS]",
        '"tool"',
        '"arguments"',
        '"name"',
        '"text_formatter"',
        "true",
        "null",
        "NaN",
        "1e999",
        "-",
        "0",
        "9" * 30,
        '"\\ud800"',
        '{"tool": "x", "arguments": ',
    ]
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def encoded(value) -> str:
    """A value as a model might write it (JSON, NaN included); huge integers as their JSON digits."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except ValueError:  # an integer Python will not print: write a number with as many digits
        return "9" * 5000


def only_call_errors(action) -> None:
    """Run `action`; a CallError is fine, any other exception fails the test."""
    with contextlib.suppress(CallError):
        action()


@SETTINGS
@given(text=st.text(max_size=300))
def test_any_text_parses_or_raises_a_call_error(text):
    looks_like_call(text)
    only_call_errors(lambda: parse_and_validate(text, SCHEMAS))


@SETTINGS
@given(pieces=st.lists(PIECES, max_size=60))
def test_json_shaped_fragments_parse_or_raise_a_call_error(pieces):
    text = "".join(pieces)
    looks_like_call(text)
    only_call_errors(lambda: parse_and_validate(text, SCHEMAS))


@SETTINGS
@given(name=NAMES, arguments=JSON_VALUES, wrap=st.sampled_from(["plain", "mistral", "string", "fenced", "cut"]))
def test_any_json_call_parses_or_raises_a_call_error(name, arguments, wrap):
    body = {"tool": name, "arguments": arguments}
    text = {
        "plain": lambda: encoded(body),
        "mistral": lambda: "[TOOL_CALLS] " + encoded([{"name": name, "arguments": arguments, "id": "abc123def"}]),
        "string": lambda: encoded({"tool": name, "arguments": encoded(arguments)}),
        "fenced": lambda: "```json\n" + encoded(body) + "\n```",
        "cut": lambda: encoded(body)[: len(encoded(body)) // 2],
    }[wrap]()
    only_call_errors(lambda: parse_and_validate(text, SCHEMAS))


@SETTINGS
@given(name=NAMES, arguments=ARGUMENTS)
def test_any_arguments_validate_or_raise_a_call_error_and_valid_calls_only_raise_tool_errors(name, arguments):
    try:
        call = validate_call(ToolCall(name, arguments), SCHEMAS)
    except CallError:
        return
    try:
        result = TOOLS[call.name](**call.arguments)
    except ToolError:
        return
    size = len(result) if isinstance(result, str) else len(json.dumps(result, ensure_ascii=False))
    assert size <= (MAX_INDENT + 2) * MAX_TEXT_CHARS  # the worst case of text_formatter: one character a line


@SETTINGS
@given(
    value=JSON_VALUES,
    spec=st.sampled_from([p for s in SCHEMAS.values() for p in s["function"]["parameters"]["properties"].values()]),
)
def test_check_value_raises_only_call_errors(value, spec):
    only_call_errors(lambda: check_value("x", value, spec))


@settings(max_examples=150, deadline=None)
@given(
    piece=st.sampled_from(["[", "{", '{"a": ', '[{"b": ', "[1, "]),
    depth=st.integers(0, 5000),
    prefix=st.sampled_from(["", '{"tool": "x", "arguments": ', "[TOOL_CALLS] ", "```json\n"]),
    close=st.booleans(),
)
def test_any_nesting_is_read_or_refused_never_a_recursion_error(piece, depth, prefix, close):
    closing = "".join("]" if c == "[" else "}" for c in reversed(piece * depth) if c in "[{") if close else ""
    text = prefix + piece * depth + closing
    json_prefix = prefix.removeprefix("[TOOL_CALLS] ")  # Mistral's marker is not JSON: its "[" nests nothing
    total = json_prefix.count("{") + json_prefix.count("[") + depth * (piece.count("[") + piece.count("{"))
    try:
        parse_call(text)
    except MalformedCall as err:
        assert ("nests deeper" in str(err)) == (total > MAX_DEPTH), (total, str(err))
