"""Schemas, the call parser/validator and the tool-calling loop (with a scripted fake model)."""

import json

import pytest

from lessons_lib.tools import TOOLS, ToolCall, run_tool_loop, tool_schemas
from lessons_lib.tools.calls import (
    BadArguments,
    MalformedCall,
    UnknownTool,
    call_text,
    looks_like_call,
    parse_and_validate,
    parse_call,
)
from lessons_lib.tools.functions import RULE_PATTERN, TEMPLATE_TYPES
from lessons_lib.tools.schemas import schemas_by_name

SCHEMAS = schemas_by_name(tool_schemas())


def test_schemas_come_from_signatures_and_docstrings():
    fmt = SCHEMAS["text_formatter"]["function"]
    assert fmt["description"].startswith("Wrap text into lines")
    assert fmt["parameters"]["required"] == ["text"]
    assert {k: v["type"] for k, v in fmt["parameters"]["properties"].items()} == {
        "text": "string",
        "width": "integer",
        "indent": "integer",
    }
    assert all(v["description"] for v in fmt["parameters"]["properties"].values())
    tmpl = SCHEMAS["template_generator"]["function"]["parameters"]
    assert tmpl["properties"]["template_type"]["enum"] == list(TEMPLATE_TYPES)
    assert tmpl["properties"]["language"]["enum"] == ["en", "ru"]
    rules = SCHEMAS["content_validator"]["function"]["parameters"]["properties"]["rules"]
    assert rules == {**rules, "type": "array", "items": {"type": "string", "pattern": f"^{RULE_PATTERN}$"}}
    assert list(SCHEMAS) == list(TOOLS)


def test_chat_template_lists_tools_and_renders_calls_and_results(tokenizer):
    messages = [
        {"role": "user", "content": "wrap it"},
        ToolCall("text_formatter", {"text": "héllo мир", "width": 5}).as_message(),
        {"role": "tool", "content": "héllo\nмир"},
    ]
    text = tokenizer.apply_chat_template(messages, tools=tool_schemas(), tokenize=False)
    assert text.startswith("<|system|>\nTools: text_formatter; template_generator; content_validator<|end|>\n<|user|>")
    assert call_text("text_formatter", {"text": "héllo мир", "width": 5}) in text  # same JSON as Jinja's tojson
    assert text.endswith("<|tool|>\nhéllo\nмир<|end|>")


def test_parse_a_good_call_and_tolerate_fences_and_string_arguments():
    assert parse_call('{"tool": "text_formatter", "arguments": {"text": "a", "width": 3}}') == ToolCall(
        "text_formatter", {"text": "a", "width": 3}
    )
    assert parse_call('```json\n{"tool": "x", "arguments": "{\\"a\\": 1}"}\n```') == ToolCall("x", {"a": 1})


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('{"tool": "text_formatter", "arguments": {"text": "a"', "not valid JSON"),
        ('{"tool": "text_formatter", "arguments": {"text": "a', r"\(Unterminated string starting at character 49\)"),
        ("[1, 2]", "must be a JSON object"),
        ('{"arguments": {}}', 'no "tool" name'),
        ('{"tool": "x", "arguments": [1]}', '"arguments" must be an object'),
        ('{"tool": "x", "arguments": {}} and more', "Extra text"),
        ('{"tool": "x", "arguments": "not json"}', "is a string that is not JSON"),
    ],
)
def test_malformed_calls_are_explained(text, fragment):
    with pytest.raises(MalformedCall, match=fragment):
        parse_call(text)


