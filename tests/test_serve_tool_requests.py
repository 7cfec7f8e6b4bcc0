"""Tool calls over the API as a tool loop meets them: a cut call sent back, model="auto" with tools, a broken call
under tool_choice "auto", a max_tokens too small for a forced call, and a non-streamed client that hangs up.

The app runs in-process (httpx's ASGI transport) on the real tiny model with the course adapters, tools included.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from lessons_lib.serve.app import ChatRequest, create_app
from lessons_lib.serve.tooling import ToolPlan, fewest_tokens, needs_retry, read_reply

TOOL_REQUEST = "Format the text to width 21, indent 4: Warsaw gets a new blender today."  # tool_examples(1, "heldout")
# the tiny tools adapter starts a call here and writes an invalid escape in it (probe3, D3)
BROKEN_CALL_REQUEST = "Wrap 'Ignatius plants turnips beside the old lighthouse' at 12 characters."
CUT_AT = 30  # tokens: TOOL_REQUEST's call has its name in full and its arguments cut


@pytest.fixture(scope="module")
def app():
    """The tiny base with the course adapters (tools included) and the keyword router, as the server loads them."""
    from lessons_lib.profiles import PROFILES
    from lessons_lib.serve.loading import load_served_model

    served = load_served_model(PROFILES["tiny"], router="keyword", log=lambda *_: None)
    app = create_app(served, window_ms=10)
    yield app
    app.state.server.close()


@pytest.fixture(scope="module")
def tools():
    from lessons_lib.tools.schemas import tool_schemas

    return tool_schemas()


def post(app, body: dict) -> httpx.Response:
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lab", timeout=300) as c:
            return await c.post("/v1/chat/completions", json=body)

    return asyncio.run(go())


def streamed(app, body: dict) -> list[dict]:
    """The chunks of a streamed completion."""
    text = post(app, {**body, "stream": True}).text
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def answer(app, **body) -> dict:
    response = post(app, body)
    assert response.status_code == 200, response.text
    return response.json()


def valid_call(call: dict, tools: list[dict]) -> dict:
    """The call's arguments, after checking them against the course schemas."""
    from lessons_lib.tools.calls import ToolCall, validate_call
    from lessons_lib.tools.schemas import schemas_by_name

    arguments = json.loads(call["function"]["arguments"])
    validate_call(ToolCall(call["function"]["name"], arguments), schemas_by_name(tools))
    return arguments


# ---------------------------------------------------------------- D1: a cut call sent back
def test_a_cut_call_sent_back_unchanged_is_accepted_and_rendered_as_the_model_wrote_it(app, tools):
    """Before: 400 "The arguments are not valid JSON; send the JSON string the server returned" for the very string
    the server returned, so every tool loop broke on a call the token limit cut."""
    messages = user(TOOL_REQUEST)
    first = answer(app, model="tools", messages=messages, tools=tools, max_tokens=CUT_AT)["choices"][0]
    assert first["finish_reason"] == "length" and first["message"]["content"] is None
    call = first["message"]["tool_calls"][0]
    with pytest.raises(ValueError):
        json.loads(call["function"]["arguments"])  # partial, as OpenAI returns a cut call
    messages += [first["message"], {"role": "tool", "tool_call_id": call["id"], "content": "Error: the call was cut."}]
    again = post(app, {"model": "tools", "messages": messages, "tools": tools, "max_tokens": 16})
    assert again.status_code == 200, again.text
    prompt = app.state.server.build_job(ChatRequest(model="tools", messages=messages, tools=tools)).prompt
    written = '{"tool": "' + call["function"]["name"] + '", "arguments": ' + call["function"]["arguments"]
    assert "<|assistant|>\n" + written + "<|end|>\n<|tool|>\nError: the call was cut.<|end|>" in prompt


def test_any_arguments_string_is_taken_back_as_openai_takes_it(app):
    """A JSON object is rendered as the call's arguments; anything else as written (no 400)."""
    server = app.state.server
    cases = (('{"text": "hi"}', '"arguments": {"text": "hi"}}'), ("{not json", '"arguments": {not json'))
    for arguments, shown in cases:
        call = {"id": "call_1", "type": "function", "function": {"name": "text_formatter", "arguments": arguments}}
        messages = [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        ]
        prompt = server.build_job(ChatRequest(model="json", messages=messages)).prompt
        assert '{"tool": "text_formatter", ' + shown in prompt


