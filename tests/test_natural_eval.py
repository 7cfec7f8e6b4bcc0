"""The hand-written natural sets: big enough, bilingual, entities no training data holds, scorers that can fail."""

import json
import re

import pytest

from lessons_lib import data, natural_eval
from lessons_lib.tiny import copy_corpus, corpus
from lessons_lib.varied_data import shipped_rows

SETS = {d: natural_eval.load(d) for d in natural_eval.DOMAINS}
ALL = [it for items in SETS.values() for it in items]
POOL_WORDS = {w.lower() for w in copy_corpus.COURSE_POOLS}


@pytest.fixture(scope="module")
def training_text():
    """A large sample of everything the tiny base and the course adapters (their shipped rows too) train on."""
    docs = corpus.documents(3000, 0) + copy_corpus.documents(6000, 0, course_share=0.0)
    prompts = [
        ex.prompt + "\n" + ex.response for d in data.DOMAINS for s in data.SPLITS for ex in data.examples(d, 300, s, 0)
    ]
    shipped = [
        r["prompt"][0]["content"] + "\n" + r["completion"][0]["content"]
        for d in data.DOMAINS
        for r in shipped_rows(d, 900)
    ]
    return "\n".join(docs + prompts + shipped)


@pytest.mark.parametrize("domain", natural_eval.DOMAINS)
def test_each_set_has_twenty_requests_ten_per_language(domain):
    items = SETS[domain]
    assert len(items) >= 20
    assert sum(it.lang == "en" for it in items) >= 10 and sum(it.lang == "ru" for it in items) >= 10
    assert all(it.domain == domain for it in items)
    assert len({it.prompt for it in items}) == len(items), "duplicate requests"


def test_ids_are_unique_and_russian_requests_are_in_russian():
    assert len({it.id for it in ALL}) == len(ALL)
    for it in ALL:
        has_cyrillic = bool(re.search("[а-яё]", it.prompt, re.I))
        assert has_cyrillic == (it.lang == "ru"), it.id


def test_every_entity_is_in_its_request_so_it_can_be_copied():
    for it in ALL:
        assert it.entities, it.id
        for e in it.entities:
            assert e in it.prompt, (it.id, e)


def test_entities_use_no_word_of_the_course_pools():
    for it in ALL:
        for e in it.entities:
            words = set(re.split(r"[\s_.@]+", e.lower()))
            assert not words & POOL_WORDS, (it.id, e, words & POOL_WORDS)


def test_entities_never_appear_in_training_text(training_text):
    text = training_text.lower()
    seen = sorted({e for it in ALL for e in it.entities if not e.isdigit() and e.lower() in text})
    assert not seen, seen


def test_references_pass_and_wrong_answers_fail():
    for it in SETS["json"]:
        assert natural_eval.task_ok(it, json.dumps(it.expected["fields"], ensure_ascii=False)), it.id
        assert natural_eval.copy_rate(it, json.dumps(it.expected["fields"], ensure_ascii=False)) == 1.0
    for it in SETS["support"]:
        assert natural_eval.task_ok(it, f"Hello, {it.expected['name']}! About order {it.expected['order']}: sorry.")
        assert not natural_eval.task_ok(
            it, json.dumps({"name": it.expected["name"], "order": it.expected["order"]}, ensure_ascii=False)
        ), "a JSON record is not a reply"
        assert not natural_eval.task_ok(it, f"Hello, Lucas Green! About order {it.expected['order']}: sorry.")
    rows = [json.loads(line) for line in (natural_eval.NATURAL_DIR / "coding.jsonl").read_text().splitlines()]
    for row, it in zip(rows, SETS["coding"]):
        assert natural_eval.task_ok(it, row["reference"]), it.id
        renamed = row["reference"].replace(f"def {it.expected['function']}(", "def shift_items(", 1)
        assert not natural_eval.task_ok(it, renamed), it.id


def test_json_task_judges_values_not_key_names():
    it = SETS["json"][0]
    fields = it.expected["fields"]
    other_keys = {f"k{i}": v for i, v in enumerate(fields.values())}
    assert natural_eval.task_ok(it, "```json\n" + json.dumps(other_keys, ensure_ascii=False) + "\n```")
    assert not natural_eval.task_ok(it, json.dumps({**fields, "name": "Ruby Wright"}))
    assert not natural_eval.task_ok(it, "name: " + str(fields.get("name")))
    assert not natural_eval.task_ok(it, json.dumps(list(fields.values()), ensure_ascii=False))


