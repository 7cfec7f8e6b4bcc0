"""Train rows in learners' own words: each domain's requests in many phrasings, with made-up entities.

`lessons_lib.data` writes every request from a handful of templates and draws names from fixed pools, so an
adapter trained on it learns where a template puts the name, or recalls a pool name, instead of copying from the
prompt. Here the same three tasks come in casual and formal phrasings, with the instruction before or after the
text, the fields in any order, names that exist nowhere else (syllables from `tiny.copy_corpus.Entities`), items
from everyday goods and e-mail addresses in the shapes people use. The answers keep the course's formats
exactly, so `evaluate` scores them as before.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import replace
from functools import cache

from . import data
from .data import SUPPORT_PROBLEMS, SUPPORT_REPLY, Example
from .i18n import tr
from .tiny.copy_corpus import COURSE_POOLS, PRODUCT_WORDS, Entities

LANGS = ("en", "ru")

JOBS = {
    "en": ["teacher", "nurse", "engineer", "baker", "designer", "driver", "student", "intern", "pilot", "farmer"],
    "ru": ["учитель", "врач", "инженер", "пекарь", "дизайнер", "водитель", "студент", "стажёр", "пилот", "фермер"],
}

# Real-looking names and towns, none in a course pool (`RealNames` also drops any the natural sets use), so an
# adapter cannot learn "the odd-looking word is the name": half the names in these rows look like these.
REAL_FIRST = {
    "en": [
        "Agnes",
        "Ambrose",
        "Beatrix",
        "Cecil",
        "Clement",
        "Daphne",
        "Dorothy",
        "Edmund",
        "Elspeth",
        "Fergus",
        "Florence",
        "Gideon",
        "Harriet",
        "Ivor",
        "Jasper",
        "Leopold",
        "Lorna",
        "Magnus",
        "Marjorie",
        "Mabel",
        "Neville",
        "Nora",
        "Osric",
        "Percy",
        "Phoebe",
        "Quentin",
        "Rosalind",
        "Rupert",
        "Silas",
        "Tabitha",
        "Thaddeus",
        "Ursula",
        "Vivian",
        "Winifred",
        "Yvonne",
        "Alistair",
        "Bernadette",
        "Cornelius",
        "Delphine",
        "Ignatius",
    ],
    "ru": [
        "Аглая",
        "Арсений",
        "Богдан",
        "Варвара",
        "Велимир",
        "Глафира",
        "Гордей",
        "Добрыня",
        "Евстафий",
        "Елисей",
        "Зинаида",
        "Злата",
        "Игнат",
        "Ираида",
        "Кирилл",
        "Лукерья",
        "Мирон",
        "Нонна",
        "Олимпиада",
        "Пелагея",
        "Платон",
        "Радослав",
        "Ростислава",
        "Савелий",
        "Серафима",
        "Таисия",
        "Тихон",
        "Ульяна",
        "Фаина",
        "Фрол",
        "Харитон",
        "Юлиания",
        "Ярополк",
        "Василиса",
        "Демьян",
        "Есения",
        "Захар",
    ],
}
REAL_LAST = {
    "en": [
        "Abernathy",
        "Ashcombe",
        "Blackwood",
        "Brightwater",
        "Castellano",
        "Crabtree",
        "Dunmore",
        "Ellsworth",
        "Fairbairn",
        "Galloway",
        "Hargreaves",
        "Holloway",
        "Kingsley",
        "Lockhart",
        "Marchetti",
        "Montague",
        "Northcott",
        "Okonkwo",
        "Pemberton",
        "Quigley",
        "Ravensworth",
        "Rutherford",
        "Sandoval",
        "Thistlewood",
        "Underhill",
        "Vasquez",
        "Wainwright",
        "Whitlock",
        "Yardley",
        "Zielinski",
        "Albrecht",
        "Brennan",
        "Castillo",
        "Delacroix",
        "Eriksen",
        "Fitzgerald",
        "Gallagher",
    ],
    "ru": [
        "Белозёров",
        "Вяземский",
        "Голицын",
        "Добролюбов",
        "Ермолаев",
        "Жданов",
        "Закревский",
        "Измайлов",
        "Карамзин",
        "Лопухин",
        "Муравьёв",
        "Нарышкин",
        "Оболенский",
        "Пущин",
        "Раевский",
        "Самарин",
        "Трубецкой",
        "Уваров",
        "Фонвизин",
        "Хомяков",
        "Чаадаев",
        "Шереметев",
        "Щербатов",
        "Юсупов",
        "Ястребов",
        "Аксаков",
        "Бестужев",
        "Воронцов",
        "Гончаров",
        "Державин",
    ],
}
REAL_TOWNS = {
    "en": [
        "Aberdeen",
        "Antwerp",
        "Bergen",
        "Bilbao",
        "Bratislava",
        "Cluj",
        "Cork",
        "Debrecen",
        "Dundee",
        "Eindhoven",
        "Faro",
        "Gdansk",
        "Genoa",
        "Graz",
        "Halifax",
        "Innsbruck",
        "Izmir",
        "Kaunas",
        "Krakow",
        "Leeds",
        "Linz",
        "Lyon",
        "Malmo",
        "Montpellier",
        "Nantes",
        "Odense",
        "Porto",
        "Poznan",
        "Quebec",
        "Rotterdam",
        "Salzburg",
        "Seville",
        "Tampere",
        "Toulouse",
        "Trieste",
        "Turku",
        "Utrecht",
        "Verona",
        "Wroclaw",
        "Zagreb",
    ],
    "ru": [
        "Архангельск",
        "Астрахань",
        "Белгород",
        "Брянск",
        "Владимир",
        "Вологда",
        "Иваново",
        "Калуга",
        "Кемерово",
        "Киров",
        "Курск",
        "Липецк",
        "Мурманск",
        "Новгород",
        "Омск",
        "Орёл",
        "Пенза",
        "Псков",
        "Рязань",
        "Смоленск",
        "Сургут",
        "Тамбов",
        "Тверь",
        "Томск",
        "Тула",
        "Тюмень",
        "Ульяновск",
        "Чебоксары",
        "Череповец",
        "Ярославль",
    ],
}


@cache
def held_out_words() -> frozenset[str]:
    """Every word of the natural sets' entities and of the course pools: the lists above must not supply them."""
    from .natural_eval import DOMAINS, load

    return frozenset({w for d in DOMAINS for item in load(d) for e in item.entities for w in e.split()} | COURSE_POOLS)


