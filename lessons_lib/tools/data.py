"""Synthetic EN + RU tool requests with their gold calls, results and final answers.

Three splits. `train` and `heldout` use disjoint request phrasings and disjoint names, cities and products
(the pools of `lessons_lib.data`), so held-out rates measure generalisation, not recall. `dev` uses
phrasings of its own (in neither of the others) and made-up names: it is what a recipe is chosen on,
so the held-out set stays untouched until the final score.
"""

from __future__ import annotations

import json
import random
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from .. import data as course_data
from ..chat_format import prepare
from ..i18n import tr
from ..jsonl import read_objects
from ..paths import ASSETS_DIR
from .calls import ToolCall, call_text
from .functions import TOOLS, ToolError
from .loop import result_text
from .texts import varied_text
from .voices import capitalized, formatter_request, template_request, validator_request

LANGS = course_data.LANGS
SPLITS = ("train", "dev", "heldout")
DEV_PHRASINGS = 2  # the last phrasings of each EXTRA_REQUESTS list are dev's
VARIED_TOPICS = 0.5  # share of train voiced template topics drawn from topics.varied_topic (longer, with verbs)
VARIED_TEXTS = 0.5  # share of train texts to check drawn from texts.varied_text (many more kinds)
MIXED_TEXTS = 0.4  # share of train formatter requests whose text is not a plain sentence

FORMATTER_REQUESTS = {
    "en": [
        "Wrap this text to {width} characters with an indent of {indent}: {text}",
        "Format the text to width {width}, indent {indent}: {text}",
        "Please reflow this to {width} columns, indented by {indent} spaces: {text}",
        "Break the following text into lines of at most {width} characters, indent {indent}: {text}",
        "Make the lines no longer than {width} characters (indent {indent}): {text}",
        "Use the formatter with width {width} and indent {indent} on this text: {text}",
    ],
    "ru": [
        "Перенеси текст по ширине {width} символов с отступом {indent}: {text}",
        "Отформатируй текст, ширина {width}, отступ {indent}: {text}",
        "Разбей на строки не длиннее {width} символов, отступ {indent}: {text}",
        "Сделай строки шириной до {width} символов с отступом {indent}: {text}",
        "Выровняй текст по ширине {width}, отступ {indent}: {text}",
        "Примени форматтер, ширина {width} и отступ {indent}, к тексту: {text}",
    ],
}
TEMPLATE_REQUESTS = {
    "en": [
        "Make a {label} template about {topic}.",
        "Create a {label} template for: {topic}",
        "I need a {label} template. Topic: {topic}",
        "Generate a {label} template on {topic}.",
        "Give me a blank {label} for {topic}.",
        "Draft a {label} template, subject: {topic}",
    ],
    "ru": [
        "Сделай шаблон «{label}» на тему: {topic}",
        "Создай шаблон ({label}) для: {topic}",
        "Нужен шаблон «{label}». Тема: {topic}",
        "Сгенерируй шаблон «{label}», тема: {topic}",
        "Подготовь заготовку «{label}» про: {topic}",
        "Шаблон «{label}», тема: {topic}",
    ],
}
TEMPLATE_LABELS = {
    "en": {
        "instruction": ["instruction prompt", "instruction/input/response"],
        "email": ["e-mail", "email"],
        "bug_report": ["bug report", "bug ticket"],
        "meeting_notes": ["meeting notes", "meeting minutes"],
    },
    "ru": {
        "instruction": ["инструкция", "промпт-инструкция"],
        "email": ["письмо", "e-mail"],
        "bug_report": ["баг-репорт", "отчёт об ошибке"],
        "meeting_notes": ["протокол встречи", "заметки встречи"],
    },
}
VALIDATOR_REQUESTS = {
    "en": [
        "Check that this text {rules}: {text}",
        "Validate that the text {rules}: {text}",
        "Verify that the text {rules}. Text: {text}",
        "Run the content checks, it {rules}: {text}",
        "Make sure the following {rules}: {text}",
        "Please confirm the text {rules}. Text: {text}",
    ],
    "ru": [
        "Проверь, что текст {rules}: {text}",
        "Валидируй, что текст {rules}: {text}",
        "Убедись, что текст {rules}. Текст: {text}",
        "Запусти проверки, текст {rules}: {text}",
        "Нужно проверить, что текст {rules}: {text}",
        "Подтверди, что текст {rules}. Текст: {text}",
    ],
}
RULE_WORDINGS = {  # each rule as a statement, several ways; held-out and dev use only the first
    "en": {
        "non_empty": ["is not empty", "contains some text", "isn't blank"],
        "has_headings": ["has a heading", "contains a Markdown heading", "has a title line starting with #"],
        "is_email": ["is an e-mail address", "is a valid email", "looks like a proper e-mail address"],
        "valid_json": ["is valid JSON", "parses as JSON", "is well-formed JSON"],
        "no_trailing_spaces": [
            "has no trailing spaces",
            "has no spaces at the ends of lines",
            "has no trailing whitespace",
        ],
        "max_length": ["is at most {n} characters", "is no longer than {n} characters", "fits in {n} characters"],
        "min_words": ["has at least {n} words", "contains {n} or more words", "is at least {n} words long"],
    },
    "ru": {
        "non_empty": ["не пустой", "содержит хоть какой-то текст", "не пуст"],
        "has_headings": ["содержит заголовок", "имеет заголовок", "содержит заголовок Markdown"],
        "is_email": ["является адресом почты", "является корректным e-mail", "похож на адрес электронной почты"],
        "valid_json": ["является корректным JSON", "парсится как JSON", "это валидный JSON"],
        "no_trailing_spaces": [
            "без пробелов в конце строк",
            "не имеет хвостовых пробелов",
            "без лишних пробелов в конце",
        ],
        "max_length": ["не длиннее {n} символов", "укладывается в {n} символов", "не больше {n} символов"],
        "min_words": ["содержит не меньше {n} слов", "состоит хотя бы из {n} слов", "длиной от {n} слов"],
    },
}
RULE_PHRASES = {lang: {rule: said[0] for rule, said in rules.items()} for lang, rules in RULE_WORDINGS.items()}
SENTENCES = {
    "en": [
        "{name} bought a {item} in {town}.",
        "{town} gets a new {item} today.",
        "{name} says the {item} works well.",
        "{name} tested the {item} in {town}.",
        "Send the {item} to {name} soon.",
        "The {item} from {town} arrived.",
    ],
    "ru": [
        "{name} купил(а) {item} в городе {town}.",
        "Город {town} получит {item} сегодня.",
        "{name} пишет, что {item} работает.",
        "{name} проверил(а) {item} в городе {town}.",
        "Отправьте {item} для {name}.",
        "Товар {item} из города {town} пришёл.",
    ],
}
TOPICS = {
    "en": [
        "{item} delivery delay",
        "new {item} prices",
        "team meeting in {town}",
        "onboarding of {name}",
        "refund for the {item}",
        "{item} page crashes",
    ],
    "ru": [
        "задержка доставки, {item}",
        "новые цены, {item}",
        "встреча команды, {town}",
        "адаптация, {name}",
        "возврат, {item}",
        "падает страница, {item}",
    ],
}
FINAL = {
    "en": {
        "text_formatter": "Here is the formatted text:\n{result}",
        "template_generator": "Here is the template:\n{result}",
        "ok": "All checks passed: {passed}.",
        "fail": "Failed checks: {failed}.",
    },
    "ru": {
        "text_formatter": "Вот отформатированный текст:\n{result}",
        "template_generator": "Вот шаблон:\n{result}",
        "ok": "Все проверки пройдены: {passed}.",
        "fail": "Не пройдены проверки: {failed}.",
    },
}

