"""The server's Russian edition: the web page at `/` and every error message follow $LESSONS_LANG (`?lang=` picks
the page's language), with the same status, `type`, `code` and `param` as in English, and English unchanged.

The app runs in-process (httpx's ASGI transport) on the tiny model with the course adapters and the keyword router;
the Russian page's script runs in headless Chromium against a stand-in server (test_serve_cli_bad_input.FakeServer).
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import subprocess

import httpx
import pytest

from lessons_lib.i18n import plural_ru
from lessons_lib.paths import REPO_DIR
from lessons_lib.serve.page import PAGE_HTML, page_html

LIMIT = 20_000  # the in-process app's body limit (as in test_serve_limits.py)
CYRILLIC = re.compile("[а-яё]{3,}", re.IGNORECASE)
# Three English words in a row: a sentence left untranslated (identifiers and lists of names do not match).
ENGLISH_PROSE = re.compile(r"\b[A-Za-z]{2,}\s+[A-Za-z]{2,}\s+[A-Za-z]{2,}\b")


@pytest.fixture(scope="module")
def app():
    """The tiny base with the course adapters (tools included) and the keyword router, as the server loads them."""
    from lessons_lib.profiles import PROFILES
    from lessons_lib.serve.app import create_app
    from lessons_lib.serve.loading import load_served_model

    served = load_served_model(PROFILES["tiny"], router="keyword", log=lambda *_: None)
    app = create_app(served, window_ms=10, max_body_bytes=LIMIT)
    yield app
    app.state.server.close()


def call(app, method: str, url: str, lang: str | None = None, **kwargs) -> httpx.Response:
    """One request to the in-process app, with $LESSONS_LANG set to `lang` (None: unset) while it runs."""

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lab") as client:
            return await client.request(method, url, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        if lang is None:
            patch.delenv("LESSONS_LANG", raising=False)
        else:
            patch.setenv("LESSONS_LANG", lang)
        return asyncio.run(go())


# ---------------------------------------------------------------- the page
# Words of the page's HTML that stay in Russian (names, identifiers, the placeholder's JSON fields).
HTML_WORDS = {"LoRA", "Adapter", "Lab", "OpenAI", "API", "auto", "JSON", "name", "age", "city", "tools", "lm_head"}
# Literals of the page's script that are code, not text a learner reads; and its one-word English texts.
SCRIPT_CODE = {"meta error", "#sliders input[type=range]", "#compare-models input:checked"}
SCRIPT_WORDS = {"ready", "done", "error", "scores", "Router", "asking"}


def english_leftovers(page: str) -> list[str]:
    """English a learner would read on `page`: words of the visible text and the placeholder (code spans aside),
    and string literals of the script that are prose or one of its one-word texts."""
    head, script = page.split("<script>")
    visible = re.sub(r"<style>.*?</style>|<code>.*?</code>", " ", head, flags=re.S)
    shown = " ".join(re.findall(r'placeholder="([^"]*)"', visible)) + " " + re.sub(r"<[^>]*>", " ", visible)
    found = [w for w in re.findall(r"[A-Za-z][A-Za-z_]+", shown) if w not in HTML_WORDS]
    for literal in re.findall(r'"((?:[^"\\]|\\.)*)"', script.split("</script>")[0]):
        words = re.findall(r"[A-Za-z]+", literal)
        prose = re.search(r"[A-Za-z]{2,}[,;:.?()]*\s+[(]?[A-Za-z]{2,}", literal) and literal not in SCRIPT_CODE
        if prose or (words and set(words) <= SCRIPT_WORDS):
            found.append(literal)
    return found


def test_english_leftovers_finds_the_english_page():
    """The check below can fail: on the English page it finds the labels, statuses and messages."""
    found = english_leftovers(PAGE_HTML)
    for text in ("Ask", "Compare", "Answered", "ready", "done", "error ", "Router: ", " (scores: ", " ms, batch of "):
        assert any(text in f for f in found), (text, found)


def test_the_page_is_russian_under_lessons_lang_ru(app):
    response = call(app, "GET", "/", lang="ru")
    assert response.status_code == 200 and response.headers["content-language"] == "ru"
    page = response.text
    assert page == page_html("ru") and '<html lang="ru">' in page and 'lang="en"' not in page
    for label in (
        "Спросить одну модель",
        "Смешивание адаптеров",
        "Сравнить",
        "Отправить смесь",
        "Ответил:",
        "копировать имена точно",
        "загрузка моделей...",
        "модели загружены",
        "прервано: ",
        "ошибка ",
    ):
        assert label in page, label
    assert english_leftovers(page) == []
    ids = re.findall(r'id="([^"]+)"', PAGE_HTML)
    assert re.findall(r'id="([^"]+)"', page) == ids and len(ids) >= 20  # tests and browser_cdp drive them
    assert "<link" not in page and "src=" not in page  # still one self-contained page


def test_lang_query_overrides_the_server_language(app):
    english = call(app, "GET", "/")
    assert english.content == PAGE_HTML.encode() and english.headers["content-language"] == "en"
    for lang in ("ru", "en"):
        asked = call(app, "GET", "/?lang=en", lang=lang)
        assert asked.content == english.content and asked.headers["content-language"] == "en"
        asked = call(app, "GET", "/", params={"lang": " RU "}, lang=lang)  # any case, spaces trimmed
        assert asked.text == page_html("ru") and asked.headers["content-language"] == "ru"
    assert call(app, "GET", "/?lang=", lang="ru").text == page_html("ru")  # blank: as if absent


def test_an_unknown_page_language_is_a_400_naming_lang(app):
    errors = {}
    for lang in (None, "ru"):
        response = call(app, "GET", "/?lang=de", lang=lang)
        assert response.status_code == 400 and response.headers["content-type"] == "application/json"
        errors[lang] = response.json()["error"]
        assert (errors[lang]["type"], errors[lang]["code"], errors[lang]["param"]) == (
            "invalid_request_error",
            "invalid_value",
            "lang",
        )
        assert "'de'" in errors[lang]["message"] and "?lang=en" in errors[lang]["message"]
    assert "use ?lang=en or ?lang=ru" in errors[None]["message"]
    assert CYRILLIC.search(errors["ru"]["message"]) and not ENGLISH_PROSE.search(errors["ru"]["message"])


# ---------------------------------------------------------------- error messages, English and Russian
def chat(model: str = "json", content: str = "Extract JSON: Anna, 31, Kazan.", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 8, **extra}


def tools() -> list[dict]:
    from lessons_lib.tools.schemas import tool_schemas

    return tool_schemas()


# (id, method, path, request keywords, status, code, param, what both messages keep as it is)
ERRORS = [
    (
        "context",
        "POST",
        {"json": chat(content="order kettle " * 400)},
        400,
        "context_length_exceeded",
        "messages",
        ("max_length",),
    ),
    (
        "max_tokens",
        "POST",
        {"json": chat(max_tokens=10_000)},
        400,
        "max_tokens_too_large",
        "max_tokens",
        ("max_tokens=10000",),
    ),
    ("unknown_model", "POST", {"json": chat("nope")}, 404, "model_not_found", "model", ("'nope'", "GET /v1/models")),
    (
        "tool_choice",
        "POST",
        {"json": chat(tool_choice="auto")},
        400,
        "invalid_value",
        "tool_choice",
        ("tool_choice", "tools"),
    ),
    ("empty_messages", "POST", {"json": chat(content="  ")}, 400, "empty_messages", "messages", ()),
    (
        "unknown_field",
        "POST",
        {"json": chat(best_of=2)},
        400,
        "unknown_parameter",
        "best_of",
        ("best_of", "lessons_lib/serve/protocol.py"),
    ),
    (
        "strict_type",
        "POST",
        {"json": chat(temperature="0.5")},
        400,
        "validation_error",
        "temperature",
        ("temperature", '"0.5"'),
    ),
    (
        "stop_with_tools",
        "POST",
        {"json": chat(stop="x", tools="TOOLS", tool_choice="required")},
        400,
        "unsupported_value",
        "stop",
        ("tool_choice='required'", 'tool_choice="none"'),
    ),
    ("too_large", "POST", {"json": chat(content="x" * LIMIT)}, 413, "request_too_large", "body", ("--max-body-bytes",)),
    (
        "not_json",
        "POST",
        {"content": b'{"model": "json",', "headers": {"content-type": "application/json"}},
        400,
        "validation_error",
        None,
        ("Content-Type: application/json",),
    ),
    ("unknown_url", "GET", {}, 404, "unknown_url", None, ("GET /v1/nothing", "POST /v1/chat/completions")),
    ("wrong_method", "DELETE", {}, 405, "method_not_allowed", None, ("DELETE /v1/models",)),
    ("unknown_model_id", "GET", {}, 404, "model_not_found", "model", ("'legal'",)),
]
PATHS = {"unknown_url": "/v1/nothing", "wrong_method": "/v1/models", "unknown_model_id": "/v1/models/legal"}


def request_of(case_id: str, method: str, keywords: dict) -> tuple[str, dict]:
    """The path and httpx keywords of a case (tools filled in)."""
    body = keywords.get("json")
    if body and body.get("tools") == "TOOLS":
        keywords = {**keywords, "json": {**body, "tools": tools()}}
    return PATHS.get(case_id, "/v1/chat/completions"), keywords


@pytest.mark.parametrize(
    ("case_id", "method", "keywords", "status", "code", "param", "kept"), ERRORS, ids=[c[0] for c in ERRORS]
)
def test_errors_are_russian_with_the_same_status_code_and_param(
    app, case_id, method, keywords, status, code, param, kept
):
    path, keywords = request_of(case_id, method, keywords)
    errors = {}
    for lang in (None, "ru"):
        response = call(app, method, path, lang=lang, **keywords)
        assert response.status_code == status, response.text
        errors[lang] = response.json()["error"]
    english, russian = errors[None], errors["ru"]
    assert {k: v for k, v in english.items() if k != "message"} == {k: v for k, v in russian.items() if k != "message"}
    if param is not None:
        assert (english["code"], english["param"]) == (code, param)
    assert english["code"] == code
    assert ENGLISH_PROSE.search(english["message"]), english  # the English one is prose, so the check below can fail
    pydantic = re.search(r"not valid JSON: (.*?)(?: at position \d+ \(character \d+\))?\. Send", english["message"])
    words = russian["message"].replace(pydantic[1], "") if pydantic else russian["message"]  # pydantic's own words
    assert CYRILLIC.search(words) and not ENGLISH_PROSE.search(words), russian["message"]
    for text in kept:  # identifiers and values stay as they are in the Russian text
        assert text in english["message"] and text in russian["message"], (text, russian["message"])


def test_no_tools_adapter_is_russian(app, monkeypatch):
    monkeypatch.setattr(app.state.server, "tools_adapter", None)
    request = {"model": "auto", "messages": [{"role": "user", "content": "Wrap this at 12."}], "tools": tools()}
    errors = {lang: call(app, "POST", "/v1/chat/completions", lang=lang, json=request) for lang in (None, "ru")}
    for response in errors.values():
        error = response.json()["error"]
        assert response.status_code == 400 and (error["code"], error["param"]) == ("no_tools_adapter", "tools")
    english, russian = (errors[lang].json()["error"]["message"] for lang in (None, "ru"))
    assert "Name a model" in english and "tool_choice" in english
    assert 'tool_choice="none"' in russian and "'tools'" in russian and "assets/compositions/course.toml" in russian
    assert CYRILLIC.search(russian) and not ENGLISH_PROSE.search(russian)


def test_the_tools_route_reason_is_russian(app):
    request = {
        "model": "auto",
        "messages": [{"role": "user", "content": "Wrap this at 12."}],
        "max_tokens": 4,
        "tools": tools(),
        "tool_choice": "auto",
    }
    route = call(app, "POST", "/v1/chat/completions", lang="ru", json=request).json()["route"]
    assert route["label"] == "tools" and CYRILLIC.search(route["reason"]) and "tool_choice 'auto'" in route["reason"]


def test_the_tools_route_names_auto_when_tool_choice_is_absent(app):
    """No tool_choice means "auto" (OpenAI's default with tools), not "a named function"."""
    request = {
        "model": "auto",
        "messages": [{"role": "user", "content": "Wrap this at 12."}],
        "max_tokens": 4,
        "tools": tools(),
    }
    for lang in ("en", "ru"):
        route = call(app, "POST", "/v1/chat/completions", lang=lang, json=request).json()["route"]
        assert route["label"] == "tools" and "tool_choice 'auto'" in route["reason"], route


def test_english_messages_are_unchanged(app):
    """The English text is what it was before the Russian edition."""
    server = app.state.server
    cases = [
        (chat(content=" "), "Every message is empty: send at least one message with text."),
        (chat(tool_choice="auto"), "tool_choice is only allowed when tools are given."),
        (
            chat(max_tokens=10_000),
            f"max_tokens=10000 is over this server's limit of {server.max_tokens} (profile tiny). "
            "Ask for fewer tokens.",
        ),
        (
            chat("nope"),
            f"Unknown model 'nope'. Available models: {', '.join(server.model_names())} (GET /v1/models lists them).",
        ),
        (
            chat(temperature="0.5"),
            'Invalid request: temperature: expected a number, got a string "0.5"; send a JSON value like 0.5, '
            "no quotes",
        ),
    ]
    for request, message in cases:
        assert call(app, "POST", "/v1/chat/completions", json=request).json()["error"]["message"] == message


def test_russian_numbers_take_their_plural_form(app):
    """Token and byte counts agree with their noun (1 токен, 3 токена, 5 токенов)."""
    error = call(app, "POST", "/v1/chat/completions", lang="ru", json=chat(content="order kettle " * 400)).json()
    numbers = re.search(
        r"Промпт занимает (\d+) (\w+), больше предела этого сервера: (\d+) (\w+)", error["error"]["message"]
    )
    assert numbers, error
    for count, word in ((numbers[1], numbers[2]), (numbers[3], numbers[4])):
        assert word == plural_ru(int(count), "токен", "токена", "токенов")
    error = call(app, "POST", "/v1/chat/completions", lang="ru", json=chat(content="x" * LIMIT)).json()
    sizes = re.search(r"занимает (\d+) (\w+), больше предела этого сервера: (\d+) (\w+)", error["error"]["message"])
    assert sizes, error
    for count, word in ((sizes[1], sizes[2]), (sizes[3], sizes[4])):
        assert word == plural_ru(int(count), "байт", "байта", "байт")


def test_bad_rows_of_a_handwritten_file_are_russian(ru, tmp_path):
    from lessons_lib.tools.data import read_handwritten

    rows = {
        '{"lang": "de", "request": "x", "tool": "text_formatter", "arguments": {}}': "нужен объект с полями",
        '{"lang": "en", "request": "x", "tool": "spell", "arguments": {}}': "неизвестный инструмент 'spell'",
        '{"lang": "en", "request": "x", "tool": "text_formatter", "arguments": {"text": "a b", "width": 5000}}': (
            "эталонный вызов не выполняется"
        ),
    }
    for row, expected in rows.items():
        path = tmp_path / "mine.jsonl"
        path.write_text(row + "\n", encoding="utf-8")
        with pytest.raises(ValueError) as caught:
            read_handwritten(path)
        assert f"{path}:1" in str(caught.value) and expected in str(caught.value), str(caught.value)


# ---------------------------------------------------------------- every error message goes through tr
# Two words in a row; a dot only parts words before a space, so dotted keys (router.kind, course.toml) are not prose.
PROSE = re.compile(r"[A-Za-z]{2,}(?:[ ,;:?!()'-]|\.(?=\s))+[A-Za-z]{2,}")


# The calls that carry an error message a learner reads: their name -> the position of the message (or `message=`).
MESSAGE_ARGUMENT = {"ApiError": 1, "bad": 1, "CompositionError": 0}
# Every call of serve/*.py whose text a learner or an API client reads: those error messages, the exceptions raised
# with a message (a failed generation, a bad option, a server that does not start, a hand-off vLLM refuses) and the
# lines printed or logged.
LEARNER_TEXT = {
    **MESSAGE_ARGUMENT,
    "GenerationError": 0,
    "ServerError": 1,
    "ServeOptionError": 0,
    "UsageError": 0,
    "ArgumentTypeError": 0,
    "ValueError": 0,
    "RuntimeError": 0,
    "TimeoutError": 0,
    "FileNotFoundError": 0,
    "KeyError": 0,
    "print": 0,
    "log": 0,
}
FUNCTION = (ast.FunctionDef, ast.AsyncFunctionDef)


def untranslated(source: str, messages: dict[str, int] = MESSAGE_ARGUMENT) -> tuple[int, list[str]]:
    """(how many `messages` calls, ApiError/bad/CompositionError by default, the prose in their messages that no
    tr(...) wraps), following the message's local variables, the parameters it comes from (to every call in the
    module that passes them, e.g. the `problem` and `fix` of composition's `check.error`) and the functions of the
    same module it calls; an attribute (`args.port`, `err.errno`) is not followed."""
    tree = ast.parse(source)
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, FUNCTION)}
    every_call = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    scopes: dict[int, ast.AST | None] = {}  # id(node) -> its innermost function
    calls: list[tuple[ast.Call, ast.AST | None]] = []  # each message call and its innermost function
    found: list[str] = []

    def enclose(node: ast.AST, scope: ast.AST | None) -> None:
        for child in ast.iter_child_nodes(node):
            scopes[id(child)] = scope
            if isinstance(child, ast.Call) and called(child) in messages:
                calls.append((child, scope))
            enclose(child, child if isinstance(child, FUNCTION) else scope)

    def called(call: ast.Call) -> str | None:
        return getattr(call.func, "id", None) or getattr(call.func, "attr", None)

    def assigned(target: ast.AST, value: ast.AST, name: str) -> list[ast.AST]:
        """What assigning `value` to `target` gives `name` (a tuple target takes its own element)."""
        if isinstance(target, ast.Name):
            return [value] if target.id == name else []
        if isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                return [v for t, e in zip(target.elts, value.elts) for v in assigned(t, e, name)]
            return [value] if any(assigned(t, value, name) for t in target.elts) else []
        return []

    def passed(function: ast.AST, name: str) -> list[ast.AST]:
        """What the module passes as parameter `name` of `function`: its default and each call's argument."""
        args = function.args
        positional = [a.arg for a in args.posonlyargs + args.args]
        keyword_only = [a.arg for a in args.kwonlyargs]
        if name in positional:
            index = positional.index(name)
            first_default = len(positional) - len(args.defaults)
            values = [args.defaults[index - first_default]] if index >= first_default else []
        elif name in keyword_only:
            index, default = None, args.kw_defaults[keyword_only.index(name)]
            values = [default] if default is not None else []
        else:
            return []
        method = positional[:1] in (["self"], ["cls"])
        for call in every_call:
            if called(call) != function.name:
                continue
            if index is not None:
                position = index - (1 if method and isinstance(call.func, ast.Attribute) else 0)
                if 0 <= position < len(call.args):
                    values.append(call.args[position])
            values += [k.value for k in call.keywords if k.arg == name]
        return values

    def check(node: ast.AST, scope: ast.AST | None, seen: frozenset) -> None:
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "tr":
            return
        if isinstance(node, ast.Attribute):
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and PROSE.search(node.value):
            found.append(f"line {node.lineno}: {node.value!r}")
        if isinstance(node, ast.Name) and scope is not None:
            for assign in ast.walk(scope):
                if isinstance(assign, (ast.Assign, ast.AnnAssign)) and assign.value is not None:
                    targets = assign.targets if isinstance(assign, ast.Assign) else [assign.target]
                    if id(assign) not in seen:
                        for value in (v for t in targets for v in assigned(t, assign.value, node.id)):
                            check(value, scope, seen | {id(assign)})
            parameter = (id(scope), node.id)
            if parameter not in seen:
                for value in passed(scope, node.id):
                    check(value, scopes.get(id(value)), seen | {parameter})
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in functions:
            function = functions[node.func.id]
            if id(function) not in seen:
                for ret in (r for r in ast.walk(function) if isinstance(r, ast.Return) and r.value is not None):
                    check(ret.value, function, seen | {id(function)})
        for child in ast.iter_child_nodes(node):
            check(child, scope, seen)

    enclose(tree, None)
    for call_node, scope in calls:
        position, keywords = messages[called(call_node)], {k.arg: k.value for k in call_node.keywords}
        args = call_node.args
        if len(args) > position:
            check(args[position], scope, frozenset())
        elif "message" in keywords:
            check(keywords["message"], scope, frozenset())
    return len(calls), sorted(set(found))


