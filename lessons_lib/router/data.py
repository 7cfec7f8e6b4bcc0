"""Labeled prompts for the routers: training prompts from templates, the hand-written held-out set, JSONL I/O.

Training prompts come from the course's domain data (`lessons_lib.data`) plus extra EN/RU templates built
from interchangeable parts (opener × task × detail), so the router sees many phrasings of each intent.
The held-out set in `assets/router/heldout.jsonl` was written by hand in a user's voice and shares no
template with this file: a score on it measures generalisation to real requests.
`assets/router/natural_train.jsonl` holds other hand-written requests (written apart from the held-out set);
`split_rows` divides them into train and dev for the n-gram router.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

from .. import domains
from ..data import examples, make_general_prompt
from ..i18n import tr
from ..jsonl import read_objects
from ..paths import ASSETS_DIR
from .base import course_labels

ROUTER_ASSETS = ASSETS_DIR / "router"
HELDOUT_PATH = ROUTER_ASSETS / "heldout.jsonl"
NATURAL_PATH = ROUTER_ASSETS / "natural_train.jsonl"  # hand-written requests for training/dev, none from held-out

# Each entry: label -> lang -> (openers, tasks, details). A prompt is "{opener}{task}{detail}".
PARTS: dict[str, dict[str, tuple[list[str], list[str], list[str]]]] = {
    "json": {
        "en": (
            ["", "Please ", "Can you ", "Could you ", "I need you to ", "Quickly ", "Help me "],
            [
                "turn this into a JSON object",
                "pull the fields out of this text as JSON",
                "give me a machine-readable record for this",
                "output key/value pairs for this",
                "make a dict with name and age from this sentence",
                "fill in a form record from this note",
                "extract the entities into structured data",
                "write the request body for this",
                "produce a config object for this",
                "map this table row to an object",
                "list the attributes of this item as an object",
                "serialize this record",
                "build a payload with the fields id, title and price",
                "return the order as structured data",
                "parse the address into street, city and zip",
                "convert this CSV line to an object",
                "describe the schema for a user profile",
                "generate valid JSON for this product",
                "format these contact details as a record",
            ],
            [
                ": Tom is 31 and lives in Leeds.",
                ". Item 4412, two mugs, $9 each.",
                " - no prose, only the data.",
                " from the invoice below.",
                ". Keys should be snake_case.",
                "",
                " for my database import.",
                ": Kate Moss, kate@mail.com, +44 20 1234.",
                " so my program can read it.",
            ],
        ),
        "ru": (
            ["", "Пожалуйста, ", "Можешь ", "Нужно ", "Помоги ", "Быстро ", "Сделай так: "],
            [
                "преврати это в JSON-объект",
                "вытащи поля из текста в виде JSON",
                "сделай машиночитаемую запись из этого",
                "выведи пары ключ-значение",
                "собери словарь с именем и возрастом из предложения",
                "заполни карточку записи по этой заметке",
                "извлеки сущности в структурированном виде",
                "составь тело запроса для этого",
                "сделай объект конфигурации",
                "переведи строку таблицы в объект",
                "перечисли атрибуты товара как объект",
                "сериализуй эту запись",
                "собери payload с полями id, title и price",
                "верни заказ в виде структуры данных",
                "разбери адрес на улицу, город и индекс",
                "переведи строку CSV в объект",
                "опиши схему профиля пользователя",
                "сгенерируй корректный JSON для товара",
                "оформи контакты как запись",
            ],
            [
                ": Пётр, 31 год, живёт в Твери.",
                ". Товар 4412, две кружки по 900 руб.",
                " — без текста, только данные.",
                " из счёта ниже.",
                ". Ключи в snake_case.",
                "",
                " для импорта в базу.",
                ": Катя Орлова, katya@mail.ru, +7 900 123.",
                " чтобы программа могла это прочитать.",
            ],
        ),
    },
    "coding": {
        "en": (
            ["", "Please ", "Can you ", "Could you ", "I need to ", "Help me ", "Quick one: "],
            [
                "write a Python function that reverses a string",
                "fix this loop, it never ends",
                "explain why my script raises a TypeError",
                "refactor this class to be shorter",
                "write unit tests for the parse function",
                "implement binary search in Python",
                "make this code faster",
                "write a regex that matches dates",
                "sort a list of dicts by age",
                "read a CSV file with pandas",
                "write a SQL query that counts users per city",
                "debug this recursion",
                "add type hints to this method",
                "write a JavaScript snippet that hides a button",
                "implement a stack class",
                "convert this for loop to a list comprehension",
                "count the words in a file in Python",
                "find the bug in this code",
                "write a bash command that renames files",
            ],
            [
                "",
                ".",
                ":\nfor i in range(10):\n    print(i)",
                ":\ndef add(a, b): return a - b",
                " in Python 3.",
                " and explain each line.",
                " with a docstring.",
                "?",
                " - it crashes on empty input.",
            ],
        ),
        "ru": (
            ["", "Пожалуйста, ", "Можешь ", "Нужно ", "Помоги ", "Вопрос: ", "Срочно: "],
            [
                "напиши функцию на Python, которая переворачивает строку",
                "почини этот цикл, он не заканчивается",
                "объясни, почему скрипт падает с TypeError",
                "сделай рефакторинг этого класса",
                "напиши юнит-тесты для функции parse",
                "реализуй бинарный поиск на Python",
                "ускорь этот код",
                "напиши регулярку для дат",
                "отсортируй список словарей по возрасту",
                "прочитай CSV через pandas",
                "напиши SQL-запрос, который считает пользователей по городам",
                "отладь эту рекурсию",
                "добавь аннотации типов в метод",
                "напиши на JavaScript скрипт, который прячет кнопку",
                "реализуй класс стека",
                "перепиши цикл for как list comprehension",
                "посчитай слова в файле на Python",
                "найди баг в этом коде",
                "напиши bash-команду для переименования файлов",
            ],
            [
                "",
                ".",
                ":\nfor i in range(10):\n    print(i)",
                ":\ndef add(a, b): return a - b",
                " на Python 3.",
                " и объясни каждую строку.",
                " с докстрингом.",
                "?",
                " — падает на пустом вводе.",
            ],
        ),
    },
    "support": {
        "en": (
            ["", "Hi, ", "Hello, ", "Please help: ", "Excuse me, ", "Urgent: ", "Dear shop, "],
            [
                "my parcel still has not come",
                "I was charged twice for one purchase",
                "the headphones I got are broken",
                "how do I cancel my subscription",
                "I forgot my password and cannot get in",
                "where is my delivery",
                "I want to return these shoes",
                "the app keeps crashing when I pay",
                "my promo code was not accepted",
                "the courier never showed up",
                "I received the wrong size",
                "please change the delivery address on my purchase",
                "when will I get my money back",
                "my account got blocked",
                "the invoice has the wrong amount",
                "write a polite answer to an angry customer",
                "draft a reply to a client whose package is lost",
                "the warranty repair is taking too long",
                "nobody answers the hotline",
            ],
            [
                "",
                ".",
                "!",
                ", order 55120.",
                ", what should I do?",
                ". Thanks.",
                " - this is the second time.",
                ", I ordered it a week ago.",
                ". Can someone sort it out?",
            ],
        ),
        "ru": (
            ["", "Здравствуйте, ", "Привет, ", "Помогите: ", "Извините, ", "Срочно: ", "Уважаемый магазин, "],
            [
                "посылка так и не пришла",
                "с меня списали деньги дважды за одну покупку",
                "пришли сломанные наушники",
                "как отменить подписку",
                "забыл пароль и не могу зайти",
                "где моя доставка",
                "хочу вернуть эти ботинки",
                "приложение вылетает при оплате",
                "промокод не приняли",
                "курьер так и не приехал",
                "прислали не тот размер",
                "поменяйте адрес доставки в моей покупке",
                "когда вернут деньги",
                "мой аккаунт заблокировали",
                "в счёте неправильная сумма",
                "напиши вежливый ответ недовольному клиенту",
                "составь ответ клиенту, у которого потерялась посылка",
                "гарантийный ремонт затянулся",
                "на горячей линии никто не отвечает",
            ],
            [
                "",
                ".",
                "!",
                ", номер 55120.",
                ", что делать?",
                ". Спасибо.",
                " — уже второй раз.",
                ", оформляла неделю назад.",
                ". Разберитесь, пожалуйста.",
            ],
        ),
    },
    "general": {
        "en": (
            ["", "Hey, ", "Tell me, ", "I wonder: ", "Quick question: ", "Just curious, ", "Please "],
            [
                "what is the capital of Canada",
                "suggest a name for my new puppy",
                "how tall is Mount Everest",
                "give me a recipe for pancakes",
                "what should I watch tonight",
                "write a birthday wish for my mom",
                "how do I grow tomatoes on a balcony",
                "why do cats purr",
                "recommend a hiking trail near Vienna",
                "what is the meaning of life",
                "tell me a joke",
                "how many planets are there",
                "translate 'good morning' into French",
                "plan a weekend trip to Rome",
                "how do I fall asleep faster",
                "who painted the Mona Lisa",
                "compose a haiku about rain",
                "what's a good gift for a ten-year-old",
                "how are you today",
            ],
            ["", "?", ".", "!", " in two sentences.", ", please.", " for a school essay.", " thanks!", " :)"],
        ),
        "ru": (
            ["", "Слушай, ", "Скажи, ", "Интересно: ", "Вопрос: ", "Просто любопытно, ", "Пожалуйста, "],
            [
                "какая столица Канады",
                "придумай кличку для щенка",
                "какая высота у Эвереста",
                "дай рецепт блинов",
                "что посмотреть вечером",
                "напиши поздравление маме с днём рождения",
                "как вырастить помидоры на балконе",
                "почему кошки мурлычут",
                "посоветуй маршрут для похода под Сочи",
                "в чём смысл жизни",
                "расскажи анекдот",
                "сколько планет в Солнечной системе",
                "переведи 'доброе утро' на французский",
                "спланируй выходные в Питере",
                "как быстрее заснуть",
                "кто написал «Войну и мир»",
                "сочини хокку про дождь",
                "что подарить ребёнку на десять лет",
                "как у тебя дела",
            ],
            [
                "",
                "?",
                ".",
                "!",
                " в двух предложениях.",
                ", пожалуйста.",
                " для школьного сочинения.",
                " спасибо!",
                " :)",
            ],
        ),
    },
}


# Domain vocabulary: "{verb} {topic}" prompts broaden the words each label has seen in training.
TOPICS: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "json": {
        "en": (
            ["Return", "Output", "Show me", "Generate", "Produce", "I want", "Give me"],
            [
                "a JSON array of the items",
                "the keys and values of this record",
                "a nested object for this customer",
                "structured fields for this event",
                "an object with id, date and total",
                "the data as a JSON list",
                "a JSON document describing this car",
                "a schema with required fields",
                "a record for this invoice",
                "the attributes as key-value pairs",
                "an API response example",
                "a JSON body for the request",
            ],
        ),
        "ru": (
            ["Верни", "Выведи", "Покажи", "Сгенерируй", "Сделай", "Хочу", "Дай"],
            [
                "JSON-массив позиций",
                "ключи и значения этой записи",
                "вложенный объект для клиента",
                "структурированные поля для события",
                "объект с id, датой и суммой",
                "данные списком в JSON",
                "JSON-документ с описанием машины",
                "схему с обязательными полями",
                "запись для этого счёта",
                "атрибуты парами ключ-значение",
                "пример ответа API",
                "JSON-тело для запроса",
            ],
        ),
    },
    "coding": {
        "en": (
            ["Write", "Fix", "Explain", "Optimize", "Debug", "Review", "Implement"],
            [
                "a function that checks if a number is even",
                "my while loop that never stops",
                "this Python traceback",
                "a script that copies files",
                "a method that parses dates",
                "the IndexError in my loop",
                "a class for a linked list",
                "a SQL join between two tables",
                "a recursive factorial",
                "a program that reads input and prints the sum",
                "a JavaScript function for validation",
                "a dictionary comprehension",
                "the variable that is always None",
                "a test for my function",
            ],
        ),
        "ru": (
            ["Напиши", "Исправь", "Объясни", "Оптимизируй", "Отладь", "Проверь", "Реализуй"],
            [
                "функцию, проверяющую чётность числа",
                "мой цикл while, который не останавливается",
                "эту трассировку Python",
                "скрипт для копирования файлов",
                "метод, разбирающий даты",
                "IndexError в моём цикле",
                "класс связного списка",
                "SQL join двух таблиц",
                "рекурсивный факториал",
                "программу, которая читает ввод и печатает сумму",
                "функцию валидации на JavaScript",
                "генератор словаря",
                "переменную, которая всегда None",
                "тест для моей функции",
            ],
        ),
    },
    "support": {
        "en": (
            [
                "Problem with",
                "Complaint about",
                "Question about",
                "Issue with",
                "Need help with",
                "Unhappy with",
                "Please check",
            ],
            [
                "my delivery",
                "a double charge on my card",
                "a damaged package",
                "my refund",
                "the tracking number",
                "a missing item in the box",
                "my account login",
                "the warranty repair",
                "the return of my purchase",
                "a wrong item in my order",
                "a cancelled payment",
                "the customer service reply",
                "my subscription renewal",
                "the courier",
            ],
        ),
        "ru": (
            ["Проблема с", "Жалоба на", "Вопрос по поводу", "Неполадка с", "Нужна помощь с", "Недоволен", "Проверьте"],
            [
                "моей доставкой",
                "двойным списанием с карты",
                "повреждённой посылкой",
                "моим возвратом денег",
                "трек-номером",
                "недостающим товаром в коробке",
                "входом в аккаунт",
                "гарантийным ремонтом",
                "возвратом покупки",
                "неправильным товаром в заказе",
                "отменённым платежом",
                "ответом оператора",
                "продлением подписки",
                "курьером",
            ],
        ),
    },
    "general": {
        "en": (
            ["Tell me about", "What do you think of", "Explain", "Recommend", "Describe", "I love", "Teach me about"],
            [
                "the history of Rome",
                "healthy breakfast ideas",
                "how volcanoes work",
                "a movie for the weekend",
                "learning to swim",
                "the best way to learn Spanish",
                "why the ocean has tides",
                "how to train a puppy",
                "a cosy autumn evening",
                "jazz music",
                "the life of bees",
                "a gift for my grandmother",
                "tips for a job interview",
                "the northern lights",
            ],
        ),
        "ru": (
            ["Расскажи про", "Что думаешь про", "Объясни", "Посоветуй", "Опиши", "Обожаю", "Научи меня"],
            [
                "историю Рима",
                "идеи для полезного завтрака",
                "как устроены вулканы",
                "фильм на выходные",
                "как научиться плавать",
                "лучший способ выучить испанский",
                "почему в океане приливы",
                "как воспитать щенка",
                "уютный осенний вечер",
                "джаз",
                "жизнь пчёл",
                "подарок бабушке",
                "советы к собеседованию",
                "северное сияние",
            ],
        ),
    },
}


def topic_prompt(rng: random.Random, label: str, lang: str) -> str:
    """A short "{verb} {topic}" prompt from the label's domain vocabulary."""
    verbs, topics = TOPICS[label][lang]
    return f"{rng.choice(verbs)} {rng.choice(topics)}{rng.choice(['', '.', '?', '!'])}"


