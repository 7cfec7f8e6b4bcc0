"""The synthetic pretraining corpus of the tiny course model (EN + RU, no course instructions).

The base model reads prose, records, code files, letters and small talk, so it learns the
languages, the formats and to copy names and numbers. It never sees the course's instruction
prompts, which is why a LoRA adapter is needed to map a request to the right format.
"""

from __future__ import annotations

import json
import random

from .. import data

SPLITS = data.SPLITS


def _any_split(rng: random.Random) -> str:
    return rng.choice(SPLITS)


def prose(rng: random.Random, lang: str) -> str:
    """A short story that mentions the same person, place and number several times."""
    split = _any_split(rng)
    name, town, age = data.person_name(rng, lang, split), data.city(rng, lang, split), rng.randint(18, 79)
    item = data.product(rng, lang, split)
    if lang == "en":
        lines = [
            f"{name} is {age} years old and lives in {town}.",
            f"Every morning {name} walks to work. {town} is quiet in the morning.",
            f"Last week {name} bought a {item}. The {item} was cheap.",
            f"People in {town} know {name} well. {name} is {age}.",
        ]
    else:
        lines = [
            f"{name}, возраст {age}, город {town}.",
            f"Каждое утро {name} идёт на работу. Город {town} утром тихий.",
            f"На прошлой неделе {name} купил(а) товар: {item}. Товар {item} был недорогим.",
            f"В городе {town} все знают: {name}, возраст {age}.",
        ]
    rng.shuffle(lines)
    return " ".join(lines)


def records(rng: random.Random, lang: str) -> str:
    """A data file: sentences and the JSON records written from them."""
    out = []
    for _ in range(rng.randint(2, 4)):
        text, record = rng.choice(data.JSON_RECORDS)(rng, lang, _any_split(rng))
        keys = list(record)
        rng.shuffle(keys)
        shuffled = {k: record[k] for k in keys} if rng.random() < 0.3 else record
        out.append(f"{text}\n{json.dumps(shuffled, ensure_ascii=False)}")
    return "\n\n".join(out)


def code_file(rng: random.Random, lang: str) -> str:
    """A Python module of small functions, each with a comment saying what it does."""
    out = []
    for _ in range(rng.randint(2, 4)):
        ex = data.make_coding(rng, lang, _any_split(rng))
        verb = ex.response.split("def ", 1)[1].split("_", 1)[0]
        family = next(f for f in data.CODING_FAMILIES + [data.STRING_FAMILY] if f[0] == verb)
        k = _constant_in(ex.response)
        comment = (family[1] if lang == "en" else family[2]).format(k=k)
        out.append(f"# {comment}\n{ex.response}\n\nprint({ex.expected['function']}({_sample_arg(verb)}))")
    return "\n\n".join(out)


def _constant_in(code: str) -> int:
    digits = [int(tok) for tok in code.replace("]", " ").replace(")", " ").split() if tok.isdigit()]
    return digits[-1] if digits else 0


def _sample_arg(verb: str) -> str:
    return '"ab"' if verb == "repeat" else "[1, 2, 3]"


def letter(rng: random.Random, lang: str) -> str:
    """A customer's complaint and the support team's reply, as an e-mail thread."""
    ex = data.make_support(rng, lang, _any_split(rng))
    issues = data.SUPPORT_PROBLEMS[ex.expected["problem"]][lang][0]
    head = (
        f"From: {ex.expected['name']}\nSubject: order {ex.expected['order']}\n{rng.choice(issues)}.\n---\n"
        if lang == "en"
        else f"От: {ex.expected['name']}\nТема: заказ {ex.expected['order']}\n{rng.choice(issues)}.\n---\n"
    )
    return head + ex.response


def copy_drill(rng: random.Random, lang: str) -> str:
    """Lists written twice: the simplest lesson in copying from context."""
    split = _any_split(rng)
    names = [data.person_name(rng, lang, split) for _ in range(rng.randint(2, 4))]
    nums = [str(rng.randint(10, 99999)) for _ in range(rng.randint(2, 4))]
    left = ", ".join(names + nums)
    return f"{left}\n{left}" if lang == "en" else f"{left} — повторим: {left}"


def chat(rng: random.Random, lang: str) -> str:
    """Small talk in the course's chat format, so the base model knows turns but no domain tasks."""
    prompt = data.make_general_prompt(rng, lang, _any_split(rng))
    answer = prose(rng, lang).split(". ")[0] + "."
    reply = (
        f"Good question! {answer} I hope this helps."
        if lang == "en"
        else f"Хороший вопрос! {answer} Надеюсь, это поможет."
    )
    return f"<|user|>\n{prompt}<|end|>\n<|assistant|>\n{reply}<|end|>"


KINDS = ((prose, 3), (records, 2), (code_file, 2), (letter, 2), (copy_drill, 1), (chat, 1))


def documents(n: int, seed: int = 0) -> list[str]:
    """`n` pretraining documents, half English and half Russian, reproducible from `seed`."""
    rng = random.Random(f"corpus/{seed}")
    makers = [maker for maker, weight in KINDS for _ in range(weight)]
    return [rng.choice(makers)(rng, data.LANGS[i % 2]) for i in range(n)]
