"""Synthetic EN + RU tool requests with their gold calls, results and final answers.

Train and held-out requests use disjoint request phrasings and disjoint names, cities and products
(the pools of `lessons_lib.data`), so held-out rates measure generalisation, not recall.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from .. import data as course_data
from .calls import call_text
from .functions import TOOLS, content_validator, template_generator, text_formatter
from .loop import result_text

LANGS = course_data.LANGS
SPLITS = course_data.SPLITS
_split = course_data._split

FORMATTER_REQUESTS = {
    "en": ["Wrap this text to {width} characters with an indent of {indent}: {text}",
           "Format the text to width {width}, indent {indent}: {text}",
           "Please reflow this to {width} columns, indented by {indent} spaces: {text}",
           "Break the following text into lines of at most {width} characters, indent {indent}: {text}",
           "Make the lines no longer than {width} characters (indent {indent}): {text}",
           "Use the formatter with width {width} and indent {indent} on this text: {text}"],
    "ru": ["Перенеси текст по ширине {width} символов с отступом {indent}: {text}",
           "Отформатируй текст, ширина {width}, отступ {indent}: {text}",
           "Разбей на строки не длиннее {width} символов, отступ {indent}: {text}",
           "Сделай строки шириной до {width} символов с отступом {indent}: {text}",
           "Выровняй текст по ширине {width}, отступ {indent}: {text}",
           "Примени форматтер, ширина {width} и отступ {indent}, к тексту: {text}"],
}
TEMPLATE_REQUESTS = {
    "en": ["Make a {label} template about {topic}.",
           "Create a {label} template for: {topic}",
           "I need a {label} template. Topic: {topic}",
           "Generate a {label} template on {topic}.",
           "Give me a blank {label} for {topic}.",
           "Draft a {label} template, subject: {topic}"],
    "ru": ["Сделай шаблон «{label}» на тему: {topic}",
           "Создай шаблон ({label}) для: {topic}",
           "Нужен шаблон «{label}». Тема: {topic}",
           "Сгенерируй шаблон «{label}», тема: {topic}",
           "Подготовь заготовку «{label}» про: {topic}",
           "Шаблон «{label}», тема: {topic}"],
}
TEMPLATE_LABELS = {
    "en": {"instruction": ["instruction prompt", "instruction/input/response"], "email": ["e-mail", "email"],
           "bug_report": ["bug report", "bug ticket"], "meeting_notes": ["meeting notes", "meeting minutes"]},
    "ru": {"instruction": ["инструкция", "промпт-инструкция"], "email": ["письмо", "e-mail"],
           "bug_report": ["баг-репорт", "отчёт об ошибке"], "meeting_notes": ["протокол встречи", "заметки встречи"]},
}
VALIDATOR_REQUESTS = {
    "en": ["Check that this text {rules}: {text}",
           "Validate that the text {rules}: {text}",
           "Verify that the text {rules}. Text: {text}",
           "Run the content checks, it {rules}: {text}",
           "Make sure the following {rules}: {text}",
           "Please confirm the text {rules}. Text: {text}"],
    "ru": ["Проверь, что текст {rules}: {text}",
           "Валидируй, что текст {rules}: {text}",
           "Убедись, что текст {rules}. Текст: {text}",
           "Запусти проверки, текст {rules}: {text}",
           "Нужно проверить, что текст {rules}: {text}",
           "Подтверди, что текст {rules}. Текст: {text}"],
}
RULE_PHRASES = {
    "en": {"non_empty": "is not empty", "has_headings": "has a heading", "is_email": "is an e-mail address",
           "valid_json": "is valid JSON", "no_trailing_spaces": "has no trailing spaces",
           "max_length": "is at most {n} characters", "min_words": "has at least {n} words"},
    "ru": {"non_empty": "не пустой", "has_headings": "содержит заголовок", "is_email": "является адресом почты",
           "valid_json": "является корректным JSON", "no_trailing_spaces": "без пробелов в конце строк",
           "max_length": "не длиннее {n} символов", "min_words": "содержит не меньше {n} слов"},
}
SENTENCES = {
    "en": ["{name} bought a {item} in {town}.",
           "{town} gets a new {item} today.",
           "{name} says the {item} works well.",
           "{name} tested the {item} in {town}.",
           "Send the {item} to {name} soon.",
           "The {item} from {town} arrived."],
    "ru": ["{name} купил(а) {item} в городе {town}.",
           "Город {town} получит {item} сегодня.",
           "{name} пишет, что {item} работает.",
           "{name} проверил(а) {item} в городе {town}.",
           "Отправьте {item} для {name}.",
           "Товар {item} из города {town} пришёл."],
}
TOPICS = {
    "en": ["{item} delivery delay", "new {item} prices", "team meeting in {town}", "onboarding of {name}",
           "refund for the {item}", "{item} page crashes"],
    "ru": ["задержка доставки, {item}", "новые цены, {item}", "встреча команды, {town}", "адаптация, {name}",
           "возврат, {item}", "падает страница, {item}"],
}
FINAL = {
    "en": {"text_formatter": "Here is the formatted text:\n{result}", "template_generator": "Here is the template:\n{result}",
           "ok": "All checks passed: {passed}.", "fail": "Failed checks: {failed}."},
    "ru": {"text_formatter": "Вот отформатированный текст:\n{result}", "template_generator": "Вот шаблон:\n{result}",
           "ok": "Все проверки пройдены: {passed}.", "fail": "Не пройдены проверки: {failed}."},
}


@dataclass(frozen=True)
class ToolExample:
    """One request, the call that serves it, what the tool returns and the final answer."""

    lang: str
    request: str
    tool: str
    arguments: dict
    result: object = None
    final: str = ""
    expected: dict = field(default_factory=dict)

    def call_message(self) -> dict:
        """The assistant's tool call as a standard `tool_calls` message."""
        return {"role": "assistant", "content": "",
                "tool_calls": [{"type": "function", "function": {"name": self.tool, "arguments": self.arguments}}]}

    def messages(self) -> list[dict]:
        """The whole exchange: request, call, tool result, final answer."""
        return [{"role": "user", "content": self.request}, self.call_message(),
                {"role": "tool", "content": result_text(self.result)}, {"role": "assistant", "content": self.final}]


