"""Copy-heavy pretraining text for the tiny base: made-up entities that must be repeated later (EN + RU).

Names, cities, ids and function names are built from syllables, so no pool can be memorised: the only way to
predict their second mention is to copy the first. Frames are composed from parts (openers, clauses in random
order, cues) so the skill is tied to no single phrasing. Nothing here is a course instruction prompt: text is
followed by its JSON, a letter by its reply, a description by its code, as they would be in a document.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable

from .. import data

LANGS = data.LANGS

# ---------------------------------------------------------------- entities
EN_ONSETS = [
    "b",
    "br",
    "c",
    "ch",
    "d",
    "dr",
    "f",
    "fl",
    "g",
    "gr",
    "h",
    "j",
    "k",
    "kl",
    "l",
    "m",
    "n",
    "p",
    "pr",
    "qu",
    "r",
    "s",
    "sh",
    "sk",
    "st",
    "t",
    "th",
    "tr",
    "v",
    "w",
    "y",
    "z",
]
EN_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ou", "ie", "y"]
EN_CODAS = ["", "", "", "n", "r", "l", "s", "m", "nd", "rt", "x", "th", "ck", "ll"]
RU_ONSETS = [
    "б",
    "в",
    "г",
    "д",
    "ж",
    "з",
    "к",
    "л",
    "м",
    "н",
    "п",
    "р",
    "с",
    "т",
    "ф",
    "х",
    "ц",
    "ч",
    "ш",
    "бр",
    "гр",
    "др",
    "кр",
    "ст",
    "тр",
    "св",
    "зл",
    "пл",
]
RU_VOWELS = ["а", "о", "е", "и", "у", "а", "о", "я", "ю", "ы", "ё"]
RU_CODAS = ["", "", "", "н", "р", "л", "в", "с", "м", "й", "к"]
EN_PLACE_SUFFIX = ["", "", "ton", "burg", "ford", "ville", "mouth", "stad", "ia", "port", "wick"]
RU_PLACE_SUFFIX = ["", "", "ск", "ово", "ино", "град", "поль", "ань", "ец"]
RU_SURNAME_SUFFIX = ["ов", "ев", "ин", "ский", "енко", "ук", ""]

# Every name the course's own data can produce: a generated entity equal to one of these is drawn again.
COURSE_POOLS = frozenset(
    data.EN_FIRST
    + data.EN_LAST
    + data.RU_FIRST
    + data.RU_LAST
    + data.EN_CITIES
    + data.RU_CITIES
    + data.EN_PRODUCTS
    + data.RU_PRODUCTS
    + data.CODE_NOUNS
    + data.CODE_WORDS
)

EN_WORDS = [
    "add",
    "get",
    "make",
    "count",
    "find",
    "sort",
    "clean",
    "merge",
    "split",
    "join",
    "load",
    "save",
    "check",
    "build",
    "parse",
    "format",
    "round",
    "trim",
    "pick",
    "drop",
    "swap",
    "mark",
    "fill",
    "send",
    "list",
    "table",
    "row",
    "cell",
    "file",
    "user",
    "order",
    "item",
    "price",
    "tax",
    "fee",
    "day",
    "week",
    "month",
    "year",
    "time",
    "temp",
    "color",
    "size",
    "box",
    "page",
    "line",
    "word",
    "name",
    "city",
    "total",
    "avg",
    "max",
    "min",
    "first",
    "last",
    "next",
    "old",
    "new",
    "big",
    "small",
    "raw",
    "safe",
]
PRODUCT_WORDS = {
    "en": [
        "mug",
        "umbrella",
        "scarf",
        "sofa",
        "drill",
        "guitar",
        "pillow",
        "mirror",
        "helmet",
        "bicycle",
        "stapler",
        "teapot",
        "wallet",
        "tent",
        "globe",
        "clock",
        "vase",
        "candle",
    ],
    "ru": [
        "кружка",
        "зонт",
        "шарф",
        "диван",
        "дрель",
        "гитара",
        "подушка",
        "зеркало",
        "шлем",
        "велосипед",
        "степлер",
        "заварник",
        "кошелёк",
        "палатка",
        "глобус",
        "часы",
        "ваза",
    ],
}


class Entities:
    """Draws made-up entities for one document; never a course pool name nor a `banned` string."""

    def __init__(self, rng: random.Random, lang: str, banned: frozenset[str] = frozenset()):
        self.rng, self.lang, self.banned = rng, lang, banned

    def _word(self, lo: int = 2, hi: int = 3) -> str:
        r = self.rng
        on, vo, co = (EN_ONSETS, EN_VOWELS, EN_CODAS) if self.lang == "en" else (RU_ONSETS, RU_VOWELS, RU_CODAS)
        parts = [r.choice(on) + r.choice(vo) for _ in range(r.randint(lo, hi))]
        if r.random() < 0.3:
            parts[0] = r.choice(vo)
        return "".join(parts) + r.choice(co)

    def _fresh(self, make: Callable[[], str]) -> str:
        while True:
            value = make()
            if value not in self.banned and not any(w in COURSE_POOLS for w in value.split()):
                return value

    def first(self) -> str:
        """A made-up first name."""
        return self._fresh(lambda: self._word(1, 3).capitalize())

    def last(self, female: bool = False) -> str:
        """A made-up surname (Russian ones end like surnames do)."""
        if self.lang == "en":
            return self._fresh(lambda: self._word(1, 3).capitalize())
        suffix = self.rng.choice(RU_SURNAME_SUFFIX)
        tail = {"ов": "ова", "ев": "ева", "ин": "ина", "ский": "ская"}.get(suffix, suffix) if female else suffix
        return self._fresh(lambda: (self._word(1, 2) + tail).capitalize())

    def person(self) -> str:
        """A made-up full name (sometimes just one or three words)."""
        female = self.rng.random() < 0.5

        def make() -> str:
            first = self.first()
            if self.lang == "ru" and female and not first.endswith(("а", "я")):
                first += "а"
            roll = self.rng.random()
            if roll < 0.1:
                return first
            if roll < 0.15:
                return f"{first} {self.first()} {self.last(female)}"
            return f"{first} {self.last(female)}"

        return self._fresh(make)

    def place(self) -> str:
        """A made-up town."""
        sfx = EN_PLACE_SUFFIX if self.lang == "en" else RU_PLACE_SUFFIX
        return self._fresh(lambda: (self._word(1, 3) + self.rng.choice(sfx)).capitalize())

    def number(self, lo: int = 2, hi: int = 6) -> str:
        """A number of lo..hi digits, no leading zero."""
        n = self.rng.randint(lo, hi)
        return str(self.rng.randint(10 ** (n - 1), 10**n - 1))

    def code(self) -> str:
        """An identifier such as 'KX-4821' or 'A7731'."""
        r = self.rng
        letters = "".join(r.choice("ABCDEFGHJKLMNPRSTUVWXZ") for _ in range(r.randint(1, 3)))
        return self._fresh(lambda: f"{letters}{r.choice(['-', '', '-', '/'])}{self.number(3, 6)}")

    def email(self, person: str) -> str:
        """An address made from a Latin name, or from syllables for a Cyrillic one."""
        words = person.lower().split() if person.isascii() else [self._latin_word(), self._latin_word()]
        host = self._latin_word() + self.rng.choice([".com", ".org", ".net", ".ru", ".io"])
        return f"{self.rng.choice(['.', '_', '']).join(words[:2])}@{host}"

    def _latin_word(self) -> str:
        return Entities(self.rng, "en")._word(1, 2)

    def product(self) -> str:
        """A product: a made-up brand and a common noun."""
        return self._fresh(lambda: f"{self._word(1, 2).capitalize()} {self.rng.choice(PRODUCT_WORDS[self.lang])}")

    def company(self) -> str:
        """A made-up company."""
        kind = self.rng.choice(
            ["Ltd", "Inc", "Group", "Labs", "& Co"] if self.lang == "en" else ["ООО", "АО", "Групп", "и партнёры"]
        )
        return self._fresh(
            lambda: (
                f"{kind} «{self._word(2, 3).capitalize()}»"
                if kind in ("ООО", "АО")
                else f"{self._word(2, 3).capitalize()} {kind}"
            )
        )

    def identifier(self) -> str:
        """A snake_case function or variable name from real words and syllables."""
        r = self.rng

        def make() -> str:
            return "_".join(
                r.choice(EN_WORDS) if r.random() < 0.6 else Entities(r, "en")._word(1, 2)
                for _ in range(r.randint(1, 3))
            )

        return self._fresh(make)


# ---------------------------------------------------------------- frames (EN, RU)
INTRO = {
    "en": [
        "My name is {p}.",
        "I am {p}.",
        "This is {p} writing.",
        "{p} here.",
        "Meet {p}.",
        "Our new neighbour is called {p}.",
        "The letter was signed by {p}.",
        "Everyone calls her {p}.",
        "A man named {p} came in.",
        "The winner this year is {p}.",
        "Say hello to {p}!",
        "Yesterday I met {p}.",
        "The author of the report is {p}.",
        "Speaker: {p}.",
    ],
    "ru": [
        "Меня зовут {p}.",
        "Я {p}.",
        "Пишет {p}.",
        "На связи {p}.",
        "Знакомьтесь: {p}.",
        "Нашего нового соседа зовут {p}.",
        "Письмо подписал(а) {p}.",
        "Все зовут её {p}.",
        "Вошёл человек по имени {p}.",
        "Победитель этого года — {p}.",
        "Передай привет: {p}!",
        "Вчера я встретил(а) {p}.",
        "Автор отчёта — {p}.",
        "Докладчик: {p}.",
    ],
}
RECALL = {
    "en": [
        "Later, {p} called again.",
        "Everyone thanked {p}.",
        "So {p} went home.",
        "We wrote back to {p}.",
        "In the end {p} agreed.",
        "The parcel for {p} is ready.",
        "Nobody knew {p} before.",
        "Thanks, {p}!",
        "Good luck, {p}.",
        "Dear {p}, welcome.",
        "The prize went to {p}.",
        "Who signed it? {p}.",
        "Name: {p}.",
        "{p} smiled.",
    ],
    "ru": [
        "Потом {p} позвонил(а) снова.",
        "Все поблагодарили: {p}.",
        "И {p} пошёл домой.",
        "Мы ответили: {p}, спасибо.",
        "В конце концов {p} согласился.",
        "Посылка для {p} готова.",
        "Спасибо, {p}!",
        "Удачи, {p}.",
        "Уважаемый(ая) {p}, добро пожаловать.",
        "Приз получил(а) {p}.",
        "Кто подписал? {p}.",
        "Имя: {p}.",
        "{p} улыбнулся.",
    ],
}
PLACE_IN = {
    "en": [
        "I live in {c}.",
        "The office is in {c}.",
        "She moved to {c} last year.",
        "We met in {c}.",
        "The parcel goes to {c}.",
        "Home town: {c}.",
        "The trip ended in {c}.",
    ],
    "ru": [
        "Я живу в городе {c}.",
        "Офис находится в городе {c}.",
        "Она переехала в {c} в прошлом году.",
        "Мы встретились в городе {c}.",
        "Посылка едет в {c}.",
        "Родной город: {c}.",
        "Поездка закончилась в городе {c}.",
    ],
}
PLACE_BACK = {
    "en": [
        "Back in {c}, it rained.",
        "The weather in {c} is mild.",
        "City: {c}.",
        "The road to {c} is long.",
        "From {c} with love.",
    ],
    "ru": [
        "В городе {c} шёл дождь.",
        "Погода в городе {c} мягкая.",
        "Город: {c}.",
        "Дорога в {c} длинная.",
        "Привет из города {c}.",
    ],
}
NUM_IN = {
    "en": [
        "The order number is {n}.",
        "Ticket {n} was opened.",
        "My number is {n}.",
        "Room {n}, please.",
        "Reference: {n}.",
        "It cost {n} coins.",
        "Code {n} was sent.",
    ],
    "ru": [
        "Номер заказа {n}.",
        "Открыта заявка {n}.",
        "Мой номер {n}.",
        "Комната {n}, пожалуйста.",
        "Ссылка: {n}.",
        "Это стоило {n} монет.",
        "Отправлен код {n}.",
    ],
}
NUM_BACK = {
    "en": ["Again: {n}.", "Number {n} is confirmed.", "About {n}: done.", "We checked {n}.", "So the number was {n}."],
    "ru": [
        "Ещё раз: {n}.",
        "Номер {n} подтверждён.",
        "По номеру {n}: готово.",
        "Мы проверили {n}.",
        "Итак, номер был {n}.",
    ],
}
FILLER = {
    "en": [
        "It was a quiet day.",
        "The tea was hot.",
        "Nothing else happened.",
        "The sun came out.",
        "Trains were late again.",
        "The shop opens at nine.",
        "It was a long week.",
        "Then it snowed.",
    ],
    "ru": [
        "День был тихий.",
        "Чай был горячий.",
        "Больше ничего не случилось.",
        "Вышло солнце.",
        "Поезда опять опаздывали.",
        "Магазин открывается в девять.",
        "Неделя была длинной.",
        "Потом пошёл снег.",
    ],
}
QA = {
    "en": [
        ("Who wrote this?", "{p}"),
        ("What is the name?", "{p}"),
        ("Which city?", "{c}"),
        ("Where?", "{c}"),
        ("What number?", "{n}"),
        ("The number, again?", "{n}"),
        ("Name:", "{p}"),
        ("City:", "{c}"),
        ("Number:", "{n}"),
    ],
    "ru": [
        ("Кто это написал?", "{p}"),
        ("Как зовут?", "{p}"),
        ("Какой город?", "{c}"),
        ("Где?", "{c}"),
        ("Какой номер?", "{n}"),
        ("Номер ещё раз?", "{n}"),
        ("Имя:", "{p}"),
        ("Город:", "{c}"),
        ("Номер:", "{n}"),
    ],
}


def story(rng: random.Random, lang: str, ent: Entities) -> str:
    """Sentences that introduce a person, a town and a number, then mention them again in other frames."""
    p, c, n = ent.person(), ent.place(), ent.number()
    first = [
        rng.choice(INTRO[lang]).format(p=p),
        rng.choice(PLACE_IN[lang]).format(c=c),
        rng.choice(NUM_IN[lang]).format(n=n),
    ]
    rng.shuffle(first)
    later = (
        [f.format(p=p) for f in rng.sample(RECALL[lang], rng.randint(1, 3))]
        + [f.format(c=c) for f in rng.sample(PLACE_BACK[lang], rng.randint(0, 2))]
        + [f.format(n=n) for f in rng.sample(NUM_BACK[lang], rng.randint(0, 2))]
        + rng.sample(FILLER[lang], rng.randint(0, 2))
    )
    rng.shuffle(later)
    text = " ".join(first + later)
    for q, a in rng.sample(QA[lang], rng.randint(0, 3)):
        text += f"\n{q} {a.format(p=p, c=c, n=n)}"
    return text


FIELD_NAMES = {
    "en": {"name": "name", "city": "city", "id": "id", "phone": "phone", "email": "e-mail"},
    "ru": {"name": "имя", "city": "город", "id": "номер", "phone": "телефон", "email": "почта"},
}
LOOKUP = {
    "en": [
        ("Where does {name} live?", "city"),
        ("What is {name}'s id?", "id"),
        ("Who has id {id}?", "name"),
        ("Who lives in {city}?", "name"),
        ("Phone of {name}:", "phone"),
        ("{name} ->", "city"),
        ("Whose e-mail is {email}?", "name"),
        ("E-mail of {name}?", "email"),
        ("{id} belongs to", "name"),
    ],
    "ru": [
        ("Где живёт {name}?", "city"),
        ("Какой номер у {name}?", "id"),
        ("У кого номер {id}?", "name"),
        ("Кто живёт в городе {city}?", "name"),
        ("Телефон {name}:", "phone"),
        ("{name} ->", "city"),
        ("Чья почта {email}?", "name"),
        ("Почта {name}?", "email"),
        ("{id} принадлежит", "name"),
    ],
}


def directory(rng: random.Random, lang: str, ent: Entities) -> str:
    """A small table of people in one of several layouts, then lookups forward and backward."""
    rows = []
    for _ in range(rng.randint(2, 5)):
        name = ent.person()
        rows.append(
            {"name": name, "city": ent.place(), "id": ent.code(), "phone": ent.number(5, 7), "email": ent.email(name)}
        )
    keys = rng.sample(["name", "city", "id", "phone", "email"], rng.randint(2, 4))
    if "name" not in keys:
        keys[0] = "name"
    labels = FIELD_NAMES[lang]
    layout = rng.randrange(5)
    if layout == 0:
        lines = [" — ".join(r[k] for k in keys) for r in rows]
    elif layout == 1:
        lines = ["; ".join(f"{labels[k]}: {r[k]}" for k in keys) for r in rows]
    elif layout == 2:
        lines = [json.dumps({k: r[k] for k in keys}, ensure_ascii=False) for r in rows]
    elif layout == 3:
        lines = ["| " + " | ".join(labels[k] for k in keys) + " |"] + [
            "| " + " | ".join(r[k] for k in keys) + " |" for r in rows
        ]
    else:
        lines = [f"{r[keys[0]]} ({', '.join(r[k] for k in keys[1:])})" for r in rows]
    out = "\n".join(lines) + "\n"
    usable = [(q, a) for q, a in LOOKUP[lang] if a in keys and all(f"{{{k}}}" not in q or k in keys for k in labels)]
    for _ in range(rng.randint(2, 4)):
        if not usable:
            break
        q, a = rng.choice(usable)
        r = rng.choice(rows)
        out += f"\n{q.format(**r)} {r[a]}"
    return out


CLAUSES = {
    "en": {
        "name": ["{v}", "my name is {v}", "this is {v}", "customer {v}", "{v} here", "signed, {v}"],
        "age": ["{v} years old", "age {v}", "aged {v}", "turned {v} this year"],
        "city": ["lives in {v}", "from {v}", "based in {v}", "moved to {v}", "city: {v}"],
        "email": ["e-mail {v}", "write to {v}", "mail: {v}", "reachable at {v}"],
        "phone": ["phone {v}", "call {v}", "tel. {v}"],
        "order_id": ["order {v}", "order number {v}", "order #{v}", "re: order {v}"],
        "product": ["bought a {v}", "the {v}", "item: {v}", "ordered the {v}"],
        "quantity": ["{v} pieces", "quantity {v}", "{v} of them"],
        "company": ["works at {v}", "employer: {v}", "at {v}"],
        "code": ["id {v}", "badge {v}", "ref {v}"],
    },
    "ru": {
        "name": ["{v}", "меня зовут {v}", "это {v}", "клиент {v}", "на связи {v}", "с уважением, {v}"],
        "age": ["{v} лет", "возраст {v}", "исполнилось {v}"],
        "city": ["живёт в городе {v}", "из города {v}", "город {v}", "переехал(а) в {v}"],
        "email": ["почта {v}", "пишите на {v}", "e-mail: {v}"],
        "phone": ["телефон {v}", "звоните {v}", "тел. {v}"],
        "order_id": ["заказ {v}", "номер заказа {v}", "заказ №{v}", "по заказу {v}"],
        "product": ["купил(а) {v}", "товар: {v}", "заказал(а) {v}"],
        "quantity": ["{v} шт.", "количество {v}", "{v} штук"],
        "company": ["работает в {v}", "компания {v}"],
        "code": ["id {v}", "пропуск {v}", "код {v}"],
    },
}
JSON_CUES = {
    "en": ["\n", "\nJSON: ", "\nAs JSON:\n", "\nRecord: ", "\n=> ", "\nStructured: ", "\n```json\n"],
    "ru": ["\n", "\nJSON: ", "\nВ виде JSON:\n", "\nЗапись: ", "\n=> ", "\nСтруктура: ", "\n```json\n"],
}
FIELD_SETS = [
    ("name", "age", "city"),
    ("order_id", "product", "quantity"),
    ("name", "email"),
    ("name", "city"),
    ("name", "phone", "city"),
    ("name", "company", "email"),
    ("order_id", "name"),
    ("name", "code"),
    ("product", "order_id"),
    ("name", "age"),
    ("city", "name", "order_id"),
]


def record_values(rng: random.Random, ent: Entities, fields: Iterable[str]) -> dict:
    """Values for the chosen fields; ages, quantities and order ids are ints, as in the course's records."""
    name = ent.person()
    make = {
        "name": lambda: name,
        "age": lambda: rng.randint(16, 95),
        "city": ent.place,
        "email": lambda: ent.email(name),
        "phone": lambda: ent.number(6, 7),
        "order_id": lambda: int(ent.number(3, 6)),
        "product": ent.product,
        "quantity": lambda: rng.randint(1, 40),
        "company": ent.company,
        "code": ent.code,
    }
    return {f: make[f]() for f in fields}