# ---------------------------------------------------------------- D2: model="auto" with tools
@pytest.mark.parametrize("tool_choice", ["auto", "required"])
def test_auto_sends_a_request_with_tools_to_the_tools_adapter_and_says_so(app, tools, tool_choice):
    """Before: the router (labels json/coding/support/general) sent it to an adapter that never learned calls."""
    request = {"messages": user(TOOL_REQUEST), "tools": tools, "tool_choice": tool_choice, "max_tokens": 112}
    routed = answer(app, model="auto", **request)
    assert (routed["adapter"], routed["model"], routed["requested_model"]) == ("tools", "tools", "auto")
    assert routed["route"]["label"] == "tools" and routed["route"]["adapter"] == "tools"
    assert "tools" in routed["route"]["reason"]
    named = answer(app, model="tools", **request)
    assert (
        routed["choices"][0]["message"]["tool_calls"][0]["function"]
        == named["choices"][0]["message"]["tool_calls"][0]["function"]
    )
    first = streamed(app, {"model": "auto", **request})[0]
    assert first["adapter"] == "tools" and first["route"]["label"] == "tools"


def test_auto_with_tool_choice_none_routes_the_text_as_before(app, tools):
    request = {"model": "auto", "messages": user("Extract JSON: Anna, 31, Kazan."), "max_tokens": 8}
    plain = answer(app, **request)
    hidden = answer(app, **request, tools=tools, tool_choice="none")
    assert hidden["adapter"] == plain["adapter"] != "tools" and hidden["route"]["label"] != "tools"


def test_auto_with_tools_and_no_tools_adapter_is_a_400_that_says_what_to_do(app, tools, monkeypatch):
    monkeypatch.setattr(app.state.server, "tools_adapter", None)
    response = post(app, {"model": "auto", "messages": user(TOOL_REQUEST), "tools": tools})
    error = response.json()["error"]
    assert response.status_code == 400 and (error["code"], error["param"]) == ("no_tools_adapter", "tools")
    assert "tool_choice" in error["message"] and "Name a model" in error["message"]


def test_models_say_where_auto_sends_tools_and_which_adapters_mix(app):
    listed = {m["id"]: m for m in app.state.server.models()["data"]}
    assert listed["auto"]["tools_adapter"] == "tools"
    assert listed["tools"]["mixable"] is False and listed["json"]["mixable"] is True


# ---------------------------------------------------------------- D3: a broken call under tool_choice "auto"
def test_a_broken_call_under_auto_is_decoded_again_under_the_schemas(app, tools):
    """Before: content '{"tool": "content_validator", "arguments": {"text": "Nrap \'I\\\\atius ...' with finish "stop"
    (the course's internal format as the answer)."""
    request = {"model": "tools", "messages": user(BROKEN_CALL_REQUEST), "tools": tools, "tool_choice": "auto"}
    body = answer(app, **request)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    valid_call(call, tools)
    chunks = streamed(app, request)
    deltas = [d for c in chunks for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert not any(c["choices"][0]["delta"].get("content") for c in chunks)
    assert deltas[0]["function"]["name"] == call["function"]["name"]
    assert "".join(d["function"]["arguments"] for d in deltas) == call["function"]["arguments"]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]] == ["tool_calls"]


def test_a_call_decoded_again_streams_the_logprobs_of_the_decode_it_returns(app, tools):
    """Before: the stream carried the logprobs of the first, discarded decode (the non-streamed answer had the
    second's)."""
    request = {
        "model": "tools",
        "messages": user(BROKEN_CALL_REQUEST),
        "tools": tools,
        "tool_choice": "auto",
        "logprobs": True,
    }
    plain = [e["token"] for e in answer(app, **request)["choices"][0]["logprobs"]["content"]]
    chunks = streamed(app, request)
    tokens = [e["token"] for c in chunks for e in ((c["choices"][0].get("logprobs") or {}).get("content") or [])]
    assert tokens == plain and tokens