def test_coding_task_needs_the_right_result():
    it = next(i for i in SETS["coding"] if i.expected["function"] == "double_rations")
    assert natural_eval.task_ok(it, "def double_rations(portions):\n    return [p * 2 for p in portions]")
    assert not natural_eval.task_ok(it, "def double_rations(portions):\n    return [p + 2 for p in portions]")
    assert not natural_eval.task_ok(it, "def double_rations(portions):\n    return [p * 2 for p in")


def test_copy_rate_counts_each_entity():
    it = SETS["support"][0]
    assert natural_eval.copy_rate(it, f"Dear {it.expected['name']}") == 0.5
    assert natural_eval.copy_rate(it, "Dear customer") == 0.0


def test_score_reports_per_language_and_checks_lengths():
    items = SETS["support"][:1] + [next(i for i in SETS["support"] if i.lang == "ru")]
    good = f"{items[0].expected['name']} {items[0].expected['order']}"
    row = natural_eval.score(items, ["Hi " + good, "Здравствуйте!"])
    assert row == {
        "n": 2,
        "valid": 0.0,
        "copy": 0.5,
        "task": 0.5,
        "copy_en": 1.0,
        "task_en": 1.0,
        "copy_ru": 0.0,
        "task_ru": 0.0,
    }
    with pytest.raises(ValueError, match="1 items but 2 outputs"):
        natural_eval.score(items[:1], ["a", "b"])


def test_unknown_domain_is_refused():
    with pytest.raises(ValueError, match="natural sets are json, coding, support"):
        natural_eval.load("poetry")


# The shipped adapters' task rate on their own natural set must stay at least this (measured on the copying base:
# json 0.50, 0.59 since 2026-12-01 (addresses and goods beyond the pools), coding 0.41, support 0.77; the first base
# gave 0.00 on all three).
NATURAL_TASK_FLOOR = {"json": 0.5, "coding": 0.3, "support": 0.65}


@pytest.mark.slow
def test_shipped_adapters_do_their_task_in_learners_words_and_only_their_own():
    """Measured afresh (not read from manifests): each adapter does its own task, never another's; the base none."""
    from lessons_lib.manifest import Manifest
    from lessons_lib.paths import TINY_ADAPTERS_DIR, TINY_MODEL_DIR

    folders = [TINY_ADAPTERS_DIR / d for d in natural_eval.DOMAINS]
    rows = natural_eval.evaluate(TINY_MODEL_DIR, folders, log=lambda *_: None)
    task = {(r["model"], r["set"]): r["task"] for r in rows}
    for domain, floor in NATURAL_TASK_FLOOR.items():
        assert task[(domain, domain)] >= floor, (domain, task)
        assert task[("base", domain)] == 0.0, task
        assert all(task[(other, domain)] <= 0.1 for other in natural_eval.DOMAINS if other != domain), task
        manifest = Manifest.load(TINY_ADAPTERS_DIR / domain).metrics
        # The manifest tells the truth: measured with one adapter loaded, here in mixed-adapter batches (float sums
        # in another order), so one request of the 22 may tip: tolerance 1/22.
        assert abs(manifest["natural_task"] - task[(domain, domain)]) <= 1 / 22 + 1e-9, (domain, manifest)


# The copy box's decoding (copying.copy_aware_kwargs: COPY_BIAS and requested function names), measured 2026-12-01:
# json 0.59 -> 0.82, coding 0.41 -> 0.82 (0.55 with the bias alone), support 0.77 -> 0.91 (floors one request of 22
# below); it finishes words the answer began and names a function as asked, so it must not lift the base or the
# wrong adapter.
NUDGED_TASK_FLOOR = {"json": 0.77, "coding": 0.77, "support": 0.86}


@pytest.mark.slow
def test_copy_aware_decoding_lifts_each_adapter_on_its_own_task_and_no_other():
    from lessons_lib.copying import copy_aware_kwargs
    from lessons_lib.manifest import Manifest
    from lessons_lib.paths import TINY_ADAPTERS_DIR, TINY_MODEL_DIR

    folders = [TINY_ADAPTERS_DIR / d for d in natural_eval.DOMAINS]
    rows = natural_eval.evaluate(TINY_MODEL_DIR, folders, log=lambda *_: None, **copy_aware_kwargs())
    task = {(r["model"], r["set"]): r["task"] for r in rows}
    for domain, floor in NUDGED_TASK_FLOOR.items():
        manifest = Manifest.load(TINY_ADAPTERS_DIR / domain).metrics
        assert task[(domain, domain)] >= max(floor, manifest["natural_task"] + 0.1), (domain, task, manifest)
        assert task[("base", domain)] == 0.0, task
        assert all(task[(other, domain)] <= 0.1 for other in natural_eval.DOMAINS if other != domain), task
        assert abs(manifest["natural_task_nudged"] - task[(domain, domain)]) <= 1 / 22 + 1e-9, (domain, manifest)