def test_the_scan_finds_english_messages():
    source = """
def f(x):
    why = "the thing is broken" if x else tr(en="it broke", ru="сломалось")
    raise ApiError(400, f"Nope, {why}: try again", code="c")

def g():
    raise bad("p", helper())

def helper():
    return "plain English words"

def h():
    raise ApiError(400, tr(en=f"Fine {1} here", ru="Хорошо"), code="c", param="p")
"""
    calls, found = untranslated(source)
    assert calls == 3
    assert {f.split(": ", 1)[1] for f in found} == {"': try again'", "'plain English words'", "'the thing is broken'"}


def test_the_scan_follows_parameters_to_their_callers():
    """A message built from a parameter is checked at every call that passes it (composition's `check.error`),
    a tuple assignment gives each name its own value, and a dotted key is not prose."""
    source = """
class Checker:
    def error(self, key, problem, fix):
        return CompositionError(f"{self.path}: {key}: {problem}. {fix}")

    def number(self, value, key, what):
        raise self.error(key, tr(en="bad", ru="плохо"), f"Write {what} in this place")

def parse(check):
    raise check.error("router.kind", "unknown router kind", tr(en="Use one", ru="Одно"))

def load(path):
    router, why = None, "no router was declared"
    check.number(1, "server.window_ms", what="milliseconds of waiting")
    raise CompositionError(tr(en=f"{path}: {router}", ru=f"{path}: {router}") + why)
"""
    calls, found = untranslated(source)
    assert calls == 2
    assert {f.split(": ", 1)[1] for f in found} == {
        "'unknown router kind'",
        "'milliseconds of waiting'",
        "' in this place'",
        "'no router was declared'",
    }


