"""The three tools: property tests (hypothesis) against reference checks, and readable errors for bad input."""

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lessons_lib.tools.functions import (
    BELOW,
    LIMITS,
    MAX_INDENT,
    MAX_RULES,
    MAX_TEXT_CHARS,
    MAX_TOPIC_CHARS,
    MAX_WIDTH,
    RULES,
    TEMPLATE_TYPES,
    ToolError,
    content_validator,
    parse_rule,
    shown_number,
    template_generator,
    text_formatter,
)

words = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda w: w.split() == [w]
)
texts = st.lists(words, min_size=1, max_size=30).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(min_size=1, max_size=200).filter(lambda t: len(t.split()) > 0),
    width=st.integers(1, 60),
    indent=st.integers(0, 59),
)
def test_formatter_lines_never_exceed_width_and_keep_every_character_in_order(text, width, indent):
    if indent >= width:
        with pytest.raises(ToolError, match="indent"):
            text_formatter(text, width, indent)
        return
    lines = text_formatter(text, width, indent).split("\n")
    assert all(len(line) <= width for line in lines)
    assert all(line.startswith(" " * indent) and line[indent:].strip() == line[indent:] for line in lines)
    assert "".join("".join(line.split()) for line in lines) == "".join(text.split())


@settings(max_examples=150, deadline=None)
@given(text=texts, width=st.integers(13, 60), indent=st.integers(0, 0))
def test_formatter_preserves_words_in_order_when_they_fit(text, width, indent):
    wrapped = text_formatter(text, width, indent)
    assert [w for line in wrapped.split("\n") for w in line.split()] == text.split()
    lines = wrapped.split("\n")
    for line, nxt in zip(lines, lines[1:]):  # greedy: the next line's first word did not fit on this one
        assert len(line) + 1 + len(nxt.split()[0]) > width


def test_formatter_example():
    assert text_formatter("one two three four", width=9, indent=2) == "  one two\n  three\n  four"


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(width=0), "width must be 1 or more characters"),
        (dict(width=-5), "width must be 1 or more characters"),
        (dict(width=10, indent=-1), "indent must be 0 or more"),
        (dict(width=10, indent=10), "leaves no room"),
        (dict(width="40"), "whole number"),
        (dict(width=True), "whole number"),
    ],
)
def test_formatter_bad_numbers_say_what_to_pass(kwargs, fragment):
    with pytest.raises(ToolError, match=fragment) as err:
        text_formatter("some text", **kwargs)
    assert "pass" in str(err.value) or "use" in str(err.value)


@settings(max_examples=60, deadline=None)
@given(width=st.integers(max_value=0))
def test_any_non_positive_width_raises_the_tools_own_error(width):
    with pytest.raises(ToolError, match=rf"width must be 1 or more characters, got {width}"):
        text_formatter("a b c", width)


def test_formatter_rejects_empty_text():
    with pytest.raises(ToolError, match="text is empty"):
        text_formatter("   \n ", 10)


@pytest.mark.parametrize("kind", TEMPLATE_TYPES)
@pytest.mark.parametrize("lang", ["en", "ru"])
def test_every_template_contains_the_topic(kind, lang):
    out = template_generator(kind, "  login   page crashes ", lang)
    assert "login page crashes" in out and "{" not in out


def test_instruction_template_has_the_three_alpaca_sections():
    out = template_generator("instruction", "Summarise the text")
    assert re.findall(r"^### (\w+):", out, re.M) == ["Instruction", "Input", "Response"]


@settings(max_examples=60, deadline=None)
@given(kind=st.text(max_size=20).filter(lambda k: k not in TEMPLATE_TYPES))
def test_unknown_template_type_lists_the_valid_ones(kind):
    with pytest.raises(ToolError) as err:
        template_generator(kind, "topic")
    assert "Unknown template_type" in str(err.value) and all(t in str(err.value) for t in TEMPLATE_TYPES)


def test_template_needs_a_topic_and_a_known_language():
    with pytest.raises(ToolError, match="topic is empty"):
        template_generator("email", " ")
    with pytest.raises(ToolError, match="choose one of: en, ru"):
        template_generator("email", "x", language="de")


