"""Grading: single-choice is right or wrong; multi-choice earns partial credit.

Partial credit (multi-choice): score = max(0, right picks − wrong picks) / number of correct choices.
The answer is "correct" when the picks equal the correct set (score 1), "wrong" when the score is 0,
and "partial" otherwise. So picking 2 of 3 correct choices and nothing wrong scores 0.67 (partial);
2 right + 1 wrong scores 0.33; ticking every box scores 0 whenever at least half of the choices are wrong.
An empty selection is "empty": not graded and not counted as an attempt.

Answers are choice indices 0..n-1: one index, an iterable of them, or None. numpy integers (what np.argmax
gives) are accepted and stored as plain ints, since they hold the same whole number. Booleans (True is 1 in
Python), negative indices (-1 is "the last one" in a list, not a choice name), floats, strings and
out-of-range numbers are refused with an AnswerError that says what to pass.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..i18n import tr
from .bank import Question

CORRECT, PARTIAL, WRONG, EMPTY = "correct", "partial", "wrong", "empty"


class AnswerError(ValueError):
    """An answer that does not name choices of the question; the message says what to pass."""


@dataclass(frozen=True)
class Grade:
    """The result of checking one answer."""

    status: str
    score: float
    picked: frozenset[int]
    right_picks: frozenset[int]
    wrong_picks: frozenset[int]
    missed: frozenset[int]


def _is_bool(value) -> bool:
    """True/False, numpy's bool_ included (neither is a choice index)."""
    numpy = sys.modules.get("numpy")
    return isinstance(value, bool) or (numpy is not None and isinstance(value, numpy.bool_))


def _is_index(value) -> bool:
    """Whether `value` is a whole number usable as an index (int or numpy integer), not a bool."""
    if _is_bool(value) or isinstance(value, (str, bytes)):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def answer_index(question: Question, value) -> int:
    """One choice index as a plain int, or AnswerError saying which indices the question has."""
    n = len(question.choices)
    valid = tr(
        en=f"Question {question.id!r} has choices 0..{n - 1} (A=0, B=1, ...)",
        ru=f"У вопроса {question.id!r} варианты 0..{n - 1} (A=0, B=1, ...)",
    )
    if _is_bool(value):
        raise AnswerError(
            tr(
                en=f"{valid}; got {value!r}, a yes/no value, not a choice. Pass the index of the choice.",
                ru=f"{valid}; получено {value!r} — это да/нет, а не вариант. Передайте номер варианта.",
            )
        )
    if not _is_index(value):
        raise AnswerError(
            tr(
                en=f"{valid}; got {value!r} ({type(value).__name__}). Pass whole-number indices, e.g. 0 or [0, 2].",
                ru=f"{valid}; получено {value!r} ({type(value).__name__}). Передайте целые номера, например 0 "
                "или [0, 2].",
            )
        )
    index = operator.index(value)
    if -n <= index < 0:
        raise AnswerError(
            tr(
                en=f"{valid}; got {index}. Negative indices count from the end of a Python list but do not "
                f"name a choice here: use {n + index} for that choice.",
                ru=f"{valid}; получено {index}. Отрицательные номера считаются с конца списка Python, но здесь "
                f"не обозначают вариант: для этого варианта используйте {n + index}.",
            )
        )
    if not 0 <= index < n:
        raise AnswerError(tr(en=f"{valid}; got {index}.", ru=f"{valid}; получено {index}."))
    return index


def answer_indices(question: Question, selected) -> frozenset[int]:
    """The picked choice indices (plain ints) from None, one index or an iterable of indices; AnswerError if bad."""
    if selected is None:
        return frozenset()
    if not hasattr(selected, "__iter__") or _is_index(selected):  # one answer (index, bool, float, ...)
        return frozenset([answer_index(question, selected)])
    if isinstance(selected, (str, bytes, Mapping)):
        raise AnswerError(
            tr(
                en=f"Question {question.id!r}: an answer is a choice index or a list of them (e.g. 1 or "
                f"[0, 2]), not {type(selected).__name__} {selected!r:.80}.",
                ru=f"Вопрос {question.id!r}: ответ — это номер варианта или список номеров (например, 1 или "
                f"[0, 2]), а не {type(selected).__name__} {selected!r:.80}.",
            )
        )
    return frozenset(answer_index(question, value) for value in selected)


def grade(question: Question, selected: Iterable[int] | int | None) -> Grade:
    """Grade the selected choice indices against the question's correct set."""
    picked = answer_indices(question, selected)
    if question.kind == "single" and len(picked) > 1:
        raise AnswerError(
            tr(
                en=f"Question {question.id!r} is single-choice; pick one choice, got {sorted(picked)}.",
                ru=f"В вопросе {question.id!r} один верный ответ; выберите один вариант, а получено {sorted(picked)}.",
            )
        )
    correct = question.correct_indices
    right, wrong, missed = picked & correct, picked - correct, correct - picked
    if not picked:
        return Grade(EMPTY, 0.0, picked, right, wrong, missed)
    if picked == correct:
        return Grade(CORRECT, 1.0, picked, right, wrong, missed)
    score = round(max(0, len(right) - len(wrong)) / len(correct), 2) if question.kind == "multi" else 0.0
    return Grade(PARTIAL if score > 0 else WRONG, score, picked, right, wrong, missed)


@dataclass
class ScoreBoard:
    """Running score over a quiz: each question counts its first graded attempt (retries teach, not score)."""

    total: int
    first: dict[str, Grade]
    latest: dict[str, Grade]

    @classmethod
    def for_questions(cls, n: int) -> ScoreBoard:
        """An empty board for `n` questions."""
        return cls(n, {}, {})

    def record(self, question_id: str, result: Grade) -> None:
        """Record an attempt (empty selections are ignored)."""
        if result.status == EMPTY:
            return
        self.first.setdefault(question_id, result)
        self.latest[question_id] = result

    @property
    def score(self) -> float:
        """Sum of first-attempt scores."""
        return round(sum(g.score for g in self.first.values()), 2)

    @property
    def answered(self) -> int:
        """How many questions have been checked at least once."""
        return len(self.first)

    @property
    def solved(self) -> int:
        """How many questions are now answered fully correctly (after retries)."""
        return sum(g.status == CORRECT for g in self.latest.values())
