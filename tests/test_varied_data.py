"""The shipped adapters' train rows: varied phrasings whose answers copy the prompt, and no natural-set leak."""

import ast
import json
import re

import pytest

from lessons_lib import evaluate, natural_eval
from lessons_lib.varied_data import SHIPPED_MIX, fresh_rows, shipped_rows, varied_rows


def _texts(row: dict) -> tuple[str, str]:
    return row["prompt"][0]["content"], row["completion"][0]["content"]


def test_rows_are_deterministic_and_alternate_languages():
    rows = varied_rows("json", 40, seed=3)
    assert rows == varied_rows("json", 40, seed=3) and rows != varied_rows("json", 40, seed=4)
    cyrillic = [any("а" <= ch <= "я" for ch in _texts(r)[0].lower()) for r in rows]
    assert cyrillic[1::2] == [True] * 20 and not any(cyrillic[0::2])


def test_json_answers_hold_only_values_the_prompt_spells_out():
    for row in varied_rows("json", 300):
        prompt, answer = _texts(row)
        record = json.loads(answer)
        assert record and all(str(v) in prompt for v in record.values()), (prompt, record)
        assert all(key in prompt for key in record), (prompt, record)  # the request names every field it wants


def test_json_addresses_and_items_must_be_copied_not_spelled_from_a_pool():
    from lessons_lib.tiny.copy_corpus import PRODUCT_WORDS

    records = [json.loads(_texts(row)[1]) for row in varied_rows("json", 1200)]
    emails = [(r["name"], r["email"]) for r in records if "email" in r]
    spelled = [e for n, e in emails if e.split("@")[0] in {sep.join(n.lower().split()) for sep in (".", "_", "")}]
    assert len(emails) > 100 and len(spelled) < 0.4 * len(emails)  # most addresses are not the name joined
    products = [r["product"] for r in records if "product" in r]
    pool = {w for words in PRODUCT_WORDS.values() for w in words}
    assert len(products) > 100 and sum(p in pool for p in products) < 0.35 * len(products)
    assert len(set(products)) > 0.5 * len(products)


def test_support_replies_are_valid_and_greet_the_writer():
    for row in varied_rows("support", 200):
        prompt, reply = _texts(row)
        name = reply.split(", ", 1)[1].split("!", 1)[0]
        order = next(w for w in reply.split() if w.rstrip(".").isdigit()).rstrip(".")
        assert name in prompt and order in prompt, (prompt, reply)
        assert evaluate.score_support(reply, {"name": name, "order": order}).correct, reply


def test_coding_answers_define_the_requested_function():
    for row in varied_rows("coding", 200):
        prompt, code = _texts(row)
        fn = ast.parse(code).body[0]
        assert isinstance(fn, ast.FunctionDef) and fn.name in prompt and fn.args.args[0].arg in prompt, prompt


def test_no_row_uses_a_natural_set_entity():
    """The hand-written sets stay held out: none of their names, towns or functions is in a train row."""
    entities = {e for d in natural_eval.DOMAINS for item in natural_eval.load(d) for e in item.entities}
    words = {w for e in entities for w in re.split(r"[\s@.]+", e) if len(w) > 3 and not w.isdigit()}
    pattern = re.compile("|".join(rf"\b{re.escape(w)}\b" for w in sorted(words)))
    assert pattern.search("Zofia Wrenfield, 44") and pattern.search("Петрозаводск.")  # the guard itself works
    for domain in ("json", "support", "coding"):
        for row in shipped_rows(domain, 600):
            leaked = pattern.findall(" ".join(_texts(row)))
            assert not leaked, (domain, leaked, row)


def test_shipped_rows_follow_the_mix():
    rows = shipped_rows("support", 1000)
    assert len(rows) == 1000
    n_varied = round(1000 * SHIPPED_MIX["varied"])
    assert rows[:n_varied] == varied_rows("support", n_varied)
    assert rows[n_varied : n_varied + 300] == fresh_rows("support", 300)


def test_unknown_domain_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="json, support, coding"):
        varied_rows("poetry", 3)
