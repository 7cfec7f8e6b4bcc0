"""The course server used the way app developers use OpenAI's API: the real `openai` client (sync, async,
streaming) and LangChain's `ChatOpenAI`, pointed at a real server process (one per module).

Covers every row of issue 17's table — stream=True, temperature, n, stop, tools + tool_choice, logprobs,
response_format, models.retrieve and unknown routes, a malformed body, a developer message — and streaming under
concurrency: 32 streamed requests over several adapters, each equal to its non-streamed answer, in shared batches.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest

MAX_TOKENS = 24
STREAM_TOKENS = 16  # the routed-stream checks compare whole answers: short ones suffice
JSON_PROMPT = "Extract JSON: Anna, 31, Kazan."
TOOL_REQUEST = "Format the text to width 21, indent 4: Warsaw gets a new blender today."  # tool_examples(1, "heldout")


@pytest.fixture(scope="module")
def server(course_server):
    """The real server on the tiny profile (conftest's course_server, shared with test_serve.py)."""
    return course_server


@pytest.fixture(scope="module")
def api(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="not-needed", max_retries=0)


@pytest.fixture(scope="module")
def course_tools():
    from lessons_lib.tools.schemas import tool_schemas

    return tool_schemas()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def ask(api, model: str = "json", prompt: str = JSON_PROMPT, **extra):
    extra.setdefault("max_tokens", MAX_TOKENS)
    return api.chat.completions.create(model=model, messages=user(prompt), **extra)


def text(reply) -> str:
    return reply.choices[0].message.content


# ---------------------------------------------------------------- streaming
def test_stream_sends_chunks_as_generated_then_finish_usage_and_done(api, server):
    """Before: stream=True was a 400. Now: SSE chunks whose text is the non-streamed answer."""
    plain = ask(api)
    stream = ask(api, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3, "the answer came in one piece, not as it was generated"
    assert "".join(pieces) == text(plain)
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].model_extra["adapter"] == "json"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    with httpx.stream(
        "POST",
        f"{server}/v1/chat/completions",
        json={"model": "json", "messages": user(JSON_PROMPT), "max_tokens": 4, "stream": True},
    ) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in raw.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)


def test_a_client_that_disconnects_cancels_its_rows(server):
    """Closing the stream sets job.cancelled: the engine drops the rows (stats["cancelled"])."""
    before = httpx.get(f"{server}/health").json()["engine"]["cancelled"]
    body = {
        "model": "base",
        "messages": user("Tell me a long story about a lighthouse keeper."),
        "stream": True,
        "temperature": 1.0,
        "seed": 1,
        "max_tokens": 112,
        "n": 8,
    }
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body, timeout=60) as raw:
        for line in raw.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                break  # text is flowing: hang up
    for _ in range(100):
        if httpx.get(f"{server}/health").json()["engine"]["cancelled"] > before:
            break
        time.sleep(0.1)
    assert httpx.get(f"{server}/health").json()["engine"]["cancelled"] == before + 1


def test_a_non_streamed_client_that_disconnects_cancels_its_rows(server):
    """Before: a non-streamed request kept generating for nobody after its client hung up (probe3, D8)."""
    before = httpx.get(f"{server}/health").json()["engine"]["cancelled"]
    long_text = {"type": "string", "minLength": 100, "maxLength": 100}  # no reply can end early: ~1 s or more
    schema = {"type": "object", "properties": {"s": long_text}, "required": ["s"], "additionalProperties": False}
    body = {
        "model": "base",
        "messages": user("hi"),
        "max_tokens": 112,
        "n": 8,
        "response_format": {"type": "json_schema", "json_schema": {"name": "long", "schema": schema}},
    }
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes the connection
        httpx.post(f"{server}/v1/chat/completions", json=body, timeout=httpx.Timeout(60, read=0.3))
    for _ in range(100):
        if httpx.get(f"{server}/health").json()["engine"]["cancelled"] > before:
            break
        time.sleep(0.1)
    assert httpx.get(f"{server}/health").json()["engine"]["cancelled"] == before + 1