def label_parts(label: str) -> dict | None:
    """{lang: (openers, tasks, details)} for `label`: this file's for the course labels, else the registry entry's
    `templates` (None when the domain has none: its router rows then come from its own examples)."""
    return PARTS[label] if label in PARTS else domains.get(label).templates


def template_prompt(rng: random.Random, label: str, lang: str) -> str:
    """One prompt for `label` in `lang`, assembled from random opener, task and detail parts."""
    openers, tasks, details = label_parts(label)[lang]
    opener, task, detail = rng.choice(openers), rng.choice(tasks), rng.choice(details)
    text = f"{opener}{task}{detail}".strip()
    if opener == "":
        text = text[0].upper() + text[1:]
    return text


# Neutral openings and endings shared by every label: they teach the classifier to ignore small talk.
FILLERS = {
    "en": (
        [
            "Hi! ",
            "Good morning. ",
            "I have a question. ",
            "Sorry to bother you. ",
            "This is for work. ",
            "My friend asked me this. ",
            "OK, next thing. ",
        ],
        [
            " Thanks in advance.",
            " Thank you!",
            " It's urgent.",
            " Keep it short.",
            " I'm a beginner.",
            " Answer in English.",
            " Much appreciated.",
        ],
    ),
    "ru": (
        [
            "Привет! ",
            "Доброе утро. ",
            "У меня вопрос. ",
            "Извини за беспокойство. ",
            "Это по работе. ",
            "Друг спросил. ",
            "Так, следующее. ",
        ],
        [
            " Заранее спасибо.",
            " Спасибо!",
            " Это срочно.",
            " Покороче.",
            " Я новичок.",
            " Ответь по-русски.",
            " Буду благодарен.",
        ],
    ),
}


