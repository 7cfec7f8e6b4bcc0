"""Deterministic bilingual (EN/RU) instruction data for the course domains (lessons_lib.domains lists them).

Train and held-out splits draw from disjoint pools of names, cities, products, function names
and prompt phrasings, so a held-out score measures generalisation rather than recall.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from . import domains as registry

LANGS = ("en", "ru")
SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class Example:
    """One instruction/response pair and what the domain metric checks in an answer."""

    domain: str
    lang: str
    prompt: str
    response: str
    expected: dict = field(default_factory=dict)

    def messages(self) -> list[dict]:
        """The pair as chat messages."""
        return [{"role": "user", "content": self.prompt}, {"role": "assistant", "content": self.response}]

    def prompt_completion(self) -> dict:
        """The pair in TRL's conversational prompt-completion format (loss on the completion only)."""
        return {
            "prompt": [{"role": "user", "content": self.prompt}],
            "completion": [{"role": "assistant", "content": self.response}],
        }


def _split(items: list, split: str) -> list:
    """Even positions go to train, odd positions to held-out: two disjoint pools."""
    _check_split(split)
    return items[0::2] if split == "train" else items[1::2]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; use one of {SPLITS}.")


# ---------------------------------------------------------------- entity pools
EN_FIRST = [
    "Anna",
    "Oliver",
    "Maya",
    "Lucas",
    "Emma",
    "Noah",
    "Sofia",
    "Liam",
    "Chloe",
    "Ethan",
    "Grace",
    "Mason",
    "Alice",
    "Henry",
    "Zoe",
    "Jack",
    "Ruby",
    "Leo",
    "Nora",
    "Owen",
    "Clara",
    "Adam",
    "Iris",
    "Felix",
    "Lily",
    "Oscar",
    "Ava",
    "Hugo",
    "Ella",
    "Max",
]
EN_LAST = [
    "Smith",
    "Brown",
    "Taylor",
    "Walker",
    "Wright",
    "Green",
    "Hall",
    "Wood",
    "Clark",
    "Hughes",
    "Baker",
    "Moore",
    "Turner",
    "Hill",
    "Ward",
    "Cooper",
    "King",
    "Lee",
    "Young",
    "Price",
]
RU_FIRST = [
    "Анна",
    "Иван",
    "Мария",
    "Олег",
    "Елена",
    "Павел",
    "Ольга",
    "Денис",
    "Ирина",
    "Артём",
    "Наталья",
    "Сергей",
    "Вера",
    "Кирилл",
    "Дарья",
    "Роман",
    "Юлия",
    "Глеб",
    "Алиса",
    "Фёдор",
    "Полина",
    "Максим",
    "Софья",
    "Игорь",
    "Лидия",
    "Борис",
    "Ксения",
    "Тимур",
    "Нина",
    "Егор",
]
RU_LAST = [
    "Петров",
    "Смирнов",
    "Козлов",
    "Волков",
    "Соколов",
    "Попов",
    "Лебедев",
    "Морозов",
    "Новиков",
    "Фёдоров",
    "Орлов",
    "Зайцев",
    "Беляев",
    "Титов",
    "Комаров",
    "Голубев",
    "Медведев",
    "Егоров",
    "Павлов",
    "Степанов",
]
EN_CITIES = [
    "London",
    "Paris",
    "Berlin",
    "Madrid",
    "Dublin",
    "Vienna",
    "Prague",
    "Oslo",
    "Lisbon",
    "Warsaw",
    "Boston",
    "Denver",
    "Austin",
    "Seattle",
    "Toronto",
    "Sydney",
    "Chicago",
    "Miami",
    "Zurich",
    "Munich",
]
RU_CITIES = [
    "Москва",
    "Казань",
    "Самара",
    "Омск",
    "Пермь",
    "Тверь",
    "Сочи",
    "Томск",
    "Уфа",
    "Курск",
    "Тула",
    "Псков",
    "Рязань",
    "Иркутск",
    "Тюмень",
    "Калуга",
    "Вологда",
    "Киров",
    "Барнаул",
    "Мурманск",
]
EN_PRODUCTS = [
    "laptop",
    "kettle",
    "backpack",
    "lamp",
    "monitor",
    "printer",
    "keyboard",
    "blender",
    "jacket",
    "camera",
    "speaker",
    "toaster",
    "tablet",
    "mixer",
    "heater",
    "router",
]
RU_PRODUCTS = [
    "ноутбук",
    "чайник",
    "рюкзак",
    "лампа",
    "монитор",
    "принтер",
    "клавиатура",
    "блендер",
    "куртка",
    "камера",
    "колонка",
    "тостер",
    "планшет",
    "миксер",
    "обогреватель",
    "роутер",
]
CODE_NOUNS = [
    "prices",
    "scores",
    "values",
    "weights",
    "ages",
    "counts",
    "marks",
    "sizes",
    "points",
    "totals",
    "items",
    "rates",
    "steps",
    "levels",
    "grades",
    "amounts",
    "heights",
    "speeds",
    "votes",
    "units",
    "sales",
    "loads",
    "bids",
    "fees",
]
CODE_WORDS = ["word", "text", "name", "line", "label", "title", "code", "tag", "note", "key"]


