"""Grading: single-choice is right or wrong; multi-choice earns partial credit.

Partial credit (multi-choice): score = max(0, right picks − wrong picks) / number of correct choices.
The answer is "correct" when the picks equal the correct set (score 1), "wrong" when the score is 0,
and "partial" otherwise. So picking 2 of 3 correct choices and nothing wrong scores 0.67 (partial);
2 right + 1 wrong scores 0.33; ticking every box scores 0 whenever at least half of the choices are wrong.
An empty selection is "empty": not graded and not counted as an attempt.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .bank import Question

CORRECT, PARTIAL, WRONG, EMPTY = "correct", "partial", "wrong", "empty"


@dataclass(frozen=True)
class Grade:
    """The result of checking one answer."""

    status: str
    score: float
    picked: frozenset[int]
    right_picks: frozenset[int]
    wrong_picks: frozenset[int]
    missed: frozenset[int]


def grade(question: Question, selected: Iterable[int] | int | None) -> Grade:
    """Grade the selected choice indices against the question's correct set."""
    if selected is None:
        picked: frozenset[int] = frozenset()
    elif isinstance(selected, int):
        picked = frozenset([selected])
    else:
        picked = frozenset(selected)
    bad = [i for i in picked if not isinstance(i, int) or not 0 <= i < len(question.choices)]
    if bad:
        raise ValueError(f"Question {question.id!r} has choices 0..{len(question.choices) - 1}; got {sorted(bad)}.")
    if question.kind == "single" and len(picked) > 1:
        raise ValueError(f"Question {question.id!r} is single-choice; pick one choice, got {sorted(picked)}.")
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
    def for_questions(cls, n: int) -> "ScoreBoard":
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
