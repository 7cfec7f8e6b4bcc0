"""Quiz widget callbacks, driven from Python as a learner's clicks would (runs on ipywidgets 7.7.1 and 8.x)."""

from __future__ import annotations

import pytest

from lessons_lib.quiz import build_quiz, load_bank
from lessons_lib.quiz.inline import to_html
from lessons_lib.quiz.widget import REVEAL_AFTER, QuizWidget

pytestmark = pytest.mark.widgets


def first(quiz: QuizWidget, kind: str, min_correct: int = 1):
    """The first card of that kind with at least `min_correct` correct choices."""
    return next(c for c in quiz.cards if c.question.kind == kind and len(c.question.correct_indices) >= min_correct)


def wrong_index(card) -> int:
    return next(i for i in range(len(card.question.choices)) if i not in card.question.correct_indices)


def explained(card, index: int) -> bool:
    """Whether the card's feedback shows the explanation of choice `index`."""
    return to_html(card.question.choices[index].explain[card.lang]) in card.feedback.value


def test_quiz_has_one_card_per_question_with_the_right_controls():
    quiz = build_quiz("02", lang="en")
    bank = load_bank("02")
    assert [c.question.id for c in quiz.cards] == [q.id for q in bank.questions]
    for card in quiz.cards:
        n = len(card.question.choices)
        if card.question.kind == "single":
            assert len(card.radio.options) == n and card.radio.value is None and card.boxes == []
        else:
            assert card.radio is None and len(card.boxes) == n and not any(b.value for b in card.boxes)
        assert card.button.description == "Check" and card.feedback.value == ""
    assert quiz.score_label.value.startswith(f"Score: 0 / {len(bank.questions)}")
    assert "Self-check" in quiz.self_check.value


def test_correct_single_choice_gives_praise_explanations_and_a_point():
    quiz = build_quiz("01", lang="en")
    card = first(quiz, "single")
    right = next(iter(card.question.correct_indices))
    card.radio.value = right
    card.button.click()
    assert card.last.status == "correct"
    assert "Correct!" in card.feedback.value
    assert all(explained(card, i) for i in range(len(card.question.choices)))  # solved: all explained
    assert quiz.score_label.value.startswith(f"Score: 1 / {len(quiz.cards)}")
    assert "checked 1 of" in quiz.score_label.value and "solved 1" in quiz.score_label.value


def test_wrong_answer_explains_that_choice_and_retry_does_not_raise_the_score():
    quiz = build_quiz("03", lang="en")
    card = first(quiz, "single")
    bad = wrong_index(card)
    card.radio.value = bad
    card.button.click()
    assert card.last.status == "wrong" and "Not quite" in card.feedback.value
    right = next(iter(card.question.correct_indices))
    assert explained(card, bad) and not explained(card, right)  # the right answer is not given away yet
    assert "try again" in card.feedback.value
    card.radio.value = right
    card.button.click()
    assert card.last.status == "correct"
    assert quiz.score_label.value.startswith("Score: 0 / ") and "solved 1" in quiz.score_label.value


def test_multi_choice_partial_answer_shows_partial_credit():
    quiz = build_quiz("02", lang="en")
    card = first(quiz, "multi", min_correct=2)
    n_correct = len(card.question.correct_indices)
    pick = sorted(card.question.correct_indices)[:1]
    for i in pick:
        card.boxes[i].value = True
    card.button.click()
    expected = round(1 / n_correct, 2)
    assert card.last.status == "partial" and card.last.score == expected
    assert "Partly right" in card.feedback.value and f"missed {n_correct - 1}" in card.feedback.value
    assert quiz.score_label.value.startswith(f"Score: {expected:g} / ")


def test_multi_choice_all_correct_boxes():
    quiz = build_quiz("06", lang="en")
    card = first(quiz, "multi")
    card.select(card.question.correct_indices)
    card.button.click()
    assert card.last.status == "correct" and "Correct!" in card.feedback.value


def test_empty_check_asks_for_an_answer_and_counts_nothing():
    quiz = build_quiz("04", lang="en")
    card = quiz.cards[0]
    card.button.click()
    assert "Pick an answer first" in card.feedback.value and card.attempts == 0 and card.last is None
    assert "checked 0 of" in quiz.score_label.value


def test_everything_is_revealed_after_repeated_wrong_attempts():
    quiz = build_quiz("05", lang="en")
    card = first(quiz, "single")
    for _ in range(REVEAL_AFTER):
        card.select([wrong_index(card)])
        card.button.click()
    assert all(explained(card, i) for i in range(len(card.question.choices)))


def test_russian_quiz_labels_and_feedback():
    quiz = build_quiz("01", lang="ru")
    card = first(quiz, "single")
    assert card.button.description == "Проверить"
    assert card.question.prompt["ru"][:20] in card.prompt.value
    card.select(card.question.correct_indices)
    card.button.click()
    assert "Верно!" in card.feedback.value and quiz.score_label.value.startswith("Баллы: 1 / ")


def test_select_rejects_two_answers_on_a_single_choice_card():
    card = first(build_quiz("01"), "single")
    with pytest.raises(ValueError, match="single-choice"):
        card.select([0, 1])


def test_card_lookup_by_id():
    quiz = build_quiz("03")
    assert quiz.card("03-weighted-existing-name").question.id == "03-weighted-existing-name"
    with pytest.raises(KeyError, match="No question 'nope'"):
        quiz.card("nope")