REAL = {"first": REAL_FIRST, "last": REAL_LAST, "town": REAL_TOWNS}


@cache
def real_words(kind: str, lang: str) -> tuple[str, ...]:
    """One of the REAL lists without the held-out words (filtered once)."""
    return tuple(w for w in REAL[kind][lang] if w not in held_out_words())


# Everyday goods, far more than the course's product pool: an adapter that only sees a few dozen product words learns
# to recall one of them ("велос…") instead of copying the item the request names.
GOODS = {
    "en": [
        "backpack",
        "blender",
        "bookcase",
        "broom",
        "calculator",
        "carpet",
        "chessboard",
        "cooler",
        "desk",
        "doormat",
        "dumbbell",
        "earmuffs",
        "easel",
        "fan",
        "flashlight",
        "footstool",
        "frying_pan",
        "gloves",
        "hairdryer",
        "hammock",
        "headphones",
        "heater",
        "hourglass",
        "jigsaw",
        "kayak",
        "keyboard",
        "ladder",
        "lantern",
        "lawnmower",
        "lunchbox",
        "microphone",
        "microwave",
        "mixer",
        "notebook",
        "paddleboard",
        "padlock",
        "printer",
        "projector",
        "raincoat",
        "rake",
        "rucksack",
        "sandals",
        "saucepan",
        "scanner",
        "scooter",
        "sewing_machine",
        "skateboard",
        "sleeping_bag",
        "slippers",
        "speaker",
        "stepladder",
        "stool",
        "suitcase",
        "sunglasses",
        "tablecloth",
        "telescope",
        "thermometer",
        "toaster",
        "toolbox",
        "tripod",
        "typewriter",
        "vacuum",
        "waffle_iron",
        "watering_can",
        "wheelbarrow",
        "whiteboard",
        "wok",
    ],
    "ru": [
        "рюкзак",
        "блендер",
        "этажерка",
        "веник",
        "калькулятор",
        "ковёр",
        "доска",
        "коврик",
        "гантели",
        "мольберт",
        "вентилятор",
        "фонарик",
        "табурет",
        "сковорода",
        "перчатки",
        "фен",
        "наушники",
        "обогреватель",
        "пазл",
        "байдарка",
        "клавиатура",
        "стремянка",
        "фонарь",
        "газонокосилка",
        "ланчбокс",
        "микрофон",
        "микроволновка",
        "миксер",
        "блокнот",
        "замок",
        "принтер",
        "проектор",
        "дождевик",
        "грабли",
        "сандалии",
        "кастрюля",
        "сканер",
        "самокат",
        "скейтборд",
        "спальник",
        "тапочки",
        "колонка",
        "чемодан",
        "очки",
        "скатерть",
        "телескоп",
        "градусник",
        "тостер",
        "ящик",
        "штатив",
        "пылесос",
        "вафельница",
        "лейка",
        "тачка",
        "кофемолка",
        "утюг",
        "чайник",
        "плед",
    ],
}