def to_json(rng: random.Random, lang: str, ent: Entities) -> str:
    """A sentence made of clauses in random order, followed by the JSON of its facts."""
    out = []
    for _ in range(rng.randint(1, 3)):
        fields = list(rng.choice(FIELD_SETS))
        record = record_values(rng, ent, fields)
        rng.shuffle(fields)
        clauses = [rng.choice(CLAUSES[lang][f]).format(v=record[f]) for f in fields]
        sentence = rng.choice([", ", "; ", ", ", " — "]).join(clauses)
        sentence = sentence[0].upper() + sentence[1:] + rng.choice([".", ".", "!", ""])
        keys = fields if rng.random() < 0.5 else list(record)
        obj = {k: record[k] for k in keys}
        cue = rng.choice(JSON_CUES[lang])
        body = json.dumps(obj, ensure_ascii=False)
        out.append(f"{sentence}{cue}{body}" + ("\n```" if cue.endswith("```json\n") else ""))
    return "\n\n".join(out)


GREET_IN = {
    "en": [
        "Hi, I'm {p}.",
        "Hello, this is {p}.",
        "{p} here.",
        "Good morning! My name is {p}.",
        "Hey,",
        "Hello,",
        "Dear support,",
    ],
    "ru": [
        "Здравствуйте, я {p}.",
        "Добрый день, это {p}.",
        "На связи {p}.",
        "Привет! Меня зовут {p}.",
        "Здравствуйте,",
        "Добрый день!",
        "Уважаемая поддержка,",
    ],
}
ORDER_MENTION = {
    "en": [
        "Order {n} never arrived.",
        "My order {n} came broken.",
        "I paid for order #{n} twice.",
        "Where is order {n}?",
        "The parcel {n} is late.",
        "I want to return order {n}.",
    ],
    "ru": [
        "Заказ {n} так и не пришёл.",
        "Мой заказ {n} пришёл сломанным.",
        "Я дважды оплатил(а) заказ №{n}.",
        "Где мой заказ {n}?",
        "Посылка {n} опаздывает.",
        "Хочу вернуть заказ {n}.",
    ],
}
SIGN_OFF = {
    "en": ["Thanks, {p}", "Regards,\n{p}", "— {p}", "{p}", "Best, {p}"],
    "ru": ["Спасибо, {p}", "С уважением,\n{p}", "— {p}", "{p}", "Всего доброго, {p}"],
}
REPLY_OPEN = {
    "en": ["Hello, {p}!", "Dear {p},", "Hi {p},", "Good afternoon, {p}."],
    "ru": ["Здравствуйте, {p}!", "Уважаемый(ая) {p},", "Добрый день, {p}!", "{p}, здравствуйте."],
}
REPLY_BODY = {
    "en": [
        "Thank you for writing about order {n}.",
        "We are looking into order {n} now.",
        "Your order {n} is our priority.",
        "Sorry about order {n}.",
    ],
    "ru": [
        "Спасибо, что написали о заказе {n}.",
        "Мы уже проверяем заказ {n}.",
        "Ваш заказ {n} в приоритете.",
        "Приносим извинения за заказ {n}.",
    ],
}
REPLY_SEP = ["\n---\n", "\n\nReply:\n", "\n\n> ", "\n\n", "\n===\n"]