def test_the_scan_of_learner_text_sees_exceptions_prints_and_logs():
    """With LEARNER_TEXT the scan also reads the exceptions a learner sees, printed lines and logged ones; an
    attribute of an object (here the parsed `args`) is not text of the module, so its origin is not followed."""
    source = """
def run(argv):
    args = parser().parse_args(argv)
    print(error_line(args.port), file=sys.stderr)
    raise argparse.ArgumentTypeError("expected a whole number")

def parser():
    return Parser(prog="python -m lessons_lib.serve vllm")

def fail(job, log):
    job.future.set_exception(GenerationError(f"its batch failed: {job.why}"))
    log(f"WARNING: not served: {job.name}")
    raise ServerError(500, "the server went away")
"""
    assert untranslated(source) == (0, [])
    calls, found = untranslated(source, LEARNER_TEXT)
    assert calls == 5
    assert {f.split(": ", 1)[1] for f in found} == {
        "'expected a whole number'",
        "'its batch failed: '",
        "'WARNING: not served: '",
        "'the server went away'",
    }


SERVE_FILES = sorted(p.name for p in (REPO_DIR / "lessons_lib" / "serve").glob("*.py"))


@pytest.mark.parametrize("name", SERVE_FILES)
def test_every_error_message_of_the_server_goes_through_tr(name):
    """Every text of serve/*.py a learner or an API client reads: error messages, exceptions, printed lines."""
    source = (REPO_DIR / "lessons_lib" / "serve" / name).read_text(encoding="utf-8")
    calls, found = untranslated(source, LEARNER_TEXT)
    assert found == [], f"{name}: learner text without tr(en=..., ru=...): {found}"


