"""AdapterSwitcher: pick an adapter (or the base), type a prompt, generate; shows answer, adapter and latency.

A "copy names exactly" box turns on copy-aware decoding (`lessons_lib.copying`): a word of the prompt that the
answer starts to repeat is nudged to come out whole, so a made-up name is not retyped with a slip, and a function
the answer defines takes a name the prompt gives (`requested_names`).

Built from core widgets only, so it works on ipywidgets 7.7 (Colab) and 8.x. Results are written into
Label/HTML values, never printed, so they show the same in Colab, Jupyter and nbclient. Tests and notebook
cells drive it from Python: set `switcher.dropdown.value` and `switcher.prompt.value`, then
`switcher.button.click()` and read `switcher.last` (`switcher.copy_aware.value = True` ticks the box).
Each press first clears the previous answer and `last`, so a failed generation never leaves the previous prompt's
answer on screen; a prompt longer than the profile's `max_length` (the limit the course server enforces) is refused
with a message instead of answered with garbage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ipywidgets as widgets

from ..copying import copy_aware_kwargs
from ..i18n import tr
from ..mixing import load_them_first
from ..storage import active_adapters
from .common import (
    answer_html,
    default_prompt_limit,
    empty_prompt_text,
    labelled,
    prompt_box,
    run_showing_errors,
    too_long_text,
)

BASE_CHOICE = "base"


@dataclass(frozen=True)
class SwitchResult:
    """One generation: which adapter answered (or "base"), the answer, how long it took, and the copy-aware decoding
    used (copy bias, requested function names: the keywords `copying.copy_aware_kwargs` gives)."""

    choice: str
    active_adapter: str | None
    answer: str
    seconds: float
    copy_bias: float = 0.0
    requested_names: bool = False


def choice_label(choice: str) -> str:
    """How a dropdown choice reads: adapter names are identifiers; the base is named in the course language."""
    return tr(en=choice, ru="base (базовая модель)") if choice == BASE_CHOICE else choice


def _shown(choice: str) -> str:
    return tr(en="base (adapters disabled)", ru="base (адаптеры отключены)") if choice == BASE_CHOICE else choice


class AdapterSwitcher(widgets.VBox):
    """Dropdown of the loaded adapters plus "base", a prompt box and a Generate button."""

    def __init__(
        self,
        model,
        tokenizer,
        adapters: Sequence[str] | None = None,
        prompt: str = "",
        max_new_tokens: int | None = None,
        generate_fn: Callable | None = None,
        copy_aware: bool = False,
        max_prompt_tokens: int | None = None,
    ):
        from ..models import generate

        self.model, self.tokenizer, self.max_new_tokens = model, tokenizer, max_new_tokens
        self.max_prompt_tokens = max_prompt_tokens or default_prompt_limit()
        self._generate = generate_fn or generate
        names = list(adapters) if adapters is not None else list(model.peft_config)
        unknown = [n for n in names if n not in model.peft_config]
        if unknown:
            raise ValueError(load_them_first(unknown, list(model.peft_config)))
        active = active_adapters(model)[:1]
        start = active[0] if active and active[0] in names else (names[0] if names else BASE_CHOICE)
        self.dropdown = widgets.Dropdown(
            options=labelled([BASE_CHOICE, *names], choice_label),
            value=start,
            description=tr(en="Adapter", ru="Адаптер"),
        )
        self.prompt = prompt_box(prompt)
        self.button = widgets.Button(
            description=tr(en="Generate", ru="Сгенерировать"), button_style="primary", icon="play"
        )
        self.copy_aware = widgets.Checkbox(
            value=copy_aware,
            description=tr(en="copy names exactly", ru="копировать имена точно"),
            indent=False,
        )
        self.status = widgets.Label(value="")
        self.answer = widgets.HTML(value="")
        self.last: SwitchResult | None = None
        controls = widgets.HBox([self.dropdown, self.button, self.copy_aware])
        super().__init__([controls, self.prompt, self.status, self.answer])
        self.dropdown.observe(self._on_choice, names="value")
        self.button.on_click(self._on_click)
        self.switch(self.dropdown.value)

    # ------------------------------------------------------------ callback logic (testable from Python)
    def switch(self, choice: str) -> None:
        """Make `choice` the active adapter (the base needs no switch: it runs under disable_adapter())."""
        if choice != BASE_CHOICE:
            self.model.set_adapter(choice, inference_mode=True)
        self.status.value = f"{tr(en='active', ru='активен')}: {_shown(choice)}"

    def run(self) -> SwitchResult | None:
        """Generate an answer for the prompt with the chosen adapter and show it; None if the prompt is empty."""
        choice, text = self.dropdown.value, self.prompt.value.strip()
        self.last, self.answer.value = None, ""  # a failure below must not leave the previous answer on screen
        problem = too_long_text(self.tokenizer, text, self.max_prompt_tokens) if text else empty_prompt_text()
        if problem:
            self.status.value = problem
            return None
        extra = copy_aware_kwargs(self.copy_aware.value)
        start = time.perf_counter()
        if choice == BASE_CHOICE:
            with self.model.disable_adapter():
                answer = self._generate(self.model, self.tokenizer, text, self.max_new_tokens, **extra)
        else:
            if active_adapters(self.model)[:1] != [choice]:
                self.switch(choice)
            answer = self._generate(self.model, self.tokenizer, text, self.max_new_tokens, **extra)
        seconds = time.perf_counter() - start
        active = None if choice == BASE_CHOICE else next(iter(active_adapters(self.model)), None)
        self.last = SwitchResult(choice, active, answer, seconds, **extra)
        self.status.value = tr(
            en=f"active: {_shown(choice)} · {seconds * 1000:.0f} ms · {len(answer)} characters",
            ru=f"активен: {_shown(choice)} · {seconds * 1000:.0f} мс · {len(answer)} символов",
        )
        self.answer.value = answer_html(answer)
        return self.last

    def _on_choice(self, change: dict) -> None:
        self.switch(change["new"])

    def _on_click(self, _button) -> None:
        run_showing_errors(self.run, self.status)