@cache
def everyday_goods(lang: str) -> tuple[str, ...]:
    """GOODS of one language (`_` read as a space) without any word the natural sets or the course pools use."""
    items = (w.replace("_", " ") for w in GOODS[lang])
    return tuple(dict.fromkeys(w for w in items if not set(w.split()) & held_out_words()))


class RealNames(Entities):
    """`Entities` that draws half its people and towns from the real-looking lists above, and writes e-mail
    addresses in many shapes."""

    def _pick(self, kind: str) -> str:
        return self.rng.choice(real_words(kind, self.lang))

    def person(self) -> str:
        """A full name: made-up or real-looking, half and half."""
        if self.rng.random() < 0.5:
            return super().person()
        first, last = self._pick("first"), self._pick("last")
        if self.lang == "ru" and first.endswith(("а", "я")) and last.endswith(("ов", "ев", "ёв", "ин")):
            last += "а"
        elif self.lang == "ru" and first.endswith(("а", "я")) and last.endswith("ский"):
            last = last[:-4] + "ская"
        return f"{first} {last}"

    def place(self) -> str:
        """A town: made-up or real-looking, half and half."""
        return super().place() if self.rng.random() < 0.5 else self._pick("town")

    def email(self, person: str) -> str:
        """An address in one of the shapes people use: from the name (whole, initials, a letter, digits) or a handle,
        so the address must be copied, not spelled from the name."""
        r = self.rng
        if r.random() < 0.3:
            return super().email(person)
        words = [w.lower() for w in person.split()] if person.isascii() else [self._latin_word(), self._latin_word()]
        first, last = words[0], words[-1]
        user = r.choice(
            [
                f"{first[0]}.{last}",
                f"{first}.{last[0]}",
                f"{first[0]}{last}",
                f"{last}.{first}",
                first,
                last,
                f"{first}{r.randint(1, 99)}",
                f"{self._latin_word()}{r.randint(1, 999)}",
            ]
        )
        host = self._latin_word() + r.choice(["mail", "post", "box", "net", "", ""])
        return f"{user}@{host}.{r.choice(['com', 'org', 'net', 'ru', 'io', 'de', 'co.uk'])}"