ENGLISH_SERVE_COMMIT = "f8a1ca928ed6d1f6e78ba985ded6f26f336a83f4"  # serve/ while the texts below were English
# serve/*.py at that commit -> English the scan must find there (the texts learners met in English under ru)
ENGLISH_LEFT = {
    "process.py": ("The server exited with code ", " was not healthy after ", "Last lines of the server log"),
    "engine.py": (
        "its batch failed after part of the answer was streamed",
        "this server has no router, so model='auto' cannot be answered",
        "n must be at least 1, got ",
        "top_logprobs needs logprobs=True.",
        "max_tokens must be at least 1, got ",
    ),
    "streaming.py": ("no answer within ",),
    "loading.py": ("WARNING: not served: ",),
    "app.py": ("max_body_bytes must be at least 1, got ",),
    "vllm.py": (
        "No adapters to serve: pass at least one adapter folder vLLM can load.",
        "vLLM would refuse adapter ",
        "use_dora: vLLM does not support DoRA adapters",  # vllm_refusal's, through vllm_command's message
        ": vLLM's --lora-modules loads LoRA adapters only",
        "LoRA rank ",
        "No adapters to hand off: pass at least one adapter folder.",
    ),
    "__main__.py": ("injected failure (prompt contains ",),
}


@pytest.mark.parametrize("name", sorted(ENGLISH_LEFT))
def test_the_learner_text_scan_flags_the_english_left_in_serve(name):
    """The scan above can fail: on the files as they were, it finds each English text a reviewer found."""
    where = f"{ENGLISH_SERVE_COMMIT}:lessons_lib/serve/{name}"
    old = subprocess.run(["git", "show", where], cwd=REPO_DIR, capture_output=True, text=True)
    if old.returncode != 0:
        pytest.skip(f"this checkout has no git history with {ENGLISH_SERVE_COMMIT[:7]}: {old.stderr.strip()}")
    _, found = untranslated(old.stdout, LEARNER_TEXT)
    texts = " | ".join(found)
    missing = [english for english in ENGLISH_LEFT[name] if english not in texts]
    assert missing == [], f"{name}: the scan missed {missing}; it found {found}"


