"""The three widgets after a failed Generate, a NaN slider, an empty adapter list and an over-long prompt (an outside
probe's items 12, 13, 15, 16), driven from Python as a learner's clicks drive them; also run under ipywidgets 7.7.1.
"""

from __future__ import annotations

import pytest

from lessons_lib.router import KeywordRouter
from lessons_lib.widgets.mixer import WeightMixer
from lessons_lib.widgets.router_playground import RouterPlayground
from lessons_lib.widgets.switcher import AdapterSwitcher

pytestmark = pytest.mark.widgets


def fails(*args, **kwargs):
    """A generation that fails (out of memory, a bad adapter ...)."""
    raise RuntimeError("boom")


def test_switcher_clears_the_previous_answer_when_generation_fails(course_model, tokenizer):
    """Before: the status said Error but the answer (and `.last`) still showed the previous prompt's answer."""
    switcher = AdapterSwitcher(course_model, tokenizer, prompt="first", generate_fn=lambda *a, **k: "first answer")
    switcher.button.click()
    assert switcher.last.answer == "first answer" and "first answer" in switcher.answer.value
    switcher._generate = fails
    switcher.prompt.value = "second"
    switcher.button.click()  # ipywidgets logs a callback's exception instead of raising it
    assert switcher.status.value == "Error: RuntimeError: boom"
    assert switcher.last is None and switcher.answer.value == ""


def test_mixer_clears_the_previous_answer_when_generation_fails(course_model, tokenizer):
    mixer = WeightMixer(course_model, tokenizer, prompt="first", generate_fn=lambda *a, **k: "first answer")
    mixer.button.click()
    assert mixer.last.answer == "first answer" and "first answer" in mixer.answer.value
    mixer._generate = fails
    mixer.button.click()
    assert mixer.status.value == "Error: RuntimeError: boom"
    assert mixer.last is None and mixer.answer.value == ""


def test_playground_clears_the_previous_answer_when_generation_fails():
    """Before: the choice showed the error, reason and bars the new route, the answer the previous prompt's."""

    def answers(model, tok, prompts, max_new_tokens, adapter_names=None):
        return [f"answer from {adapter_names[0]}"]

    pg = RouterPlayground(KeywordRouter(), model=object(), tokenizer=object(), generate_fn=answers)
    pg.prompt.value = "Please give me this as JSON"
    pg.button.click()
    assert "answer from json" in pg.answer.value and pg.last.adapter == "json"
    pg._generate = fails
    pg.prompt.value = "код падает"
    pg.button.click()
    assert pg.choice.value == "Error: RuntimeError: boom"
    assert pg.last is None and pg.answer.value == ""
    assert "'код'" in pg.reason.value and "coding" in pg.bars.value  # the route shown is this prompt's


def test_playground_clears_the_previous_route_when_routing_fails():
    """Before: a router error left the previous prompt's reason and bars on screen."""
    pg = RouterPlayground(KeywordRouter())
    pg.prompt.value = "Please give me this as JSON"
    pg.button.click()
    assert pg.bars.value and pg.reason.value

    def broken(text):
        raise RuntimeError("router exploded")

    pg.router.route = broken
    pg.button.click()
    assert "router exploded" in pg.choice.value
    assert pg.last is None and pg.bars.value == pg.reason.value == pg.answer.value == ""


def test_a_nan_slider_is_set_back_with_a_message(course_model, tokenizer):
    """Before: the pending line read 'json×nan' and only Generate failed, with a MixWeightError."""
    calls = []
    mixer = WeightMixer(
        course_model, tokenizer, weights={"json": 0.5}, prompt="hi", generate_fn=lambda *a, **k: calls.append(a) or "x"
    )
    mixer.sliders["json"].value = float("nan")  # FloatSlider accepts NaN when set from Python (7.7 and 8.x)
    assert mixer.sliders["json"].value == 0.5
    assert mixer.status.value == "The weight for 'json' cannot be nan; set a number from 0 to 2. " + (
        "The slider was set back to 0.5."
    )
    mixer.sliders["json"].value = 1.5  # a real value afterwards is shown as the next mix again
    assert "json×1.5" in mixer.status.value
    mixer.button.click()
    assert len(calls) == 1 and mixer.last.weights["json"] == 1.5


def test_a_nan_slider_message_is_russian(course_model, tokenizer, monkeypatch):
    monkeypatch.setenv("LESSONS_LANG", "ru")
    mixer = WeightMixer(course_model, tokenizer)
    mixer.sliders["support"].value = float("nan")
    assert mixer.sliders["support"].value == 0.0 and "не может быть nan" in mixer.status.value


def test_an_empty_adapter_list_is_named_as_such(course_model, tokenizer):
    """Before: 'Adapters [] are not loaded (loaded: [...])', which blames loading for an empty list."""
    with pytest.raises(ValueError, match=r"adapters=\[\] leaves the mixer nothing to mix") as err:
        WeightMixer(course_model, tokenizer, adapters=[])
    assert "not loaded" not in str(err.value)
    with pytest.raises(ValueError, match=r"Adapters \['legal'\] are not loaded"):
        WeightMixer(course_model, tokenizer, adapters=["json", "legal"])


@pytest.mark.parametrize("make", [AdapterSwitcher, WeightMixer], ids=["switcher", "mixer"])
def test_a_prompt_over_the_profile_limit_is_refused_with_a_message(course_model, tokenizer, make):
    """Before: a 3000-token prompt was generated anyway and the widget showed garbage ('{"order_(s]]]]]]...')."""
    from lessons_lib.profiles import PROFILES

    calls = []
    widget = make(course_model, tokenizer, generate_fn=lambda *a, **k: calls.append(a) or "fine")
    assert widget.max_prompt_tokens == PROFILES["tiny"].max_length == 256  # the server's limit (profile max_length)
    widget.prompt.value = "word " * 1000
    widget.button.click()
    assert calls == [] and widget.last is None and widget.answer.value == ""
    assert "over this profile's limit of 256 (max_length); shorten it" in widget.status.value
    widget.prompt.value = "word " * 100  # within the limit: answered
    widget.button.click()
    assert len(calls) == 1 and widget.last.answer == "fine"


def test_the_prompt_limit_can_be_given(course_model, tokenizer):
    switcher = AdapterSwitcher(course_model, tokenizer, max_prompt_tokens=8, generate_fn=lambda *a, **k: "x")
    switcher.prompt.value = "a prompt that is surely longer than eight tokens once templated"
    switcher.button.click()
    assert switcher.last is None and "over this profile's limit of 8" in switcher.status.value