def test_a_broken_call_that_cannot_be_decoded_again_comes_back_as_a_call_never_as_text(tools):
    """Where no second decode runs, the call is a tool_calls entry as written (OpenAI's non-strict mode)."""
    plan = ToolPlan(tools, "auto")
    broken = '{"tool": "content_validator", "arguments": {"text": "Nrap \'I\\atius", "rules": ["max_length:12"]}}'
    reading = read_reply(broken, "stop", plan)
    assert reading.content is None and reading.finish_reason == "tool_calls"
    assert reading.tool_calls[0]["function"] == {
        "name": "content_validator",
        "arguments": '{"text": "Nrap \'I\\atius", "rules": ["max_length:12"]}',
    }
    assert read_reply("Here is the text.", "stop", plan).content == "Here is the text."
    assert needs_retry(broken, "stop", plan) and not needs_retry(broken, "length", plan)
    assert not needs_retry('{"tool": "text_formatter", "arguments": {"text": "hi", "width": 5}}', "stop", plan)


# ---------------------------------------------------------------- D6: max_tokens too small for a forced call
def test_a_forced_call_that_cannot_write_its_name_is_a_400_naming_the_minimum(app, tools):
    """Before: 200 with empty content, no call, finish "length"."""
    tokenizer = app.state.server.check_tokenizer
    least = min(fewest_tokens('{"tool": "' + t["function"]["name"] + '"', tokenizer) for t in tools)
    own = len(tokenizer('{"tool": "text_formatter"', add_special_tokens=False)["input_ids"])
    assert 1 < least <= own
    for tool_choice in ("required", {"type": "function", "function": {"name": "text_formatter"}}):
        request = {"model": "tools", "messages": user(TOOL_REQUEST), "tools": tools, "tool_choice": tool_choice}
        response = post(app, {**request, "max_completion_tokens": least - 1})
        error = response.json()["error"]
        assert response.status_code == 400 and error["param"] == "max_completion_tokens", error
        assert error["code"] == "max_tokens_too_small" and error["minimum"] >= least
        assert f"at least {error['minimum']}" in error["message"]
        assert post(app, {**request, "max_tokens": error["minimum"]}).status_code == 200


# ---------------------------------------------------------------- D8: a non-streamed client that hangs up
class GoneClient:
    """A Starlette Request stand-in whose client has already disconnected."""

    async def is_disconnected(self) -> bool:
        return True


def test_a_non_streamed_request_whose_client_disconnects_is_cancelled(app):
    """Before: the engine generated the whole answer for nobody (only streams were cancelled)."""
    server = app.state.server
    before = server.engine.stats["cancelled"]
    request = ChatRequest(
        model="base", messages=user("Tell me a long story about a lighthouse keeper."), n=8, temperature=1.0
    )
    response = asyncio.run(server.answer(request, GoneClient()))
    assert response.status_code == 499
    for _ in range(200):
        if server.engine.stats["cancelled"] > before:
            break
        time.sleep(0.05)
    assert server.engine.stats["cancelled"] == before + 1


# ---------------------------------------------------------------- quote: a forced call's free text quotes the request
SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
QUOTED = (  # (request, the text it asks to format), phrasings of the hand-written kind, names no template has
    (TOOL_REQUEST, "Warsaw gets a new blender today."),
    ("Wrap this at 30 characters with indent 2: Our bakery on Elm Street opens at seven.", None),
    ("Rewrap «Quorra's ferry leaves Tinmouth at noon.» to 24 columns.", None),
)


