"""Train requests in many voices: each request composed from independent parts, so no fixed phrasing names a tool.

A request is an opener, a verb, a reference to the text, the parameters (each said several ways, in either
order), the text (after a colon, on its own line, quoted, or before the instruction) and sometimes a closing word.
Only the parts that carry meaning — the verb, the parameters, the rule or template words — say which tool to call and
with what; filler and layout vary freely. Train only: dev and held-out draw nothing from here.
"""

from __future__ import annotations

import random

from ..data import side_stream
from .topics import varied_link, varied_topic

OPENERS = {
    "en": ["", "", "", "Please ", "Hi! ", "Hey, ", "Quick one: ", "Could you ", "Can you ", "I need you to "],
    "ru": ["", "", "", "Пожалуйста, ", "Привет! ", "Слушай, ", "Быстрый вопрос: ", "Задача: "],
}
ASKING = {"en": ("Could you ", "Can you "), "ru": ()}  # Russian asks with an infinitive: see TEMPLATE_INFINITIVES
CLOSERS = {
    "en": ["", "", "", " Thanks!", " Thank you.", " Cheers."],
    "ru": ["", "", "", " Спасибо!", " Заранее спасибо."],
}

# --- text_formatter ---------------------------------------------------------------------------------------------
WRAP_VERBS = {
    "en": ["wrap", "rewrap", "reflow", "format", "hard-wrap", "word-wrap", "lay out", "reformat", "line-wrap", "fit"],
    "ru": ["перенеси", "отформатируй", "переформатируй", "уложи", "оформи", "разбей на строки", "сверстай", "подгони"],
}
TEXT_OBJECTS = {
    "en": [
        "this",
        "this text",
        "my note",
        "the text below",
        "this paragraph",
        "the following",
        "this message",
        "my sentence",
        "this line",
        "the snippet",
    ],
    "ru": [
        "текст",
        "этот текст",
        "мою заметку",
        "текст ниже",
        "этот абзац",
        "следующее",
        "это сообщение",
        "эту фразу",
        "строку ниже",
        "фрагмент",
    ],
}
WIDTHS = {
    "en": [
        "at {w} characters",
        "to {w} columns",
        "to a width of {w}",
        "at width {w}",
        "to {w} chars",
        "so no line is longer than {w} characters",
        "with line length {w}",
        "at most {w} characters per line",
        "to fit {w} columns",
        "for a {w}-column screen",
        "to {w} characters wide",
        "into {w}-character lines",
    ],
    "ru": [
        "по ширине {w}",
        "по {w} символов",
        "в {w} колонок",
        "до {w} символов в строке",
        "шириной {w}",
        "в ширину {w} символов",
        "не длиннее {w} символов на строку",
        "под экран в {w} символов",
        "на {w} символов",
        "в строки по {w} знаков",
    ],
}
NO_INDENT = {
    "en": ["no indent", "without indentation", "indent 0", "with no indentation", "zero indent", "no indentation"],
    "ru": ["без отступа", "отступ 0", "без отступов", "отступ не нужен", "с нулевым отступом"],
}
INDENTS = {
    "en": [
        "indent {n}",
        "a {n}-space indent",
        "indented by {n}",
        "indenting every line by {n} {sp}",
        "indentation {n}",
        "with {n} {sp} of indent",
        "an indent of {n}",
        "{n} {sp} in front of each line",
    ],
    "ru": [
        "отступ {n}",
        "с отступом {n}",
        "отступ в {n} {sp}",
        "отступ {n} {sp}",
        "с отступом в {n} {sp}",
        "каждая строка с отступом {n}",
        "{n} {sp} слева",
    ],
}
PARAM_JOINERS = {"en": [", ", " and ", ", ", "; ", " with "], "ru": [", ", " и ", ", ", "; "]}
TEXT_ENDINGS = {
    "en": [": {text}", ". Text: {text}", "\n{text}", ":\n{text}", " — {text}", ': "{text}"', "\n\n{text}"],
    "ru": [": {text}", ". Текст: {text}", "\n{text}", ":\n{text}", " — {text}", ": «{text}»", "\n\n{text}"],
}
TEXT_FIRST = {  # the text, then the instruction about it
    "en": ["{text}\n\n{V} that {P}.", "{text}\n{V} it {P}, please.", "Here's my text: {text}\nPlease {v} it {P}."],
    "ru": [
        "{text}\n\n{V} это {P}.",
        "{text}\n{V} его {P}, пожалуйста.",
        "Вот мой текст: {text}\nПожалуйста, {v} его {P}.",
    ],
}
PURPOSES = {
    "en": ["", "", "", " for my terminal", " for a narrow screen", " for a printout", " for an SMS"],
    "ru": ["", "", "", " для терминала", " для узкого экрана", " для распечатки", " для СМС"],
}

