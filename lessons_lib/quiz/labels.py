"""Interface strings of the quiz in English and Russian."""

from __future__ import annotations

from ..i18n import LANG_ENV_VAR, resolve_lang

__all__ = ["LANG_ENV_VAR", "UI", "resolve_lang", "ui"]

UI: dict[str, dict[str, str]] = {
    "quiz": {"en": "Quiz", "ru": "Тест"},
    "error": {"en": "Error", "ru": "Ошибка"},
    "single": {"en": "choose one", "ru": "выберите один ответ"},
    "multi": {"en": "choose all that apply", "ru": "выберите все верные ответы"},
    "check": {"en": "Check", "ru": "Проверить"},
    "answer": {"en": "Answer", "ru": "Ответ"},
    "show_answer": {"en": "Show the answer and explanations", "ru": "Показать ответ и объяснения"},
    "correct_answer": {"en": "Correct", "ru": "Верно"},
    "correct": {"en": "Correct!", "ru": "Верно!"},
    "partial": {"en": "Partly right", "ru": "Частично верно"},
    "wrong": {"en": "Not quite", "ru": "Неверно"},
    "empty": {
        "en": "Pick an answer first, then press Check.",
        "ru": "Сначала выберите ответ, затем нажмите «Проверить».",
    },
    "retry": {"en": "Read the explanations and try again.", "ru": "Прочитайте объяснения и попробуйте ещё раз."},
    "score": {"en": "Score", "ru": "Баллы"},
    "checked": {"en": "checked", "ru": "проверено"},
    "of": {"en": "of", "ru": "из"},
    "first_attempts": {"en": "first attempts count", "ru": "засчитывается первая попытка"},
    "solved": {"en": "solved", "ru": "решено"},
    "right": {"en": "right", "ru": "верно"},
    "wrong_choice": {"en": "wrong", "ru": "неверно"},
    "missed": {"en": "missed", "ru": "пропущено"},
    "self_check": {
        "en": "Self-check: can you say yes to each line?",
        "ru": "Самопроверка: можете ли вы сказать «да» про каждый пункт?",
    },
    "answer_key": {"en": "Answer key", "ru": "Ключ ответов"},
    "name_line": {
        "en": "Name: ____________________   Date: ____________",
        "ru": "Имя: ____________________   Дата: ____________",
    },
    "partial_rule": {
        "en": "Multi-choice scoring: (right picks − wrong picks) / number of correct choices, "
        "never below 0; single-choice: 1 or 0.",
        "ru": "Оценка вопросов с несколькими ответами: (верные отметки − неверные отметки) / "
        "число верных вариантов, не меньше 0; с одним ответом: 1 или 0.",
    },
}


def ui(key: str, lang: str) -> str:
    """One interface string in `lang`."""
    return UI[key][lang]
