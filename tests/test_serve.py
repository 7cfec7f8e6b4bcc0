"""The adapter server, end to end: a real server in a subprocess on a free loopback port.

Covers concurrency without cross-talk (64 mixed requests vs single-request references), bad input, streaming, the
openai client (tests/test_openai_clients.py covers the OpenAI API in depth), and the CLI client.
The web page is tested in tests/test_web_page.py, the vLLM/LoRAX hand-off in tests/test_vllm_handoff.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import CRASH_MARKER

from lessons_lib.data import DOMAINS
from lessons_lib.paths import REPO_DIR

MAX_TOKENS = 16  # short answers keep the suite fast; greedy rows are cut per request, so this is exact
MODELS = (*DOMAINS, "auto")


def traffic_prompts() -> list[str]:
    """16 prompts: 4 held-out prompts of each domain and 4 general chit-chat prompts, EN and RU."""
    import random

    from lessons_lib.data import examples, make_general_prompt

    prompts = [ex.prompt for domain in DOMAINS for ex in examples(domain, 4, "heldout", seed=11)]
    rng = random.Random(5)
    prompts += [make_general_prompt(rng, lang, "heldout") for lang in ("en", "ru", "en", "ru")]
    return prompts


def chat(client: httpx.Client, model: str, prompt: str, **extra) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": MAX_TOKENS, **extra}
    return client.post("/v1/chat/completions", json=body)


@pytest.fixture(scope="module")
def server(course_server):
    """The real server (`python -m lessons_lib.serve`, conftest's course_server), with a fault hook for the 500 test."""
    return course_server


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, timeout=120) as http:
        yield http


@pytest.fixture(scope="module")
def references(client):
    """Single-request answers, sent strictly one at a time: {(prompt, model): (text, adapter)} and the seconds."""
    refs, start = {}, time.perf_counter()
    for prompt in traffic_prompts():
        for model in MODELS:
            response = chat(client, model, prompt)
            assert response.status_code == 200, response.text
            body = response.json()
            refs[(prompt, model)] = (body["choices"][0]["message"]["content"], body["adapter"])
    return refs, time.perf_counter() - start