def augment(rng: random.Random, text: str, lang: str, drop: float = 0.12) -> str:
    """A noisier copy of a prompt: a neutral filler added and/or a few words dropped (never all)."""
    starts, ends = FILLERS[lang]
    if rng.random() < 0.5:
        words = text.split(" ")
        kept = [w for w in words if rng.random() > drop] or words
        text = " ".join(kept)
    if rng.random() < 0.4:
        text = rng.choice(starts) + text
    if rng.random() < 0.4:
        text = text + rng.choice(ends)
    return text


def course_prompt(rng: random.Random, label: str, lang: str, seed: int) -> str:
    """One prompt from the course's own domain data (lessons_lib.data), train split only."""
    if label == "general":
        return make_general_prompt(rng, lang, "train")
    return examples(label, 1, "train", seed=seed, langs=(lang,))[0].prompt


def training_rows(
    n_per_label: int = 240, seed: int = 0, course_share: float = 0.2, augment_share: float = 0.6
) -> list[dict]:
    """Balanced, shuffled `{"text", "label"}` rows: template and course prompts, EN+RU, partly augmented."""
    if n_per_label < 4:
        raise ValueError(
            tr(
                en="n_per_label must be at least 4 (two per language).",
                ru="n_per_label должно быть не меньше 4 (по два на язык).",
            )
        )
    rng = random.Random(f"router/{seed}")
    rows = []
    for label in course_labels():
        for i in range(n_per_label):
            lang = ("en", "ru")[i % 2]
            use_course = rng.random() < course_share
            kind = rng.random()
            if use_course or not label_parts(label):
                text = course_prompt(rng, label, lang, seed * 100_000 + i)
            elif kind < 0.35 and label in TOPICS:
                text = topic_prompt(rng, label, lang)
            else:
                text = template_prompt(rng, label, lang)
            if rng.random() < augment_share:
                text = augment(rng, text, lang)
            rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    return rows