# Extra phrasings for train and dev: more ways of saying each tool's verb (wrap/format/indent, template/generate,
# validate/check), none of them a held-out phrasing; the last DEV_PHRASINGS of each list are dev's.
# Held-out requests draw only from the odd positions of the tables above.
EXTRA_REQUESTS = {
    "text_formatter": {
        "en": [
            "Reformat to {width} columns with indent {indent}: {text}",
            "Wrap at {width} chars, indent each line by {indent}: {text}",
            "Text formatting please: width {width}, indent {indent}. {text}",
            "Indent by {indent} and wrap at width {width}: {text}",
            "Could you format this to {width} characters wide, indent {indent}? {text}",
            "Line-wrap the text (width {width}, indent {indent}): {text}",
            "Fit this text into {width}-character lines, indenting {indent}: {text}",
            "Word-wrap with width {width} and indent {indent}: {text}",
        ],
        "ru": [
            "Переформатируй под ширину {width}, отступ {indent}: {text}",
            "Перенос строк: ширина {width}, отступ {indent}. {text}",
            "Сделай отступ {indent} и перенос по ширине {width}: {text}",
            "Оформи текст в строки по {width} символов, отступ {indent}: {text}",
            "Отформатируй, пожалуйста: ширина {width}, отступ {indent}. {text}",
            "Уложи текст в ширину {width} с отступом {indent}: {text}",
            "Форматирование текста, ширина {width}, отступ {indent}: {text}",
            "Перенеси строки на ширине {width}, отступ {indent}: {text}",
        ],
    },
    "template_generator": {
        "en": [
            "Template request: {label}, topic {topic}",
            "Please generate a {label} template about {topic}.",
            "Could you make me a {label} template for {topic}?",
            "Fill in a {label} template; the topic is {topic}.",
            "New {label} template, topic: {topic}",
            "Produce a {label} template about: {topic}",
            "Generate the template ({label}) for {topic}.",
            "Start a {label} from the template, topic {topic}.",
        ],
        "ru": [
            "Сгенерируй, пожалуйста, шаблон «{label}» про: {topic}",
            "Заготовка по шаблону «{label}», тема: {topic}",
            "Составь шаблон «{label}» по теме: {topic}",
            "Шаблон нужен такой: «{label}», тема {topic}",
            "Сделай, пожалуйста, шаблон ({label}), тема: {topic}",
            "Сгенерируй заготовку «{label}» для: {topic}",
            "Новый шаблон «{label}» на тему {topic}",
            "Создай заготовку по шаблону «{label}»: {topic}",
        ],
    },
    "content_validator": {
        "en": [
            "Validate this text; it must be such that it {rules}: {text}",
            "Content check: does the text say it {rules}? {text}",
            "Run validation, the text {rules}: {text}",
            "Can you check whether the text {rules}? Text: {text}",
            "Validation request: the text {rules}. {text}",
            "Please validate: the text {rules}. Text: {text}",
            "Check the content, it {rules}: {text}",
            "Confirm by validation that the text {rules}: {text}",
        ],
        "ru": [
            "Проверь, пожалуйста, текст {rules}: {text}",
            "Валидация: текст {rules}. Текст: {text}",
            "Проведи валидацию, текст {rules}: {text}",
            "Сделай проверку, что текст {rules}: {text}",
            "Проверка содержимого: текст {rules}. {text}",
            "Провалидируй, текст {rules}: {text}",
            "Проверь содержимое, текст {rules}: {text}",
            "Подтверди проверкой, что текст {rules}: {text}",
        ],
    },
}
TRAIN_ONLY_SENTENCES = {
    "en": [
        "{name} lost the {item} near {town}.",
        "Is the {item} in {town} ready, {name}?",
        "{name} will pick up the {item} tomorrow.",
        "A {item} for {name} is waiting in {town}.",
        "Nobody in {town} wants the old {item}.",
        "{name} and the {item} left {town} at noon.",
    ],
    "ru": [
        "{name} забыл(а) {item} в городе {town}.",
        "В городе {town} закончился {item}.",
        "{name} заберёт {item} завтра.",
        "Для {name} есть {item} в городе {town}.",
        "{name} вернул(а) {item} в магазин.",
        "В городе {town} ждут новый {item}.",
    ],
}


