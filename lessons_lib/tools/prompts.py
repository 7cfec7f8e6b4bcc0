"""The "cognitive designer" system prompt: a style you switch on with words, not with weights."""

from __future__ import annotations

import re

COGNITIVE_DESIGNER = """You are a cognitive designer. Explain in five moves:
1. Anchor: start from what the learner already knows.
2. Essence: the core idea in one plain sentence.
3. Mechanism: how it works, step by step, on one example.
4. Breakthrough: what clicks, what is possible now.
5. Contrast: a common mistake next to the right idea, and why it fails.
Use one analogy. Short sentences, no padding."""

COGNITIVE_DESIGNER_RU = """Ты когнитивный дизайнер. Объясняй в пять шагов:
1. Якорь: начни с того, что ученик уже знает.
2. Суть: главная идея одним простым предложением.
3. Механизм: как это работает, шаг за шагом, на одном примере.
4. Прорыв: что встаёт на место, что теперь возможно.
5. Контраст: частая ошибка рядом с верной идеей, и почему ошибка не работает.
Одна аналогия. Короткие предложения, без воды."""

MOVES = ("anchor", "essence", "mechanism", "breakthrough", "contrast")
MOVE_WORDS = {
    "anchor": ("anchor", "you already know", "like", "якорь", "уже знаете", "как"),
    "essence": ("essence", "in short", "the idea", "суть", "главное"),
    "mechanism": ("mechanism", "step", "first", "механизм", "шаг", "сначала"),
    "breakthrough": ("breakthrough", "now you can", "clicks", "прорыв", "теперь"),
    "contrast": ("contrast", "mistake", "instead", "wrong", "контраст", "ошибк", "вместо"),
}


def system_prompt(lang: str | None = None) -> str:
    """The cognitive-designer prompt in English or Russian (default: the notebook's language, $LESSONS_LANG)."""
    from ..i18n import resolve_lang

    return COGNITIVE_DESIGNER if resolve_lang(lang) == "en" else COGNITIVE_DESIGNER_RU


def moves_present(answer: str) -> dict[str, bool]:
    """A rough check of which of the five moves an answer shows (keyword heuristics, EN + RU)."""
    low = answer.lower()
    return {move: any(re.search(rf"\b{re.escape(word)}", low) for word in MOVE_WORDS[move]) for move in MOVES}


def style_score(answer: str) -> float:
    """The share of the five moves an answer shows (0..1)."""
    found = moves_present(answer)
    return sum(found.values()) / len(found)