# ---------------------------------------------------------------- basics
def test_health_and_models_list_base_adapters_and_auto(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["profile"] == "tiny"
    assert health["adapters"] == ["json", "coding", "support", "tools"]  # the tools adapter is served (issue 17)
    models = client.get("/v1/models").json()
    ids = [m["id"] for m in models["data"]]
    assert ids == ["base", "json", "coding", "support", "tools", "auto"], (
        f"router missing? /health says {health['router']}"
    )
    assert {m["id"]: m["parent"] for m in models["data"]}["json"] == "base"
    time.sleep(1.1)  # before: `created` was the time of each call, so a model seemed created anew on every listing
    again = client.get("/v1/models").json()
    assert [m["created"] for m in again["data"]] == [m["created"] for m in models["data"]]
    assert client.get("/v1/models/json").json()["created"] == models["data"][1]["created"]
    assert health["max_body_bytes"] == 1_000_000  # the documented default of --max-body-bytes
    # mixed batches on the batched LoRA path (issue 19), the tools adapter's own lm_head included
    assert health["engine"]["lora_path"] == "batched", health["engine"]["lora_path"]


def test_no_absolute_paths_in_models_health_or_errors(client):
    """Before: /v1/models gave each adapter's absolute folder as its `root`."""
    texts = [client.get("/v1/models").text, client.get("/health").text, chat(client, "legal", "hi").text]
    for text in texts:
        assert str(REPO_DIR) not in text and "/assets/" not in text
    roots = {m["id"]: m["root"] for m in client.get("/v1/models").json()["data"]}
    assert [roots[name] for name in DOMAINS] == list(DOMAINS)


def test_failed_requests_are_counted_in_health(client):
    """Before: /health said `errors: 0` after any number of refused or failed requests."""
    before = client.get("/health").json()["errors"]
    assert chat(client, "legal", "hi").status_code == 404
    assert chat(client, "mix", "hi", adapter_weights={"json": 1e30}).status_code == 400
    after = client.get("/health").json()["errors"]
    assert after["total"] == before["total"] + 2 and after["client"] == before["client"] + 2
    assert after["by_code"]["invalid_adapter_weights"] == before["by_code"].get("invalid_adapter_weights", 0) + 1


def test_each_model_answers_and_says_which_adapter_answered(references):
    refs, _ = references
    for (prompt, model), (text, adapter) in refs.items():
        assert text.strip(), f"empty answer from {model} for {prompt!r}"
        if model != "auto":
            assert adapter == model
        else:
            assert adapter in ("base", *DOMAINS)
    answered = {refs[(p, "auto")][1] for p in traffic_prompts()}
    assert set(DOMAINS) <= answered, f"the router sent the domain prompts only to {answered}"


# ---------------------------------------------------------------- concurrency without cross-talk
def test_64_concurrent_requests_have_no_cross_talk(client, server, references):
    refs, sequential_s = references
    prompts = traffic_prompts()
    distinct = sum(len({refs[(p, m)][0] for m in DOMAINS}) == len(DOMAINS) for p in prompts)
    assert distinct >= 14, "the adapters answer alike, so cross-talk could not be seen; use other prompts"
    jobs = [(p, m) for p in prompts for m in MODELS]
    assert len(jobs) == 64
    before = client.get("/health").json()["engine"]["batches"]

    def one(job):
        with httpx.Client(base_url=server, timeout=120) as http:
            return job, chat(http, job[1], job[0])

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(one, jobs))
    concurrent_s = time.perf_counter() - start
    wrong = []
    for (prompt, model), response in results:
        assert response.status_code == 200, response.text
        body = response.json()
        got = (body["choices"][0]["message"]["content"], body["adapter"])
        if got != refs[(prompt, model)]:
            wrong.append((model, prompt[:40], got, refs[(prompt, model)]))
        if model == "auto" and body["adapter"] in DOMAINS:
            assert got[0] == refs[(prompt, body["adapter"])][0], "auto's answer differs from its adapter's"
    batches = client.get("/health").json()["engine"]["batches"] - before
    print(f"\ncross-talk: {len(wrong)} of {len(jobs)} answers differ from their single-request reference")
    print(f"sequential: {len(jobs)} requests in {sequential_s:.2f} s = {len(jobs) / sequential_s:.1f} req/s")
    print(
        f"concurrent: {len(jobs)} requests in {concurrent_s:.2f} s = {len(jobs) / concurrent_s:.1f} req/s "
        f"({batches} mixed-adapter batches; {sequential_s / concurrent_s:.1f}x the sequential throughput)"
    )
    assert wrong == [], f"{len(wrong)} cross-talk answers, e.g. {wrong[:2]}"
    assert batches < len(jobs), "the engine did not batch concurrent requests at all"
    assert client.get("/health").json()["engine"]["lora_path"] == "batched"  # no fallback happened on the way


# ---------------------------------------------------------------- bad input
def test_unknown_model_is_404_listing_the_available_ones(client):
    response = chat(client, "legal", "hello")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found"
    assert error["available"] == ["base", "json", "coding", "support", "tools", "auto"]
    assert "json" in error["message"] and "legal" in error["message"]


def test_empty_messages_are_400(client):
    """422 before issue 17; OpenAI answers an invalid request with 400 invalid_request_error."""
    response = client.post("/v1/chat/completions", json={"model": "json", "messages": []})
    assert response.status_code == 400
    assert "messages" in response.json()["error"]["message"]
    assert response.json()["error"]["type"] == "invalid_request_error"
    response = client.post(
        "/v1/chat/completions", json={"model": "json", "messages": [{"role": "user", "content": " "}]}
    )
    assert response.status_code == 400


def test_prompt_over_max_length_is_a_clear_400(client):
    response = chat(client, "json", "order kettle " * 400)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["limit"] == 256 and error["prompt_tokens"] > 256
    assert "Shorten" in error["message"]


@pytest.mark.parametrize("name", ["../json", "json/../../etc", "adapters/json", "..\\json", ".."])
def test_adapter_names_with_path_separators_are_refused(client, name):
    response = chat(client, name, "hello")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_model_name"
    assert "path separator" in response.json()["error"]["message"]
    assert [m["id"] for m in client.get("/v1/models").json()["data"]][:4] == ["base", "json", "coding", "support"]