# Natural train phrasings: how people ask when they don't know the tool's words — questions about the text instead
# of orders, each rule and template said several ways, the text before the request, "no indent" for indent 0.
# Train only (dev and held-out stay as they were); a request is phrased this way with probability NATURAL_SHARE.
NATURAL_SHARE = 0.35
INDENT_WORDS = {
    "en": (["no indent", "without indentation", "indent 0"], ["indent {n}", "a {n}-space indent", "indented by {n}"]),
    "ru": (["без отступа", "отступ 0", "без отступов"], ["отступ {n}", "с отступом {n}", "отступ в {n} пробела"]),
}
NATURAL_FORMATTER = {
    "en": [
        "Can you wrap this at {width} characters, {ip}? {text}",
        "Fit my text into {width} columns, {ip}: {text}",
        "For a column {width} characters wide ({ip}), wrap this: {text}",
        "Here is a note: {text}\nWrap it to {width} characters, {ip}.",
        "At most {width} chars per line, {ip}. {text}",
        "My screen is {width} characters wide, {ip}, please rewrap: {text}",
    ],
    "ru": [
        "Можешь перенести текст по {width} символов, {ip}? {text}",
        "Уложи заметку в колонку шириной {width}, {ip}: {text}",
        "Вот текст: {text}\nПеренеси его по ширине {width}, {ip}.",
        "Строки не длиннее {width} символов, {ip}: {text}",
        "У меня экран на {width} символов, {ip}, перенеси: {text}",
        "Нужна колонка в {width} символов, {ip}. {text}",
    ],
}
RULE_QUESTIONS = {  # the same rules as questions about the text
    "en": {
        "non_empty": ["is there any text in it", "is it non-empty"],
        "has_headings": ["does it have a heading", "is there a Markdown heading in it"],
        "is_email": ["is it a valid e-mail address", "does it look like an email"],
        "valid_json": ["is it valid JSON", "will it parse as JSON"],
        "no_trailing_spaces": ["is it free of trailing spaces", "does it avoid spaces at line ends"],
        "max_length": ["does it fit in {n} characters", "is it {n} characters or shorter"],
        "min_words": ["does it have at least {n} words", "is it {n} words or longer"],
    },
    "ru": {
        "non_empty": ["есть ли в нём текст", "он не пустой"],
        "has_headings": ["есть ли в нём заголовок", "начинается ли он с заголовка"],
        "is_email": ["это правильный адрес почты", "похож ли он на e-mail"],
        "valid_json": ["это корректный JSON", "разберётся ли он как JSON"],
        "no_trailing_spaces": ["нет ли пробелов в конце строк", "строки без пробелов на конце"],
        "max_length": ["укладывается ли он в {n} символов", "в нём не больше {n} символов"],
        "min_words": ["есть ли в нём хотя бы {n} слов", "в нём не меньше {n} слов"],
    },
}
NATURAL_VALIDATOR = {
    "en": [
        "Quick question about this text: {q}? {text}",
        "Can you tell me, {q}? {text}",
        "Here is my text: {text}\n{Q}?",
        "{Q}? Text: {text}",
        "I'm not sure about this one, {q}?\n{text}",
        "Have a look: {q}? {text}",
    ],
    "ru": [
        "Вопрос про текст: {q}? {text}",
        "Подскажи, {q}? {text}",
        "Вот мой текст: {text}\n{Q}?",
        "{Q}? Текст: {text}",
        "Не уверен насчёт этого текста, {q}?\n{text}",
        "Глянь, пожалуйста: {q}? {text}",
    ],
}
NATURAL_TEMPLATE = {
    "en": [
        "I need a {label} for {topic}, can you set it up?",
        "{topic}: please give me a {label} skeleton.",
        "Could I get an empty {label} for {topic}?",
        "Set up a {label} layout about {topic}.",
        "We need a {label} draft regarding {topic}.",
        "Help me start a {label} on {topic}.",
    ],
    "ru": [
        "Мне нужна заготовка «{label}» на тему: {topic}",
        "{topic} — подготовь шаблон «{label}».",
        "Помоги начать {label}, тема: {topic}",
        "Дай пустой шаблон «{label}», тема {topic}",
        "Набросай каркас «{label}»: {topic}",
        "Заготовь «{label}» по теме: {topic}",
    ],
}
NATURAL_LABELS = {
    "en": {
        "instruction": ["instruction template", "prompt scaffold"],
        "email": ["email draft", "mail"],
        "bug_report": ["issue report", "bug ticket"],
        "meeting_notes": ["minutes", "meeting summary"],
    },
    "ru": {
        "instruction": ["инструкция для модели", "каркас промпта"],
        "email": ["черновик письма", "письмо"],
        "bug_report": ["тикет об ошибке", "баг-репорт"],
        "meeting_notes": ["итоги встречи", "протокол"],
    },
}
NATURAL_TOPICS = {
    "en": [
        "the {town} office move",
        "a broken {item} on arrival",
        "the first week of {name}",
        "slow search on the {item} page",
        "planning the trip to {town}",
        "feedback on the new {item}",
    ],
    "ru": [
        "переезд офиса в город {town}",
        "сломанный {item} при доставке",
        "первая неделя, {name}",
        "медленный поиск, {item}",
        "поездка в город {town}",
        "отзывы о товаре {item}",
    ],
}