# ---------------------------------------------------------------- json: the sentence that holds the values
PERSON_TEXTS = {
    "en": [
        "{name}, {age}, {city}",
        "{name} is {age} and lives in {city}",
        "{name}, {age} years old, from {city}",
        "{name} ({age}) lives in {city}",
        "{name}, age {age}, {city}",
        "{name}, {age} y.o., based in {city}",
        "a {age}-year-old {job} from {city} called {name}",
        "{name} from {city}, aged {age}",
        "our {job} {name} ({age}) works in {city}",
        "{city} resident {name}, {age}",
        "{name} turned {age} this year and still lives in {city}",
        "name {name}; age {age}; city {city}",
    ],
    "ru": [
        "{name}, {age}, {city}",
        "{name}, {age} лет, живёт в городе {city}",
        "{name} ({age}), город {city}",
        "{name}, возраст {age}, город {city}",
        "{job} {name}, {age} лет, из города {city}",
        "{name} из города {city}, {age} лет",
        "наш {job} {name} ({age}) работает в городе {city}",
        "житель города {city} {name}, {age}",
        "имя {name}; возраст {age}; город {city}",
    ],
}
ORDER_TEXTS = {
    "en": [
        "order {order_id}, {product} x{quantity}",
        "{quantity} x {product} under order {order_id}",
        "order #{order_id} - {quantity} x {product}",
        "order {order_id}: {product}, quantity {quantity}",
        "we shipped {quantity} {product} in order {order_id}",
        "order number {order_id}, item {product}, {quantity} pcs",
        "{product} ({quantity}) for order {order_id}",
    ],
    "ru": [
        "заказ {order_id}, {product}, {quantity} шт.",
        "заказ №{order_id}: {product} x{quantity}",
        "номер заказа {order_id}, товар {product}, количество {quantity}",
        "отправили {quantity} шт. товара {product} по заказу {order_id}",
        "{product} ({quantity} шт.), заказ {order_id}",
        "заказ номер {order_id} - {quantity} x {product}",
    ],
}
CONTACT_TEXTS = {
    "en": [
        "{name}, e-mail {email}",
        "you can reach {name} at {email}",
        "{name} <{email}>",
        "contact: {name}; mail: {email}",
        "write to {email} ({name})",
        "the contact is {name}, the address is {email}",
    ],
    "ru": [
        "{name}, почта {email}",
        "контакт: {name}; e-mail: {email}",
        "{name} <{email}>",
        "пишите на {email} ({name})",
        "контакт — {name}, адрес {email}",
    ],
}
FIELD_LISTS = {
    "en": ["{a}", "{a}", "keys {a}", "fields {a}", "the {a}"],
    "ru": ["{a}", "{a}", "ключи {a}", "поля {a}"],
}
FIELD_JOINS = {"en": [", ", "/", " + ", " and "], "ru": [", ", "/", " + ", " и "]}
QUOTES = [("", ""), ("'", "'"), ('"', '"'), ("«", "»")]
JSON_BEFORE = {
    "en": [
        "Extract {fields} as JSON: {text}",
        "can you turn this into json ({fields}) -> {text}",
        "JSON with {fields} please. {text}",
        "Make a JSON object with {fields} from this: {text}",
        "Quick one: JSON for {fields}. {text}",
        "Pull {fields} out of this text into JSON. Text: {text}",
        "json: {fields}. {text}",
        "I need {fields} in JSON. Here is the line from our records: {text}",
    ],
    "ru": [
        "Вытащи {fields} в JSON: {text}",
        "Сделай JSON ({fields}) из строки: {text}",
        "JSON, пожалуйста: {fields}. {text}",
        "Преобразуй в JSON, {fields}. Текст: {text}",
        "помоги перевести в json, {fields}: {text}",
        "Нужен JSON, {fields}. Вот запись: {text}",
    ],
}
JSON_AFTER = {
    "en": [
        "{text}. Turn that into JSON with {fields}.",
        "{text} - I need that as a JSON record with {fields}.",
        "Here is a note: {text}. Give me {fields} in JSON.",
    ],
    "ru": [
        "{text}. Оформи это как JSON ({fields}).",
        "Запись: {text}. Переведи в JSON, {fields}.",
        "{text} — нужен JSON, {fields}.",
    ],
}


def _fields(rng: random.Random, lang: str, keys: list[str]) -> str:
    joined = rng.choice(FIELD_JOINS[lang]).join(keys)
    if rng.random() < 0.4 and len(keys) > 1 and lang == "en":
        joined = ", ".join(keys[:-1]) + " and " + keys[-1]
    return rng.choice(FIELD_LISTS[lang]).format(a=joined)


def _product(rng: random.Random, ent: Entities, lang: str) -> str:
    """A common noun from the course pool or from everyday goods, or a made-up brand with one."""
    pick = rng.random()
    if pick < 0.25:
        return rng.choice(PRODUCT_WORDS[lang])
    if pick < 0.7:
        return rng.choice(everyday_goods(lang))
    return ent.product()