# ---------------------------------------------------------------- sampling
def test_temperature_samples_and_the_same_seed_repeats(api):
    """Before: six calls at temperature 1.2 gave six identical answers (temperature was ignored)."""
    sampled = [text(ask(api, temperature=1.2)) for _ in range(6)]
    assert len(set(sampled)) >= 4, sampled
    seeded = {text(ask(api, temperature=1.2, seed=7)) for _ in range(3)}
    assert len(seeded) == 1
    assert seeded != {text(ask(api, temperature=1.2, seed=8))}
    greedy = text(ask(api))
    assert text(ask(api, temperature=0, seed=7)) == greedy  # a seed changes nothing at temperature 0
    narrow = {text(ask(api, temperature=1.2, top_p=1e-6, seed=s)) for s in range(3)}
    assert narrow == {greedy}  # top_p this small keeps only the most likely token


def test_n_gives_n_choices(api):
    """Before: n=3 gave one choice."""
    reply = ask(api, n=3, temperature=1.0, seed=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert len({c.message.content for c in reply.choices}) > 1
    assert reply.usage.completion_tokens > max(len(c.message.content) // 8 for c in reply.choices)
    greedy = ask(api, n=2)
    assert greedy.choices[0].message.content == greedy.choices[1].message.content == text(ask(api))


def test_stop_cuts_the_answer_before_the_stop_string(api):
    """Before: stop was ignored: the stop string was in the answer."""
    full = text(ask(api))
    stop = full[len(full) // 2 : len(full) // 2 + 4]
    cut = ask(api, stop=[stop, "never-there"])
    assert stop not in text(cut)
    assert text(cut) == full[: full.index(stop)].strip()
    assert cut.choices[0].finish_reason == "stop"


def test_copy_bias_goes_through_the_sdk_as_an_extra_body_field(api):
    prompt = "Hello, this is Evangeline Strathmore. Order 77120 never came."
    assert "Evangeline" not in text(ask(api, "support", prompt))
    assert text(ask(api, "support", prompt, extra_body={"copy_bias": 6})).startswith("Hello, Evangeline Strathmore!")


def test_requested_names_go_through_the_sdk_as_an_extra_body_field(api):
    prompt = "Write stutter(s) that repeats every character of s twice."
    assert not text(ask(api, "coding", prompt, extra_body={"copy_bias": 6})).startswith("def stutter(")
    named = text(ask(api, "coding", prompt, extra_body={"copy_bias": 6, "requested_names": True}))
    assert named.startswith("def stutter(s):")


def test_logprobs_come_with_the_tokens(api):
    """Before: logprobs=True gave logprobs None."""
    reply = ask(api, logprobs=True, top_logprobs=2, max_tokens=6)
    entries = reply.choices[0].logprobs.content
    assert len(entries) == 6 and "".join(e.token for e in entries) == text(reply)
    for entry in entries:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)  # greedy took the likeliest
    assert ask(api).choices[0].logprobs is None
    streamed = [
        c.choices[0].logprobs
        for c in ask(api, logprobs=True, max_tokens=6, stream=True)
        if c.choices and c.choices[0].logprobs
    ]
    assert [e.token for lp in streamed for e in lp.content] == [e.token for e in entries]


# ---------------------------------------------------------------- tools
def check_call(call, schemas) -> dict:
    from lessons_lib.tools.calls import ToolCall, validate_call
    from lessons_lib.tools.schemas import schemas_by_name

    assert call.type == "function" and call.id.startswith("call_")
    arguments = json.loads(call.function.arguments)
    validate_call(ToolCall(call.function.name, arguments), schemas_by_name(schemas))
    return arguments


def test_tools_with_tool_choice_required_answer_with_tool_calls(api, course_tools):
    """Before: tool_calls None; the tools adapter was not served and the course's constrained decoder unused."""
    reply = api.chat.completions.create(
        model="tools", messages=user(TOOL_REQUEST), tools=course_tools, tool_choice="required", max_tokens=112
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls[0].function.name == "text_formatter"
    assert check_call(choice.message.tool_calls[0], course_tools)["width"] == 21
    # even the base model, which never learned the call format, writes a valid call under the grammar
    named = api.chat.completions.create(
        model="base",
        messages=user(TOOL_REQUEST),
        tools=course_tools,
        tool_choice={"type": "function", "function": {"name": "content_validator"}},
        max_tokens=112,
    )
    assert named.choices[0].message.tool_calls[0].function.name == "content_validator"
    check_call(named.choices[0].message.tool_calls[0], course_tools)


def test_auto_parses_a_call_and_the_tool_result_goes_into_the_next_request(api, course_tools):
    from lessons_lib.tools.functions import TOOLS
    from lessons_lib.tools.loop import result_text

    messages = user(TOOL_REQUEST)
    first = api.chat.completions.create(model="tools", messages=messages, tools=course_tools, max_tokens=112)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    result = TOOLS[call.function.name](**check_call(call, course_tools))
    messages += [
        first.choices[0].message,  # sent back as returned, as OpenAI's examples do
        {"role": "tool", "tool_call_id": call.id, "content": result_text(result)},
    ]
    final = api.chat.completions.create(model="tools", messages=messages, tools=course_tools, max_tokens=112)
    assert final.choices[0].finish_reason == "stop" and final.choices[0].message.tool_calls is None
    assert final.choices[0].message.content.strip()
    none = api.chat.completions.create(
        model="json", messages=user(JSON_PROMPT), tools=course_tools, tool_choice="none", max_tokens=MAX_TOKENS
    )
    assert none.choices[0].message.tool_calls is None and text(none) == text(ask(api))


def test_tool_calls_stream_in_openai_shape(api, course_tools):
    """A constrained call streams as OpenAI's do: id and name first, then the arguments in pieces."""
    plain = api.chat.completions.create(
        model="tools", messages=user(TOOL_REQUEST), tools=course_tools, tool_choice="required", max_tokens=112
    )
    chunks = list(
        api.chat.completions.create(
            model="tools",
            messages=user(TOOL_REQUEST),
            tools=course_tools,
            tool_choice="required",
            max_tokens=112,
            stream=True,
        )
    )
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas and deltas[0].id.startswith("call_") and deltas[0].index == 0
    assert deltas[0].function.name == plain.choices[0].message.tool_calls[0].function.name
    expected = plain.choices[0].message.tool_calls[0].function.arguments
    assert "".join(d.function.arguments or "" for d in deltas) == expected
    assert len([d for d in deltas if d.function.arguments]) > 3, "the arguments did not stream as generated"
    assert all(d.id is None for d in deltas[1:])  # id and name come once, on the first delta
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["tool_calls"]
    assert not any(c.choices[0].delta.content for c in chunks)


# ---------------------------------------------------------------- formats, routes, errors
def test_response_format_text_is_fine_json_schema_is_kept_and_json_object_is_refused_by_name(api):
    """Before: response_format was ignored; then json_schema was a 400 (LangChain's default structured output)."""
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int
        city: str

    assert text(ask(api, response_format={"type": "text"})) == text(ask(api))
    parsed = api.chat.completions.parse(
        model="json", messages=user(JSON_PROMPT), response_format=Person, max_tokens=MAX_TOKENS
    )
    person = parsed.choices[0].message.parsed
    assert isinstance(person, Person) and person.age == 31 and parsed.choices[0].finish_reason == "stop"
    schema = {"type": "json_schema", "json_schema": {"name": "person", "schema": Person.model_json_schema()}}
    plain = text(ask(api, response_format=schema))
    streamed = "".join(c.choices[0].delta.content or "" for c in ask(api, response_format=schema, stream=True))
    assert streamed == plain and list(json.loads(plain)) == ["name", "age", "city"]
    for fmt, param in (
        ({"type": "json_object"}, "response_format"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}, "response_format.json_schema.schema"),
        ({"type": "json_schema", "json_schema": {"schema": Person.model_json_schema()}}, "response_format.json_schema"),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            ask(api, response_format=fmt)
        assert caught.value.param == param and caught.value.type == "invalid_request_error"


def test_models_retrieve_and_unknown_routes_answer_openai_error_objects(api):
    """Before: FastAPI's {"detail": "Not Found"}."""
    assert api.models.retrieve("json").id == "json"
    assert [m.id for m in api.models.list()] == ["base", "json", "coding", "support", "tools", "auto"]
    with pytest.raises(openai.NotFoundError) as caught:
        api.models.retrieve("legal")
    assert (caught.value.code, caught.value.type) == ("model_not_found", "invalid_request_error")
    with pytest.raises(openai.NotFoundError) as caught:
        api.get("/no/such/route", cast_to=object)
    assert caught.value.code == "unknown_url" and "/v1/no/such/route" in caught.value.message


def test_malformed_bodies_are_400_invalid_request_error(api, server):
    """Before: 422 with pydantic's list; OpenAI answers 400 invalid_request_error."""
    with pytest.raises(openai.BadRequestError) as caught:
        ask(api, extra_body={"mystery_option": 1})
    assert (caught.value.code, caught.value.param) == ("unknown_parameter", "mystery_option")
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model="json", messages=[{"role": "robot", "content": "hi"}])
    assert caught.value.param == "messages[0].role" and caught.value.type == "invalid_request_error"
    raw = httpx.post(
        f"{server}/v1/chat/completions",
        content=b'{"model": "json", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"


def test_a_developer_message_is_a_system_message(api):
    """Before: the developer role was rejected."""
    for model in ("json", "base"):
        as_developer = api.chat.completions.create(
            model=model,
            max_tokens=MAX_TOKENS,
            messages=[{"role": "developer", "content": "Answer in one word."}, *user(JSON_PROMPT)],
        )
        as_system = api.chat.completions.create(
            model=model,
            max_tokens=MAX_TOKENS,
            messages=[{"role": "system", "content": "Answer in one word."}, *user(JSON_PROMPT)],
        )
        assert text(as_developer) == text(as_system)


# ---------------------------------------------------------------- concurrency
def test_32_concurrent_streams_equal_their_plain_answers_and_share_batches(server, api):
    from lessons_lib.data import DOMAINS, examples

    prompts = [ex.prompt for domain in DOMAINS for ex in examples(domain, 3, "heldout", seed=5)]
    jobs = [(model, prompt) for prompt in prompts for model in (*DOMAINS, "base")][:32]
    assert len(jobs) == 32
    plain = {job: text(ask(api, *job)) for job in jobs}
    before = httpx.get(f"{server}/health").json()["engine"]

    async def streamed(client, model, prompt):
        stream = await client.chat.completions.create(
            model=model, messages=user(prompt), max_tokens=MAX_TOKENS, temperature=0, stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def all_at_once():
        async with openai.AsyncOpenAI(base_url=f"{server}/v1", api_key="not-needed", max_retries=0) as client:
            return await asyncio.gather(*(streamed(client, *job) for job in jobs))

    texts = asyncio.run(all_at_once())
    after = httpx.get(f"{server}/health").json()["engine"]
    wrong = [(job, got) for job, got in zip(jobs, texts) if got != plain[job]]
    assert wrong == [], f"{len(wrong)} streams differ from their plain answers, e.g. {wrong[:2]}"
    assert after["max_batch_seen"] > 1
    assert after["batches"] - before["batches"] < 32, "the 32 streams were not batched together"


# ---------------------------------------------------------------- LangChain
def test_langchain_chat_openai_invokes_streams_and_calls_tools(server, api):
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI

    from lessons_lib.tools.langchain import langchain_tools

    chat = ChatOpenAI(
        base_url=f"{server}/v1", api_key="not-needed", model="json", max_tokens=MAX_TOKENS, temperature=0, max_retries=0
    )
    expected = text(ask(api))
    assert chat.invoke([HumanMessage(JSON_PROMPT)]).content == expected
    assert "".join(chunk.content for chunk in chat.stream(JSON_PROMPT)) == expected
    caller = ChatOpenAI(
        base_url=f"{server}/v1", api_key="not-needed", model="tools", max_tokens=112, temperature=0, max_retries=0
    ).bind_tools(langchain_tools(), tool_choice="required")
    message = caller.invoke(TOOL_REQUEST)
    assert message.tool_calls[0]["name"] == "text_formatter" and message.tool_calls[0]["args"]["width"] == 21
    tools = {tool.name: tool for tool in langchain_tools()}
    result = tools["text_formatter"].invoke(message.tool_calls[0])  # a ToolMessage with the call's id
    answer = ChatOpenAI(
        base_url=f"{server}/v1", api_key="not-needed", model="tools", max_tokens=112, temperature=0, max_retries=0
    ).invoke([HumanMessage(TOOL_REQUEST), message, result])
    assert answer.content.strip() and not answer.tool_calls


# ---------------------------------------------------------------- auto streams say who answers at once
@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server, timeout=120) as client:
        yield client


def heldout_prompt(domain: str) -> str:
    from lessons_lib.data import examples

    return examples(domain, 1, "heldout", seed=11)[0].prompt


def body(model: str, prompt: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": STREAM_TOKENS, **extra}


def streamed(http: httpx.Client, request: dict) -> list[dict]:
    """The chunks of one streamed request, read as raw server-sent events."""
    with http.stream("POST", "/v1/chat/completions", json={**request, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
    assert events[-1] == "[DONE]"
    return [json.loads(event) for event in events[:-1]]


@pytest.mark.parametrize("domain", ["json", "coding"])
def test_auto_stream_names_adapter_and_route_on_the_first_chunk(http, domain):
    """Before: the routed adapter and the route came on the last chunk only (model "auto" until then)."""
    prompt = heldout_prompt(domain)
    plain = http.post("/v1/chat/completions", json=body("auto", prompt)).json()
    assert plain["adapter"] == domain and plain["route"]["adapter"] == domain  # the router's pick, per domain
    chunks = streamed(http, body("auto", prompt))
    first = chunks[0]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}  # sent before any text
    assert first["adapter"] == plain["adapter"]
    assert first["route"] == plain["route"]
    assert {chunk["model"] for chunk in chunks} == {plain["model"]}  # every chunk's model, as non-streamed
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == plain["choices"][0]["message"]["content"]
    last = next(c for c in chunks if c["choices"][0]["finish_reason"])
    assert (last["adapter"], last["route"]) == (plain["adapter"], plain["route"])


def test_every_choice_of_an_auto_stream_starts_with_the_route(http):
    prompt = heldout_prompt("support")
    plain = http.post("/v1/chat/completions", json=body("auto", prompt)).json()
    chunks = streamed(http, body("auto", prompt, n=2, temperature=0.8, seed=3))
    firsts = {c["choices"][0]["index"]: c for c in reversed(chunks)}  # each choice's first chunk
    assert sorted(firsts) == [0, 1]
    for chunk in firsts.values():
        assert chunk["choices"][0]["delta"]["role"] == "assistant"
        assert (chunk["adapter"], chunk["route"]) == (plain["adapter"], plain["route"])


def test_openai_client_reads_the_routed_adapter_from_the_first_chunk(server):
    api = openai.OpenAI(base_url=f"{server}/v1", api_key="not-needed", max_retries=0)
    messages = [{"role": "user", "content": heldout_prompt("json")}]
    plain = api.chat.completions.create(model="auto", messages=messages, max_tokens=STREAM_TOKENS)
    stream = api.chat.completions.create(model="auto", messages=messages, max_tokens=STREAM_TOKENS, stream=True)
    first = next(iter(stream))
    stream.close()
    assert first.choices[0].delta.role == "assistant"
    assert first.model == plain.model == "json"
    assert first.model_extra["adapter"] == plain.model_extra["adapter"]
    assert first.model_extra["route"] == plain.model_extra["route"]


def test_a_second_announcement_changes_nothing_already_sent():
    """A job re-run alone after its batch failed is announced again; its stream has already named who answers."""
    from lessons_lib.serve.streaming import ChoiceStream, Chunks, Routed

    writer = Chunks("chatcmpl-x", "auto", None, include_usage=False, logprobs=False)
    states = [ChoiceStream(0, None), ChoiceStream(1, None)]
    sent = writer.routed(states, Routed("json", {"label": "json", "adapter": "json"}))
    chunks = [json.loads(piece.removeprefix(b"data: ")) for piece in sent]
    seen = [(c["choices"][0]["index"], c["adapter"], c["model"]) for c in chunks]
    assert seen == [(0, "json", "json"), (1, "json", "json")]
    assert writer.routed(states, Routed("coding", None)) == []
    assert (writer.adapter, writer.model) == ("json", "json")


def test_the_api_refuses_a_tools_mix_and_serves_the_others(http):
    prompt = heldout_prompt("json")
    refused = http.post("/v1/chat/completions", json=body("mix", prompt, adapter_weights={"json": 1.0, "tools": 1.0}))
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "unmixable_adapter" and error["param"] == "adapter_weights.tools"
    assert "lm_head" in error["message"] and "serve 'tools' on its own" in error["message"]
    mixed = http.post("/v1/chat/completions", json=body("mix", prompt, adapter_weights={"json": 1.0, "support": 1.0}))
    assert mixed.status_code == 200 and mixed.json()["adapter"] == "mix:json=1,support=1"
    alone = http.post("/v1/chat/completions", json=body("tools", prompt))
    assert alone.status_code == 200 and alone.json()["adapter"] == "tools"


def test_langchain_structured_output_and_optional_fields_decode_under_their_schemas(server):
    """LangChain's default structured output sends response_format json_schema (a 400 before), and a pydantic tool
    with an Optional field sends anyOf [string, null] (refused before under tool_choice="required")."""

    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel, Field

    class Person(BaseModel):
        """A person named in the text."""

        name: str
        age: int = Field(ge=0, le=130)
        city: str | None = None

    chat = ChatOpenAI(
        base_url=f"{server}/v1", api_key="not-needed", model="json", max_tokens=MAX_TOKENS, temperature=0, max_retries=0
    )
    person = chat.with_structured_output(Person).invoke(JSON_PROMPT)
    assert isinstance(person, Person) and person.age == 31
    caller = ChatOpenAI(
        base_url=f"{server}/v1", api_key="not-needed", model="tools", max_tokens=96, temperature=0, max_retries=0
    )
    calls = caller.bind_tools([Person], tool_choice="Person").invoke(JSON_PROMPT).tool_calls
    assert [c["name"] for c in calls] == ["Person"] and Person(**calls[0]["args"]).age <= 130


# ---------------------------------------------------------------- stop and the token limit never break a call
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
PERSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}


def streamed_reply(api, **request) -> tuple[str, str | None, str, list[str]]:
    """(content, call name, call arguments, finish reasons) of a streamed completion."""
    chunks = [c for c in api.chat.completions.create(stream=True, **request) if c.choices]
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    return (
        "".join(c.choices[0].delta.content or "" for c in chunks),
        next((d.function.name for d in deltas if d.function.name), None),
        "".join(d.function.arguments or "" for d in deltas),
        [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason],
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": "course", "tool_choice": "required"},
        {"tools": "course", "tool_choice": {"type": "function", "function": {"name": "text_formatter"}}},
        {"tools": "course"},
        {"response_format": PERSON_FORMAT},
    ],
    ids=["required", "named", "auto", "json_schema"],
)
def test_stop_is_refused_where_the_reply_may_be_json(api, course_tools, extra):
    """Before: stop=[","] cut a forced call to content '{"tool": "text_formatter"' with finish_reason "stop"."""
    extra = {**extra, "tools": course_tools} if "tools" in extra else extra
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model="tools", messages=user(TOOL_REQUEST), stop=[","], max_tokens=112, **extra)
    error = caught.value
    assert (error.param, error.code) == ("stop", "unsupported_value")
    assert "cut" in error.message and "Drop stop" in error.message


def test_stop_still_applies_when_tool_choice_none_hides_the_tools(api, course_tools):
    reply = ask(api, stop=[","], tools=course_tools, tool_choice="none")
    assert reply.choices[0].finish_reason == "stop" and "," not in text(reply)


@pytest.mark.parametrize("tool_choice", ["required", "auto"])
def test_a_call_the_token_limit_cuts_comes_back_as_a_cut_call_never_as_text(api, course_tools, tool_choice):
    """Before: max_tokens=15 gave content '{"tool": "text_formatter' (the course's internal format)."""
    request = dict(model="tools", messages=user(TOOL_REQUEST), tools=course_tools, tool_choice=tool_choice)
    for max_tokens in (3, 15):  # the name is not written in full: empty content, no call
        if tool_choice == "required":  # a forced call that cannot write its name: a 400 naming the minimum
            with pytest.raises(openai.BadRequestError) as caught:
                api.chat.completions.create(max_tokens=max_tokens, **request)
            assert (caught.value.param, caught.value.code) == ("max_tokens", "max_tokens_too_small")
            assert "at least 16 tokens" in caught.value.message
            continue
        reply = api.chat.completions.create(max_tokens=max_tokens, **request).choices[0]
        assert (reply.message.content, reply.message.tool_calls, reply.finish_reason) == ("", None, "length")
        assert streamed_reply(api, max_tokens=max_tokens, **request) == ("", None, "", ["length"])
    reply = api.chat.completions.create(max_tokens=30, **request).choices[0]  # the name in full, arguments cut
    call = reply.message.tool_calls[0]
    assert reply.finish_reason == "length" and reply.message.content is None
    assert call.function.name == "text_formatter" and call.function.arguments.startswith('{"text": ')
    assert '"tool"' not in call.function.arguments  # only the arguments, partial as OpenAI returns a cut call
    assert streamed_reply(api, max_tokens=30, **request) == ("", "text_formatter", call.function.arguments, ["length"])


def test_a_json_schema_answer_the_token_limit_cuts_is_content_with_finish_length(api):
    schema = PERSON_FORMAT
    reply = ask(api, response_format=schema, max_tokens=4).choices[0]
    assert reply.finish_reason == "length" and reply.message.content.startswith("{")
    assert streamed_reply(api, model="json", messages=user(JSON_PROMPT), response_format=schema, max_tokens=4)[::3] == (
        reply.message.content,
        ["length"],
    )


# ---------------------------------------------------------------- adapter_weights need model="mix"
def test_adapter_weights_next_to_another_model_is_a_400_not_a_silent_mix(api):
    """Before: model="support" with adapter_weights answered as "mix:json=0.5"."""
    with pytest.raises(openai.BadRequestError) as caught:
        ask(api, "support", extra_body={"adapter_weights": {"json": 0.5}})
    error = caught.value
    assert (error.param, error.code) == ("adapter_weights", "adapter_weights_without_mix")
    assert "model='mix'" in error.message and "support" in error.message
    assert ask(api, "mix", extra_body={"adapter_weights": {"json": 0.5}}).model == "mix:json=0.5"


# ---------------------------------------------------------------- bodies: JSON, Content-Type, strict types
def post_raw(server, content: bytes, content_type: str | None = "application/json") -> dict:
    headers = {"content-type": content_type} if content_type else {}
    response = httpx.post(f"{server}/v1/chat/completions", content=content, headers=headers)
    assert response.status_code == 400, response.text
    return response.json()["error"]


def test_a_body_that_is_not_json_or_not_sent_as_json_says_how_to_send_it(server):
    """Before: "body[34]: JSON decode error" and "body: Input should be a valid dictionary or object"."""
    error = post_raw(server, b'{"model": "json", "messages": [}')
    assert "not valid JSON" in error["message"] and "position 31" in error["message"]
    assert "Content-Type: application/json" in error["message"]
    good = json.dumps({"model": "json", "messages": user("hi")}).encode()
    for content_type, said in (("text/plain", "as Content-Type: text/plain"), (None, "without a Content-Type")):
        error = post_raw(server, good, content_type)
        assert error["code"] == "invalid_content_type" and said in error["message"]
        assert "Set the header Content-Type: application/json" in error["message"]
    error = post_raw(server, b"[1]")
    assert error["param"] == "body" and "must be one JSON object, got an array" in error["message"]


def test_nan_temperature_is_not_a_finite_number(server):
    """Before: "temperature: Input should be less than or equal to 2"."""
    for field in ("temperature", "top_p", "copy_bias"):
        body = b'{"model": "json", "messages": [{"role": "user", "content": "hi"}], "%s": NaN}' % field.encode()
        error = post_raw(server, body)
        assert error["param"] == field and "must be a finite number" in error["message"]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("temperature", "0.5", 'expected a number, got a string "0.5"; send a JSON value like 0.5'),
        ("temperature", "NaN", 'expected a number, got a string "NaN"; send a JSON value like 0.5'),  # not "like NaN"
        ("max_tokens", "3", 'expected a whole number, got a string "3"; send a JSON value like 3'),
        ("stream", "false", 'expected a boolean, got a string "false"; send a JSON value like false'),
        ("n", "1", 'expected a whole number, got a string "1"; send a JSON value like 1'),
        ("logprobs", 0, "expected a boolean, got a number 0"),
        ("seed", 1.5, "expected a whole number, got a number 1.5"),
        ("parallel_tool_calls", "true", 'expected a boolean, got a string "true"'),
    ],
)
def test_numbers_and_booleans_sent_as_other_types_are_refused_by_name(server, field, value, expected):
    """Before: pydantic's lax mode turned "0.5" into 0.5 and "false" into False; OpenAI refuses them."""
    body = {"model": "json", "messages": user("hi"), field: value}
    error = post_raw(server, json.dumps(body).encode())
    assert (error["param"], error["code"]) == (field, "validation_error")
    assert expected in error["message"]


def test_whole_numbers_are_still_fine_where_numbers_go(api):
    assert text(ask(api, temperature=0, top_p=1)) == text(ask(api))