def reference(text: str, rule: str) -> bool:
    """Independent reference checks, written differently from the tool."""
    name, _, arg = rule.partition(":")
    if name == "non_empty":
        return len(text.strip()) > 0
    if name == "has_headings":
        return any(re.match(r"#{1,6} \S", line) for line in text.split("\n"))
    if name == "is_email":
        local, at, domain = text.strip().partition("@")
        return (
            bool(at)
            and bool(local)
            and re.fullmatch(r"[A-Za-z0-9._%+-]+", local) is not None
            and re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", domain) is not None
        )
    if name == "valid_json":
        try:
            json.loads(text)
            return True
        except ValueError:
            return False
    if name == "no_trailing_spaces":
        return not any(line.endswith((" ", "\t")) or (line and line[-1].isspace()) for line in text.split("\n"))
    if name == "max_length":
        return len(text) <= int(arg)
    if name == "min_words":
        return len(text.split()) >= int(arg)
    raise AssertionError(name)


rule_strategy = st.one_of(
    st.sampled_from(["non_empty", "has_headings", "is_email", "valid_json", "no_trailing_spaces"]),
    st.builds(lambda r, n: f"{r}:{n}", st.sampled_from(["max_length", "min_words"]), st.integers(0, 60)),
)
validator_texts = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda a, b: f"{a}@{b}.com",
        st.from_regex(r"[a-z.]{0,8}", fullmatch=True),
        st.from_regex(r"[a-z]{0,6}", fullmatch=True),
    ),
    st.builds(lambda t, b: f"# {t}\n{b}", st.text(max_size=10), st.text(max_size=20)),
    st.builds(json.dumps, st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)),
)


@settings(max_examples=150, deadline=None)
@given(text=validator_texts, rules=st.lists(rule_strategy, min_size=1, max_size=4))
def test_validator_agrees_with_reference_checks(text, rules):
    out = content_validator(text, rules)
    expected_failed = [r for r in rules if not reference(text, r)]
    assert out["failed"] == expected_failed
    assert out["passed"] == [r for r in rules if reference(text, r)]
    assert out["ok"] == (not expected_failed)


@settings(max_examples=100, deadline=None)
@given(rule=st.text(max_size=15).filter(lambda r: r.strip().partition(":")[0] not in RULES))
def test_unknown_rule_lists_the_valid_rules(rule):
    with pytest.raises(ToolError) as err:
        content_validator("text", [rule])
    message = str(err.value)
    assert message.startswith("Unknown rule") and "non_empty" in message and "max_length:N" in message


@pytest.mark.parametrize(
    "rules, fragment",
    [
        ([], "non-empty list"),
        ("non_empty", "non-empty list"),
        (["max_length"], "max_length:80"),
        (["max_length:abc"], "whole-number limit"),
        (["non_empty:3"], "takes no limit"),
        ([5], "must be a string"),
    ],
)
def test_bad_rules_say_what_to_write(rules, fragment):
    with pytest.raises(ToolError, match=re.escape(fragment)):
        content_validator("text", rules)


def test_parse_rule():
    assert parse_rule("max_length:80") == ("max_length", 80) and parse_rule(" is_email ") == ("is_email", None)


@settings(max_examples=100, deadline=None)
@given(text=st.one_of(st.integers(), st.none(), st.lists(st.text())))
def test_non_string_text_raises_the_tools_own_error(text):
    for call in (lambda: text_formatter(text, 10), lambda: content_validator(text, ["non_empty"])):
        with pytest.raises(ToolError, match="text must be a string"):
            call()


# Upper bounds (issue 15): every numeric and size-like argument is bounded in the tool itself, so a direct call
# is as safe as one that went through the schema validator; the errors say the allowed range.
@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (
            dict(width=10**9),
            f"width must be at most {MAX_WIDTH} characters, got 1000000000; pass a width from 1 to {MAX_WIDTH}",
        ),
        (dict(width=MAX_WIDTH + 1), f"got {MAX_WIDTH + 1}"),
        (dict(width=MAX_WIDTH, indent=MAX_INDENT + 1), f"indent must be at most {MAX_INDENT} spaces"),
        (dict(width=10**5000), "got a number of about 5001 digits"),
        (dict(width=-(10**5000)), "got a negative number of about 5001 digits"),
    ],
)
def test_formatter_numbers_have_upper_bounds_that_the_error_names(kwargs, fragment):
    with pytest.raises(ToolError, match=re.escape(fragment)):
        text_formatter("some text", **kwargs)