def varied_json(rng: random.Random, lang: str) -> Example:
    """A request to extract fields as JSON, answered with the record it asks for."""
    ent = RealNames(rng, lang)
    kind = rng.choice(["person", "person", "order", "contact"])
    if kind == "person":
        values = {"name": ent.person(), "age": rng.randint(18, 90), "city": ent.place()}
        text = rng.choice(PERSON_TEXTS[lang]).format(job=rng.choice(JOBS[lang]), **values)
    elif kind == "order":
        values = {
            "order_id": int(ent.number(3, 7)),
            "product": _product(rng, ent, lang),
            "quantity": rng.randint(1, 12),
        }
        text = rng.choice(ORDER_TEXTS[lang]).format(**values)
    else:
        name = ent.person()
        values = {"name": name, "email": ent.email(name)}
        text = rng.choice(CONTACT_TEXTS[lang]).format(**values)
    keys = list(values)
    if kind == "person" and rng.random() < 0.2:
        keys = sorted(rng.sample(keys, 2), key=keys.index)
    opening, closing = rng.choice(QUOTES)
    text = f"{opening}{text}{closing}"
    frames = JSON_AFTER[lang] if rng.random() < 0.3 else JSON_BEFORE[lang]
    prompt = rng.choice(frames).format(fields=_fields(rng, lang, keys), text=text)
    record = {k: values[k] for k in keys}
    return Example("json", lang, prompt, json.dumps(record, ensure_ascii=False), {"fields": record})


# ---------------------------------------------------------------- support: the customer writes in their own words
SUPPORT_FIRST_PERSON = {
    "en": [
        "Hi, I'm {name}. Order {order}: {issue}.",
        "Hello, this is {name}. {Issue} (order #{order}).",
        "{name} here. My order {order} - {issue}.",
        "Good morning! My name is {name}, order number {order}. {Issue}.",
        "{Issue}! Order {order}. {name}",
        "Dear support, {issue}. Order {order}. Regards, {name}",
    ],
    "ru": [
        "Здравствуйте, я {name}. Заказ {order}: {issue}.",
        "Добрый день, это {name}. {Issue} (заказ №{order}).",
        "{name} на связи. Заказ {order} — {issue}.",
        "Меня зовут {name}, номер заказа {order}. {Issue}.",
        "{Issue}! Заказ {order}. {name}",
    ],
}
SUPPORT_THIRD_PERSON = {
    "en": [
        'Name: {name}. Order: {order}. Message: "{issue}". Write the reply.',
        'Customer {name} writes about order {order}: "{issue}". Reply as support.',
        "Ticket from {name}, order {order}: {issue}. Draft a reply.",
        "Write a polite answer to {name}; order {order}; problem: {issue}.",
        "{name} (order {order}) says {issue}. What do we answer?",
        "Reply politely to {name} about order {order}: {issue}.",
        "Please answer {name}, who wrote that {issue} (order {order}).",
        "Help me answer this: {name} complains that {issue}, order {order}.",
        'Answer this message: "{Issue}. Order {order}. {name}"',
        "Draft a response to {name}. Their order {order}: {issue}.",
    ],
    "ru": [
        "Имя: {name}. Заказ: {order}. Сообщение: «{issue}». Напиши ответ.",
        "Клиент {name} пишет о заказе {order}: «{issue}». Ответь от поддержки.",
        "Обращение от {name}, заказ {order}: {issue}. Составь ответ.",
        "Напиши вежливый ответ клиенту {name}; заказ {order}; проблема: {issue}.",
        "{name} (заказ {order}) пишет, что {issue}. Что ответим?",
        "Вежливо ответь клиенту {name} по заказу {order}: {issue}.",
        "Помоги ответить: {name} пишет, что {issue}, заказ {order}.",
        "Ответь на сообщение: «{Issue}. Заказ {order}. {name}»",
        "Составь ответ для {name}. Заказ {order}: {issue}.",
    ],
}


def varied_support(rng: random.Random, lang: str) -> Example:
    """A customer's message answered in the course's format, with the name and order the reply must repeat."""
    ent = RealNames(rng, lang)
    problem = rng.choice(sorted(SUPPORT_PROBLEMS))
    issues, steps = SUPPORT_PROBLEMS[problem][lang]
    name, order, issue = ent.person(), ent.number(4, 7), rng.choice(issues)
    frames = SUPPORT_FIRST_PERSON if rng.random() < 0.6 else SUPPORT_THIRD_PERSON
    prompt = rng.choice(frames[lang]).format(name=name, order=order, issue=issue, Issue=issue[0].upper() + issue[1:])
    reply = SUPPORT_REPLY[lang].format(name=name, order=order, steps="\n".join(steps))
    return Example("support", lang, prompt, reply, {"name": name, "order": order, "problem": problem})