def letter_reply(rng: random.Random, lang: str, ent: Entities) -> str:
    """A customer's message (name anywhere in it) and a reply that greets them and repeats the order."""
    p, n = ent.person(), ent.number(4, 6)
    greet = rng.choice(GREET_IN[lang]).format(p=p)
    parts = [greet, rng.choice(ORDER_MENTION[lang]).format(n=n)] + rng.sample(FILLER[lang], rng.randint(0, 1))
    if "{p}" not in [g for g in GREET_IN[lang] if g.format(p=p) == greet][0] or rng.random() < 0.3:
        parts.append(rng.choice(SIGN_OFF[lang]).format(p=p))
    reply = rng.choice(REPLY_OPEN[lang]).format(p=p) + "\n" + rng.choice(REPLY_BODY[lang]).format(n=n)
    return " ".join(parts[:-1]) + ("\n" if "\n" not in parts[-1] else " ") + parts[-1] + rng.choice(REPLY_SEP) + reply


BODIES = [
    ("return [x * {k} for x in {a}]", "multiplies each value by {k}", "умножает каждое значение на {k}"),
    ("return [x + {k} for x in {a}]", "adds {k} to each value", "прибавляет {k} к каждому значению"),
    ("return [x for x in {a} if x > {k}]", "keeps values above {k}", "оставляет значения больше {k}"),
    ("return sum({a}) + {k}", "sums the values and adds {k}", "складывает значения и прибавляет {k}"),
    ("return {a} * {k}", "repeats it {k} times", "повторяет это {k} раз"),
    ("return len({a}) + {k}", "counts the values plus {k}", "считает значения плюс {k}"),
    ("return max({a})", "finds the largest value", "находит наибольшее значение"),
    ("return {a}[::-1]", "reverses it", "разворачивает это"),
]
SIG_DESC = {
    "en": [
        "The helper {f} takes {a} and {d}.",
        "We need {f}({a}): it {d}.",
        "Function {f} — {d}.",
        "# {f}({a}) {d}",
        "Next, {f}. Argument: {a}. It {d}.",
        "Call it {f}; the input is {a}.",
    ],
    "ru": [
        "Помощник {f} принимает {a} и {d}.",
        "Нужна {f}({a}): она {d}.",
        "Функция {f} — {d}.",
        "# {f}({a}) {d}",
        "Дальше {f}. Аргумент: {a}. Она {d}.",
        "Назовём её {f}; вход — {a}.",
    ],
}