# Requests composed in many voices (`voices`): opener, verb, parameters in either order and said several ways, the
# text anywhere. Train only; a request is composed this way with probability VOICED_SHARE (else as before).
VOICED_SHARE = 0.5
VOICED_WIDTHS, VOICED_INDENTS = (10, 90), (0, 0, 1, 2, 3, 4, 6, 8)  # wider than the templates': numbers are copied
MIN_LINE = 12  # characters a wrapped line keeps past its indent (narrower: a word per line, rows past the context)
VOICED_LIMITS = {"max_length": (10, 300), "min_words": (2, 15)}
TWO_SENTENCES = 0.25  # share of voiced formatter texts that are two sentences (the full stops belong to the text)


def train_draw(rng: random.Random, split: str, share: float) -> bool:
    """Whether a train request takes a phrasing drawn with probability `share` (dev and held-out draw nothing)."""
    return split == "train" and rng.random() < share


def unlike_heldout(lang: str, make):
    """The first request `make()` composes (or (request, topic) pair) that starts like no held-out phrasing."""
    while True:
        made = make()
        request = made[0] if isinstance(made, tuple) else made
        if not request.lower().startswith(HELDOUT_HEADS[lang]):
            return made


def indent_words(rng: random.Random, lang: str, indent: int) -> str:
    """How a person says an indent: "no indent" for 0, else a few ways of giving the number."""
    zero, some = INDENT_WORDS[lang]
    return rng.choice(zero) if indent == 0 else rng.choice(some).format(n=indent)


def check_split(split: str) -> None:
    """Raise for a split name other than train, dev or heldout."""
    if split not in SPLITS:
        raise ValueError(
            tr(
                en=f"Unknown split {split!r}; use one of {SPLITS}.",
                ru=f"Неизвестная часть данных {split!r}; используйте одну из {SPLITS}.",
            )
        )


def phrasings(tool: str, table: dict, lang: str, split: str) -> list[str]:
    """The request phrasings of a tool for a split."""
    extra = EXTRA_REQUESTS[tool][lang]
    if split == "dev":
        return extra[-DEV_PHRASINGS:]
    own = course_data._split(table[lang], split)
    return own + extra[:-DEV_PHRASINGS] if split == "train" else own