def test_too_many_tokens_are_refused_and_streaming_is_served(client, references):
    """stream=True was a 400 before issue 17; now it streams the same answer as SSE chunks."""
    import json

    refs, _ = references
    prompt = traffic_prompts()[0]
    assert chat(client, "json", "hi", max_tokens=10_000).json()["error"]["code"] == "max_tokens_too_large"
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "json",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": MAX_TOKENS,
            "stream": True,
        },
    ) as response:
        assert response.status_code == 200
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == refs[(prompt, "json")][0]


def test_a_crashed_generation_is_500_and_the_server_keeps_serving(client, server, references):
    refs, _ = references
    prompt = traffic_prompts()[0]
    response = chat(client, "json", f"{prompt} {CRASH_MARKER}")
    assert response.status_code == 500
    assert "generation failed" in response.json()["error"]["message"]
    assert "keeps serving" in response.json()["error"]["message"]

    def one(model_prompt):
        with httpx.Client(base_url=server, timeout=120) as http:
            return chat(http, *model_prompt)

    # A crash inside a shared batch fails only the crashing request.
    batch = [("support", f"{prompt} {CRASH_MARKER}"), ("json", prompt), ("coding", prompt), ("support", prompt)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(one, batch))
    assert responses[0].status_code == 500
    for (model, _), response in zip(batch[1:], responses[1:]):
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == refs[(prompt, model)][0]
    health = client.get("/health").json()
    assert health["engine"]["errors"] >= 2 and health["errors"]["by_code"]["generation_failed"] >= 2
    assert health["errors"]["server"] >= 2


# ---------------------------------------------------------------- extension: weighted adapters
def test_mix_of_one_adapter_at_weight_one_equals_that_adapter(client, references):
    refs, _ = references
    prompt = traffic_prompts()[0]
    body = chat(client, "mix", prompt, adapter_weights={"json": 1.0}).json()
    assert body["adapter"] == "mix:json=1"
    assert body["choices"][0]["message"]["content"] == refs[(prompt, "json")][0]
    bad = chat(client, "mix", prompt, adapter_weights={"legal": 1.0})
    assert bad.status_code == 404
    assert chat(client, "mix", prompt, adapter_weights={"json": -1}).status_code == 400