def test_the_scan_sees_the_servers_errors():
    counts = {
        name: untranslated((REPO_DIR / "lessons_lib" / "serve" / name).read_text(encoding="utf-8"))[0]
        for name in ("app.py", "protocol.py", "tooling.py", "page.py")
    }
    assert counts["app.py"] >= 25 and counts["protocol.py"] >= 20 and counts["tooling.py"] == 2, counts
    assert counts["page.py"] == 1, counts


# ---------------------------------------------------------------- the Russian page in a browser
@pytest.fixture(scope="module")
def browser():
    from browser_cdp import Browser, find_chromium

    binary = find_chromium()
    assert binary, "Chromium is not installed: `sudo bash tools/ensure_chromium.sh` installs it (see test_web_page.py)"
    with Browser(binary) as chromium:
        yield chromium


@pytest.fixture
def stand_in():
    """A stand-in server serving the Russian page and two models (test_web_page.py's, in Russian)."""
    from test_web_page import page_stand_in

    with page_stand_in(page_html("ru")) as server:
        yield server


def status_after_send(browser, server) -> str:
    """Load the page, send one prompt; the status line once the request has finished."""
    browser.goto(server.url + "/")
    browser.wait_for("document.body && document.body.dataset.ready === '1'")
    assert browser.evaluate("document.getElementById('status').textContent") == "модели загружены"
    browser.evaluate("document.getElementById('prompt').value = 'hi'")
    browser.click("#send")
    browser.wait_for("document.getElementById('answer').dataset.finished !== undefined")
    return browser.evaluate("document.getElementById('status').textContent")