# Composed train phrasings: opener + the tool's verb + a reference to the text + an ending, with the SAME
# openers, references and endings for both text tools, so filler words ("the text", "please") carry no
# signal and only the verb and its parameters name the tool. Any that equals a held-out phrasing is dropped.
COMPOSED_SHARE = 0.5  # share of train formatter and validator requests that are composed
OPENERS = {
    "en": ["", "Please, ", "Quick task: ", "Hi! ", "One more: "],
    "ru": ["", "Пожалуйста, ", "Задача: ", "Привет! ", "Ещё одно: "],
}
TEXT_REFS = {
    "en": ["the text", "this text", "the following text", "the snippet below", "this paragraph"],
    "ru": ["текст", "этот текст", "следующий текст", "фрагмент ниже", "этот абзац"],
}
ENDINGS = {"en": [": {text}", ". Text: {text}", "\n{text}"], "ru": [": {text}", ". Текст: {text}", "\n{text}"]}
COMPOSED_VERBS = {
    "text_formatter": {
        "en": [
            "wrap {ref} at width {width} with indent {indent}",
            "format {ref} to {width} columns, indent {indent}",
            "reflow {ref}, width {width}, indent {indent}",
            "indent {ref} by {indent} and wrap it to {width}",
            "lay out {ref} in lines of {width} characters with an indent of {indent}",
        ],
        "ru": [
            "перенеси {ref} по ширине {width}, отступ {indent}",
            "отформатируй {ref} под {width} символов, отступ {indent}",
            "разбей {ref} на строки по {width} символов с отступом {indent}",
            "выровняй {ref}: ширина {width}, отступ {indent}",
            "сделай {ref} шириной {width} с отступом {indent}",
        ],
    },
    "content_validator": {
        "en": [
            "check that {ref} {rules}",
            "validate {ref}: it {rules}",
            "verify whether {ref} {rules}",
            "make sure {ref} {rules}",
            "run the checks on {ref}: it {rules}",
        ],
        "ru": [
            "проверь, что {ref} {rules}",
            "убедись, что {ref} {rules}",
            "валидируй {ref}: он {rules}",
            "проверь {ref}: он {rules}",
            "запусти проверку: {ref} {rules}",
        ],
    },
}


HELDOUT_PHRASINGS = {
    tool: {lang: {p.lower() for p in course_data._split(table[lang], "heldout")} for lang in LANGS}
    for tool, table in (("text_formatter", FORMATTER_REQUESTS), ("content_validator", VALIDATOR_REQUESTS))
}

# How each held-out phrasing starts (its text before the first placeholder), lower-case: no voiced train request
# starts like one.
HELDOUT_HEADS = {
    lang: tuple(
        sorted(
            {
                p.split("{")[0].lower()
                for table in (FORMATTER_REQUESTS, TEMPLATE_REQUESTS, VALIDATOR_REQUESTS)
                for p in course_data._split(table[lang], "heldout")
            }
        )
    )
    for lang in LANGS
}


def composed_phrasing(rng: random.Random, tool: str, lang: str) -> str:
    """One composed train phrasing (a format string with the tool's placeholders) that no held-out one equals."""
    heldout = HELDOUT_PHRASINGS[tool][lang]
    while True:
        verb = rng.choice(COMPOSED_VERBS[tool][lang]).replace("{ref}", rng.choice(TEXT_REFS[lang]))
        phrase = rng.choice(OPENERS[lang]) + verb + rng.choice(ENDINGS[lang])
        phrase = capitalized(phrase)
        if phrase.lower() not in heldout:
            return phrase


def request_phrasing(rng: random.Random, tool: str, table: dict, lang: str, split: str) -> str:
    """The phrasing of one request: train mixes composed ones in; dev and held-out use only their own."""
    if split == "train" and tool in COMPOSED_VERBS and rng.random() < COMPOSED_SHARE:
        return composed_phrasing(rng, tool, lang)
    return rng.choice(phrasings(tool, table, lang, split))


@dataclass(frozen=True)
class ToolExample:
    """One request, the call that serves it, what the tool returns and the final answer."""

    lang: str
    request: str
    tool: str
    arguments: dict
    result: object = None
    final: str = ""

    def call_message(self) -> dict:
        """The assistant's tool call as a standard `tool_calls` message."""
        return ToolCall(self.tool, self.arguments).as_message()

    def messages(self) -> list[dict]:
        """The whole exchange: request, call, tool result, final answer."""
        return [
            {"role": "user", "content": self.request},
            self.call_message(),
            {"role": "tool", "content": result_text(self.result)},
            {"role": "assistant", "content": self.final},
        ]


# Made-up names, towns and products from syllables. Dev uses only these, so dev measures copying of names the
# adapter never saw (as held-out does). Train can use them too (MADE_UP_ENTITIES), to make recalling the few
# training names useless; measured on dev (1440 steps, share 0.5): correct tool 0.96, exact args 0.00 vs
# 0.93 / 0.01 without, so the shipped recipe leaves it off.
SYLLABLES = {
    "en": [
        "ka",
        "lo",
        "mi",
        "ren",
        "tas",
        "vo",
        "bel",
        "dor",
        "fin",
        "gar",
        "hul",
        "jen",
        "kor",
        "lin",
        "mar",
        "nes",
        "pol",
        "rik",
        "sol",
        "tam",
        "vin",
        "zel",
        "bra",
        "cu",
        "de",
        "os",
    ],
    "ru": [
        "ка",
        "ло",
        "ми",
        "рен",
        "тас",
        "во",
        "бел",
        "дор",
        "фин",
        "гар",
        "хул",
        "жен",
        "кор",
        "лин",
        "мар",
        "нес",
        "пол",
        "рик",
        "сол",
        "там",
        "вин",
        "зел",
        "бра",
        "ку",
        "де",
        "ос",
    ],
}
MADE_UP_ENTITIES = 0.5  # share of train requests with made-up entities (so calls copy, not recall, names)