@pytest.mark.parametrize("request_text, text", QUOTED)
def test_quote_makes_the_calls_free_text_a_phrase_of_the_request(app, tools, request_text, text):
    """Before: no way to ask the API for lesson 05's quoting: the tiny adapter's call for TOOL_REQUEST formats
    "Nora gets a new free today." (a training name, a garbled word) whatever copy_bias says."""
    from lessons_lib.tools.constrained import CallGrammar

    body = {"messages": user(request_text), "tools": tools, "tool_choice": "required", "max_tokens": 112}
    for stream in (False, True):
        if stream:
            deltas = [c["choices"][0]["delta"] for c in streamed(app, {"model": "tools", **body, "quote": True})]
            calls = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
            arguments = json.loads("".join(c["function"].get("arguments") or "" for c in calls))
        else:
            call = answer(app, model="tools", **body, quote=True)["choices"][0]["message"]["tool_calls"][0]
            arguments = valid_call(call, tools)
        grammar = CallGrammar(tools, request_text)
        written = json.dumps({"tool": "text_formatter", "arguments": arguments}, ensure_ascii=False).encode()
        assert grammar.quotes_ok(written) and arguments["text"] in request_text, arguments
        if text is not None:
            assert arguments["text"] == text
    if text is not None:  # what quoting changes: without it, the adapter's own words, nudged to copy or not (quiz 06)
        for bias in (None, 6, 10):
            plain = answer(app, model="tools", **body, copy_bias=bias)["choices"][0]["message"]["tool_calls"][0]
            assert json.loads(plain["function"]["arguments"])["text"] != text, bias


@pytest.mark.parametrize(
    "extra, said",
    [
        ({"tool_choice": "auto"}, "this request has neither"),
        ({"tools": None}, "this request has neither"),
        ({"tool_choice": "none"}, "this request has neither"),
        ({"quote": "true"}, "boolean"),
        ({"tools": None, "requested_names": True}, "quote does not go with requested_names"),
        (
            {"tools": None, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}},
            "quote does not go with response_format json_schema",
        ),
    ],
    ids=["auto", "no-tools", "none", "string", "requested-names", "json-schema"],
)
def test_quote_where_no_call_is_forced_is_a_400_naming_it(app, tools, extra, said):
    body = {"model": "tools", "messages": user(TOOL_REQUEST), "tools": tools, "quote": True, "max_tokens": 8, **extra}
    response = post(app, {k: v for k, v in body.items() if v is not None})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "quote" and said in error["message"], error


ELM = "Wrap this at 30 characters with indent 2: Our bakery on Elm Street opens at seven."


def after_the_call(request_text: str, arguments: dict) -> tuple[list[dict], str]:
    """A conversation that ends with text_formatter's result for `arguments`, and that result."""
    from lessons_lib.tools.functions import text_formatter

    result = text_formatter(**arguments)
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "text_formatter", "arguments": json.dumps(arguments)},
    }
    return [
        *user(request_text),
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": result},
    ], result


def test_quote_after_a_tool_result_makes_the_answer_repeat_it_exactly(app, tools):
    """Before: the answer after a correct call garbled its result ("Our b tablety on Plm Street")."""
    messages, result = after_the_call(
        ELM, {"text": "Our bakery on Elm Street opens at seven.", "width": 30, "indent": 2}
    )
    body = {"model": "tools", "messages": messages, "tools": tools, "max_tokens": 112}
    quoted = answer(app, **body, quote=True)["choices"][0]["message"]["content"]
    free = answer(app, **body)["choices"][0]["message"]["content"]
    assert result.strip() in quoted and result.strip() not in free, (quoted, free)
    streamed_text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in streamed(app, {**body, "quote": True}) if c["choices"]
    )
    assert streamed_text == quoted


# ---------------------------------------------------------------- the course's own tools keep their cross-argument rule
NARROW = (  # requests whose numbers break text_formatter's rule (the indent below the width)
    "Wrap to 4 columns, indent 6: Tilda fixed the gate.",
    "Format at width 3 with an indent of 5: Bo ran.",
    "indent 12, width 10: The Orrin ferry is late.",
    "Reflow this at 8 characters, indented 8 spaces: Mina sang.",
)