def read_jsonl(path: str | Path, labels: Iterable[str] | None = None) -> list[dict]:
    """Rows `{"text", "label"}` from a JSONL file, with a clear error naming the bad line."""
    known = set(labels) if labels is not None else None
    rows = []
    for number, row in read_objects(path, '{"text": ..., "label": ...}'):
        if not isinstance(row.get("text"), str) or not isinstance(row.get("label"), str):
            raise ValueError(
                tr(
                    en=f'{path}:{number} must be an object with string fields "text" and "label".',
                    ru=f'{path}:{number}: нужен объект со строковыми полями "text" и "label".',
                )
            )
        if not row["text"].strip():
            raise ValueError(
                tr(
                    en=f'{path}:{number} has an empty "text"; give every line a prompt (a router needs text to decide '
                    "on), or delete the line.",
                    ru=f'{path}:{number}: поле "text" пустое; дайте каждой строке промпт (маршрутизатору нужен текст, '
                    "чтобы выбрать адаптер) или удалите строку.",
                )
            )
        if known is not None and row["label"] not in known:
            names = ", ".join(sorted(known))
            raise ValueError(
                tr(
                    en=f"{path}:{number} has label {row['label']!r}; known labels: {names}.",
                    ru=f"{path}:{number}: метка {row['label']!r} неизвестна; известные метки: {names}.",
                )
            )
        rows.append({"text": row["text"], "label": row["label"]})
    return rows


