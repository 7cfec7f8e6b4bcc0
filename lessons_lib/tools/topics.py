"""Template topics the way people write them: whole phrases with a verb, a reason or a condition (an e-mail about
rescheduling a visit, a bug report that says when the app crashes, an instruction that is itself a task), and more
ways to attach a topic to the request.

Train-only variety (`data.VARIED_TOPICS`): before it, the adapter had seen short noun phrases from 18 shapes, so on a
longer topic it quoted only its last words. Written after reading the hand-written dev failures (some shapes are
theirs), so dev flatters it; held-out is the fair measure.
"""

from __future__ import annotations

import random

PARTS = {
    "en": {
        "email": (
            [
                "rescheduling",
                "postponing",
                "cancelling",
                "confirming",
                "moving",
                "following up on",
                "apologising for",
                "a reminder about",
            ],
            [
                "the {town} site visit",
                "the {item} workshop",
                "{name}'s interview",
                "the {town} delivery",
                "our call with {name}",
                "the {item} order",
                "the {town} open day",
                "the contract renewal",
            ],
            [
                "",
                "",
                " to next week",
                " by Friday",
                " because of the strike",
                " until the {item} arrives",
                " for the {town} office",
            ],
        ),
        "meeting_notes": (
            [
                "the budget for",
                "planning",
                "a review of",
                "the schedule of",
                "who covers",
                "risks of",
                "decisions on",
                "the retrospective of",
            ],
            [
                "the {town} telescope repair",
                "the {item} launch",
                "{name}'s shifts in June",
                "the {town} move",
                "the {item} redesign",
                "the spring fair",
                "the new {item} supplier",
            ],
            ["", "", " with {name}", " in {town}", " before the audit", " for the second quarter"],
        ),
        "bug_report": (
            [
                "the {item} app",
                "the checkout page",
                "the login form",
                "export to PDF",
                "search",
                "the {town} map",
                "the settings screen",
                "sync with {item}",
            ],
            [
                "crashes",
                "freezes",
                "shows prices in the wrong currency",
                "loses the logo",
                "returns nothing",
                "logs {name} out",
                "shows a blank page",
                "doubles every order",
            ],
            [
                " when the language changes",
                " after the update",
                " for {town} users",
                " on old phones",
                " for names like {name}",
                " twice a day",
                "",
            ],
        ),
        "instruction": (
            [
                "summarize",
                "translate",
                "write a haiku about",
                "list three risks of",
                "explain",
                "rewrite",
                "classify",
                "answer questions about",
            ],
            [
                "a customer review of the {item}",
                "the {town} lighthouse",
                "the {item} manual",
                "{name}'s cover letter",
                "the {town} bus timetable",
                "a complaint about the {item}",
            ],
            [" in one sentence", " for a child", " into French", " in 50 words", " as a bullet list", "", ""],
        ),
    },
    "ru": {
        "email": (
            ["перенос", "отмена", "подтверждение", "детали", "сроки", "продление"],
            [
                "визита на объект в {town}",
                "семинара по {item}",
                "собеседования с {name}",
                "доставки в {town}",
                "заказа {item}",
                "договора аренды",
                "дня открытых дверей",
            ],
            ["", "", " на следующую неделю", " до пятницы", " из-за забастовки", " для офиса в {town}"],
        ),
        "meeting_notes": (
            ["бюджет", "план", "итоги", "график", "риски", "статус", "разбор"],
            [
                "ремонта телескопа в {town}",
                "запуска {item}",
                "смен {name} в июне",
                "переезда в {town}",
                "редизайна {item}",
                "весенней ярмарки",
                "нового поставщика {item}",
            ],
            ["", "", " с {name}", " перед проверкой", " на второй квартал"],
        ),
        "bug_report": (
            [
                "приложение {item}",
                "страница оплаты",
                "форма входа",
                "экспорт в PDF",
                "поиск",
                "карта {town}",
                "экран настроек",
                "синхронизация с {item}",
            ],
            [
                "вылетает",
                "зависает",
                "показывает цены не в той валюте",
                "теряет логотип",
                "ничего не находит",
                "выкидывает {name} из аккаунта",
                "показывает пустую страницу",
                "дублирует заказы",
            ],
            [
                " при смене языка",
                " после обновления",
                " у пользователей из {town}",
                " на старых телефонах",
                " дважды в день",
                "",
            ],
        ),
        "instruction": (
            ["перескажи", "переведи", "напиши хайку про", "объясни", "перепиши", "ответь на вопросы про"],
            [
                "отзыв покупателя о {item}",
                "маяк в {town}",
                "инструкцию к {item}",
                "сопроводительное письмо {name}",
                "расписание автобусов в {town}",
                "жалобу на {item}",
            ],
            [" в одном предложении", " для ребёнка", " на английский", " в 50 словах", " списком", "", ""],
        ),
    },
}
LINKS = {  # more ways to attach a topic ({topic}) after the template's words
    "en": [
        ": {topic}",
        ". It's regarding {topic}",
        ". We're discussing {topic}",
        " — the topic is {topic}",
        ', topic is "{topic}"',
        ", subject line '{topic}'",
        " where the instruction is: {topic}",
        " for this task: {topic}",
        ". The subject: {topic}",
    ],
    "ru": [
        ": {topic}",
        ". Речь про {topic}",
        ". Обсуждаем {topic}",
        " — тема «{topic}»",
        ', тема "{topic}"',
        ". Задача: {topic}",
        ". Инструкция: {topic}",
        " по теме {topic}",
    ],
}
MORE_LINKS = 0.4  # share of varied topics attached with LINKS rather than the request's own link


def varied_topic(rng: random.Random, lang: str, kind: str, fill: dict) -> str:
    """A topic for a `kind` template: what, about what, and sometimes when or why, with `fill`'s made-up names."""
    heads, objects, tails = PARTS[lang][kind]
    return f"{rng.choice(heads)} {rng.choice(objects)}{rng.choice(tails)}".format(**fill)


def varied_link(rng: random.Random, lang: str, link: str) -> str:
    """`link` (how the request attaches its {topic}) or, MORE_LINKS of the time, another way from LINKS."""
    return rng.choice(LINKS[lang]) if rng.random() < MORE_LINKS else link