# --- content_validator ------------------------------------------------------------------------------------------
RULE_STATEMENTS = {  # how a person says each rule holds (third person, about the text)
    "en": {
        "non_empty": ["is not empty", "isn't blank", "has some content", "is non-empty", "is not an empty string"],
        "has_headings": [
            "has a heading",
            "contains a Markdown heading",
            "has a # title",
            "starts with a heading",
            "has at least one heading",
        ],
        "is_email": [
            "is an e-mail address",
            "is a valid email",
            "looks like a real email address",
            "is a proper email",
            "is a well-formed address",
        ],
        "valid_json": [
            "is valid JSON",
            "parses as JSON",
            "is well-formed JSON",
            "is correct JSON",
            "can be loaded as JSON",
        ],
        "no_trailing_spaces": [
            "has no trailing spaces",
            "has no trailing whitespace",
            "has no spaces at line ends",
            "doesn't end lines with spaces",
        ],
        "max_length": [
            "is at most {n} characters",
            "stays within {n} characters",
            "is {n} characters or fewer",
            "doesn't exceed {n} characters",
            "fits in {n} characters",
            "is no longer than {n} chars",
        ],
        "min_words": [
            "has at least {n} words",
            "is at least {n} words long",
            "has {n} or more words",
            "has no fewer than {n} words",
            "contains at least {n} words",
        ],
    },
    "ru": {
        "non_empty": ["не пустой", "не пуст", "содержит хоть что-то", "непустой", "не пустая строка"],
        "has_headings": [
            "содержит заголовок",
            "имеет заголовок",
            "начинается с заголовка",
            "есть заголовок #",
            "содержит заголовок Markdown",
        ],
        "is_email": [
            "является адресом почты",
            "корректный e-mail",
            "похож на настоящий адрес почты",
            "правильный адрес электронной почты",
            "валидный email",
        ],
        "valid_json": [
            "является корректным JSON",
            "парсится как JSON",
            "это валидный JSON",
            "правильный JSON",
            "читается как JSON",
        ],
        "no_trailing_spaces": [
            "без пробелов в конце строк",
            "не имеет хвостовых пробелов",
            "без лишних пробелов в конце",
            "не заканчивает строки пробелами",
        ],
        "max_length": [
            "не длиннее {n} символов",
            "укладывается в {n} символов",
            "не больше {n} символов",
            "не превышает {n} символов",
            "максимум {n} символов",
        ],
        "min_words": [
            "содержит не меньше {n} слов",
            "состоит хотя бы из {n} слов",
            "длиной от {n} слов",
            "не короче {n} слов",
            "содержит минимум {n} слов",
        ],
    },
}
CHECK_FRAMES = {  # {s}: the rules as statements about the text
    "en": [
        "check that {obj} {s}",
        "check whether {obj} {s}",
        "tell me if {obj} {s}",
        "confirm {obj} {s}",
        "verify that {obj} {s}",
        "make sure {obj} {s}",
        "see if {obj} {s}",
        "validate that {obj} {s}",
        "let me know whether {obj} {s}",
        "double-check that {obj} {s}",
    ],
    "ru": [
        "проверь, что {obj} {s}",
        "проверь, {obj} {s} или нет",
        "скажи, {obj} {s}?",
        "подтверди, что {obj} {s}",
        "убедись, что {obj} {s}",
        "посмотри, {obj} {s} или нет",
        "валидируй, что {obj} {s}",
        "скажи, правда ли, что {obj} {s}",
    ],
}
CHECK_OBJECTS = {
    "en": [
        "this",
        "this text",
        "the text",
        "my note",
        "the following",
        "this string",
        "my post",
        "the snippet",
        "this address",
        "the line below",
    ],
    "ru": [
        "текст",
        "этот текст",
        "моя заметка",
        "следующий текст",
        "эта строка",
        "мой пост",
        "фрагмент",
        "этот адрес",
        "строка ниже",
    ],
}
RULE_IDS_FRAMES = {  # people who know the tool: its name or its rule names
    "en": [
        "run content_validator with {ids} on: {text}",
        "validate with rules {ids}: {text}",
        "content_validator, rules {ids}, text: {text}",
        "check {ids} for: {text}",
    ],
    "ru": [
        "запусти content_validator с правилами {ids}: {text}",
        "проверь правила {ids}: {text}",
        "content_validator, правила {ids}, текст: {text}",
        "валидация ({ids}): {text}",
    ],
}
FORMATTER_IDS_FRAMES = {
    "en": [
        "run text_formatter with width {w} and indent {n} on: {text}",
        "text_formatter, width={w}, indent={n}: {text}",
    ],
    "ru": [
        "запусти text_formatter, width {w}, indent {n}: {text}",
        "text_formatter: ширина {w}, отступ {n}, текст: {text}",
    ],
}

