"""The one owner of the course language: `$LESSONS_LANG` ("en" by default, or "ru") and the text shown in it.

Every string a learner reads is written where it is used, in both languages: `tr(en="Generate", ru="Сгенерировать")`.
The English text is the one the code had before the Russian edition, so English outputs never change. The language is
read at call time, so setting `os.environ["LESSONS_LANG"]` (the Russian notebooks' setup cell does) takes effect at
once. Tables printed with `evaluate.format_table` show their headers from one catalogue, `COLUMNS`, and catalogue
phrases among their cells from `TERMS` (`term(...)` for plot labels), so dictionary keys stay identifiers in code.
Terms follow GLOSSARY.md. A value other than "en" or "ru" is an error that says how to fix it.
"""

from __future__ import annotations

import os

LANG_ENV_VAR = "LESSONS_LANG"
LANGS = ("en", "ru")
DEFAULT_LANG = "en"


def resolve_lang(lang: str | None = None) -> str:
    """The language: the argument, else $LESSONS_LANG, else English; anything else is a clear error."""
    given = lang if lang is not None else os.environ.get(LANG_ENV_VAR)
    value = (given or DEFAULT_LANG).strip().lower()
    if value not in LANGS:
        where = "the argument lang=..." if lang is not None else f"${LANG_ENV_VAR}"
        raise ValueError(
            f"Unknown language {value!r} in {where}; use 'en' or 'ru' "
            f"(e.g. os.environ[{LANG_ENV_VAR!r}] = 'ru'), or unset {LANG_ENV_VAR} for English."
        )
    return value


def current() -> str:
    """The language now in effect ($LESSONS_LANG or English)."""
    return resolve_lang()


def tr(en: str, ru: str, lang: str | None = None) -> str:
    """`en` or `ru`, whichever language is in effect (or `lang`)."""
    return ru if resolve_lang(lang) == "ru" else en


def plural_ru(n: int, one: str, few: str, many: str) -> str:
    """The Russian noun form for `n`: `plural_ru(3, "шаг", "шага", "шагов")` -> "шага" (1 шаг, 3 шага, 5 шагов)."""
    n = abs(int(n))
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


# Column headers of the tables notebooks print with evaluate.format_table: the key stays an identifier in code.
COLUMNS: dict[str, str] = {
    # evaluate.DomainReport.row, tools.evaluate.ToolReport.row
    "model": "модель",
    "domain": "домен",
    "valid": "валидно",
    "correct": "верно",
    "correct tool": "верный инструмент",
    "valid args": "валидные аргументы",
    "exact args": "точные аргументы",
    "final answer": "итоговый ответ",
    "uses result": "ответ с результатом",
    # notebook tables
    "adapter": "адаптер",
    "source": "источник",
    "prompt of": "промпт домена",
    "way": "способ",
    "runs": "запусков",
    "median ms": "медиана, мс",
    "× set_adapter": "× set_adapter",
    "generate calls": "вызовов generate",
    "median s": "медиана, с",
    "tokens/s": "токенов/с",
    "× mixed batch time": "× время смешанного батча",
    "part": "часть",
    "MB": "МБ",
    "% of base": "% от базовой",
    "what": "что",
    "type": "тип",
    "weight": "вес",
    "mean": "среднее",
    "mean correct": "среднее верных",
    "best ms/request": "лучшее мс/запрос",
    "× merged time": "× время объединённой",
    "requests": "запросы",
    "total s": "всего, с",
    "req/s": "запр./с",
    "median latency ms": "медиана задержки, мс",
    "batches": "батчи",
    "routed right": "верно маршрутизировано",
    "system prompt": "системный промпт",
    "label": "метка",
    "router": "маршрутизатор",
    "accuracy": "точность",
    "ms/prompt": "мс/промпт",
    "setting": "параметр",
    "value": "значение",
    "answer": "ответ",
    "prompt": "промпт",
    "steps": "шаги",
    "seconds": "секунд",
    "time": "время",
    "request": "запрос",
    "tool": "инструмент",
    "natural copy": "свои слова: копия",
    "natural task": "свои слова: задача",
    "natural task · copy box": "свои слова: задача · галочка копирования",
    "copy": "копия",
    "task": "задача",
    "copy · copy_bias": "копия · copy_bias",
    "task · copy_bias": "задача · copy_bias",
    "natural n": "свои слова: n",
}


# Row labels notebooks keep as dictionary keys (ways, variants, sources): shown translated, used as keys in code.
TERMS: dict[str, str] = {
    "load_adapter from disk": "load_adapter с диска",
    "reload base + adapter": "перезагрузка базы + адаптера",
    "mixed batch": "смешанный батч",
    "switch per sub-batch": "переключение по подбатчам",
    "one adapter for all rows": "один адаптер на все строки",
    "switching": "переключение",
    "weighted mix": "взвешенная смесь",
    "merged mix": "объединённая смесь",
    "no prompt": "без промпта",
    "cognitive designer": "когнитивный дизайнер",
    "shipped": "поставляемый",
    "local": "рабочая папка",
    "drive": "Google Диск",
    "hub": "Hugging Face Hub",
    "trained": "обучен здесь",
}


def term(value, lang: str | None = None):
    """A table cell or plot label in the language in effect: catalogue phrases (TERMS) are translated, anything else
    (numbers, adapter names, identifiers) is returned as it is."""
    if isinstance(value, str) and resolve_lang(lang) == "ru":
        return TERMS.get(value, value)
    return value


def column(name: str, lang: str | None = None) -> str:
    """A table header in the language in effect; names without a translation are identifiers and stay."""
    return COLUMNS.get(name, name) if resolve_lang(lang) == "ru" else name