# ---------------------------------------------------------------- coding: any function name, the task said many ways
# family (its body is the course's, `data.CODING_FAMILIES`): ([EN "it ..." clauses], [EN imperatives],
# [RU "она ..." clauses], [RU imperatives])
CODING_BODIES = {family[0]: family[3] for family in [*data.CODING_FAMILIES, data.STRING_FAMILY]}
CODING_TASKS = {
    "scale": (
        ["multiplies every number in the list by {k}", "returns each value times {k}", "scales each item by {k}"],
        ["multiply each number by {k}", "times every element by {k}", "make each value {k} times bigger"],
        ["умножает каждое число списка на {k}", "возвращает каждое значение, умноженное на {k}"],
        ["умножь каждое число на {k}", "увеличь каждый элемент в {k} раз"],
    ),
    "shift": (
        ["adds {k} to every number in the list", "increases each element by {k}", "shifts all values up by {k}"],
        ["add {k} to each value", "increase every number by {k}", "put {k} on top of each item"],
        ["прибавляет {k} к каждому числу списка", "увеличивает каждый элемент на {k}"],
        ["прибавь {k} к каждому числу", "увеличь каждое значение на {k}"],
    ),
    "keep": (
        ["keeps only the numbers greater than {k}", "returns only the items bigger than {k}", "drops values up to {k}"],
        ["keep just the values above {k}", "filter out everything that is {k} or less", "leave only numbers over {k}"],
        ["оставляет только числа больше {k}", "возвращает только элементы больше {k}"],
        ["оставь только значения больше {k}", "убери все числа не больше {k}"],
    ),
    "total": (
        ["returns the sum of the list plus {k}", "adds up the numbers and adds {k}", "returns their total plus {k}"],
        ["sum the values and add {k}", "return the total plus {k}", "add everything up, then add {k}"],
        ["возвращает сумму списка плюс {k}", "складывает числа и прибавляет {k}"],
        ["сложи все числа и прибавь {k}", "верни сумму плюс {k}"],
    ),
    "repeat": (
        ["repeats the string {k} times", "returns the text repeated {k} times"],
        ["repeat the string {k} times", "return the word {k} times in a row"],
        ["повторяет строку {k} раз", "возвращает текст, повторённый {k} раз"],
        ["повтори строку {k} раз", "верни строку {k} раз подряд"],
    ),
}
CODING_CLAUSE_FRAMES = {
    "en": [
        "Write a Python function {fn}({arg}) that {task}.",
        "Could you implement `{fn}({arg})` in Python? It {task}.",
        "Python please: a function called {fn} that takes {arg} and {task}.",
        "I need {fn}({arg}), which {task}.",
        "Make a Python function `{fn}` with the parameter `{arg}`; it {task}.",
    ],
    "ru": [
        "Напиши функцию Python {fn}({arg}), которая {task}.",
        "Реализуй `{fn}({arg})` на Python: она {task}.",
        "Нужна функция {fn}, принимает {arg} и {task}.",
        "Сделай на питоне функцию `{fn}` с параметром `{arg}`, она {task}.",
    ],
}
CODING_IMPERATIVE_FRAMES = {
    "en": [
        "i need a python func {fn}({arg}) - it should {task}",
        "def {fn}({arg}): {task}. Write it in Python.",
        "Python function {fn}({arg}): {task}.",
        "Write {fn}({arg}) to {task}.",
    ],
    "ru": [
        "нужна функция на python {fn}({arg}) — {task}",
        "def {fn}({arg}): {task}. Напиши на Python.",
        "Функция Python {fn}({arg}): {task}.",
    ],
}
ARG_NAMES = ["nums", "items", "values", "data", "xs", "numbers", "lst", "amounts", "marks", "sizes", "readings"]
STRING_ARGS = ["s", "text", "word", "line", "phrase", "label"]