@pytest.mark.parametrize(
    "call, error, fragment",
    [
        ('{"tool": "summarize", "arguments": {}}', UnknownTool, "available tools: text_formatter, template_generator"),
        ('{"tool": "text_formatter", "arguments": {"width": 3}}', BadArguments, "needs the argument(s) text"),
        ('{"tool": "text_formatter", "arguments": {"text": "a", "size": 3}}', BadArguments, "has no argument(s) size"),
        (
            '{"tool": "text_formatter", "arguments": {"text": "a", "width": "3"}}',
            BadArguments,
            "must be of type integer",
        ),
        (
            '{"tool": "text_formatter", "arguments": {"text": "a", "width": true}}',
            BadArguments,
            "must be of type integer",
        ),
        (
            '{"tool": "template_generator", "arguments": {"template_type": "poem", "topic": "a"}}',
            BadArguments,
            "choose one of: instruction, email",
        ),
        (
            '{"tool": "content_validator", "arguments": {"text": "a", "rules": ["non_empty", 3]}}',
            BadArguments,
            "rules[1]",
        ),
        (
            '{"tool": "content_validator", "arguments": {"text": "a", "rules": ["short"]}}',
            BadArguments,
            "'rules[0]' is 'short', which does not match the pattern ^(?:non_empty|",
        ),
    ],
)
def test_schema_validation_names_the_problem(call, error, fragment):
    with pytest.raises(error) as err:
        parse_and_validate(call, SCHEMAS)
    assert fragment in str(err.value)


def test_looks_like_call():
    assert looks_like_call(' {"tool": 1}') and looks_like_call("```json\n{}") and not looks_like_call("Here it is: {}")
    assert looks_like_call('[TOOL_CALLS] [{"name": "x"}]') and looks_like_call('[ {"name": "x"}]')
    assert not looks_like_call("[1, 2]")


@pytest.mark.parametrize(
    "reply",
    [
        '[TOOL_CALLS] [{"name": "text_formatter", "arguments": {"text": "a", "width": 3}, "id": "abc123def"}]',
        (
            '[TOOL_CALLS][{"name": "text_formatter", "arguments": "{\\"text\\": \\"a\\", \\"width\\": 3}", '
            '"id": "abc123def"}]'
        ),
        '[{"name": "text_formatter", "arguments": {"text": "a", "width": 3}, "id": "abc123def"}]',
    ],
)
def test_parse_mistral_native_calls(reply):
    call = parse_and_validate(reply, SCHEMAS)
    assert call == ToolCall("text_formatter", {"text": "a", "width": 3}) and call.id == "abc123def"
    assert call.as_message()["tool_calls"][0]["id"] == "abc123def"


def test_mistral_call_lists_hold_one_call():
    with pytest.raises(MalformedCall, match="The reply holds 2 calls; call one tool per reply"):
        parse_call('[TOOL_CALLS] [{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}]')
    with pytest.raises(MalformedCall, match="not valid JSON"):
        parse_call("[TOOL_CALLS]")
    assert parse_call('{"tool": "a", "arguments": {}}').id is None


class FakeModel:
    """Replies from a script, and remembers what it was shown."""

    def __init__(self, *replies):
        self.replies, self.seen = list(replies), []

    def __call__(self, messages):
        self.seen.append(messages)
        return self.replies.pop(0)


def test_loop_calls_the_tool_and_feeds_the_result_back():
    model = FakeModel(call_text("text_formatter", {"text": "one two three", "width": 7}), "Done.")
    result = run_tool_loop(model, "wrap it")
    assert result.answer == "Done." and [e.kind for e in result.events] == ["call", "result", "answer"]
    call_id = model.seen[1][-2]["tool_calls"][0]["id"]
    assert model.seen[1][-1] == {"role": "tool", "content": "one two\nthree", "tool_call_id": call_id}
    assert model.seen[1][-2]["tool_calls"][0]["function"] == {
        "name": "text_formatter",
        "arguments": {"text": "one two three", "width": 7},
    }
    assert len(call_id) == 9 and call_id.isalnum() and result.calls[0].id == call_id  # strict templates need it
    assert result.results == ["one two\nthree"]


def test_dict_results_go_back_as_json():
    model = FakeModel(call_text("content_validator", {"text": "x", "rules": ["non_empty"]}), "ok")
    result = run_tool_loop(model, "check")
    report = {"ok": True, "passed": ["non_empty"], "failed": []}
    assert json.loads(model.seen[1][-1]["content"]) == report
    assert result.results == [report] and result.answer == "ok"  # the result itself stays a dict