def signature(rng: random.Random, lang: str, ent: Entities) -> str:
    """A description naming a function and its argument, then the code that defines and calls it."""
    out = []
    for _ in range(rng.randint(1, 3)):
        f, a = ent.identifier(), rng.choice([ent.identifier(), rng.choice(["x", "xs", "data", "nums", "s", "values"])])
        body, den, dru = rng.choice(BODIES)
        k = rng.randint(2, 99)
        desc = rng.choice(SIG_DESC[lang]).format(f=f, a=a, d=(den if lang == "en" else dru).format(k=k))
        code = f"def {f}({a}):\n    {body.format(a=a, k=k)}"
        if rng.random() < 0.4:
            code += f"\n\nprint({f}([1, 2, 3]))"
        out.append(f"{desc}\n{code}")
    return "\n\n".join(out)


def induction(rng: random.Random, lang: str, ent: Entities, vocab: list[str]) -> str:
    """Random spans that recur: a run of words or entities, something else, then the same run again."""
    pool = [ent.person(), ent.place(), ent.number(), ent.code()] + rng.sample(vocab, min(len(vocab), 8))
    span = " ".join(rng.choice(pool) for _ in range(rng.randint(2, 6)))
    noise = " ".join(rng.sample(vocab, min(len(vocab), rng.randint(3, 12))))
    sep = rng.choice(["\n", " ... ", ". Again: ", " | ", ". Ещё раз: ", " = "])
    return f"{span} {noise}{sep}{span}"