def made_up_word(rng: random.Random, lang: str, capital: bool = True) -> str:
    """A pronounceable made-up word of two or three syllables."""
    word = "".join(rng.choice(SYLLABLES[lang]) for _ in range(rng.choice([2, 3])))
    return word.capitalize() if capital else word


def _fill(rng: random.Random, lang: str, split: str) -> dict:
    if split == "dev" or (split == "train" and MADE_UP_ENTITIES and rng.random() < MADE_UP_ENTITIES):
        return {
            "name": f"{made_up_word(rng, lang)} {made_up_word(rng, lang)}",
            "town": made_up_word(rng, lang),
            "item": made_up_word(rng, lang, capital=False),
        }
    return {
        "name": course_data.person_name(rng, lang, split),
        "town": course_data.city(rng, lang, split),
        "item": course_data.product(rng, lang, split),
    }


def sentence(rng: random.Random, lang: str, split: str) -> str:
    """A short sentence with a name, a city and a product from the split's pools."""
    pool = SENTENCES[lang] + TRAIN_ONLY_SENTENCES[lang] if split == "train" else SENTENCES[lang]
    return rng.choice(pool).format(**_fill(rng, lang, split))


def make_formatter(rng: random.Random, lang: str, split: str) -> ToolExample:
    """A wrap-this-text request (train also wraps e-mails, JSON and notes: the text's kind must not name the tool)."""
    mixed = split == "train" and rng.random() < MIXED_TEXTS
    text = validator_text(rng, lang, split) if mixed else sentence(rng, lang, split)
    width, indent = rng.randint(16, 40), rng.choice([0, 0, 1, 2, 4])
    if train_draw(rng, split, VOICED_SHARE):
        width, indent = rng.randint(*VOICED_WIDTHS), rng.choice(VOICED_INDENTS)
        width = max(width, indent + MIN_LINE)
        if rng.random() < TWO_SENTENCES:
            text = f"{text} {sentence(rng, lang, split)}"
        request = unlike_heldout(lang, lambda: formatter_request(rng, lang, text, width, indent))
    elif train_draw(rng, split, NATURAL_SHARE):
        ip = indent_words(rng, lang, indent)
        request = rng.choice(NATURAL_FORMATTER[lang]).format(width=width, ip=ip, text=text)
    else:
        phrasing = request_phrasing(rng, "text_formatter", FORMATTER_REQUESTS, lang, split)
        request = phrasing.format(width=width, indent=indent, text=text)
    args = {"text": text, "width": width, "indent": indent}
    return _finish(lang, request, "text_formatter", args)


def make_template(rng: random.Random, lang: str, split: str) -> ToolExample:
    """A fill-a-template request."""
    kind = rng.choice(sorted(TEMPLATE_LABELS[lang]))
    if train_draw(rng, split, VOICED_SHARE):
        fill = _fill(rng, lang, split)
        request, topic = unlike_heldout(lang, lambda: template_request(rng, lang, kind, fill, VARIED_TOPICS))
    elif train_draw(rng, split, NATURAL_SHARE):
        topic = rng.choice(NATURAL_TOPICS[lang]).format(**_fill(rng, lang, split))
        label = rng.choice(NATURAL_LABELS[lang][kind] + TEMPLATE_LABELS[lang][kind])
        request = capitalized(rng.choice(NATURAL_TEMPLATE[lang]).format(label=label, topic=topic))
        if request.startswith(capitalized(topic)):  # the topic opens the request: the call quotes it as written
            topic = capitalized(topic)
    else:
        topic = rng.choice(TOPICS[lang]).format(**_fill(rng, lang, split))
        label = rng.choice(TEMPLATE_LABELS[lang][kind])
        phrasing = rng.choice(phrasings("template_generator", TEMPLATE_REQUESTS, lang, split))
        request = phrasing.format(label=label, topic=topic)
    return _finish(lang, request, "template_generator", {"template_type": kind, "topic": topic, "language": lang})


def validator_text(rng: random.Random, lang: str, split: str) -> str:
    """A text to check: an e-mail address, a JSON record, a Markdown note or a plain sentence; in train, VARIED_TEXTS
    of them of many more kinds (`texts.varied_text`)."""
    fill = _fill(rng, lang, split)
    text = checked_text(rng, lang, split, fill)
    if split == "train" and VARIED_TEXTS:
        side = course_data.side_stream(rng)
        if side.random() < VARIED_TEXTS:
            return varied_text(side, lang, fill)
    return text


def checked_text(rng: random.Random, lang: str, split: str, fill: dict) -> str:
    """A text to check of the kinds every split has."""
    kind = rng.choice(["email", "bad_email", "json", "heading", "sentence"])
    if kind == "email":
        return course_data.email_for(fill["name"], rng)
    if kind == "bad_email":
        return course_data.email_for(fill["name"], rng).replace("@", " at ")
    if kind == "json":
        return json.dumps({"city": fill["town"], "count": rng.randint(1, 99)}, ensure_ascii=False)
    if kind == "heading":
        return f"# {fill['town']}\n{fill['name']}, {fill['item']}."
    return sentence(rng, lang, split)