# --- template_generator -----------------------------------------------------------------------------------------
TEMPLATE_WORDS = {  # what people call each template (EN with its article)
    "en": {
        "instruction": [
            "an instruction template",
            "an instruction prompt",
            "a prompt template",
            "an instruction/input/response template",
            "an Instruction/Input/Response skeleton",
            "a prompt scaffold",
            "a training prompt template",
            "an instruction-style prompt",
        ],
        "email": [
            "an email",
            "an e-mail template",
            "an email draft",
            "an email skeleton",
            "a mail template",
            "a letter template",
            "a message draft",
            "an e-mail",
        ],
        "bug_report": [
            "a bug report",
            "a bug ticket",
            "an issue report",
            "a defect report",
            "a bug template",
            "a bug report form",
            "a ticket for a bug",
        ],
        "meeting_notes": [
            "meeting notes",
            "meeting minutes",
            "minutes",
            "a meeting summary",
            "a notes template for a meeting",
            "a minutes template",
        ],
    },
    "ru": {
        "instruction": [
            "шаблон инструкции",
            "промпт-инструкцию",
            "шаблон промпта",
            "каркас промпта",
            "заготовку инструкции для модели",
            "шаблон instruction/input/response",
        ],
        "email": [
            "шаблон письма",
            "черновик письма",
            "письмо",
            "заготовку письма",
            "шаблон e-mail",
            "шаблон email-сообщения",
        ],
        "bug_report": [
            "баг-репорт",
            "шаблон баг-репорта",
            "отчёт об ошибке",
            "тикет об ошибке",
            "шаблон отчёта о баге",
            "заявку об ошибке",
        ],
        "meeting_notes": [
            "протокол встречи",
            "заметки встречи",
            "шаблон протокола",
            "итоги встречи",
            "шаблон заметок со встречи",
            "протокол совещания",
        ],
    },
}
TEMPLATE_VERBS = {
    "en": ["make", "create", "write", "draft", "prepare", "generate", "give me", "set up", "put together", "start"],
    "ru": ["сделай", "создай", "напиши", "составь", "подготовь", "сгенерируй", "дай", "набросай", "собери"],
}
TEMPLATE_INFINITIVES = {  # the same verbs after "можешь"
    "en": TEMPLATE_VERBS["en"],
    "ru": [
        "сделать",
        "создать",
        "написать",
        "составить",
        "подготовить",
        "сгенерировать",
        "дать",
        "набросать",
        "собрать",
    ],
}
TOPIC_LINKS = {  # how the topic follows the template words
    "en": [
        " about {topic}",
        " for {topic}",
        " on {topic}",
        " regarding {topic}",
        " concerning {topic}",
        ", topic: {topic}",
        " — topic: {topic}",
        " (topic: {topic})",
        " re: {topic}",
    ],
    "ru": [
        " на тему: {topic}",
        ", тема: {topic}",
        " — тема: {topic}",
        " (тема: {topic})",
        " на тему {topic}",
        ". Тема: {topic}",
    ],
}
TOPIC_ENDS = {"en": ["", ".", ".", "?", "!", ", please.", ", thanks."], "ru": ["", ".", ".", "!", ", пожалуйста."]}
TEMPLATE_FRAMES = {
    "en": [
        "{V} {L}{T}",
        "I need {L}{T}",
        "could I get {L}{T}",
        "can you {v} {L}{T}",
        "we need {L}{T}",
        "please {v} {L}{T}",
        "help me with {L}{T}",
    ],
    "ru": [
        "{V} {L}{T}",
        "хочу {L}{T}",
        "нужно сделать {L}{T}",
        "можешь {v} {L}{T}",
        "пожалуйста, {v} {L}{T}",
        "{V}, пожалуйста, {L}{T}",
    ],
}
TOPICS = {
    "en": [
        "the {item} recall",
        "moving the {town} warehouse",
        "hiring for the {town} team",
        "a welcome lunch for {name}",
        "the late {item} shipment",
        "a quarterly review with {name}",
        "login errors in the {item} app",
        "a refund for {name}",
        "the {town} conference",
        "a price change for the {item}",
        "missing invoices from {town}",
        "the {item} launch",
        "a broken {item} after the update",
        "the weekly sync with {name}",
        "the office party in {town}",
        "asking {name} for a deadline extension",
        "summarizing {item} reviews",
        "translating the {item} manual",
    ],
    "ru": [
        "отзыв партии, {item}",
        "переезд склада в город {town}",
        "найм в команду, {town}",
        "обед для новичка, {name}",
        "задержка поставки, {item}",
        "квартальный отчёт, {name}",
        "ошибки входа в приложение {item}",
        "возврат денег, {name}",
        "конференция в городе {town}",
        "новая цена, {item}",
        "пропавшие счета, {town}",
        "запуск продукта {item}",
        "еженедельная встреча, {name}",
        "корпоратив в городе {town}",
        "перевод инструкции, {item}",
        "сводка отзывов, {item}",
    ],
}
ABOUT_TOPICS = {  # Russian topics in the accusative, after "про", and clauses after "о том, как"
    "ru": [
        "переезд склада в город {town}",
        "задержку поставки, {item}",
        "отпуск в августе",
        "новую цену, {item}",
        "встречу в городе {town}",
        "возврат денег, {item}",
        "запуск продукта {item}",
        "отчёт за квартал",
        "поездку в город {town}",
        "ремонт офиса",
    ],
}
HOW_TOPICS = {
    "ru": ["{name} сдаёт проект", "прошла встреча в городе {town}", "сломался товар {item}", "вернуть товар в магазин"]
}


