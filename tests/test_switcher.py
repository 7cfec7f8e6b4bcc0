"""AdapterSwitcher callbacks, driven from Python the way a learner's clicks drive them."""

from __future__ import annotations

import pytest

from lessons_lib.data import examples
from lessons_lib.models import generate
from lessons_lib.widgets.switcher import BASE_CHOICE, AdapterSwitcher

pytestmark = pytest.mark.widgets
MAX_NEW = 40


@pytest.fixture
def prompt():
    return examples("json", 1, "heldout")[0].prompt


def test_choosing_an_adapter_switches_the_model_live(course_model, tokenizer):
    switcher = AdapterSwitcher(course_model, tokenizer, max_new_tokens=MAX_NEW)
    assert list(switcher.dropdown.options) == [BASE_CHOICE, "json", "coding", "support"]
    assert switcher.dropdown.value == "json"
    switcher.dropdown.value = "coding"
    assert course_model.active_adapter == "coding"
    assert "coding" in switcher.status.value


def test_generate_uses_the_chosen_adapter_and_text_changes(course_model, tokenizer, prompt):
    switcher = AdapterSwitcher(course_model, tokenizer, max_new_tokens=MAX_NEW)
    switcher.prompt.value = prompt
    answers = {}
    for name in ("json", "support", "coding"):
        switcher.dropdown.value = name
        switcher.button.click()
        assert switcher.last is not None and switcher.last.choice == name
        assert course_model.active_adapter == name == switcher.last.active_adapter
        answers[name] = switcher.last.answer
        assert f"active: {name}" in switcher.status.value and " ms" in switcher.status.value
        assert switcher.last.seconds > 0
    assert len(set(answers.values())) == 3
    for name, answer in answers.items():
        course_model.set_adapter(name, inference_mode=True)
        assert generate(course_model, tokenizer, prompt, MAX_NEW) == answer


def test_base_choice_runs_without_adapters_and_keeps_the_active_one(course_model, tokenizer, prompt):
    with course_model.disable_adapter():
        base_answer = generate(course_model, tokenizer, prompt, MAX_NEW)
    switcher = AdapterSwitcher(course_model, tokenizer, prompt=prompt, max_new_tokens=MAX_NEW)
    switcher.dropdown.value = BASE_CHOICE
    switcher.button.click()
    assert switcher.last.answer == base_answer and switcher.last.active_adapter is None
    assert "base (adapters disabled)" in switcher.status.value
    assert course_model.active_adapter == "json"
    switcher.dropdown.value = "json"
    switcher.button.click()
    assert switcher.last.answer != base_answer


def test_answer_is_shown_escaped_in_the_html(course_model, tokenizer):
    switcher = AdapterSwitcher(
        course_model, tokenizer, max_new_tokens=MAX_NEW, generate_fn=lambda model, tok, text, n: "<b>&</b>"
    )
    switcher.prompt.value = "anything"
    switcher.button.click()
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in switcher.answer.value and "<b>" not in switcher.answer.value


def test_empty_prompt_asks_for_one_and_generates_nothing(course_model, tokenizer):
    calls = []
    switcher = AdapterSwitcher(course_model, tokenizer, generate_fn=lambda *a: calls.append(a) or "x")
    switcher.prompt.value = "   "
    switcher.button.click()
    assert calls == [] and switcher.last is None and "Type a prompt" in switcher.status.value


def test_unknown_adapter_in_the_list_is_refused(course_model, tokenizer):
    with pytest.raises(ValueError, match="not loaded"):
        AdapterSwitcher(course_model, tokenizer, adapters=["json", "legal"])


def test_the_copy_box_turns_on_copy_aware_decoding(course_model, tokenizer):
    from lessons_lib.copying import COPY_BIAS

    prompt = "Hello, this is Evangeline Strathmore. Order 77120 never came."
    switcher = AdapterSwitcher(course_model, tokenizer, prompt=prompt, max_new_tokens=MAX_NEW)
    switcher.dropdown.value = "support"
    switcher.button.click()
    plain = switcher.last
    switcher.copy_aware.value = True
    switcher.button.click()
    nudged = switcher.last
    assert (plain.copy_bias, nudged.copy_bias, plain.requested_names, nudged.requested_names) == (
        0.0,
        COPY_BIAS,
        False,
        True,
    )
    expected = generate(course_model, tokenizer, prompt, MAX_NEW, copy_bias=COPY_BIAS, requested_names=True)
    assert nudged.answer == expected
    assert "Evangeline Strathmore" in nudged.answer and "Evangeline Strathmore" not in plain.answer


def test_the_copy_box_names_a_function_as_the_request_does(course_model, tokenizer):
    prompt = "I need a function only_adults(people) that keeps the people aged 18 or more."
    switcher = AdapterSwitcher(course_model, tokenizer, prompt=prompt, max_new_tokens=MAX_NEW)
    switcher.dropdown.value = "coding"
    switcher.button.click()
    plain = switcher.last.answer
    switcher.copy_aware.value = True
    switcher.button.click()
    assert plain.startswith("def ") and not plain.startswith("def only_adults(")  # the adapter's own name...
    assert switcher.last.answer.startswith("def only_adults(people):")  # ...and the one the request gives


def test_a_generate_fn_without_copy_bias_works_until_the_box_is_ticked(course_model, tokenizer):
    calls = []

    def plain_generate(model, tok, text, max_new_tokens):
        calls.append(text)
        return "ok"

    switcher = AdapterSwitcher(course_model, tokenizer, prompt="Hi", generate_fn=plain_generate)
    switcher.button.click()
    assert switcher.last.answer == "ok" and calls == ["Hi"]
    switcher.copy_aware.value = True
    with pytest.raises(TypeError, match="copy_bias"):
        switcher.run()
    switcher.button.click()  # a click shows the error in the widget (ipywidgets logs the traceback)
    assert "Error: TypeError" in switcher.status.value and "copy_bias" in switcher.status.value
    assert switcher.last is None and switcher.answer.value == ""  # the failed press leaves no earlier answer