def person_name(rng: random.Random, lang: str, split: str) -> str:
    """A first + last name from the split's pool ('Анна Петрова' in Russian)."""
    if lang == "en":
        return f"{rng.choice(_split(EN_FIRST, split))} {rng.choice(_split(EN_LAST, split))}"
    first = rng.choice(_split(RU_FIRST, split))
    last = rng.choice(_split(RU_LAST, split))
    return f"{first} {last}{'а' if first.endswith(('а', 'я')) else ''}"


def city(rng: random.Random, lang: str, split: str) -> str:
    """A city name in the language of the prompt."""
    return rng.choice(_split(EN_CITIES if lang == "en" else RU_CITIES, split))


def product(rng: random.Random, lang: str, split: str) -> str:
    """A product name in the language of the prompt."""
    return rng.choice(_split(EN_PRODUCTS if lang == "en" else RU_PRODUCTS, split))


def side_stream(rng: random.Random) -> random.Random:
    """A generator seeded from `rng`'s state without drawing from it: what it draws leaves `rng`'s later draws (and
    so every later example) as they were."""
    return random.Random(hash(rng.getstate()[1]))  # a tuple of ints: the same hash in every process


def email_for(name: str, rng: random.Random) -> str:
    """An ASCII e-mail address made from a Latin name, or a neutral one for Cyrillic names."""
    if name.isascii():
        first, last = name.lower().split()
        return f"{first}.{last}@example.com"
    return f"user{rng.randint(100, 999)}@example.ru"


# ---------------------------------------------------------------- json domain
# Each record kind: (fields-maker, EN descriptions, RU descriptions). Descriptions are (train, heldout).
JSON_PROMPTS = {
    "en": [
        "Extract {fields} as JSON: {text}",
        "Return a JSON object with {fields} from this text: {text}",
        "Convert to JSON with the keys {fields}. Text: {text}",
        "Parse the following into JSON ({fields}): {text}",
        "Give me {fields} in JSON format. {text}",
        "I need JSON with {fields} for: {text}",
    ],
    "ru": [
        "Извлеки {fields} в JSON: {text}",
        "Верни JSON-объект с полями {fields} из текста: {text}",
        "Преобразуй в JSON с ключами {fields}. Текст: {text}",
        "Разбери текст в JSON ({fields}): {text}",
        "Дай {fields} в формате JSON. {text}",
        "Нужен JSON с полями {fields} для: {text}",
    ],
}


def _json_person(rng: random.Random, lang: str, split: str) -> tuple[str, dict]:
    name, age, town = person_name(rng, lang, split), rng.randint(18, 79), city(rng, lang, split)
    text = (
        f"{name} is {age} years old and lives in {town}." if lang == "en" else f"{name}, возраст {age}, город {town}."
    )
    return text, {"name": name, "age": age, "city": town}