def heldout_rows() -> list[dict]:
    """The hand-written held-out set shipped with the course."""
    return read_jsonl(HELDOUT_PATH, course_labels())


def natural_rows() -> list[dict]:
    """Hand-written natural requests (EN+RU, every label) for training and dev; written apart from the held-out set."""
    return read_jsonl(NATURAL_PATH, course_labels())


def split_rows(rows: list[dict], dev_share: float = 0.25, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, dev): a deterministic split that keeps `dev_share` of each label's rows for choosing settings."""
    if not 0.0 < dev_share < 1.0:
        raise ValueError(
            tr(
                en=f"dev_share is a fraction in (0, 1), got {dev_share}.",
                ru=f"dev_share — доля в интервале (0, 1), получено {dev_share}.",
            )
        )
    train, dev = [], []
    for label in dict.fromkeys(r["label"] for r in rows):
        group = [r for r in rows if r["label"] == label]
        random.Random(f"split/{seed}/{label}").shuffle(group)
        n_dev = max(1, round(dev_share * len(group))) if len(group) > 1 else 0
        dev += group[:n_dev]
        train += group[n_dev:]
    return train, dev


def course_splits(seed: int = 0, dev_share: float = 1 / 3) -> tuple[list[dict], list[dict]]:
    """(train, dev): the template training rows + 2/3 of the hand-written natural rows; dev = the other third."""
    natural_train, dev = split_rows(natural_rows(), dev_share, seed)
    return training_rows(240, seed=seed) + natural_train, dev