def capitalized(text: str) -> str:
    """`text` with its first letter upper-case."""
    return text[:1].upper() + text[1:]


def _spaces(lang: str, n: int) -> str:
    """'space' / 'пробел' agreed with its number (1 space, 2 spaces; 1 пробел, 2 пробела, 5 пробелов)."""
    if lang == "en":
        return "space" if n == 1 else "spaces"
    if n % 10 == 1 and n % 100 != 11:
        return "пробел"
    return "пробела" if n % 10 in (2, 3, 4) and n % 100 not in (12, 13, 14) else "пробелов"


def _opened(rng: random.Random, lang: str, core: str) -> tuple[str, bool]:
    """`core` (lower-case, starting with a verb) behind an opener; True when the opener made it a question."""
    opener = rng.choice(OPENERS[lang])
    core = capitalized(core) if opener.endswith("! ") else core
    return capitalized(opener + core), opener in ASKING[lang]


def formatter_params(rng: random.Random, lang: str, width: int, indent: int) -> str:
    """Width and indent, each said one of several ways, in either order."""
    w = rng.choice(WIDTHS[lang]).format(w=width)
    i = (
        rng.choice(NO_INDENT[lang])
        if indent == 0
        else rng.choice(INDENTS[lang]).format(n=indent, sp=_spaces(lang, indent))
    )
    first, second = (w, i) if rng.random() < 0.7 else (i, w)
    joined = first + rng.choice(PARAM_JOINERS[lang]) + second
    return f"({joined})" if rng.random() < 0.15 else joined