def _json_order(rng: random.Random, lang: str, split: str) -> tuple[str, dict]:
    order_id, item, qty = rng.randint(10000, 99999), product(rng, lang, split), rng.randint(1, 9)
    text = f"Order {order_id}: {qty} x {item}." if lang == "en" else f"Заказ {order_id}: {item}, {qty} шт."
    return text, {"order_id": order_id, "product": item, "quantity": qty}


def _json_contact(rng: random.Random, lang: str, split: str) -> tuple[str, dict]:
    name = person_name(rng, lang, split)
    mail = email_for(name, rng)
    text = f"Contact {name}, e-mail {mail}." if lang == "en" else f"Контакт: {name}, почта {mail}."
    return text, {"name": name, "email": mail}


JSON_RECORDS = (_json_person, _json_order, _json_contact)


def make_json(rng: random.Random, lang: str, split: str) -> Example:
    """Extract structured fields from a sentence into a JSON object."""
    text, record = rng.choice(JSON_RECORDS)(rng, lang, split)
    template = rng.choice(_split(JSON_PROMPTS[lang], split))
    prompt = template.format(fields=", ".join(record), text=text)
    return Example("json", lang, prompt, json.dumps(record, ensure_ascii=False), {"fields": record})


# ---------------------------------------------------------------- coding domain
# (verb, EN task, RU task, body, test inputs maker, reference function)
CODING_FAMILIES = [
    (
        "scale",
        "multiplies every number in the list by {k}",
        "умножает каждое число списка на {k}",
        "return [x * {k} for x in {arg}]",
        lambda k: [[1, 2, 3], [0, 5]],
        lambda a, k: [x * k for x in a],
    ),
    (
        "shift",
        "adds {k} to every number in the list",
        "прибавляет {k} к каждому числу списка",
        "return [x + {k} for x in {arg}]",
        lambda k: [[1, 2, 3], [10]],
        lambda a, k: [x + k for x in a],
    ),
    (
        "keep",
        "keeps only the numbers greater than {k}",
        "оставляет только числа больше {k}",
        "return [x for x in {arg} if x > {k}]",
        lambda k: [[k - 1, k, k + 1, k + 5]],
        lambda a, k: [x for x in a if x > k],
    ),
    (
        "total",
        "returns the sum of the list plus {k}",
        "возвращает сумму списка плюс {k}",
        "return sum({arg}) + {k}",
        lambda k: [[1, 2, 3], []],
        lambda a, k: sum(a) + k,
    ),
]
STRING_FAMILY = (
    "repeat",
    "repeats the string {k} times",
    "повторяет строку {k} раз",
    "return {arg} * {k}",
    lambda k: ["ab", "x"],
    lambda a, k: a * k,
)
CODING_WRITE = {
    "en": [
        "Write a Python function `{fn}({arg})` that {task}.",
        "Implement `{fn}({arg})` in Python: it {task}.",
        "Create a Python function named `{fn}` with parameter `{arg}` that {task}.",
        "Python: define `{fn}({arg})`, which {task}.",
    ],
    "ru": [
        "Напиши функцию Python `{fn}({arg})`, которая {task}.",
        "Реализуй на Python `{fn}({arg})`: она {task}.",
        "Создай функцию Python `{fn}` с параметром `{arg}`, которая {task}.",
        "Python: определи `{fn}({arg})`, которая {task}.",
    ],
}
CODING_FIX = {
    "en": [
        "Fix the bug. The function should do this: it {task}.\n{code}",
        "This function is broken. It should be a function that {task}. Fix it:\n{code}",
    ],
    "ru": [
        "Исправь ошибку. Функция должна делать так: она {task}.\n{code}",
        "Функция работает неправильно; она {task}. Исправь её:\n{code}",
    ],
}
BUGS = {"*": "+", "+": "-", ">": "<"}