def test_the_russian_page_runs_and_shows_russian_statuses(browser, stand_in):
    from test_serve_cli_bad_input import BAD_GATEWAY, CHAT, chunk, sse

    answer = {
        "choices": [{"message": {"content": "Привет"}}],
        "adapter": "json",
        "route": None,
        "timing": {"latency_ms": 5, "batch_size": 2},
    }
    stand_in.routes[CHAT] = (200, "application/json", json.dumps(answer).encode())
    assert status_after_send(browser, stand_in) == "готово"
    assert browser.evaluate("document.getElementById('detail').textContent") == "5 мс, размер батча 2"
    stand_in.routes[CHAT] = (200, "text/event-stream", sse(chunk("Hel"), chunk("lo")))
    status = status_after_send(browser, stand_in)
    assert status.startswith("прервано: ответ оборвался") and status.endswith("сервер остановился?)")
    stand_in.routes[CHAT] = BAD_GATEWAY
    assert status_after_send(browser, stand_in) == "ошибка 502: 502 Bad Gateway"


def test_page_html_without_a_language_follows_lessons_lang_at_call_time(monkeypatch):
    """`page_html()` reads $LESSONS_LANG on every call (as `tr` does), not once for the process."""
    monkeypatch.setenv("LESSONS_LANG", "ru")
    assert page_html() == page_html("ru") != PAGE_HTML
    monkeypatch.setenv("LESSONS_LANG", "en")
    assert page_html() == page_html("en") == PAGE_HTML