@pytest.mark.parametrize(
    "bad_reply, kind, told",
    [
        ('{"tool": "text_formatter", "arguments": {', "malformed call", "not valid JSON"),
        ('{"tool": "shout", "arguments": {}}', "unknown tool", "There is no tool 'shout'"),
        ('{"tool": "text_formatter", "arguments": {"txt": "a"}}', "bad arguments", "needs the argument(s) text"),
        (
            '{"tool": "text_formatter", "arguments": {"text": "a", "width": 5, "indent": 5}}',
            "error",
            "indent (5) leaves no room for text in width 5",
        ),
    ],
)
def test_loop_reports_bad_calls_back_and_goes_on(bad_reply, kind, told):
    model = FakeModel(bad_reply, call_text("text_formatter", {"text": "a b", "width": 3}), "Fixed.")
    result = run_tool_loop(model, "wrap")
    assert result.answer == "Fixed."
    error = next(e for e in result.events if e.kind == "error")
    assert told in error.detail and (kind == "error" or error.detail.startswith(kind))
    assert [e.kind for e in result.events][:2] == (["call", "error"] if kind == "error" else ["error", "call"])
    feedback = model.seen[1][-1]
    assert feedback["role"] == "tool" and feedback["content"].startswith("error: ") and told in feedback["content"]
    assert [e.kind for e in result.events][-3:] == ["call", "result", "answer"]


def test_a_crashing_tool_is_reported_not_raised():
    def broken(text: str) -> str:
        """Always fails.

        Args:
            text: Anything.
        """
        raise RuntimeError("disk full")

    model = FakeModel(call_text("broken", {"text": "a"}), "Sorry.")
    result = run_tool_loop(model, "go", tools={"broken": broken})
    assert result.answer == "Sorry." and "failed with RuntimeError: disk full" in model.seen[1][-1]["content"]


def test_step_limit_stops_a_model_that_never_answers():
    model = FakeModel(*[call_text("text_formatter", {"text": "a", "width": 3})] * 10)
    result = run_tool_loop(model, "loop forever", max_steps=3)
    assert result.answer is None and len(model.seen) == 3
    assert result.events[-1].kind == "step_limit" and "3 model replies" in result.events[-1].detail
    with pytest.raises(ValueError, match="max_steps must be at least 1"):
        run_tool_loop(model, "x", max_steps=0)


def test_model_chat_renders_with_tools_and_generates(base, tokenizer):
    from lessons_lib.tools import ModelChat

    chat = ModelChat(base, tokenizer, max_new_tokens=8)
    assert chat.render([{"role": "user", "content": "hi"}]).startswith("<|system|>\nTools: text_formatter")
    result = run_tool_loop(chat, "Wrap this text to 10 characters: a b c", max_steps=2)
    assert result.events and result.events[-1].kind in {"answer", "step_limit"}  # whatever it says, no crash


# Issue 15: bounded arguments, nothing the model writes crashes the loop, and the CLI's one-line file errors.
import os  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from lessons_lib.tools.calls import MAX_DEPTH, check_value  # noqa: E402
from lessons_lib.tools.functions import LIMITS, MAX_INDENT, MAX_RULES, MAX_TEXT_CHARS, MAX_WIDTH  # noqa: E402


def test_schemas_carry_the_tools_upper_bounds():
    for tool, limits in LIMITS.items():
        props = SCHEMAS[tool]["function"]["parameters"]["properties"]
        for arg, bounds in limits.items():
            assert props[arg] == {**props[arg], **bounds}, (tool, arg)
    fmt = SCHEMAS["text_formatter"]["function"]["parameters"]["properties"]
    assert fmt["width"]["maximum"] == MAX_WIDTH and fmt["indent"]["maximum"] == MAX_INDENT
    assert fmt["text"]["maxLength"] == MAX_TEXT_CHARS


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        ({"text": "a", "width": 10**9}, f"Argument 'width' is 1000000000; it must be from 1 to {MAX_WIDTH}."),
        (
            {"text": "a", "width": 10, "indent": MAX_INDENT + 1},
            f"'indent' is {MAX_INDENT + 1}; it must be from 0 to {MAX_INDENT}.",
        ),
        ({"text": "a" * (MAX_TEXT_CHARS + 1)}, f"'text' has {MAX_TEXT_CHARS + 1} characters; it may have at most"),
    ],
)
def test_validator_refuses_arguments_over_the_bounds(arguments, fragment):
    with pytest.raises(BadArguments) as err:
        parse_and_validate(call_text("text_formatter", arguments), SCHEMAS)
    assert fragment in str(err.value) and len(str(err.value)) < 300  # a long text is not echoed back


