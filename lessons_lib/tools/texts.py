"""Texts people ask to check or wrap, beyond a sentence: records in JSON or Python notation, lists, notes of several
lines (headings, bullets, settings, trailing spaces), e-mail addresses of many shapes (some broken), one-word replies.

Train-only variety (`data.VARIED_TEXTS`): before it, the validator had seen only `first.last@example.com`, one JSON
shape and one two-line note, so on a learner's own snippet it quoted the question instead of the snippet. Written
after reading the hand-written dev failures (some words are theirs), so dev flatters it; held-out is the fair measure.
"""

from __future__ import annotations

import json
import random

KEYS = {
    "en": ["city", "name", "count", "pop", "price", "id", "tags", "ok", "owner", "size", "color", "year"],
    "ru": ["город", "имя", "цена", "количество", "товар", "население", "теги", "владелец", "год", "цвет"],
}
LINE_WORDS = {
    "en": [
        "faster sync",
        "new theme",
        "fixed the crash",
        "shopping list",
        "bread",
        "two lemons",
        "call the plumber",
        "draft agenda",
        "Installation",
        "Release notes",
        "Usage",
        "water the ferns",
        "backup at noon",
    ],
    "ru": [
        "быстрее синхронизация",
        "новая тема",
        "исправлен вылет",
        "список покупок",
        "хлеб",
        "два лимона",
        "позвонить сантехнику",
        "повестка",
        "Установка",
        "Что нового",
        "полить папоротник",
        "резервная копия",
    ],
}
SETTINGS = {"en": ["port", "host", "timeout", "user", "mode", "retries"], "ru": ["порт", "хост", "таймаут", "режим"]}
REPLIES = {
    "en": ["Yes.", "No.", "OK", "Done!", "Thanks a lot.", "See you", "Maybe later.", "Noted"],
    "ru": ["Да.", "Нет.", "Ок", "Готово!", "Спасибо большое.", "До встречи", "Может, позже.", "Принято"],
}
DOMAINS = ["mail", "post", "studio", "works", "lab", "co-op", "net", "farm"]
TLDS = ["com", "org", "net", "io", "co.uk", "ru", "de", "dev"]


def value(rng: random.Random, fill: dict) -> object:
    """A JSON value: a word from `fill`, a number, a flag, null or a short list."""
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randint(0, 99999)
    if kind == 1:
        return rng.choice([True, False, None])
    if kind == 2:
        return [rng.choice([fill["item"], fill["town"]]), rng.randint(1, 9)]
    return rng.choice([fill["town"], fill["item"], fill["name"]])


def python_notation(text: str) -> str:
    """A JSON text written the way Python prints a dict: single quotes, True / False / None."""
    swapped = text.replace('"', "'")
    return swapped.replace("true", "True").replace("false", "False").replace("null", "None")


def record(rng: random.Random, lang: str, fill: dict) -> str:
    """A record of one to three fields, in JSON (sometimes broken) or in Python notation."""
    keys = rng.sample(KEYS[lang], rng.randint(1, 3))
    text = json.dumps({key: value(rng, fill) for key in keys}, ensure_ascii=False)
    style = rng.random()
    if style < 0.3:
        return python_notation(text)
    if style < 0.45:
        return text[:-1] + ",}"  # a trailing comma: not valid JSON
    return text if rng.random() < 0.7 else text.replace(", ", ",").replace(": ", ":")


def numbers(rng: random.Random, lang: str, fill: dict) -> str:
    """A list of numbers, sometimes with a trailing comma or a missing bracket."""
    items = ", ".join(str(rng.randint(0, 99)) for _ in range(rng.randint(1, 5)))
    return rng.choice([f"[{items}]", f"[{items}]", f"[{items},]", f"[{items}"])


def note(rng: random.Random, lang: str, fill: dict) -> str:
    """A note of two to five lines: a Markdown heading or a plain title, then lines or bullets; in some, a line before
    the last ends in spaces."""
    title = rng.choice([fill["town"], fill["item"].capitalize(), rng.choice(LINE_WORDS[lang])])
    head = rng.choice(["# ", "## ", "", ""]) + title
    ends = ["", ".", f" ({fill['name']})"]
    body = [rng.choice(LINE_WORDS[lang]) + rng.choice(ends) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.5:
        body = [f"- {line}" for line in body]
    lines = [head, *([""] if rng.random() < 0.3 else []), *body]
    if rng.random() < 0.4:  # not on the last line: a quote cannot end in a space (see constrained.ends_clause)
        lines[rng.randrange(len(lines) - 1)] += " " * rng.randint(1, 3)
    return "\n".join(lines)


def settings(rng: random.Random, lang: str, fill: dict) -> str:
    """Two or three `key = value` lines of a config file; some lines before the last end in spaces."""
    keys = rng.sample(SETTINGS[lang], rng.randint(2, 3))
    values = [str(rng.randint(1, 9999)), f"{fill['item'].lower()}.local", fill["town"].lower(), "on"]
    lines = [f"{key} = {rng.choice(values)}" + (" " * rng.randint(1, 3) if rng.random() < 0.3 else "") for key in keys]
    return "\n".join(lines).rstrip(" ")


def address(rng: random.Random, lang: str, fill: dict) -> str:
    """An e-mail address of some shape, from the name when it is Latin; one in four is broken."""
    words = [w.lower() for w in fill["name"].split()] if fill["name"].isascii() else ["user", str(rng.randint(1, 999))]
    local = rng.choice([".".join(words), words[0], f"{words[0][0]}.{words[-1]}", "-".join(words), words[-1] + "42"])
    domain = rng.choice([fill["town"].lower() if fill["town"].isascii() else "example", rng.choice(DOMAINS)])
    if rng.random() < 0.4:
        domain = f"{domain}-{rng.choice(DOMAINS)}"
    text = f"{local}@{domain}.{rng.choice(TLDS)}"
    broken = rng.random()
    if broken < 0.08:
        return text.replace("@", "@@")
    if broken < 0.16:
        return text.rsplit(".", 1)[0]
    if broken < 0.25:
        return text.replace("@", " @ ")
    return text


def reply(rng: random.Random, lang: str, fill: dict) -> str:
    """A one- or two-word reply."""
    return rng.choice(REPLIES[lang])


KINDS = (record, numbers, note, settings, address, reply)  # each (rng, lang, fill) -> text


def varied_text(rng: random.Random, lang: str, fill: dict) -> str:
    """One text of a kind drawn at random from KINDS."""
    return KINDS[rng.randrange(len(KINDS))](rng, lang, fill)