def rule_wording(rng: random.Random, lang: str, rule: str, split: str) -> str:
    """How a request states a rule: train draws among RULE_WORDINGS, dev and held-out use the first."""
    return rng.choice(RULE_WORDINGS[lang][rule]) if split == "train" else RULE_PHRASES[lang][rule]


def make_validator(rng: random.Random, lang: str, split: str) -> ToolExample:
    """A check-this-text request with one or two rules."""
    text = validator_text(rng, lang, split)
    names = rng.sample(sorted(RULE_PHRASES[lang]), rng.choice([1, 2]))
    rules, ns = [], []
    if train_draw(rng, split, VOICED_SHARE):
        for name in names:
            rules.append(f"{name}:{rng.randint(*VOICED_LIMITS[name])}" if name in VOICED_LIMITS else name)
        request = unlike_heldout(lang, lambda: validator_request(rng, lang, text, rules))
        return _finish(lang, request, "content_validator", {"text": text, "rules": rules})
    for name in names:
        n = rng.choice([20, 30, 50, 80]) if name == "max_length" else rng.randint(2, 6) if name == "min_words" else None
        rules.append(f"{name}:{n}" if n is not None else name)
        ns.append(n)
    joiner = " and " if lang == "en" else " и "
    if train_draw(rng, split, NATURAL_SHARE):
        asks = joiner.join(rng.choice(RULE_QUESTIONS[lang][name]).format(n=n) for name, n in zip(names, ns))
        request = rng.choice(NATURAL_VALIDATOR[lang]).format(q=asks, Q=capitalized(asks), text=text)
    else:
        phrases = [rule_wording(rng, lang, name, split).format(n=n) for name, n in zip(names, ns)]
        phrasing = request_phrasing(rng, "content_validator", VALIDATOR_REQUESTS, lang, split)
        request = phrasing.format(rules=joiner.join(phrases), text=text)
    return _finish(lang, request, "content_validator", {"text": text, "rules": rules})


def final_answer(lang: str, tool: str, result) -> str:
    """The final answer the adapter learns to write after the tool result."""
    words = FINAL[lang]
    if tool != "content_validator":
        return words[tool].format(result=result)
    if result["ok"]:
        return words["ok"].format(passed=", ".join(result["passed"]))
    return words["fail"].format(failed=", ".join(result["failed"]))


def _finish(lang: str, request: str, tool: str, args: dict) -> ToolExample:
    result = TOOLS[tool](**args)
    return ToolExample(lang, request, tool, args, result, final_answer(lang, tool, result))


MAKERS = {"text_formatter": make_formatter, "template_generator": make_template, "content_validator": make_validator}