def test_validator_bounds_rules_lists_and_reads_patterns_as_json_schema_does():
    rules = {"text": "a", "rules": ["non_empty"] * (MAX_RULES + 1)}
    with pytest.raises(BadArguments, match=f"'rules' has {MAX_RULES + 1} items; it may have from 1 to {MAX_RULES}"):
        parse_and_validate(call_text("content_validator", rules), SCHEMAS)
    with pytest.raises(BadArguments, match="does not match the pattern"):  # `$` is the end, not before a last \n
        parse_and_validate(call_text("content_validator", {"text": "a", "rules": ["non_empty\n"]}), SCHEMAS)
    with pytest.raises(BadArguments, match="max_length:123456"):
        parse_and_validate(call_text("content_validator", {"text": "a", "rules": ["max_length:123456"]}), SCHEMAS)


@pytest.mark.parametrize(
    "value, spec, fragment",
    [
        (float("nan"), {"type": "number", "maximum": 3}, "pass a finite number"),
        (float("inf"), {"type": "number"}, "pass a finite number"),
        (-1, {"type": "integer", "minimum": 0}, "it must be at least 0"),
        (5, {"type": "integer", "minimum": 0, "maximum": 4}, "it must be from 0 to 4"),
        ("", {"type": "string", "minLength": 1}, "has 0 characters; it may have at least 1"),
        ([], {"type": "array", "minItems": 1, "maxItems": 2}, "has 0 items; it may have from 1 to 2"),
        (10**5000, {"type": "integer", "maximum": 3}, "a number of about 5001 digits"),
        ([[[[1]]]], {"type": "string"}, "got a list of 1 items (list)"),
    ],
    ids=["nan", "inf", "minimum", "range", "min-length", "items", "5000-digits", "nested"],
)
def test_check_value_bounds_and_messages(value, spec, fragment):
    with pytest.raises(BadArguments, match=re.escape(fragment)):
        check_value("x", value, spec)


@pytest.mark.parametrize(
    "reply",
    [
        "[" * 100_000,
        "{" * 100_000,
        '{"tool": "x", "arguments": ' + "[" * 100_000,
        "[TOOL_CALLS] " + "[" * 100_000,
        '{"tool": "x", "arguments": "' + "[" * 5000 + '"}',
        '{"tool": "x", "arguments": {"a": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}}",
    ],
    ids=["brackets", "braces", "in-arguments", "mistral", "string-arguments", "one-past-the-limit"],
)
def test_deeply_nested_replies_are_malformed_calls_not_recursion_errors(reply):
    with pytest.raises(MalformedCall, match=f"nests deeper than {MAX_DEPTH} levels"):
        parse_call(reply)


def test_nesting_up_to_the_limit_is_read():
    depth = MAX_DEPTH - 2  # {"arguments": {...}} takes two levels
    call = parse_call('{"tool": "x", "arguments": {"a": ' + "[" * depth + "]" * depth + "}}")
    assert call.name == "x"


@pytest.mark.parametrize(
    "reply, fragment",
    [
        ('{"tool": "x", "arguments": {"w": ' + "9" * 5000 + "}}", "cannot be read as JSON"),  # Python's int limit
        ("{" + " " * 200_000 + "x", "not valid JSON"),  # the old fence regex took minutes on this
        ("```" + " " * 200_000 + "x", "not valid JSON"),
    ],
    ids=["5000-digits", "whitespace", "fence-whitespace"],
)
def test_hostile_replies_are_explained_fast(reply, fragment):
    start = time.perf_counter()
    with pytest.raises(MalformedCall, match=fragment):
        parse_call(reply)
    looks_like_call(reply)
    assert time.perf_counter() - start < 1.0


def test_the_loop_survives_deep_huge_and_over_bound_replies():
    replies = [
        "[{" + "[" * 100_000,
        '{"tool": "text_formatter", "arguments": {"text": "a", "width": 1000000000}}',
        call_text("text_formatter", {"text": "a b", "width": 3}),
        "Done.",
    ]
    model = FakeModel(*replies)
    result = run_tool_loop(model, "wrap", max_steps=4)
    assert result.answer == "Done."
    errors = [e.detail for e in result.events if e.kind == "error"]
    assert errors[0].startswith("malformed call: The tool call nests deeper than 32 levels")
    assert errors[1].startswith("bad arguments: Argument 'width' is 1000000000; it must be from 1 to 1000")
    assert [e.kind for e in result.events] == ["error", "error", "call", "result", "answer"]


