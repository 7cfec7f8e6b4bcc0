"""RouterPlayground: type a prompt → the router's choice, a score bar per label and the generated answer.

Core widgets only (Textarea, Button, Label, HTML, VBox/HBox), so it works on ipywidgets 7.7 (Colab) and 8.x.
Results go into Label/HTML values. Drive it from Python: set `playground.prompt.value`, call
`playground.button.click()`, read `playground.last`. With a model, a "copy names exactly" box
(`playground.copy_aware`) turns on copy-aware decoding and requested function names (`lessons_lib.copying`), as in
the AdapterSwitcher. Each press first clears the previous route, answer and `last`, so a failed routing or
generation never leaves the previous prompt's results on screen.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as widgets

from .. import domains
from ..copying import copy_aware_kwargs
from ..i18n import tr
from ..router.base import GENERAL
from .common import answer_html, prompt_box, run_showing_errors

GENERAL_COLOR = "#8172b2"  # the "general" label (the base model); each domain's colour is in lessons_lib.domains


@dataclass(frozen=True)
class PlaygroundResult:
    """One press of the button: the router's decision, the adapter used, the answer, timings and the copy-aware
    decoding used (copy bias, requested function names: the keywords `copying.copy_aware_kwargs` gives)."""

    decision: object
    adapter: str
    answer: str | None
    route_ms: float
    copy_bias: float = 0.0
    requested_names: bool = False


def score_bars_html(scores: dict[str, float], chosen: str) -> str:
    """Horizontal HTML bars, one per label, widths proportional to the score (scaled to the largest)."""
    top = max(scores.values(), default=0.0) or 1.0
    rows = []
    for label, value in scores.items():
        width = max(0.0, min(100.0, 100.0 * value / top))
        weight = "bold" if label == chosen else "normal"
        color = domains.color(label, GENERAL_COLOR if label == GENERAL else domains.DEFAULT_COLOR)
        rows.append(
            f'<div style="display:flex;align-items:center;margin:2px 0">'
            f'<span style="width:80px;font-weight:{weight}">{html.escape(label)}</span>'
            f'<span style="display:inline-block;height:12px;width:{width * 2:.0f}px;background:{color}"></span>'
            f'<span style="margin-left:6px">{value:.2f}</span></div>'
        )
    return "".join(rows)


class RouterPlayground(widgets.VBox):
    """A prompt box and a button; shows the chosen adapter, per-label score bars and (with a model) the answer."""

    def __init__(
        self,
        router,
        model=None,
        tokenizer=None,
        prompt: str = "",
        max_new_tokens: int = 64,
        generate_fn: Callable | None = None,
        copy_aware: bool = False,
    ):
        from ..models import generate

        if model is not None and tokenizer is None:
            raise ValueError(
                tr(
                    en="Give the tokenizer together with the model, or neither (routing only).",
                    ru="Передайте токенизатор вместе с моделью или ни того, ни другого (только маршрутизация).",
                )
            )
        self.router, self.model, self.tokenizer, self.max_new_tokens = router, model, tokenizer, max_new_tokens
        self._generate = generate_fn or generate
        self.prompt = prompt_box(prompt)
        self.button = widgets.Button(
            description=tr(en="Route & generate", ru="Выбрать адаптер и ответить")
            if model is not None
            else tr(en="Route", ru="Выбрать адаптер"),
            button_style="primary",
        )
        self.choice = widgets.Label(value="")
        self.reason = widgets.Label(value="")
        self.bars = widgets.HTML(value="")
        self.answer = widgets.HTML(value="")
        self.copy_aware = widgets.Checkbox(
            value=copy_aware, description=tr(en="copy names exactly", ru="копировать имена точно"), indent=False
        )
        self.last: PlaygroundResult | None = None
        controls = [self.button, self.choice] if model is None else [self.button, self.copy_aware, self.choice]
        super().__init__([self.prompt, widgets.HBox(controls), self.reason, self.bars, self.answer])
        self.button.on_click(self._on_click)

    def run(self) -> PlaygroundResult | None:
        """Route the prompt, show the decision and scores, generate with the chosen adapter; None if empty."""
        text = self.prompt.value
        self.clear()
        if not text.strip():
            self.choice.value = tr(
                en="Type a prompt first, then press the button.", ru="Сначала введите промпт, затем нажмите кнопку."
            )
            return None
        start = time.perf_counter()
        decision = self.router.route(text)
        route_ms = 1000 * (time.perf_counter() - start)
        adapter = decision.adapter
        self.choice.value = tr(
            en=f"→ {decision.label} (adapter {adapter}, routed in {route_ms:.1f} ms)",
            ru=f"→ {decision.label} (адаптер {adapter}, маршрутизация за {route_ms:.1f} мс)",
        )
        self.reason.value = decision.reason
        self.bars.value = score_bars_html(decision.scores, decision.label)
        answer, extra = None, {}
        if self.model is not None:
            extra = copy_aware_kwargs(self.copy_aware.value)
            answer = self._generate(
                self.model, self.tokenizer, [text.strip()], self.max_new_tokens, adapter_names=[adapter], **extra
            )[0]
            self.answer.value = answer_html(answer)
        self.last = PlaygroundResult(decision, adapter, answer, route_ms, **extra)
        return self.last

    def clear(self) -> None:
        """Forget the previous press: no result, no reason, bars or answer (a failure then shows alone)."""
        self.last = None
        self.reason.value, self.bars.value, self.answer.value = "", "", ""

    def _on_click(self, _button) -> None:
        run_showing_errors(self.run, self.choice)