def varied_coding(rng: random.Random, lang: str) -> Example:
    """A request for one small function under any name, answered with its code in the course's format."""
    ent = RealNames(rng, lang)
    family = rng.choice(sorted(CODING_TASKS))
    clauses_en, imps_en, clauses_ru, imps_ru = CODING_TASKS[family]
    k = rng.randint(2, 12) if rng.random() < 0.7 else rng.randint(13, 500)
    if family == "repeat":
        k = rng.randint(2, 9)
    pool = STRING_ARGS if family == "repeat" else ARG_NAMES
    arg = rng.choice(pool) if rng.random() < 0.6 else ent.identifier()
    fn = ent.identifier()
    while fn == arg:
        fn = ent.identifier()
    imperative = rng.random() < 0.4
    clauses = (imps_en if imperative else clauses_en) if lang == "en" else (imps_ru if imperative else clauses_ru)
    frames = (CODING_IMPERATIVE_FRAMES if imperative else CODING_CLAUSE_FRAMES)[lang]
    prompt = rng.choice(frames).format(fn=fn, arg=arg, task=rng.choice(clauses).format(k=k))
    code = f"def {fn}({arg}):\n    {CODING_BODIES[family].format(k=k, arg=arg)}"
    return Example("coding", lang, prompt, code, {"function": fn})


VARIED: dict[str, Callable[[random.Random, str], Example]] = {
    "json": varied_json,
    "support": varied_support,
    "coding": varied_coding,
}


def varied_rows(domain: str, n: int, seed: int = 0) -> list[dict]:
    """`n` prompt/completion rows of `domain` in varied phrasings, alternating English and Russian."""
    if domain not in VARIED:
        raise ValueError(
            tr(
                en=f"No varied rows for {domain!r}; there are: {', '.join(VARIED)}.",
                ru=f"Разнообразных строк для {domain!r} нет; они есть для: {', '.join(VARIED)}.",
            )
        )
    rng = random.Random(f"varied/{domain}/{seed}")
    return [VARIED[domain](rng, LANGS[i % 2]).prompt_completion() for i in range(n)]


def fresh_rows(domain: str, n: int, seed: int = 0) -> list[dict]:
    """The course's train rows with every name, town, order number and function name made up (syllables).

    The templates stay the course's, only the entities change, so the adapter cannot succeed by recalling a pool
    (or by deriving a function name from its task) and must copy from the prompt.
    """
    rng = random.Random(f"fresh/{domain}/{seed}")
    rows = []
    for i, ex in enumerate(data.examples(domain, n, "train", seed)):
        ent = Entities(rng, LANGS[i % 2])
        prompt, response = ex.prompt, ex.response
        if domain == "json":
            fields = ex.expected["fields"]
            swaps = {"name": ent.person, "city": ent.place, "product": ent.product}
            new = {k: (swaps[k]() if k in swaps else v) for k, v in fields.items()}
            if "order_id" in new:
                new["order_id"] = int(ent.number(3, 7))
            if "email" in new:
                new["email"] = ent.email(new["name"])
            for k, v in fields.items():
                prompt = prompt.replace(str(v), str(new[k]))
            response = json.dumps(new, ensure_ascii=False)
        elif domain == "support":
            name, order = ent.person(), ent.number(4, 7)
            for old, fresh in ((ex.expected["name"], name), (ex.expected["order"], order)):
                prompt, response = prompt.replace(old, fresh), response.replace(old, fresh)
        else:
            fn, arg = ex.expected["function"], re.search(r"def \w+\((\w+)\)", ex.response).group(1)
            new_fn, new_arg = ent.identifier(), rng.choice([ent.identifier(), "xs", "values", "data", "s"])
            if new_fn == new_arg:
                new_arg += "_in"
            for old, fresh in ((fn, new_fn), (arg, new_arg)):
                pattern = re.compile(rf"\b{re.escape(old)}\b")
                prompt, response = pattern.sub(fresh, prompt), pattern.sub(fresh, response)
        rows.append(replace(ex, prompt=prompt, response=response).prompt_completion())
    return rows


# What the shipped tiny adapters train on: learners' phrasings, the course's templates with made-up entities, and
# the course's own rows (so its template held-out sets, and pool names, stay right).
SHIPPED_MIX = {"varied": 0.4, "fresh": 0.3, "course": 0.3}


def shipped_rows(domain: str, n: int, seed: int = 0) -> list[dict]:
    """The shipped adapters' `n` train rows of `domain`, drawn by `SHIPPED_MIX` (the trainer shuffles them)."""
    n_varied, n_course = round(n * SHIPPED_MIX["varied"]), round(n * SHIPPED_MIX["course"])
    return (
        varied_rows(domain, n_varied, seed)
        + fresh_rows(domain, n - n_varied - n_course, seed)
        + data.sft_rows(domain, n_course, "train", seed + 1)
    )
