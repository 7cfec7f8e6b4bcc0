"""WeightMixer: a 0–2 weight slider per adapter, a combination type, a prompt and Generate.

"runtime scaling" activates every adapter with a non-zero weight and scales it (`set_scale`) for one call,
then restores the model; any other choice builds a weighted adapter with `add_weighted_adapter` (through
`lessons_lib.mixing.create_weighted_adapter`, replacing the previous mix) and answers with it.

Core widgets only (ipywidgets 7.7 on Colab and 8.x). Results go into Label/HTML values. Tests and notebook
cells drive it from Python: set `mixer.sliders[name].value`, `mixer.combination.value`, `mixer.prompt.value`,
then `mixer.button.click()` and read `mixer.last`. A slider set to NaN from code is set back at once (with a
message); each press clears the previous answer and `last` first, so a failed generation never leaves the previous
answer on screen; a prompt over the profile's `max_length` is refused with a message.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import ipywidgets as widgets

from ..i18n import tr
from ..mixing import (
    COMBINATION_TYPES,
    RUNTIME_SCALING,
    MixError,
    MixWeightError,
    MixWeightTypeError,
    check_weight,
    combination_label,
    create_weighted_adapter,
    describe_mix,
    load_them_first,
    runtime_mix,
)
from .common import (
    answer_html,
    default_prompt_limit,
    empty_prompt_text,
    labelled,
    prompt_box,
    run_showing_errors,
    too_long_text,
)

MIX_ADAPTER = "mixer"
CHOICES = (RUNTIME_SCALING, *COMBINATION_TYPES)
SLIDER_MAX = 2.0  # the sliders' range is 0..SLIDER_MAX (within mixing.MAX_WEIGHT): 2 already over-drives


def slider_weights(names: Sequence[str], weights: Mapping[str, float] | None) -> dict[str, float]:
    """Weights for the sliders, checked (known adapters, numbers in 0..SLIDER_MAX); missing ones: 1 for the first
    adapter, 0 for the others."""
    if weights is not None and not isinstance(weights, Mapping):
        raise MixWeightTypeError(
            tr(
                en=f"weights is a dict {{adapter: weight}}, e.g. {{{names[0]!r}: 1.0}}; got {weights!r}.",
                ru=f"weights — словарь {{адаптер: вес}}, например {{{names[0]!r}: 1.0}}; получено {weights!r}.",
            )
        )
    start = dict(weights or {})
    unknown = [n for n in start if n not in names]
    if unknown:
        raise MixError(
            tr(
                en=f"weights names adapters {unknown} that the mixer does not show ({list(names)}).",
                ru=f"в weights указаны адаптеры {unknown}, которых нет в микшере ({list(names)}).",
            )
        )
    values = {n: check_weight(n, start.get(n, 1.0 if n == names[0] else 0.0), allow_negative=False) for n in names}
    over = {n: v for n, v in values.items() if v > SLIDER_MAX}
    if over:
        raise MixWeightError(
            tr(
                en=f"weights {over} are beyond the sliders' range 0..{SLIDER_MAX:g}; pass values in that "
                "range (for larger or negative weights call create_weighted_adapter yourself).",
                ru=f"веса {over} вне диапазона ползунков 0..{SLIDER_MAX:g}; передайте значения из этого "
                "диапазона (для больших или отрицательных весов вызовите create_weighted_adapter сами).",
            )
        )
    return values


def adapters_problem(names: list[str], loaded: list[str], given: bool) -> str | None:
    """Why the mixer cannot show `names` (None: every one is loaded): an empty list, or adapters not loaded."""
    if not names:
        if given:
            return tr(
                en=f"adapters=[] leaves the mixer nothing to mix; name at least one loaded adapter, e.g. "
                f"adapters={loaded[:2]}, or leave adapters out to show every loaded one.",
                ru=f"adapters=[] — микшеру нечего смешивать; укажите хотя бы один загруженный адаптер, например "
                f"adapters={loaded[:2]}, или не передавайте adapters, чтобы показать все загруженные.",
            )
        return tr(
            en="The model has no adapters loaded to mix; load them with model.load_adapter(folder, "
            "adapter_name=...) first.",
            ru="В модели не загружено ни одного адаптера для смешивания; сначала загрузите их: "
            "model.load_adapter(folder, adapter_name=...).",
        )
    unknown = [n for n in names if n not in loaded]
    if not unknown:
        return None
    return load_them_first(unknown, loaded)


@dataclass(frozen=True)
class MixResult:
    """One generation: the mix that answered, its weights, the adapter used (None for runtime/base), timing."""

    combination: str
    weights: dict
    adapter: str | None
    description: str
    answer: str
    seconds: float


def nan_weight_text(name: str, kept: float) -> str:
    """The message for a slider set to NaN (from code: the slider itself cannot produce it)."""
    return tr(
        en=f"The weight for {name!r} cannot be nan; set a number from 0 to {SLIDER_MAX:g}. "
        f"The slider was set back to {kept:g}.",
        ru=f"Вес для {name!r} не может быть nan; задайте число от 0 до {SLIDER_MAX:g}. Ползунок возвращён к {kept:g}.",
    )


class WeightMixer(widgets.VBox):
    """A FloatSlider (0–2) per adapter, a combination-type dropdown, a prompt box and a Generate button."""

    def __init__(
        self,
        model,
        tokenizer,
        adapters: Sequence[str] | None = None,
        weights: Mapping[str, float] | None = None,
        combination: str = RUNTIME_SCALING,
        prompt: str = "",
        max_new_tokens: int | None = None,
        generate_fn: Callable | None = None,
        mix_name: str = MIX_ADAPTER,
        max_prompt_tokens: int | None = None,
    ):
        from ..models import generate

        self.model, self.tokenizer, self.max_new_tokens, self.mix_name = model, tokenizer, max_new_tokens, mix_name
        self.max_prompt_tokens = max_prompt_tokens or default_prompt_limit()
        self._generate = generate_fn or generate
        names = list(adapters) if adapters is not None else [n for n in model.peft_config if n != mix_name]
        problem = adapters_problem(names, list(model.peft_config), adapters is not None)
        if problem:
            raise ValueError(problem)
        if combination not in CHOICES:
            raise ValueError(
                tr(
                    en=f"Unknown combination {combination!r}; choose one of {', '.join(CHOICES)}.",
                    ru=f"Неизвестный способ смешивания {combination!r}; выберите один из: {', '.join(CHOICES)}.",
                )
            )
        start = slider_weights(names, weights)
        self.sliders = {
            n: widgets.FloatSlider(
                value=start[n], min=0.0, max=SLIDER_MAX, step=0.1, description=n, readout_format=".1f"
            )
            for n in names
        }
        self.combination = widgets.Dropdown(
            options=labelled(CHOICES, combination_label), value=combination, description=tr(en="Combine", ru="Смешать")
        )
        self.prompt = prompt_box(prompt)
        self.button = widgets.Button(
            description=tr(en="Generate", ru="Сгенерировать"), button_style="primary", icon="play"
        )
        self.status = widgets.Label(value="")
        self.answer = widgets.HTML(value="")
        self.last: MixResult | None = None
        super().__init__(
            [
                *self.sliders.values(),
                widgets.HBox([self.combination, self.button]),
                self.prompt,
                self.status,
                self.answer,
            ]
        )
        for widget in (*self.sliders.values(), self.combination):
            widget.observe(self._on_change, names="value")
        self.button.on_click(self._on_click)
        self._show_pending()

    # ------------------------------------------------------------ callback logic (testable from Python)
    def weights(self) -> dict[str, float]:
        """The slider values, rounded to the slider step."""
        return {n: round(s.value, 2) for n, s in self.sliders.items()}

    def description(self) -> str:
        """The mix the sliders and dropdown describe, e.g. 'cat: json×1 + support×0.5'."""
        return describe_mix(self.weights(), self.combination.value)

    def run(self) -> MixResult | None:
        """Generate with the current mix and show it; None if the prompt is empty."""
        text = self.prompt.value.strip()
        self.last, self.answer.value = None, ""  # a failure below must not leave the previous answer on screen
        problem = too_long_text(self.tokenizer, text, self.max_prompt_tokens) if text else empty_prompt_text()
        if problem:
            self.status.value = problem
            return None
        weights, combination = slider_weights(list(self.sliders), self.weights()), self.combination.value
        used = {n: w for n, w in weights.items() if w != 0}
        start = time.perf_counter()
        adapter = None
        if not used:
            with self.model.disable_adapter():
                answer = self._generate(self.model, self.tokenizer, text, self.max_new_tokens)
        elif combination == RUNTIME_SCALING:
            with runtime_mix(self.model, used):
                answer = self._generate(self.model, self.tokenizer, text, self.max_new_tokens)
        else:
            adapter = create_weighted_adapter(self.model, list(used), list(used.values()), self.mix_name, combination)
            answer = self._generate(self.model, self.tokenizer, text, self.max_new_tokens, adapter_names=[adapter])
        seconds = time.perf_counter() - start
        self.last = MixResult(combination, weights, adapter, describe_mix(weights, combination), answer, seconds)
        self.status.value = tr(
            en=f"active mix: {self.last.description} · {seconds * 1000:.0f} ms",
            ru=f"активная смесь: {self.last.description} · {seconds * 1000:.0f} мс",
        )
        self.answer.value = answer_html(answer)
        return self.last

    def _show_pending(self) -> None:
        self.status.value = tr(
            en=f"next mix: {self.description()} (press Generate)",
            ru=f"следующая смесь: {self.description()} (нажмите «Сгенерировать»)",
        )

    def _on_change(self, change: dict) -> None:
        value = change["new"]
        if isinstance(value, float) and math.isnan(value):  # FloatSlider takes NaN from code; set it back
            change["owner"].value = change["old"]
            self.status.value = nan_weight_text(change["owner"].description, change["old"])
            return
        self._show_pending()

    def _on_click(self, _button) -> None:
        run_showing_errors(self.run, self.status)