def test_a_forced_call_to_the_course_formatter_keeps_the_indent_below_the_width(app, tools):
    """Before: the server applied only the client's schemas, so the course's own formatter got width 4, indent 6 (5 of
    these 8 calls), which the tool refuses; lesson 05's grammar keeps functions.BELOW for its tools."""
    from lessons_lib.tools.functions import text_formatter

    for request_text in NARROW:
        for quote in (False, True):
            body = {"messages": user(request_text), "tools": tools, "tool_choice": "required", "max_tokens": 112}
            body["parallel_tool_calls"] = False  # allowed with tools (a choice carries one call either way)
            call = answer(app, model="tools", **body, quote=quote)["choices"][0]["message"]["tool_calls"][0]
            arguments = valid_call(call, tools)
            assert arguments.get("indent", 0) < arguments["width"], (request_text, quote, arguments)
            text_formatter(**arguments)  # the tool takes the call


def test_the_course_rules_hold_for_the_course_tools_only_as_the_course_writes_them(tools):
    """A client's tool that shares a course tool's name (other parameters) gets its own schema, not the course rule."""
    import copy

    from lessons_lib.tools.schemas import course_tool_names

    theirs = copy.deepcopy(tools)
    theirs[0]["function"]["parameters"]["properties"]["width"]["maximum"] = 80
    assert course_tool_names(tools) == {"text_formatter", "content_validator", "template_generator"}
    assert course_tool_names(theirs) == {"content_validator", "template_generator"}
    assert course_tool_names(json.loads(json.dumps(tools))) == course_tool_names(tools)  # as sent over HTTP


# ---------------------------------------------------------------- "auto" calls name a tool of the request
DATED = [  # pydantic's datetime.date: a `format` the grammar cannot keep, so no decode under the schemas
    {
        "type": "function",
        "function": {
            "name": "book",
            "parameters": {"type": "object", "properties": {"day": {"type": "string", "format": "date"}}},
        },
    }
]
WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


@pytest.mark.parametrize("content", ["Can you wrap my note at 30 characters? Note: The meeting moved to Friday.", "hi"])
def test_an_auto_call_for_tools_the_grammar_cannot_express_names_one_of_them(app, content):
    """Before: the tiny tools adapter's own tools came back ("content_trailing_spaces", "text_formatter"), or its
    internal format as content ('{"tool": "contententent…')."""
    request = {"model": "tools", "messages": user(content), "tools": DATED, "max_tokens": 112}
    choice = answer(app, **request)["choices"][0]
    assert choice["message"]["content"] is None, choice
    assert [c["function"]["name"] for c in choice["message"]["tool_calls"]] == ["book"]
    deltas = [c["choices"][0]["delta"] for c in streamed(app, request)]
    assert not any(d.get("content") for d in deltas)
    assert [t["function"]["name"] for d in deltas for t in d.get("tool_calls", []) if "name" in t["function"]] == [
        "book"
    ]


def test_a_call_decoded_again_stays_within_the_clients_max_tokens(app):
    """Before: completion_tokens 123 with max_tokens 80 (both decodes in full) and a call to "content_trailing_spaces",
    a tool the request does not have. Both decodes now share max_tokens; with no room for a call, the reply is empty
    with finish "length" (as a call cut before its name), never a call to another tool."""
    for max_tokens in (80, 112):
        request = {"model": "tools", "messages": user("Wrap 'hello world' at width 5"), "tools": WEATHER}
        body = answer(app, **request, max_tokens=max_tokens)
        choice, used = body["choices"][0], body["usage"]["completion_tokens"]
        assert used <= max_tokens, body["usage"]
        names = [c["function"]["name"] for c in choice["message"].get("tool_calls") or []]
        assert names in ([], ["get_weather"]) and (
            names or (choice["message"]["content"], choice["finish_reason"]) == ("", "length")
        ), choice


def test_a_call_to_a_tool_the_request_lacks_is_never_sent(tools):
    """Where no second decode can run, a reply that calls a tool outside the request's, or writes no name, is empty
    content with finish "length", not a call the client cannot run nor the course's format as text."""
    plan = ToolPlan(tools[:1], "auto")
    for reply in (
        '{"tool": "content_validator", "arguments": {"text": "a", "rules": []}}',
        '{"tool": "contententent: x"]}}',
    ):
        reading = read_reply(reply, "stop", plan)
        assert (reading.content, reading.tool_calls, reading.finish_reason) == ("", None, "length"), reply
