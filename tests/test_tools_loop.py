"""Schemas, the call parser/validator and the tool-calling loop (with a scripted fake model)."""
import json

import pytest

from lessons_lib.tools import TOOLS, ToolCall, run_tool_loop, tool_schemas
from lessons_lib.tools.calls import (BadArguments, MalformedCall, UnknownTool, call_text, looks_like_call,
                                     parse_and_validate, parse_call)
from lessons_lib.tools.functions import RULE_PATTERN, TEMPLATE_TYPES
from lessons_lib.tools.schemas import schemas_by_name

SCHEMAS = schemas_by_name(tool_schemas())


def test_schemas_come_from_signatures_and_docstrings():
    fmt = SCHEMAS["text_formatter"]["function"]
    assert fmt["description"].startswith("Wrap text into lines")
    assert fmt["parameters"]["required"] == ["text"]
    assert {k: v["type"] for k, v in fmt["parameters"]["properties"].items()} == {
        "text": "string", "width": "integer", "indent": "integer"}
    assert all(v["description"] for v in fmt["parameters"]["properties"].values())
    tmpl = SCHEMAS["template_generator"]["function"]["parameters"]
    assert tmpl["properties"]["template_type"]["enum"] == list(TEMPLATE_TYPES)
    assert tmpl["properties"]["language"]["enum"] == ["en", "ru"]
    rules = SCHEMAS["content_validator"]["function"]["parameters"]["properties"]["rules"]
    assert rules == {**rules, "type": "array", "items": {"type": "string", "pattern": f"^{RULE_PATTERN}$"}}
    assert list(SCHEMAS) == list(TOOLS)


def test_chat_template_lists_tools_and_renders_calls_and_results(tokenizer):
    messages = [{"role": "user", "content": "wrap it"}, ToolCall("text_formatter", {"text": "héllo мир", "width": 5}).as_message(),
                {"role": "tool", "content": "héllo\nмир"}]
    text = tokenizer.apply_chat_template(messages, tools=tool_schemas(), tokenize=False)
    assert text.startswith("<|system|>\nTools: text_formatter; template_generator; content_validator<|end|>\n<|user|>")
    assert call_text("text_formatter", {"text": "héllo мир", "width": 5}) in text  # same JSON as Jinja's tojson
    assert text.endswith("<|tool|>\nhéllo\nмир<|end|>")


def test_parse_a_good_call_and_tolerate_fences_and_string_arguments():
    assert parse_call('{"tool": "text_formatter", "arguments": {"text": "a", "width": 3}}') == \
        ToolCall("text_formatter", {"text": "a", "width": 3})
    assert parse_call('```json\n{"tool": "x", "arguments": "{\\"a\\": 1}"}\n```') == ToolCall("x", {"a": 1})


@pytest.mark.parametrize("text, fragment", [
    ('{"tool": "text_formatter", "arguments": {"text": "a"', "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"arguments": {}}', 'no "tool" name'),
    ('{"tool": "x", "arguments": [1]}', '"arguments" must be an object'),
    ('{"tool": "x", "arguments": {}} and more', "Extra text"),
    ('{"tool": "x", "arguments": "not json"}', "is a string that is not JSON"),
])
def test_malformed_calls_are_explained(text, fragment):
    with pytest.raises(MalformedCall, match=fragment):
        parse_call(text)


@pytest.mark.parametrize("call, error, fragment", [
    ('{"tool": "summarize", "arguments": {}}', UnknownTool, "available tools: text_formatter, template_generator"),
    ('{"tool": "text_formatter", "arguments": {"width": 3}}', BadArguments, "needs the argument(s) text"),
    ('{"tool": "text_formatter", "arguments": {"text": "a", "size": 3}}', BadArguments, "has no argument(s) size"),
    ('{"tool": "text_formatter", "arguments": {"text": "a", "width": "3"}}', BadArguments, "must be of type integer"),
    ('{"tool": "text_formatter", "arguments": {"text": "a", "width": true}}', BadArguments, "must be of type integer"),
    ('{"tool": "template_generator", "arguments": {"template_type": "poem", "topic": "a"}}', BadArguments,
     "choose one of: instruction, email"),
    ('{"tool": "content_validator", "arguments": {"text": "a", "rules": ["non_empty", 3]}}', BadArguments, "rules[1]"),
    ('{"tool": "content_validator", "arguments": {"text": "a", "rules": ["short"]}}', BadArguments,
     "'rules[0]' is 'short', which does not match the pattern ^(?:non_empty|"),
])
def test_schema_validation_names_the_problem(call, error, fragment):
    with pytest.raises(error) as err:
        parse_and_validate(call, SCHEMAS)
    assert fragment in str(err.value)


def test_looks_like_call():
    assert looks_like_call(' {"tool": 1}') and looks_like_call("```json\n{}") and not looks_like_call("Here it is: {}")
    assert looks_like_call('[TOOL_CALLS] [{"name": "x"}]') and looks_like_call('[ {"name": "x"}]')
    assert not looks_like_call("[1, 2]")


@pytest.mark.parametrize("reply", [
    '[TOOL_CALLS] [{"name": "text_formatter", "arguments": {"text": "a", "width": 3}, "id": "abc123def"}]',
    '[TOOL_CALLS][{"name": "text_formatter", "arguments": "{\\"text\\": \\"a\\", \\"width\\": 3}", "id": "abc123def"}]',
    '[{"name": "text_formatter", "arguments": {"text": "a", "width": 3}, "id": "abc123def"}]',
])
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
    assert model.seen[1][-2]["tool_calls"][0]["function"] == {"name": "text_formatter",
                                                              "arguments": {"text": "one two three", "width": 7}}
    assert len(call_id) == 9 and call_id.isalnum() and result.calls[0].id == call_id  # strict templates need it
    assert result.results == ["one two\nthree"]


def test_dict_results_go_back_as_json():
    model = FakeModel(call_text("content_validator", {"text": "x", "rules": ["non_empty"]}), "ok")
    result = run_tool_loop(model, "check")
    assert json.loads(model.seen[1][-1]["content"]) == {"ok": True, "passed": ["non_empty"], "failed": []}


@pytest.mark.parametrize("bad_reply, kind, told", [
    ('{"tool": "text_formatter", "arguments": {', "malformed call", "not valid JSON"),
    ('{"tool": "shout", "arguments": {}}', "unknown tool", "There is no tool 'shout'"),
    ('{"tool": "text_formatter", "arguments": {"txt": "a"}}', "bad arguments", "needs the argument(s) text"),
    ('{"tool": "text_formatter", "arguments": {"text": "a", "width": 0}}', "error", "width must be a positive number"),
])
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