def _fill(rng: random.Random, lang: str, split: str) -> dict:
    return {"name": course_data.person_name(rng, lang, split), "town": course_data.city(rng, lang, split),
            "item": course_data.product(rng, lang, split)}


def sentence(rng: random.Random, lang: str, split: str) -> str:
    """A short sentence with a name, a city and a product from the split's pools."""
    return rng.choice(SENTENCES[lang]).format(**_fill(rng, lang, split))


def make_formatter(rng: random.Random, lang: str, split: str) -> ToolExample:
    """A wrap-this-text request."""
    text = sentence(rng, lang, split)
    width, indent = rng.randint(16, 40), rng.choice([0, 0, 1, 2, 4])
    request = rng.choice(_split(FORMATTER_REQUESTS[lang], split)).format(width=width, indent=indent, text=text)
    args = {"text": text, "width": width, "indent": indent}
    return _finish(lang, request, "text_formatter", args)


def make_template(rng: random.Random, lang: str, split: str) -> ToolExample:
    """A fill-a-template request."""
    kind = rng.choice(sorted(TEMPLATE_LABELS[lang]))
    topic = rng.choice(TOPICS[lang]).format(**_fill(rng, lang, split))
    label = rng.choice(TEMPLATE_LABELS[lang][kind])
    request = rng.choice(_split(TEMPLATE_REQUESTS[lang], split)).format(label=label, topic=topic)
    return _finish(lang, request, "template_generator", {"template_type": kind, "topic": topic, "language": lang})


def validator_text(rng: random.Random, lang: str, split: str) -> str:
    """A text to check: an e-mail address, a JSON record, a Markdown note or a plain sentence."""
    fill = _fill(rng, lang, split)
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


def make_validator(rng: random.Random, lang: str, split: str) -> ToolExample:
    """A check-this-text request with one or two rules."""
    text = validator_text(rng, lang, split)
    names = rng.sample(sorted(RULE_PHRASES[lang]), rng.choice([1, 2]))
    rules, phrases = [], []
    for name in names:
        n = rng.choice([20, 30, 50, 80]) if name == "max_length" else rng.randint(2, 6) if name == "min_words" else None
        rules.append(f"{name}:{n}" if n is not None else name)
        phrases.append(RULE_PHRASES[lang][name].format(n=n))
    joiner = " and " if lang == "en" else " и "
    request = rng.choice(_split(VALIDATOR_REQUESTS[lang], split)).format(rules=joiner.join(phrases), text=text)
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
    course_data._check_split(split)
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(f"tools/{split}/{seed}")
    tools = list(MAKERS)
    return [MAKERS[tools[i % 3]](rng, langs[(i // 3) % len(langs)], split) for i in range(n)]


def call_row(ex: ToolExample, tools_json: str) -> dict:
    """Turn 1 as a TRL prompt-completion row: request -> the call (the JSON the chat template renders)."""
    return {"prompt": [{"role": "user", "content": ex.request}],
            "completion": [{"role": "assistant", "content": call_text(ex.tool, ex.arguments)}],
            "tools": tools_json}


def answer_row(ex: ToolExample, tools_json: str) -> dict:
    """Turn 2: request, call and tool result -> the final answer."""
    return {"prompt": [{"role": "user", "content": ex.request},
                       {"role": "assistant", "content": call_text(ex.tool, ex.arguments)},
                       {"role": "tool", "content": result_text(ex.result)}],
            "completion": [{"role": "assistant", "content": ex.final}],
            "tools": tools_json}


def tool_sft_rows(n: int, split: str = "train", seed: int = 0, schemas: list[dict] | None = None,
                  answer_every: int = 1) -> list[dict]:
    """Rows for SFTTrainer: each request gives a call row, every `answer_every`-th also a final-answer row.

    The call is stored as its rendered JSON text (identical to what the template makes of `tool_calls`),
    and `tools` as a JSON string: Arrow would otherwise merge differently-shaped argument dicts, padding
    them with nulls. TRL passes the `tools` column to `apply_chat_template`.
    """
    from .schemas import tool_schemas

    tools_json = json.dumps(schemas if schemas is not None else tool_schemas(), ensure_ascii=False)
    rows = []
    for i, ex in enumerate(tool_examples(n, split, seed)):
        rows.append(call_row(ex, tools_json))
        if i % answer_every == 0:
            rows.append(answer_row(ex, tools_json))
    return rows