def make_coding(rng: random.Random, lang: str, split: str) -> Example:
    """Write a small Python function from a description, or fix a one-operator bug."""
    families = CODING_FAMILIES + [STRING_FAMILY]
    verb, task_en, task_ru, body, inputs, reference = rng.choice(families)
    k = rng.randint(2, 9)
    arg = rng.choice(_split(CODE_WORDS if verb == "repeat" else CODE_NOUNS, split))
    fn = f"{verb}_{rng.choice(_split(CODE_NOUNS, split))}" if verb != "repeat" else f"repeat_{arg}"
    task = (task_en if lang == "en" else task_ru).format(k=k)
    code = f"def {fn}({arg}):\n    {body.format(k=k, arg=arg)}"
    buggy_ops = [op for op in BUGS if f" {op} " in body]
    if buggy_ops and rng.random() < 0.3:
        op = buggy_ops[0]
        broken = code.replace(f" {op} ", f" {BUGS[op]} ", 1)
        template = rng.choice(_split(CODING_FIX[lang], split))
        prompt = template.format(task=task, code=broken)
    else:
        template = rng.choice(_split(CODING_WRITE[lang], split))
        prompt = template.format(fn=fn, arg=arg, task=task)
    tests = [[[value], reference(value, k)] for value in inputs(k)]
    return Example("coding", lang, prompt, code, {"function": fn, "tests": tests})


# ---------------------------------------------------------------- support domain
SUPPORT_PROBLEMS = {
    "not_arrived": {
        "en": (
            ["my parcel has not arrived yet", "the delivery is late", "I am still waiting for my package"],
            ["1. We have checked the tracking of your order.", "2. A courier will contact you within 2 days."],
        ),
        "ru": (
            ["посылка до сих пор не пришла", "доставка задерживается", "я всё ещё жду свой заказ"],
            ["1. Мы проверили отслеживание вашего заказа.", "2. Курьер свяжется с вами в течение 2 дней."],
        ),
    },
    "damaged": {
        "en": (
            ["the item arrived broken", "the box was damaged and the product is cracked", "it came broken"],
            ["1. Please send us a photo of the item.", "2. We will send you a replacement for free."],
        ),
        "ru": (
            ["товар пришёл сломанным", "коробка повреждена, товар треснул", "всё пришло разбитым"],
            ["1. Пожалуйста, пришлите фото товара.", "2. Мы бесплатно отправим вам замену."],
        ),
    },
    "refund": {
        "en": (
            ["I want my money back", "please refund my payment", "I would like to return it for a refund"],
            ["1. We have started the refund for your order.", "2. The money will return to your card within 5 days."],
        ),
        "ru": (
            ["хочу вернуть деньги", "верните, пожалуйста, оплату", "хочу оформить возврат"],
            ["1. Мы оформили возврат по вашему заказу.", "2. Деньги вернутся на карту в течение 5 дней."],
        ),
    },
    "login": {
        "en": (
            ["I cannot log in to my account", "my password does not work", "the site does not let me sign in"],
            ["1. Please reset your password on the login page.", "2. If that does not help, reply to this message."],
        ),
        "ru": (
            ["не могу войти в аккаунт", "пароль не подходит", "сайт не пускает меня в личный кабинет"],
            ["1. Сбросьте пароль на странице входа.", "2. Если это не поможет, ответьте на это письмо."],
        ),
    },
}
SUPPORT_PROMPTS = {
    "en": [
        'Customer {name} writes about order {order}: "{issue}". Write a reply from the support team.',
        'Reply to a customer. Name: {name}. Order: {order}. Message: "{issue}".',
        'Write a support answer for {name} (order {order}), who says: "{issue}".',
        'Help desk ticket from {name}, order {order}: "{issue}". Draft the response.',
    ],
    "ru": [
        "Клиент {name} пишет о заказе {order}: «{issue}». Напиши ответ службы поддержки.",
        "Ответь клиенту. Имя: {name}. Заказ: {order}. Сообщение: «{issue}».",
        "Напиши ответ поддержки для клиента {name} (заказ {order}), который пишет: «{issue}».",
        "Обращение в поддержку от {name}, заказ {order}: «{issue}». Составь ответ.",
    ],
}
SUPPORT_REPLY = {
    "en": (
        "Hello, {name}!\nThank you for your message about order {order}. We are sorry for the trouble.\n"
        "{steps}\nBest regards,\nSupport Team"
    ),
    "ru": (
        "Здравствуйте, {name}!\nСпасибо за обращение по заказу {order}. Приносим извинения за неудобства.\n"
        "{steps}\nС уважением,\nСлужба поддержки"
    ),
}


