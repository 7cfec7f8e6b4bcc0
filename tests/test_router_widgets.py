"""RouterPlayground callbacks, driven from Python (also re-run under ipywidgets 7.7.1)."""

from __future__ import annotations

import pytest

from lessons_lib.router import KeywordRouter
from lessons_lib.widgets.router_playground import RouterPlayground, score_bars_html


@pytest.mark.widgets
def test_playground_routes_and_generates_with_the_chosen_adapter():
    calls = []

    def fake_generate(model, tok, prompts, max_new_tokens, adapter_names=None):
        calls.append((prompts, adapter_names))
        return [f"answer from {adapter_names[0]}"]

    pg = RouterPlayground(KeywordRouter(), model=object(), tokenizer=object(), generate_fn=fake_generate)
    pg.prompt.value = "Please give me this as JSON"
    pg.button.click()
    assert pg.last is not None and pg.last.decision.label == "json" and pg.last.adapter == "json"
    assert "json" in pg.choice.value and "'json'" in pg.reason.value
    assert "answer from json" in pg.answer.value
    assert pg.bars.value.count("<div") == 4
    pg.prompt.value = "What a lovely day"
    pg.button.click()
    assert pg.last.adapter == "__base__" and calls[-1][1] == ["__base__"]


@pytest.mark.widgets
def test_the_copy_box_sends_the_course_copy_bias():
    from lessons_lib.copying import COPY_BIAS

    calls = []

    def fake_generate(model, tok, prompts, max_new_tokens, adapter_names=None, **extra):
        calls.append(extra)
        return ["ok"]

    pg = RouterPlayground(KeywordRouter(), model=object(), tokenizer=object(), generate_fn=fake_generate)
    pg.prompt.value = "Please give me this as JSON"
    pg.button.click()
    pg.copy_aware.value = True
    pg.button.click()
    assert calls == [{}, {"copy_bias": COPY_BIAS, "requested_names": True}]
    assert pg.last.copy_bias == COPY_BIAS and pg.last.requested_names
    assert pg.copy_aware in pg.children[1].children
    routing_only = RouterPlayground(KeywordRouter())
    assert routing_only.copy_aware not in routing_only.children[1].children  # no model, nothing to decode: no box


@pytest.mark.widgets
def test_playground_empty_prompt_and_routing_only():
    pg = RouterPlayground(KeywordRouter())
    pg.prompt.value = "   "
    pg.button.click()
    assert pg.last is None and "Type a prompt" in pg.choice.value
    pg.prompt.value = "код падает"
    pg.button.click()
    assert pg.last.decision.label == "coding"
    assert pg.last.answer is None and pg.answer.value == ""


@pytest.mark.widgets
def test_playground_shows_errors_in_the_widget():
    class Broken(KeywordRouter):
        def route(self, text):
            raise RuntimeError("router exploded")

    pg = RouterPlayground(Broken())
    pg.prompt.value = "hello"
    pg.button.click()
    assert "router exploded" in pg.choice.value


def test_score_bars_escape_and_scale():
    out = score_bars_html({"<x>": 1.0, "b": 0.5}, "<x>")
    assert "&lt;x&gt;" in out and "width:200px" in out and "width:100px" in out


@pytest.mark.widgets
def test_playground_shows_a_generation_error_in_the_widget():
    def failing_generate(model, tok, prompts, max_new_tokens, adapter_names=None):
        raise RuntimeError("adapter 'json' is not loaded")

    pg = RouterPlayground(KeywordRouter(), model=object(), tokenizer=object(), generate_fn=failing_generate)
    pg.prompt.value = "Please give me this as JSON"
    pg.button.click()  # ipywidgets logs a callback's exception instead of raising it
    assert pg.choice.value == "Error: RuntimeError: adapter 'json' is not loaded"
    assert pg.last is None