def test_a_chat_function_that_returns_no_text_is_told_what_to_fix():
    with pytest.raises(TypeError, match="must return the model's reply as a string, got NoneType"):
        run_tool_loop(lambda messages: None, "hi")


def test_training_rows_for_the_tiny_template_are_unchanged(tokenizer):
    """The bounds reach the schemas, not the tiny template's text: the shipped adapter's rows are byte-identical.

    The digest changed four times, on purpose: half the train requests now carry made-up names (MADE_UP_ENTITIES
    0.5), a share of them are phrased as people ask (NATURAL_SHARE 0.35: questions, rules and templates said other
    ways), half are composed in many voices (VOICED_SHARE 0.5, `lessons_lib.tools.voices`), and half the texts to
    check and of the voiced topics are of many more kinds (VARIED_TEXTS, VARIED_TOPICS: `tools.texts`, `tools.topics`).
    """
    import hashlib

    from lessons_lib.tools.data import tool_sft_rows

    digest = hashlib.sha256()
    for row in tool_sft_rows(200, answer_every=2, tokenizer=tokenizer):
        digest.update(
            tokenizer.apply_chat_template(
                row["prompt"] + row["completion"], tools=json.loads(row["tools"]), tokenize=False
            ).encode()
        )
    assert (
        digest.hexdigest() == "2f1b966f915448c9900a7be90b21977ad4d53dc9718d63f7bb170433251ee164"
    )  # the shipped adapter's rows


GOOD_LINE = '{"lang": "en", "request": "Wrap: a b", "tool": "text_formatter", "arguments": {"text": "a b", "width": 5}}'


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "error: No data file at "),
        (GOOD_LINE.encode() + b'\n{"lang": "en", "request": "caf\xe9"}\n', "mine.jsonl:2:31 is not UTF-8"),
        (GOOD_LINE.encode() + b'\n{"lang": "en"\n', "mine.jsonl:2 is not valid JSON"),
        (GOOD_LINE.encode() + b"\n" + b"[" * 100_000 + b"\n", "mine.jsonl:2 nests deeper than"),
        (
            GOOD_LINE.replace('"width": 5', '"width": 5000').encode(),
            "mine.jsonl:1: the gold call fails: width must be at most",
        ),
        (b"\n\n", "has no rows"),
    ],
    ids=["missing", "not-utf8", "bad-json", "deep", "gold-call-fails", "empty"],
)
def test_evaluate_command_reports_a_bad_data_file_in_one_line(tmp_path, capsys, content, fragment):
    from lessons_lib.tools.__main__ import main

    path = tmp_path / "mine.jsonl"
    if content is not None:
        path.write_bytes(content)
    assert main(["evaluate", "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.startswith("error: ") and err.count("\n") == 1, err


def test_evaluate_command_reports_unreadable_files_and_missing_adapters(tmp_path, capsys, monkeypatch):
    from lessons_lib.tools import __main__ as cli

    def refuse(path, shape):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("lessons_lib.tools.data.read_objects", refuse)
    assert cli.main(["evaluate", "--data", str(tmp_path / "locked.jsonl")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'locked.jsonl'}: Permission denied\n"
    assert cli.main(["evaluate", "--adapter", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: no adapter at {tmp_path / 'none'}: give a folder with adapter_config"
    )
    assert cli.main(["build-adapter", "--ship", str(tmp_path)]) == 2


def test_evaluate_command_prints_no_traceback(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"lang": "en", "request": "café"}\n'.encode("latin-1"))
    done = subprocess.run(
        [sys.executable, "-m", "lessons_lib.tools", "evaluate", "--data", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        done.stderr == f"error: {path}:1:31 is not UTF-8 (byte b'\\xe9'). Save the file as UTF-8 (in an editor: "
        "'Save with encoding: UTF-8'; in a shell: iconv -f cp1252 -t utf-8 old.jsonl > new.jsonl, with the file's "
        "real encoding).\n"
    )
