"""The interactive quiz: one card per question (RadioButtons or Checkboxes, a Check button, feedback HTML)
and a running score. Core widgets only, so it runs on ipywidgets 7.7.1 (Colab) and 8.x.

Tests and notebook cells drive it from Python: `card.select([1, 2])` (or set `card.radio.value` /
`card.boxes[i].value`), then `card.button.click()`; read `card.feedback.value`, `card.last` and
`quiz.score_label.value`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable

import ipywidgets as widgets

from ..i18n import tr
from ..widgets.common import run_showing_errors
from .bank import Bank, Question, pick
from .grading import CORRECT, EMPTY, PARTIAL, Grade, ScoreBoard, answer_indices, grade
from .inline import plain, to_html
from .labels import ui
from .static import letter

COLORS = {CORRECT: "#1b7f3b", PARTIAL: "#b26a00", "wrong": "#b3261e", EMPTY: "#555555"}
REVEAL_AFTER = 2  # attempts after which every choice's explanation is shown, even if still wrong


class QuestionCard(widgets.VBox):
    """One question: prompt, choices, Check button and feedback."""

    def __init__(
        self, question: Question, number: int, lang: str, on_graded: Callable[[Question, Grade], None] | None = None
    ):
        self.question, self.lang, self.on_graded = question, lang, on_graded
        self.attempts = 0
        self.last: Grade | None = None
        kind = ui(question.kind, lang)
        self.prompt = widgets.HTML(value=f"<b>{number}. {to_html(pick(question.prompt, lang))}</b> <i>({kind})</i>")
        labels = [f"{letter(i)}. {plain(pick(c.text, lang))}" for i, c in enumerate(question.choices)]
        full = widgets.Layout(width="95%")
        if question.kind == "single":
            self.radio = widgets.RadioButtons(
                options=[(label, i) for i, label in enumerate(labels)], index=None, layout=full
            )
            self.boxes: list[widgets.Checkbox] = []
            selector: list[widgets.Widget] = [self.radio]
        else:
            self.radio = None
            self.boxes = [
                widgets.Checkbox(value=False, description=label, indent=False, layout=full) for label in labels
            ]
            selector = list(self.boxes)
        self.button = widgets.Button(description=ui("check", lang), button_style="primary")
        self.feedback = widgets.HTML(value="")
        super().__init__(
            [self.prompt, *selector, self.button, self.feedback], layout=widgets.Layout(margin="0 0 12px 0")
        )
        self.button.on_click(self._on_click)

    # ------------------------------------------------------------ callback logic (testable from Python)
    def selection(self) -> frozenset[int]:
        """Indices of the currently selected choices."""
        if self.radio is not None:
            return frozenset() if self.radio.value is None else frozenset([self.radio.value])
        return frozenset(i for i, box in enumerate(self.boxes) if box.value)

    def select(self, indices: Iterable[int]) -> None:
        """Select exactly these choices (as a learner clicking them would)."""
        chosen = answer_indices(self.question, indices)
        if self.radio is not None:
            if len(chosen) > 1:
                raise ValueError(
                    tr(
                        en=f"Question {self.question.id!r} is single-choice; select one index.",
                        ru=f"В вопросе {self.question.id!r} один верный ответ; выберите один номер.",
                        lang=self.lang,
                    )
                )
            self.radio.value = next(iter(chosen)) if chosen else None
        else:
            for i, box in enumerate(self.boxes):
                box.value = i in chosen

    def check(self) -> Grade:
        """Grade the current selection, show the feedback, and report it to the quiz."""
        result = grade(self.question, self.selection())
        if result.status != EMPTY:
            self.attempts += 1
            self.last = result
        self.feedback.value = self.feedback_html(result)
        if self.on_graded is not None:
            self.on_graded(self.question, result)
        return result

    def feedback_html(self, result: Grade) -> str:
        """Feedback: the verdict, then why each picked choice is right or wrong (all choices once solved)."""
        lang, q = self.lang, self.question
        if result.status == EMPTY:
            return f"<span style='color: {COLORS[EMPTY]}'>{html.escape(ui('empty', lang))}</span>"
        verdict = ui(result.status, lang)
        head = f"<b style='color: {COLORS[result.status]}'>{verdict}</b> ({result.score:g} / 1)"
        if q.kind == "multi" and result.status != CORRECT:
            head += (
                f" — {ui('right', lang)} {len(result.right_picks)}, {ui('wrong_choice', lang)} "
                f"{len(result.wrong_picks)}, {ui('missed', lang)} {len(result.missed)}"
            )
        reveal_all = result.status == CORRECT or self.attempts >= REVEAL_AFTER
        shown = range(len(q.choices)) if reveal_all else sorted(result.picked)
        items = "".join(
            f"<li>{'✔' if q.choices[i].correct else '✘'} <b>{letter(i)}.</b> "
            f"{to_html(pick(q.choices[i].explain, lang))}</li>"
            for i in shown
        )
        tail = "" if result.status == CORRECT else f"<i>{html.escape(ui('retry', lang))}</i>"
        return f"<div>{head}<ul style='list-style: none; padding-left: 0.5em'>{items}</ul>{tail}</div>"

    def _on_click(self, _button) -> None:
        run_showing_errors(
            self.check, self.feedback, lambda message: f"<b>{ui('error', self.lang)}:</b> {html.escape(message)}"
        )


class QuizWidget(widgets.VBox):
    """A whole notebook quiz: title, running score, question cards and the self-check list."""

    def __init__(self, bank: Bank, lang: str):
        from .static import self_check_html

        self.bank, self.lang = bank, lang
        self.board = ScoreBoard.for_questions(len(bank.questions))
        self.title = widgets.HTML(
            value=f"<h3>{ui('quiz', lang)} {bank.notebook}: {to_html(pick(bank.title, lang))}</h3>"
        )
        self.score_label = widgets.Label(value="")
        self.cards = [QuestionCard(q, n, lang, on_graded=self._record) for n, q in enumerate(bank.questions, 1)]
        self.self_check = widgets.HTML(value=self_check_html(bank, lang))
        super().__init__([self.title, self.score_label, *self.cards, self.self_check])
        self._update_score()

    def card(self, question_id: str) -> QuestionCard:
        """The card of the question with this id."""
        for card in self.cards:
            if card.question.id == question_id:
                return card
        ids = [c.question.id for c in self.cards]
        raise KeyError(
            tr(
                en=f"No question {question_id!r} in quiz {self.bank.notebook}; ids: {ids}",
                ru=f"В тесте {self.bank.notebook} нет вопроса {question_id!r}; id вопросов: {ids}",
                lang=self.lang,
            )
        )

    def _record(self, question: Question, result: Grade) -> None:
        self.board.record(question.id, result)
        self._update_score()

    def _update_score(self) -> None:
        lang, b = self.lang, self.board
        self.score_label.value = (
            f"{ui('score', lang)}: {b.score:g} / {b.total} ({ui('first_attempts', lang)}) · "
            f"{ui('checked', lang)} {b.answered} {ui('of', lang)} {b.total} · "
            f"{ui('solved', lang)} {b.solved}"
        )