def formatter_request(rng: random.Random, lang: str, text: str, width: int, indent: int) -> str:
    """A request to wrap `text` at `width` with `indent`, in one of many voices."""
    if rng.random() < 0.06:
        return rng.choice(FORMATTER_IDS_FRAMES[lang]).format(w=width, n=indent, text=text)
    verb, params = rng.choice(WRAP_VERBS[lang]), formatter_params(rng, lang, width, indent)
    if rng.random() < 0.2:
        frame = rng.choice(TEXT_FIRST[lang])
        return frame.format(text=text, V=capitalized(verb), v=verb, P=params) + rng.choice(CLOSERS[lang])
    obj = rng.choice(TEXT_OBJECTS[lang])
    ending = rng.choice(TEXT_ENDINGS[lang])
    if rng.random() < 0.15:  # the parameters first, as a sentence of their own
        return f"{capitalized(params.strip('()'))}. {capitalized(verb)} {obj}{ending.format(text=text)}"
    start, asked = _opened(rng, lang, f"{verb} {obj}{rng.choice(PURPOSES[lang])} {params}")
    if asked:
        ending = "?" + ending.lstrip(":.")
    return start + ending.format(text=text)


def validator_request(rng: random.Random, lang: str, text: str, rules: list[str]) -> str:
    """A request to check `text` against `rules` ("name" or "name:N"), in one of many voices."""
    if rng.random() < 0.08:
        joiner = rng.choice([", ", " and "] if lang == "en" else [", ", " и "])
        return rng.choice(RULE_IDS_FRAMES[lang]).format(ids=joiner.join(rules), text=text)
    said = []
    for rule in rules:
        name, _, n = rule.partition(":")
        said.append(rng.choice(RULE_STATEMENTS[lang][name]).format(n=n))
    joiner = " and " if lang == "en" else " и "
    core = rng.choice(CHECK_FRAMES[lang]).format(obj=rng.choice(CHECK_OBJECTS[lang]), s=joiner.join(said))
    if rng.random() < 0.2:
        return f"{text}\n\n{capitalized(core.rstrip('?'))}?"
    start, asked = _opened(rng, lang, core.rstrip("?"))
    layout = rng.choice([" {text}", "\n{text}", " Text: {text}" if lang == "en" else " Текст: {text}"])
    mark = "?" if asked or core.endswith("?") else "." if ":" in layout else ":"
    return start + mark + layout.format(text=text)


def template_request(rng: random.Random, lang: str, kind: str, fill: dict, varied: float = 0.0) -> tuple[str, str]:
    """A request for a `kind` template and its topic (made from `fill`'s name, town and item), in one of many voices;
    `varied` of the topics (not those after "про") are longer phrases from `topics`, drawn from a side stream."""
    words, which = rng.choice(TEMPLATE_WORDS[lang][kind]), rng.randrange(len(TEMPLATE_VERBS[lang]))
    verb, infinitive = TEMPLATE_VERBS[lang][which], TEMPLATE_INFINITIVES[lang][which]
    if lang == "ru" and rng.random() < 0.3:
        about = rng.random() < 0.7
        topic = rng.choice(ABOUT_TOPICS[lang] if about else HOW_TOPICS[lang]).format(**fill)
        link = (" про {topic}" if about else " о том, как {topic}").format(topic=topic)
    else:
        topic, link_form = rng.choice(TOPICS[lang]).format(**fill), rng.choice(TOPIC_LINKS[lang])
        side = side_stream(rng)
        if side.random() < varied:
            topic = varied_topic(side, lang, kind, fill)
            link_form = varied_link(side, lang, link_form)
        link = link_form.format(topic=topic)
    frame = rng.choice(TEMPLATE_FRAMES[lang])
    body = frame.format(V=verb, v=infinitive if frame.startswith("можешь") else verb, L=words, T=link)
    asked = frame.startswith(("could", "can", "можешь"))
    if frame.startswith("{V} "):
        body, asked = _opened(rng, lang, body)
    return capitalized(body) + ("?" if asked else rng.choice(TOPIC_ENDS[lang])), topic
