"""The domain registry (lessons_lib.domains): the course's three domains, and a fourth one registered from this
file only that flows through data, evaluation, the keyword router, the switcher's dropdown and the server."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import shutil

import httpx
import pytest

from lessons_lib import data, domains
from lessons_lib.data import Example, examples
from lessons_lib.domains import Domain, registered
from lessons_lib.evaluate import Score, score
from lessons_lib.paths import ASSETS_DIR

COURSE = ("json", "coding", "support")
SQL_PROMPT = "Write an SQL select that counts the users."


def make_sql(rng: random.Random, lang: str, split: str) -> Example:
    """A tiny fake generator: count the rows of a table, EN or RU."""
    table = rng.choice(["users", "orders"] if split == "train" else ["invoices", "tickets"])
    prompt = (
        f"Write an SQL query that counts the rows of {table}."
        if lang == "en"
        else f"Напиши SQL-запрос, который считает строки таблицы {table}."
    )
    return Example("sql", lang, prompt, f"SELECT COUNT(*) FROM {table};", {"table": table})


def score_sql(output: str, expected: dict) -> Score:
    """Valid: a SELECT statement. Correct: it reads the expected table."""
    text = output.strip().upper()
    if not text.startswith("SELECT"):
        return Score(False, False, "not a SELECT")
    correct = f"FROM {expected['table'].upper()}" in text
    return Score(True, correct, "ok" if correct else "wrong table")


SQL = Domain("sql", make=make_sql, scorer=score_sql, keywords=("sql", "select", "запрос"), color="#dd8452")


@pytest.fixture
def sql():
    """The fourth domain, registered for one test and removed again."""
    with registered(SQL) as domain:
        yield domain


def call(app, method: str, url: str, **kwargs) -> httpx.Response:
    """One request to the in-process app."""

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lab") as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(go())


def test_the_course_domains_come_from_the_registry():
    from lessons_lib.adapters import COURSE_ADAPTERS
    from lessons_lib.router import LABELS, KeywordRouter

    assert domains.names() == domains.DOMAINS == data.DOMAINS == COURSE_ADAPTERS == COURSE
    assert LABELS == KeywordRouter().labels == (*COURSE, "general")
    assert len({domains.color(name) for name in COURSE}) == 3 and domains.color("general") == domains.DEFAULT_COLOR
    for entry in domains.entries():
        example = examples(entry.name, 1)[0]
        assert example.domain == entry.name and score(example, example.response).correct
        assert all((ASSETS_DIR / path).is_file() for path in entry.heldout_files), entry.heldout_files


def test_bad_entries_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="lowercase letters"):
        Domain("SQL queries", make=make_sql, scorer=score_sql, keywords=("sql",))
    with pytest.raises(ValueError, match="reserved"):
        Domain("general", make=make_sql, scorer=score_sql, keywords=("sql",))
    with pytest.raises(ValueError, match="tuple of words"):
        Domain("sql", make=make_sql, scorer=score_sql, keywords="sql")
    with pytest.raises(ValueError, match="already registered; pass replace=True"):
        domains.register(Domain("json", make=make_sql, scorer=score_sql, keywords=("sql",)))
    with pytest.raises(ValueError, match="Unknown domain 'sql'; the course domains are json, coding, support"):
        examples("sql", 1)
    with pytest.raises(ValueError, match="neither a callable nor"):
        domains.resolve("lessons_lib.data.make_json")
    assert domains.names() == COURSE


def test_a_registered_domain_flows_through_data_and_evaluation(sql):
    from lessons_lib.router.data import training_rows

    assert (*COURSE, "sql") == data.DOMAINS
    items = examples("sql", 4, "heldout", seed=3)
    assert [ex.domain for ex in items] == ["sql"] * 4 and [ex.lang for ex in items] == ["en", "ru", "en", "ru"]
    assert items == examples("sql", 4, "heldout", seed=3)
    mixed = [ex for domain in data.DOMAINS for ex in examples(domain, 2)]  # how tests and notebooks mix domains
    assert [ex.domain for ex in mixed] == ["json"] * 2 + ["coding"] * 2 + ["support"] * 2 + ["sql"] * 2
    assert [score(ex, ex.response) for ex in items] == [Score(True, True, "ok")] * 4
    assert score(items[0], "DROP TABLE users;") == Score(False, False, "not a SELECT")
    assert {row["label"] for row in training_rows(8)} == {*COURSE, "sql", "general"}


def test_router_training_rows_use_a_domains_templates():
    from lessons_lib.router.data import training_rows

    parts = (["", "Please "], ["write a query over the users table"], [".", "!"])
    with registered(dataclasses.replace(SQL, templates={"en": parts, "ru": parts})):
        texts = [row["text"] for row in training_rows(40) if row["label"] == "sql"]
    assert len(texts) == 40 and any("query over the users table" in t for t in texts)
    assert any(t.startswith(("Write an SQL", "Напиши SQL")) for t in texts)  # and its own examples, as before


def test_a_registered_domain_gets_a_keyword_router_label_and_a_colour(sql):
    from lessons_lib.router import DEFAULT_RULES, LABELS, KeywordRouter
    from lessons_lib.widgets.router_playground import score_bars_html

    router = KeywordRouter()
    assert router.labels == LABELS == (*COURSE, "sql", "general") and DEFAULT_RULES["sql"] == SQL.keywords
    assert router.route(SQL_PROMPT).label == "sql"
    assert router.route("Extract JSON: Anna, 31, Kazan.").label == "json"
    assert SQL.color in score_bars_html(router.route(SQL_PROMPT).scores, "sql")


def test_a_registered_domain_reaches_the_switcher_and_the_server(sql, tiny, tmp_path):
    """An adapter folder named after the domain (a copy of a shipped one) is served, routed to and switchable."""
    from lessons_lib.adapters import shipped_dir
    from lessons_lib.serve.app import create_app
    from lessons_lib.serve.loading import load_served_model
    from lessons_lib.widgets.switcher import BASE_CHOICE, AdapterSwitcher

    shutil.copytree(shipped_dir("json"), tmp_path / "adapters" / "sql")
    served = load_served_model(tiny, adapters_dir=tmp_path / "adapters", router="keyword", log=lambda *_: None)
    assert served.adapters == ["sql"] and served.skipped == []
    app = create_app(served, window_ms=0)
    try:
        assert [m["id"] for m in call(app, "GET", "/v1/models").json()["data"]] == ["base", "sql", "auto"]
        body = {"model": "auto", "messages": [{"role": "user", "content": SQL_PROMPT}], "max_tokens": 4}
        answer = call(app, "POST", "/v1/chat/completions", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["adapter"] == "sql"
    finally:
        app.state.server.close()
    switcher = AdapterSwitcher(served.model, served.tokenizer, max_new_tokens=4)
    assert list(switcher.dropdown.options) == [BASE_CHOICE, "sql"]


def test_unregistering_restores_the_course_domains():
    from lessons_lib.router import KeywordRouter

    with registered(SQL):
        assert domains.names() == (*COURSE, "sql")
    assert domains.names() == COURSE and KeywordRouter().labels == (*COURSE, "general")
    domains.register(SQL)
    assert domains.unregister("sql") is SQL and domains.names() == COURSE