# ---------------------------------------------------------------- extension: copy-aware decoding
def test_copy_bias_finishes_the_prompt_words_an_answer_began(client):
    prompt = "Hello, this is Evangeline Strathmore. Order 77120 never came."
    plain = chat(client, "support", prompt).json()["choices"][0]["message"]["content"]
    nudged = chat(client, "support", prompt, copy_bias=6.0).json()["choices"][0]["message"]["content"]
    assert plain.startswith("Hello, Eva") and "Evangeline" not in plain  # the adapter slips mid-name...
    assert nudged.startswith("Hello, Evangeline Strathmore!")  # ...and finishes it exactly when nudged
    assert chat(client, "support", prompt, copy_bias=0).json()["choices"][0]["message"]["content"] == plain
    events = chat(client, "support", prompt, copy_bias=6.0, stream=True).text.split("\n\n")
    chunks = [json.loads(e[len("data: ") :]) for e in events if e.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == nudged


@pytest.mark.parametrize("value", [-1, 21, "6", True])
def test_a_bad_copy_bias_is_a_400_naming_it(client, value):
    response = chat(client, "support", "Hi", copy_bias=value)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "copy_bias"


def test_requested_names_give_a_defined_function_the_name_the_request_gives(client):
    prompt = "I need a function only_adults(people) that keeps the people aged 18 or more."
    content = lambda response: response.json()["choices"][0]["message"]["content"]  # noqa: E731
    plain = content(chat(client, "coding", prompt, copy_bias=6))
    named = content(chat(client, "coding", prompt, copy_bias=6, requested_names=True))
    assert plain.startswith("def ") and not plain.startswith("def only_adults(")
    assert named.startswith("def only_adults(people):")
    assert content(chat(client, "coding", prompt, copy_bias=6, requested_names=False)) == plain
    events = chat(client, "coding", prompt, copy_bias=6, requested_names=True, stream=True).text.split("\n\n")
    chunks = [json.loads(e[len("data: ") :]) for e in events if e.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == named


@pytest.mark.parametrize("value", ["true", 1, "yes"])
def test_requested_names_takes_a_json_boolean_only(client, value):
    response = chat(client, "coding", "Hi", requested_names=value)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "requested_names"


def test_requested_names_with_a_forced_tool_call_is_a_400_that_says_what_to_send(client):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    response = chat(client, "coding", "Hi", requested_names=True, tools=[tool], tool_choice="required")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "requested_names" and 'tool_choice="auto"' in error["message"]
    assert chat(client, "coding", "Hi", requested_names=True, tools=[tool], tool_choice="auto").status_code == 200


def test_auto_with_a_blank_last_user_message_is_a_400_naming_it(client):
    """Before: 500 generation_failed, and the batch it landed in was redone one request at a time."""
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": " \n "}]
    response = client.post("/v1/chat/completions", json={"model": "auto", "messages": messages})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("empty_route_text", "messages[1].content")
    assert "messages[1].content" in error["message"]


def test_32_concurrent_requests_with_6_mixes_need_no_fallback(client, server):
    """Before: more than 4 mixes in one batch evicted each other; the batch failed and was redone one by one
    (32 requests: 1.4 s -> 5.5 s; here 6.0 s and 29 generate calls)."""
    prompt = traffic_prompts()[0]
    mixes = [{"json": 1.0, "support": w} for w in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)]
    before = client.get("/health").json()["engine"]

    def one(weights):
        with httpx.Client(base_url=server, timeout=120) as http:
            return chat(http, "mix", prompt, adapter_weights=weights)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(one, [mixes[i % 6] for i in range(32)]))
    seconds = time.perf_counter() - start
    after = client.get("/health").json()["engine"]
    print(
        f"\n32 requests with 6 mixes: {seconds:.2f} s, {after['batches'] - before['batches']} batches, "
        f"{after['fallback_runs'] - before['fallback_runs']} fallback re-runs"
    )
    assert [r.status_code for r in responses] == [200] * 32
    assert after["fallback_runs"] == before["fallback_runs"] and after["failed_batches"] == before["failed_batches"]
    assert after["batches"] - before["batches"] < 8


# ---------------------------------------------------------------- clients
def test_openai_client_pointed_at_the_base_url(server, references):
    import openai

    refs, _ = references
    prompt = traffic_prompts()[4]
    api = openai.OpenAI(base_url=f"{server}/v1", api_key="not-needed", max_retries=0)
    assert [m.id for m in api.models.list()] == ["base", "json", "coding", "support", "tools", "auto"]
    reply = api.chat.completions.create(
        model="coding", messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS
    )
    assert reply.model == "coding"
    assert reply.choices[0].message.content == refs[(prompt, "coding")][0]
    assert reply.usage.completion_tokens > 0
    with pytest.raises(openai.NotFoundError, match="Available models"):
        api.chat.completions.create(model="legal", messages=[{"role": "user", "content": prompt}])


def test_cli_ask(server, references):
    refs, _ = references
    prompt = traffic_prompts()[8]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "lessons_lib.serve",
            "ask",
            prompt,
            "--adapter",
            "auto",
            "--url",
            server,
            "--max-tokens",
            str(MAX_TOKENS),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_DIR,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    text, adapter = refs[(prompt, "auto")]
    assert text in run.stdout
    assert f"answered by {adapter}" in run.stdout
    streamed = subprocess.run(
        [
            sys.executable,
            "-m",
            "lessons_lib.serve",
            "ask",
            prompt,
            "--adapter",
            "auto",
            "--url",
            server,
            "--max-tokens",
            str(MAX_TOKENS),
            "--stream",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_DIR,
        timeout=60,
    )
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout.startswith(text + "\n") and f"answered by {adapter}" in streamed.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "lessons_lib.serve", "ask", "hi", "--adapter", "legal", "--url", server],
        capture_output=True,
        text=True,
        cwd=REPO_DIR,
        timeout=60,
    )
    assert bad.returncode == 1 and "HTTP 404" in bad.stderr and bad.stdout == ""  # errors to stderr