def word_vocab(tok) -> list[str]:
    """The tokenizer's word-like tokens (Latin or Cyrillic, 3+ letters), for broad use of the vocabulary."""
    words = set()
    for piece in tok.get_vocab():
        text = tok.convert_tokens_to_string([piece]).strip()
        if len(text) >= 3 and text.isalpha() and text not in COURSE_POOLS:
            words.add(text)
    return sorted(words)


KINDS = ((story, 3), (directory, 2), (to_json, 3), (letter_reply, 2), (signature, 2))


def documents(
    n: int,
    seed: int = 0,
    vocab: list[str] | None = None,
    course_share: float = 0.3,
    banned: frozenset[str] = frozenset(),
    induction_share: float = 0.12,
) -> list[str]:
    """`n` documents: `course_share` of the course's own corpus, the rest copy drills (of which `induction_share`
    are bare repeated spans, `induction`); EN/RU alternate."""
    from . import corpus

    for name, share in (("course_share", course_share), ("induction_share", induction_share)):
        if not 0 <= share <= 1:
            raise ValueError(f"{name} must be within [0, 1], got {share}")
    rng = random.Random(f"copy-corpus/{seed}")
    n_course = round(n * course_share)
    course = corpus.documents(n_course, seed) if n_course else []
    makers = [maker for maker, weight in KINDS for _ in range(weight)]
    vocab = vocab or ["alpha", "beta", "gamma", "delta", "река", "окно", "лес", "table", "green"]
    docs = []
    for i in range(n - n_course):
        lang = LANGS[i % 2]
        ent = Entities(rng, lang, banned)
        if rng.random() < induction_share:
            docs.append(induction(rng, lang, ent, vocab))
        else:
            docs.append(rng.choice(makers)(rng, lang, ent))
    out = course + docs
    rng.shuffle(out)
    return out
