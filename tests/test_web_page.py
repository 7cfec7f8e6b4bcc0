"""The web page at `/` in headless Chromium, against the course composition served with --config: streamed answers,
the compare view (several models at once, side by side), the weight sliders (a mix) and the router's choice for auto.

Every answer the page shows is checked against the same request sent to the API directly (greedy decoding, so
equal text); the page's fallback for a server that answers JSON instead of a stream is checked too.
"""

from __future__ import annotations

import contextlib
import json
import os

import httpx
import pytest

PROMPT = "Extract the order as JSON: Mia Novak ordered 3 lamps, order id 48213."
AUTO_PROMPT = "Write a Python function that returns the sum of a list of numbers."


@pytest.fixture(scope="module")
def server(composed_server):
    """The course composition served with --config (conftest's composed_server, shared with test_composition.py)."""
    return composed_server


@pytest.fixture(scope="module")
def api(server):
    with httpx.Client(base_url=server, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def browser():
    from browser_cdp import Browser, find_chromium

    binary = find_chromium()
    assert binary, (
        "Chromium is not installed, so the web page cannot be tested in a real browser. Install it once "
        "with `sudo bash tools/ensure_chromium.sh` (Debian's chromium package; `make test` does this "
        "itself when run as root)."
    )
    with Browser(binary) as chromium:
        yield chromium


@pytest.fixture
def page(browser, server):
    """The page, freshly loaded, models listed, the prompt typed into the prompt box."""
    browser.goto(server + "/")
    browser.wait_for("document.body && document.body.dataset.ready === '1'")
    yield browser
    if os.environ.get("SERVE_SCREENSHOT"):
        browser.screenshot(os.environ["SERVE_SCREENSHOT"])


def type_prompt(page, text: str) -> None:
    page.click("#prompt")
    page.type_text(text)
    assert page.evaluate("document.getElementById('prompt').value") == text


def expected(api: httpx.Client, prompt: str, **body) -> dict:
    """The API's own answer to what the page sends (the page sends no max_tokens and no temperature)."""
    response = api.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": prompt}], **body})
    assert response.status_code == 200, response.text
    return response.json()


def text(page, selector: str) -> str:
    return page.evaluate(f"document.querySelector({selector!r}).textContent")


def test_the_page_lists_the_composition(page, api):
    ids = [m["id"] for m in api.get("/v1/models").json()["data"]]
    assert ids == ["base", "json", "coding", "support", "tools", "json_support", "json_strong", "auto"]
    assert page.evaluate("[...document.querySelectorAll('#model option')].map(o => o.value)") == ids
    assert page.evaluate(
        "[...document.querySelectorAll('#sliders input')].map(s => [s.dataset.adapter, s.min, s.max, s.value])"
    ) == [[name, "0", "2", "0"] for name in ("json", "coding", "support")]
    assert page.evaluate("[...document.querySelectorAll('#compare-models input')].map(b => b.value)") == ids
    assert "http" not in page.evaluate(
        "[...document.querySelectorAll('[src], link[href]')].map(e => e.src || e.href).join(' ')"
    )  # no external assets


def test_compare_two_adapters_side_by_side_streamed_at_once(page, api):
    type_prompt(page, PROMPT)
    page.click("#c-json")
    page.click("#c-coding")
    page.click("#compare-send")
    page.wait_for("document.getElementById('compare-status').textContent === 'done'", timeout=120)
    columns = page.evaluate(
        "[...document.querySelectorAll('#columns .column')].map(c => ({model: c.dataset.model, "
        "answer: c.querySelector('.answer').textContent, adapter: c.querySelector('b').textContent,"
        " mode: c.querySelector('.answer').dataset.mode, chunks: +c.querySelector('.answer')"
        ".dataset.chunks, started: +c.querySelector('.answer').dataset.started, "
        "finished: +c.querySelector('.answer').dataset.finished}))"
    )
    assert [c["model"] for c in columns] == ["json", "coding"]
    for column in columns:
        reference = expected(api, PROMPT, model=column["model"])
        assert column["answer"] == reference["choices"][0]["message"]["content"] != ""
        assert column["adapter"] == reference["adapter"] == column["model"]
        assert column["mode"] == "stream" and column["chunks"] > 1  # the answer arrived in pieces
    assert max(c["started"] for c in columns) < min(c["finished"] for c in columns)  # both in flight at once
    assert columns[0]["answer"] != columns[1]["answer"]


def test_move_sliders_and_send_a_mix(page, api):
    type_prompt(page, PROMPT)
    page.focus("#w-json")
    page.press("ArrowRight", 25)  # 0.1 per step; stops at the maximum, 2
    page.focus("#w-support")
    page.press("ArrowRight", 5)
    weights = page.evaluate("[...document.querySelectorAll('#sliders input')].map(s => +s.value)")
    assert weights == [2, 0, 0.5]  # coding stays at 0: left out of the mix
    page.click("#send-mix")
    page.wait_for("document.getElementById('mix-status').textContent === 'done'", timeout=120)
    reference = expected(api, PROMPT, model="mix", adapter_weights={"json": 2.0, "support": 0.5})
    assert text(page, "#mix-adapter") == reference["adapter"] == "mix:json=2,support=0.5"
    assert text(page, "#mix-answer") == reference["choices"][0]["message"]["content"]
    assert page.evaluate("document.getElementById('mix-answer').dataset.mode") == "stream"


def test_auto_shows_the_routers_choice_and_scores(page, api):
    type_prompt(page, AUTO_PROMPT)
    page.evaluate(
        "(() => { const s = document.getElementById('model'); s.value = 'auto';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    page.click("#send")
    page.wait_for("document.getElementById('status').textContent === 'done'", timeout=120)
    reference = expected(api, AUTO_PROMPT, model="auto")
    route = reference["route"]
    assert text(page, "#adapter") == reference["adapter"] == route["adapter"]
    assert text(page, "#answer") == reference["choices"][0]["message"]["content"]
    shown = text(page, "#route")
    assert shown.startswith(f"Router: {route['label']} -> {route['adapter']} (scores: ")
    listed = shown.split("(scores: ", 1)[1].split(")", 1)[0].split(", ")
    scores = {label: float(value) for label, value in (item.rsplit(" ", 1) for item in listed)}
    assert scores.keys() == route["scores"].keys()
    assert all(abs(scores[k] - v) <= 0.005 + 1e-9 for k, v in route["scores"].items())  # shown to 2 decimals


def test_a_server_answering_json_instead_of_a_stream_still_works(page, api):
    """The page reads a JSON answer when the response is not text/event-stream (servers without streaming)."""
    page.evaluate(
        "(() => { const real = window.fetch; window.fetch = (url, options) => { if (options && options.body)"
        " { const body = JSON.parse(options.body); delete body.stream; options = {...options, body: "
        "JSON.stringify(body)}; } return real(url, options); }; })()"
    )
    type_prompt(page, PROMPT)
    page.evaluate(
        "(() => { const s = document.getElementById('model'); s.value = 'json_support';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    page.click("#send")
    page.wait_for("document.getElementById('status').textContent === 'done'", timeout=120)
    reference = expected(api, PROMPT, model="json_support")
    assert page.evaluate("document.getElementById('answer').dataset.mode") == "json"
    assert text(page, "#answer") == reference["choices"][0]["message"]["content"]
    assert text(page, "#adapter") == "mix:json=1,support=1"
    assert "batch of" in text(page, "#detail")


def test_the_copy_box_sends_copy_bias_and_requested_names(page, api):
    from lessons_lib.copying import copy_aware_kwargs

    prompt = "Hello, this is Evangeline Strathmore. Order 77120 never came."
    type_prompt(page, prompt)
    page.evaluate(
        "(() => { const s = document.getElementById('model'); s.value = 'support';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    page.click("#copy")
    assert page.evaluate("document.getElementById('copy').checked") is True
    page.click("#send")
    page.wait_for("document.getElementById('status').textContent === 'done'", timeout=120)
    boxed = copy_aware_kwargs()
    nudged = expected(api, prompt, model="support", **boxed)["choices"][0]["message"]["content"]
    assert text(page, "#answer") == nudged != expected(api, prompt, model="support")["choices"][0]["message"]["content"]
    assert "Evangeline Strathmore" in nudged


# ---------------------------------------------------------------- a server that fails: a stand-in, no model
@contextlib.contextmanager
def page_stand_in(page: str):
    """A stand-in server (test_serve_cli_bad_input.FakeServer) serving `page` and two models."""
    from test_serve_cli_bad_input import FakeServer

    models = {"data": [{"id": "base", "kind": "base"}, {"id": "json", "kind": "adapter"}]}
    routes = {
        ("GET", "/"): (200, "text/html; charset=utf-8", page.encode()),
        ("GET", "/v1/models"): (200, "application/json", json.dumps(models).encode()),
    }
    with FakeServer(routes) as server:
        yield server


@pytest.fixture
def stand_in():
    """The stand-in serving the English page; tests set its chat answer (or break its model list)."""
    from lessons_lib.serve.page import PAGE_HTML

    with page_stand_in(PAGE_HTML) as server:
        yield server


def send_and_wait(browser, server) -> str:
    """Load the page from `server`, send one prompt to json; the status line once the request has finished."""
    browser.goto(server.url + "/")
    browser.wait_for("document.body && document.body.dataset.ready === '1'")
    browser.evaluate("document.getElementById('prompt').value = 'hi'")
    browser.click("#send")
    browser.wait_for("document.getElementById('answer').dataset.finished !== undefined")
    assert browser.evaluate("document.getElementById('status').className") == "meta error"
    return text(browser, "#status")


def test_a_stream_that_ends_before_done_shows_as_interrupted(browser, stand_in):
    """Before: the partial answer was reported as `done`."""
    from test_serve_cli_bad_input import CHAT, chunk, sse

    stand_in.routes[CHAT] = (200, "text/event-stream", sse(chunk("Hel"), chunk("lo")))
    status = send_and_wait(browser, stand_in)
    assert status.startswith("interrupted: the answer was cut off") and "[DONE]" in status
    assert text(browser, "#answer") == "Hello"  # the part that came stays readable


def test_an_error_page_that_is_not_json_shows_its_status(browser, stand_in):
    """Before: a proxy's HTML 502 showed as a JSON SyntaxError."""
    from test_serve_cli_bad_input import BAD_GATEWAY, CHAT

    stand_in.routes[CHAT] = BAD_GATEWAY
    assert send_and_wait(browser, stand_in) == "error 502: 502 Bad Gateway"


def test_a_failed_model_list_shows_the_servers_error(browser, stand_in):
    """Before: `cannot list models: TypeError: ... not iterable` (response.ok was not checked)."""
    failed = {"error": {"message": "the engine is not ready"}}
    stand_in.routes[("GET", "/v1/models")] = (503, "application/json", json.dumps(failed).encode())
    browser.goto(stand_in.url + "/")
    browser.wait_for("document.getElementById('status').textContent !== 'loading models...'")
    assert text(browser, "#status") == "cannot list models: error 503: the engine is not ready"
    assert browser.evaluate("document.getElementById('send').disabled") is True
