"""WeightMixer callbacks, driven from Python the way a learner's slider moves and clicks drive them."""

from __future__ import annotations

import pytest

from lessons_lib.data import examples
from lessons_lib.mixing import RUNTIME_SCALING, runtime_mix
from lessons_lib.models import generate
from lessons_lib.widgets.mixer import CHOICES, MIX_ADAPTER, WeightMixer

pytestmark = pytest.mark.widgets
MAX_NEW = 32


@pytest.fixture
def prompt():
    return examples("json", 1, "heldout")[0].prompt


def test_controls_are_a_slider_per_adapter_and_the_combination_types(course_model, tokenizer):
    mixer = WeightMixer(course_model, tokenizer)
    assert list(mixer.sliders) == ["json", "coding", "support"]
    assert all(s.min == 0 and s.max == 2 for s in mixer.sliders.values())
    assert mixer.weights() == {"json": 1.0, "coding": 0.0, "support": 0.0}
    assert list(mixer.combination.options) == list(CHOICES) and CHOICES[0] == RUNTIME_SCALING
    mixer.sliders["support"].value = 0.5
    assert "support×0.5" in mixer.status.value and "next mix" in mixer.status.value


def test_runtime_scaling_answers_with_the_scaled_adapters_and_restores(course_model, tokenizer, prompt):
    mixer = WeightMixer(course_model, tokenizer, prompt=prompt, max_new_tokens=MAX_NEW)
    mixer.sliders["json"].value = 1.0
    mixer.sliders["support"].value = 1.5
    mixer.button.click()
    assert mixer.last.combination == RUNTIME_SCALING and mixer.last.adapter is None
    assert mixer.last.weights == {"json": 1.0, "coding": 0.0, "support": 1.5}
    assert "active mix: runtime scaling: json×1 + support×1.5" in mixer.status.value
    with runtime_mix(course_model, {"json": 1.0, "support": 1.5}):
        assert mixer.last.answer == generate(course_model, tokenizer, prompt, MAX_NEW)
    assert course_model.active_adapter == "json"  # restored after the click
    json_only = generate(course_model, tokenizer, prompt, MAX_NEW)
    mixer.sliders["support"].value = 0.0
    mixer.button.click()
    assert mixer.last.answer == json_only


def test_combination_type_builds_the_mix_adapter_and_changes_with_the_sliders(course_model, tokenizer, prompt):
    mixer = WeightMixer(course_model, tokenizer, prompt=prompt, max_new_tokens=MAX_NEW)
    mixer.combination.value = "cat"
    mixer.sliders["coding"].value = 1.0
    mixer.button.click()
    assert mixer.last.adapter == MIX_ADAPTER and course_model.peft_config[MIX_ADAPTER].r == 16
    assert "active mix: cat: json×1 + coding×1" in mixer.status.value
    first = mixer.last.answer
    with runtime_mix(course_model, {"json": 1.0, "coding": 1.0}):
        assert first == generate(course_model, tokenizer, prompt, MAX_NEW)  # cat == both adapters active
    mixer.sliders["json"].value = 0.0
    mixer.combination.value = "svd"
    mixer.button.click()
    assert mixer.last.combination == "svd" and course_model.peft_config[MIX_ADAPTER].r == 8  # rebuilt, not kept
    course_model.set_adapter("coding", inference_mode=True)
    assert mixer.last.answer == generate(course_model, tokenizer, prompt, MAX_NEW)
    assert mixer.last.answer != first


def test_all_weights_zero_answers_with_the_base(course_model, tokenizer, prompt):
    with course_model.disable_adapter():
        base_answer = generate(course_model, tokenizer, prompt, MAX_NEW)
    mixer = WeightMixer(course_model, tokenizer, prompt=prompt, max_new_tokens=MAX_NEW)
    mixer.sliders["json"].value = 0.0
    mixer.button.click()
    assert mixer.last.answer == base_answer and "no adapter (base)" in mixer.status.value


def test_errors_show_in_the_status_line(course_model, tokenizer):
    def boom(*args, **kwargs):
        raise RuntimeError("out of memory")

    mixer = WeightMixer(course_model, tokenizer, prompt="hi", generate_fn=boom)
    mixer.button.click()  # ipywidgets logs a callback's exception instead of raising it
    assert mixer.last is None and mixer.status.value == "Error: RuntimeError: out of memory"


def test_empty_prompt_and_unknown_adapters(course_model, tokenizer):
    calls = []
    mixer = WeightMixer(course_model, tokenizer, generate_fn=lambda *a, **k: calls.append(a) or "x")
    mixer.prompt.value = "  "
    mixer.button.click()
    assert calls == [] and mixer.last is None and "Type a prompt" in mixer.status.value
    with pytest.raises(ValueError, match="not loaded"):
        WeightMixer(course_model, tokenizer, adapters=["json", "legal"])


# ---------------------------------------------------------------- weights are checked (issue 15)
@pytest.mark.parametrize(
    "weights,error,match",
    [
        ({"json": float("nan")}, ValueError, "finite number from 0 to 4"),
        ({"json": float("inf")}, ValueError, "finite number"),
        ({"json": 1e30}, ValueError, "finite number"),
        ({"json": 3.0}, ValueError, r"sliders' range 0\.\.2"),
        ({"json": -0.5}, ValueError, "finite number from 0"),
        ({"json": None}, TypeError, r"pass a number \(e\.g\. 0\.5\)"),
        ({"json": "0.5"}, TypeError, "pass a number"),
        ({"legal": 1.0}, ValueError, "does not show"),
        ([1.0, 0.5], TypeError, "a dict"),
    ],
    ids=["nan", "inf", "1e30", "over-slider", "negative", "None", "str", "unknown", "list"],
)
def test_start_weights_are_checked(course_model, tokenizer, weights, error, match):
    """Before: NaN reached the slider, 3.0 was clamped to 2 and "0.5" converted silently, None gave a raw
    TypeError from float()."""
    with pytest.raises(error, match=match):
        WeightMixer(course_model, tokenizer, weights=weights)


def test_a_slider_set_to_nan_from_code_is_refused_before_the_model(course_model, tokenizer):
    from lessons_lib.mixing import MAX_WEIGHT
    from lessons_lib.widgets.mixer import SLIDER_MAX

    assert 0 < SLIDER_MAX <= MAX_WEIGHT  # the sliders stay inside the course's (and the server's) range
    calls = []
    mixer = WeightMixer(course_model, tokenizer, prompt="hi", generate_fn=lambda *a, **k: calls.append(a) or "x")
    mixer.sliders["support"].value = float("nan")  # FloatSlider accepts NaN when set from Python
    assert calls == [] and mixer.last is None and mixer.sliders["support"].value == 0.0  # set back at once
    assert mixer.status.value.startswith("The weight for 'support' cannot be nan")
    mixer.button.click()  # the model only ever sees the weight the slider shows
    assert len(calls) == 1 and mixer.last.weights == {"json": 1.0, "coding": 0.0, "support": 0.0}
