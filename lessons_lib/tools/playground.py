"""StyleToggle: switch the cognitive-designer system prompt on or off and compare answers side by side.

Core widgets only (ipywidgets 7.7 and 8.x); results go into Label/HTML values. Drive it from Python:
set `toggle.style_choice.value` / `toggle.question.value`, call `toggle.ask_button.click()` or
`toggle.compare_button.click()`, and read `toggle.last`.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as widgets

from ..i18n import resolve_lang, tr
from ..widgets.common import labelled
from .prompts import style_score, system_prompt

PLAIN, DESIGNER = "plain", "cognitive designer"


def style_label(style: str) -> str:
    """How a style choice reads in the course language (the value stays the identifier)."""
    return tr(en=style, ru={PLAIN: "обычный", DESIGNER: "когнитивный дизайнер"}.get(style, style))


class StyleToggle(widgets.VBox):
    """A system-prompt toggle, a question box, and Ask / Side-by-side buttons."""

    def __init__(self, answer_fn: Callable[[str, str | None], str], question: str = "", lang: str | None = None):
        """`lang`: the system prompt's language (default: the notebook's, $LESSONS_LANG)."""
        self.answer_fn, self.lang = answer_fn, resolve_lang(lang)
        self.style_choice = widgets.Dropdown(
            options=labelled([PLAIN, DESIGNER], style_label),
            value=PLAIN,
            description=tr(en="System prompt", ru="Системный промпт"),
        )
        self.question = widgets.Textarea(
            value=question,
            description=tr(en="Question", ru="Вопрос"),
            layout=widgets.Layout(width="95%", height="60px"),
        )
        self.ask_button = widgets.Button(description=tr(en="Ask", ru="Спросить"), button_style="primary")
        self.compare_button = widgets.Button(description=tr(en="Side by side", ru="Рядом"))
        self.status = widgets.Label(value="")
        self.output = widgets.HTML(value="")
        self.last: dict = {}
        super().__init__(
            [
                widgets.HBox([self.style_choice, self.ask_button, self.compare_button]),
                self.question,
                self.status,
                self.output,
            ]
        )
        self.ask_button.on_click(lambda _: self.ask())
        self.compare_button.on_click(lambda _: self.compare())

    def _system(self, style: str) -> str | None:
        return system_prompt(self.lang) if style == DESIGNER else None

    def _check_question(self) -> str | None:
        text = self.question.value.strip()
        if not text:
            self.status.value = tr(en="Type a question first.", ru="Сначала введите вопрос.")
        return text or None

    def ask(self) -> dict:
        """Answer with the chosen style."""
        text = self._check_question()
        if text is None:
            return {}
        style = self.style_choice.value
        answer = self.answer_fn(text, self._system(style))
        self.last = {style: answer}
        self.status.value = tr(
            en=f"{style}: style score {style_score(answer):.1f} (share of the five moves found)",
            ru=f"{style_label(style)}: оценка стиля {style_score(answer):.1f} (доля найденных пяти приёмов)",
        )
        self.output.value = f"<pre style='white-space:pre-wrap'>{html.escape(answer)}</pre>"
        return self.last

    def compare(self) -> dict:
        """Answer both ways and show them side by side with their style scores."""
        text = self._check_question()
        if text is None:
            return {}
        self.last = {style: self.answer_fn(text, self._system(style)) for style in (PLAIN, DESIGNER)}
        style_word = tr(en="style", ru="стиль")
        cells = "".join(
            f"<td style='vertical-align:top;width:50%'><b>{style_label(s)}</b> "
            f"({style_word} {style_score(a):.1f})"
            f"<pre style='white-space:pre-wrap'>{html.escape(a)}</pre></td>"
            for s, a in self.last.items()
        )
        self.output.value = f"<table style='width:100%'><tr>{cells}</tr></table>"
        self.status.value = tr(
            en="same question, same model: only the system prompt differs",
            ru="тот же вопрос, та же модель: отличается только системный промпт",
        )
        return self.last
