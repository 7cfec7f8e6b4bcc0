"""Domain data: deterministic, bilingual, and held-out shares no entities or phrasings with training."""

import json
import re

import pytest

from lessons_lib import data
from lessons_lib.evaluate import score


def test_deterministic():
    assert data.examples("json", 20, seed=3) == data.examples("json", 20, seed=3)
    assert data.examples("json", 20, seed=3) != data.examples("json", 20, seed=4)


@pytest.mark.parametrize("domain", data.DOMAINS)
def test_both_languages_and_reference_answers_score_perfectly(domain):
    items = data.examples(domain, 30, "heldout")
    assert {ex.lang for ex in items} == {"en", "ru"}
    assert any(re.search("[а-яА-Я]", ex.prompt) for ex in items)
    for ex in items:
        verdict = score(ex, ex.response)
        assert verdict.valid and verdict.correct, (ex.prompt, verdict)


def _entities(domain, split):
    found = set()
    for ex in data.examples(domain, 400, split):
        if domain == "json":
            found |= {str(v) for k, v in ex.expected["fields"].items() if k in ("name", "city", "product")}
        elif domain == "support":
            found.add(ex.expected["name"])
        else:
            found.add(ex.expected["function"])
    return found


@pytest.mark.parametrize("domain", data.DOMAINS)
def test_heldout_shares_no_entities_with_train(domain):
    assert not _entities(domain, "train") & _entities(domain, "heldout")


def test_heldout_phrasings_are_disjoint():
    for templates in (data.JSON_PROMPTS, data.CODING_WRITE, data.SUPPORT_PROMPTS):
        for lang in data.LANGS:
            train, held = set(templates[lang][0::2]), set(templates[lang][1::2])
            assert train and held and not train & held


def test_sft_rows_are_prompt_completion_chats():
    row = data.sft_rows("support", 1)[0]
    assert row["prompt"][0]["role"] == "user" and row["completion"][0]["role"] == "assistant"
    json.dumps(row)


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown domain 'poetry'.*json, coding, support"):
        data.examples("poetry", 1)
    with pytest.raises(ValueError, match="Unknown split"):
        data.examples("json", 1, "test")