def test_formatter_at_its_bounds_works_and_stays_small():
    longest = "x" * MAX_TEXT_CHARS
    out = text_formatter(longest, width=MAX_INDENT + 1, indent=MAX_INDENT)  # the worst case: one character a line
    assert out.count("\n") == MAX_TEXT_CHARS - 1 and len(out) < 1.1e6
    assert text_formatter("a b", width=MAX_WIDTH) == "a b"
    with pytest.raises(
        ToolError,
        match=f"text is {MAX_TEXT_CHARS + 1} characters long; this tool takes at most {MAX_TEXT_CHARS}. Split it",
    ):
        text_formatter(longest + "y", width=40)


def test_template_topic_and_validator_inputs_are_bounded():
    assert template_generator("email", "t" * MAX_TOPIC_CHARS).count("t") >= MAX_TOPIC_CHARS
    with pytest.raises(ToolError, match=f"topic is {MAX_TOPIC_CHARS + 1} characters long"):
        template_generator("email", "t" * (MAX_TOPIC_CHARS + 1))
    with pytest.raises(ToolError, match=f"text is {MAX_TEXT_CHARS + 1} characters long"):
        content_validator("x" * (MAX_TEXT_CHARS + 1), ["non_empty"])
    assert content_validator("x", ["non_empty"] * MAX_RULES)["ok"]
    with pytest.raises(ToolError, match=f"rules has {MAX_RULES + 1} entries; pass at most {MAX_RULES}"):
        content_validator("x", ["non_empty"] * (MAX_RULES + 1))


def test_rule_limits_have_at_most_five_digits():
    assert parse_rule("max_length:99999") == ("max_length", 99999)
    for rule in ("max_length:100000", "min_words:" + "9" * 5000):  # int() of 5000 digits would raise ValueError
        with pytest.raises(ToolError, match=r"takes a limit from 0 to 99999, got \d+ digits"):
            parse_rule(rule)


@pytest.mark.parametrize(
    "text, ok",
    [("[" * 9000, False), ("[" * 500 + "]" * 500, True), ("[" * 600 + "]" * 600, False), ('{"a": "[[[["}', True)],
)
def test_valid_json_rule_never_overflows_the_stack(text, ok):
    assert content_validator(text, ["valid_json"])["ok"] is ok


def test_every_limit_is_enforced_by_the_tool_itself():
    from lessons_lib.tools.functions import TOOLS

    good = {
        "text_formatter": {"text": "a b", "width": 10, "indent": 0},
        "template_generator": {"template_type": "email", "topic": "x"},
        "content_validator": {"text": "a", "rules": ["non_empty"]},
    }
    over = {
        "maximum": lambda bound: bound + 1,
        "minimum": lambda bound: bound - 1,
        "maxLength": lambda bound: "w" * (bound + 1),
        "maxItems": lambda bound: ["non_empty"] * (bound + 1),
        "minItems": lambda bound: ["non_empty"] * (bound - 1),
    }
    for tool, limits in LIMITS.items():
        for arg, bounds in limits.items():
            for key, bound in bounds.items():
                kwargs = good[tool] | ({"width": MAX_WIDTH} if arg == "indent" else {}) | {arg: over[key](bound)}
                with pytest.raises(ToolError, match=str(bound)):
                    TOOLS[tool](**kwargs)
    for rule in BELOW:  # the rules between two arguments too, with the high one given or left to its default
        high = rule.high_default or 10
        with pytest.raises(ToolError, match=f"below {high}"):
            TOOLS[rule.tool](**good[rule.tool] | {rule.high: high, rule.low: high})
        assert TOOLS[rule.tool](**good[rule.tool] | {rule.high: high, rule.low: high - 1})
        if rule.high_default is not None:
            with pytest.raises(ToolError, match=f"below {rule.high_default}"):
                TOOLS[rule.tool](**{k: v for k, v in good[rule.tool].items() if k != rule.high} | {rule.low: high})


def test_shown_number_prints_what_python_can_print():
    assert shown_number(-12) == "-12" and shown_number(2**200) == str(2**200)
    assert shown_number(10**100) == "a number of about 101 digits"