def tool_examples(n: int, split: str = "train", seed: int = 0, langs: tuple[str, ...] = LANGS) -> list[ToolExample]:
    """`n` requests cycling through the three tools and the languages, reproducible from `seed`."""
    check_split(split)
    if n < 0:
        raise ValueError(
            tr(
                en=f"n must be >= 0 (the number of requests to make), got {n}",
                ru=f"n должно быть >= 0 (сколько запросов составить), а получено {n}",
            )
        )
    rng = random.Random(f"tools/{split}/{seed}")
    tools = list(MAKERS)
    return [MAKERS[tools[i % 3]](rng, langs[(i // 3) % len(langs)], split) for i in range(n)]


def sft_row(prompt: list[dict], completion: list[dict], tools_json: str, tokenizer=None) -> dict:
    """A TRL prompt-completion row; with `tokenizer`, the prompt is rewritten so its chat template renders it all.

    TRL renders rows with the tokenizer's template itself, so a template that drops `tools=` or `tool`
    messages (TinyLlama's) needs them spelled out in the row (see `chat_format.prepare`); `tools` is then "null".
    """
    if tokenizer is not None:
        prompt, tools = prepare(tokenizer, prompt, json.loads(tools_json))
        tools_json = json.dumps(tools, ensure_ascii=False)
    return {"prompt": prompt, "completion": completion, "tools": tools_json}


def call_row(ex: ToolExample, tools_json: str, tokenizer=None) -> dict:
    """Turn 1 as a TRL prompt-completion row: request -> the call (the JSON the chat template renders)."""
    return sft_row(
        [{"role": "user", "content": ex.request}],
        [{"role": "assistant", "content": call_text(ex.tool, ex.arguments)}],
        tools_json,
        tokenizer,
    )


def answer_prompt(ex: ToolExample, call: str, result) -> list[dict]:
    """The conversation after a call (its JSON text) and the tool's result: what turn 2 answers."""
    return [
        {"role": "user", "content": ex.request},
        {"role": "assistant", "content": call.strip()},
        {"role": "tool", "content": result_text(result)},
    ]


def answer_row(ex: ToolExample, tools_json: str, tokenizer=None) -> dict:
    """Turn 2: request, call and tool result -> the final answer."""
    return sft_row(
        answer_prompt(ex, call_text(ex.tool, ex.arguments), ex.result),
        [{"role": "assistant", "content": ex.final}],
        tools_json,
        tokenizer,
    )


def tool_sft_rows(
    n: int,
    split: str = "train",
    seed: int = 0,
    schemas: list[dict] | None = None,
    answer_every: int = 1,
    tokenizer=None,
    tools: Collection[str] | None = None,
) -> list[dict]:
    """Rows for SFTTrainer: each request gives a call row, every `answer_every`-th also a final-answer row (0: none).

    The call is stored as its rendered JSON text (identical to what the template makes of `tool_calls`),
    and the `tools` column as a JSON string: Arrow would otherwise merge differently-shaped argument dicts, padding
    them with nulls. TRL passes the `tools` column to `apply_chat_template`. Pass the `tokenizer` that will
    train on the rows when its template may not render tools (see `sft_row`); the tiny model's rows are the same.
    The `tools` argument keeps only the rows of the requests for those tools.
    """
    from .schemas import tool_schemas

    unknown = sorted(set(tools or ()) - set(MAKERS))
    if unknown:
        raise ValueError(
            tr(
                en=f"Unknown tools {unknown}: choose among {sorted(MAKERS)}.",
                ru=f"Неизвестные инструменты {unknown}: выберите из {sorted(MAKERS)}.",
            )
        )
    tools_json = json.dumps(schemas if schemas is not None else tool_schemas(), ensure_ascii=False)
    rows = []
    for i, ex in enumerate(tool_examples(n, split, seed)):
        if tools is not None and ex.tool not in tools:
            continue
        rows.append(call_row(ex, tools_json, tokenizer))
        if answer_every and i % answer_every == 0:
            rows.append(answer_row(ex, tools_json, tokenizer))
    return rows


def call_rows(
    n: int,
    tools: Collection[str],
    split: str = "train",
    seed: int = 0,
    schemas: list[dict] | None = None,
    tokenizer=None,
) -> list[dict]:
    """The call rows (no answers) that `tool_sft_rows(n, split, seed)` makes for requests to `tools`."""
    return tool_sft_rows(n, split, seed, schemas, answer_every=0, tokenizer=tokenizer, tools=tools)


HANDWRITTEN_PATH = ASSETS_DIR / "tools" / "heldout_handwritten.jsonl"
# Requests written by hand for choosing recipes (natural phrasings, longer texts, numbers outside the templates'
# ranges), written without looking at the held-out ones, which are scored once a recipe is chosen.
DEV_HANDWRITTEN_PATH = ASSETS_DIR / "tools" / "dev_handwritten.jsonl"
# A second, fresher dev set (8 per tool and language), written after the first had been read for many recipes: it
# checks that a recipe chosen on the first carries over (the history beside adapter.WARM_STEPS quotes both).
DEV2_HANDWRITTEN_PATH = ASSETS_DIR / "tools" / "dev2_handwritten.jsonl"
HANDWRITTEN_SETS = {
    "handwritten": HANDWRITTEN_PATH,
    "dev-handwritten": DEV_HANDWRITTEN_PATH,
    "dev2-handwritten": DEV2_HANDWRITTEN_PATH,
}


def read_handwritten(path: str | Path = HANDWRITTEN_PATH) -> list[ToolExample]:
    """Requests written by hand in a user's voice (no template), each with its gold call; errors name the line.

    Lines are `{"lang", "request", "tool", "arguments"}`; the gold call is executed, so a line whose
    arguments the tool rejects is reported here instead of scoring as a model error later.
    """
    examples = []
    for number, row in read_objects(path, '{"lang", "request", "tool", "arguments"}'):
        if (
            row.get("lang") not in LANGS
            or not isinstance(row.get("request"), str)
            or not isinstance(row.get("arguments"), dict)
        ):
            raise ValueError(
                tr(
                    en=f'{path}:{number} must be an object with "lang" ({" or ".join(LANGS)}), a string '
                    '"request", "tool" and an object "arguments".',
                    ru=f'{path}:{number}: нужен объект с полями "lang" ({" или ".join(LANGS)}), "request" (строка), '
                    '"tool" и "arguments" (объект).',
                )
            )
        if row.get("tool") not in TOOLS:
            raise ValueError(
                tr(
                    en=f"{path}:{number} names tool {row.get('tool')!r}; known tools: {', '.join(TOOLS)}.",
                    ru=f"{path}:{number}: неизвестный инструмент {row.get('tool')!r}; известные инструменты: "
                    f"{', '.join(TOOLS)}.",
                )
            )
        try:
            examples.append(_finish(row["lang"], row["request"], row["tool"], row["arguments"]))
        except (ToolError, TypeError) as err:
            raise ValueError(
                tr(
                    en=f"{path}:{number}: the gold call fails: {err}",
                    ru=f"{path}:{number}: эталонный вызов не выполняется: {err}",
                )
            ) from None
    return examples