def make_support(rng: random.Random, lang: str, split: str) -> Example:
    """Answer a customer complaint with greeting, apology, numbered steps and a sign-off."""
    problem = rng.choice(sorted(SUPPORT_PROBLEMS))
    issues, steps = SUPPORT_PROBLEMS[problem][lang]
    name, order = person_name(rng, lang, split), rng.randint(10000, 99999)
    prompt = rng.choice(_split(SUPPORT_PROMPTS[lang], split)).format(name=name, order=order, issue=rng.choice(issues))
    reply = SUPPORT_REPLY[lang].format(name=name, order=order, steps="\n".join(steps))
    return Example("support", lang, prompt, reply, {"name": name, "order": str(order), "problem": problem})


# ---------------------------------------------------------------- general prompts (router's "none")
GENERAL_PROMPTS = {
    "en": [
        "Tell me a fun fact about {thing}.",
        "What is the best season to visit {town}?",
        "Can you recommend a book about {thing}?",
        "How do I cook {food}?",
        "Say something nice about {town}.",
        "Why is the sky blue?",
        "Write a short poem about {thing}.",
        "What should I name my {pet}?",
    ],
    "ru": [
        "Расскажи интересный факт про {thing}.",
        "Когда лучше всего ехать в {town}?",
        "Посоветуй книгу про {thing}.",
        "Как приготовить {food}?",
        "Скажи что-нибудь хорошее про {town}.",
        "Почему небо голубое?",
        "Напиши короткий стих про {thing}.",
        "Как назвать моего {pet}?",
    ],
}
GENERAL_FILL = {
    "en": {
        "thing": ["the sea", "cats", "the moon", "music", "trees", "winter"],
        "food": ["pasta", "soup", "rice"],
        "pet": ["dog", "cat", "parrot"],
    },
    "ru": {
        "thing": ["море", "кошек", "луну", "музыку", "деревья", "зиму"],
        "food": ["пасту", "суп", "рис"],
        "pet": ["пса", "кота", "попугая"],
    },
}


def make_general_prompt(rng: random.Random, lang: str, split: str) -> str:
    """A chit-chat prompt that belongs to no adapter's domain."""
    fill = GENERAL_FILL[lang]
    return rng.choice(_split(GENERAL_PROMPTS[lang], split)).format(
        thing=rng.choice(fill["thing"]),
        town=city(rng, lang, split),
        food=rng.choice(fill["food"]),
        pet=rng.choice(fill["pet"]),
    )


def examples(domain: str, n: int, split: str = "train", seed: int = 0, langs: tuple[str, ...] = LANGS) -> list[Example]:
    """`n` examples of one domain, alternating languages, reproducible from `seed`."""
    entry = registry.get(domain)
    _check_split(split)
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(f"{domain}/{split}/{seed}")
    return [entry.generate(rng, langs[i % len(langs)], split) for i in range(n)]


def sft_rows(domain: str, n: int, split: str = "train", seed: int = 0) -> list[dict]:
    """Prompt-completion rows ready for `datasets.Dataset.from_list` and TRL's SFTTrainer."""
    return [ex.prompt_completion() for ex in examples(domain, n, split, seed)]


def __getattr__(name: str):
    if name == "DOMAINS":  # the registry's names now (lessons_lib.domains), so a newly registered domain is listed
        return registry.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
