"""Train variety for the tool adapter: texts of many kinds, longer topics, drawn beside the request stream; every
train call is one the quoting grammar can write."""

import random

import pytest

from lessons_lib.data import side_stream
from lessons_lib.tools import data
from lessons_lib.tools.calls import call_text
from lessons_lib.tools.constrained import CallGrammar
from lessons_lib.tools.data import tool_examples
from lessons_lib.tools.functions import content_validator
from lessons_lib.tools.schemas import tool_schemas
from lessons_lib.tools.texts import varied_text
from lessons_lib.tools.topics import PARTS, varied_topic

FILL = {"name": "Odile Brask", "town": "Vennow", "item": "kettle"}


def test_a_side_stream_repeats_from_the_same_state_and_leaves_the_stream_as_it_was():
    rng, twin = random.Random("a"), random.Random("a")
    side = side_stream(rng)
    drawn = [side.random() for _ in range(5)]
    assert [side_stream(twin).random() for _ in range(1)] == drawn[:1]
    assert [rng.random() for _ in range(5)] == [twin.random() for _ in range(5)]
    assert side_stream(rng).random() != drawn[0]  # a later state seeds another stream


@pytest.mark.parametrize("split", ["train", "dev", "heldout"])
def test_varied_texts_and_topics_change_only_their_own_argument_and_only_in_train(split, monkeypatch):
    varied = tool_examples(900, split, seed=2)
    monkeypatch.setattr(data, "VARIED_TEXTS", 0.0)
    monkeypatch.setattr(data, "VARIED_TOPICS", 0.0)
    plain = tool_examples(900, split, seed=2)
    changed = [(a, b) for a, b in zip(varied, plain) if a.request != b.request]
    if split != "train":
        assert not changed
        return
    assert len(changed) > 200  # ~a fifth of train requests (measured 261 of 900)
    for a, b in zip(varied, plain):
        assert (a.tool, a.lang) == (b.tool, b.lang)
        own = "topic" if a.tool == "template_generator" else "text"
        assert {k: v for k, v in a.arguments.items() if k != own} == {k: v for k, v in b.arguments.items() if k != own}


@pytest.mark.parametrize("share", [None, 1.0])
def test_every_train_call_is_one_the_quoting_grammar_can_write(share, monkeypatch):
    if share is not None:
        monkeypatch.setattr(data, "VARIED_TEXTS", share)
        monkeypatch.setattr(data, "VARIED_TOPICS", share)
        monkeypatch.setattr(data, "VOICED_SHARE", share)
    schemas = tool_schemas()
    unwritable = [
        (ex.request, ex.arguments)
        for ex in tool_examples(1500, "train", seed=5)
        if not CallGrammar(schemas, ex.request).complete(call_text(ex.tool, ex.arguments).encode())
    ]
    assert not unwritable, unwritable[:5]


def test_varied_texts_pass_and_fail_every_rule_and_never_end_in_a_space():
    rng = random.Random(0)
    texts = [varied_text(rng, lang, FILL) for lang in ("en", "ru") for _ in range(300)]
    rules = ["non_empty", "has_headings", "is_email", "valid_json", "no_trailing_spaces", "min_words:3"]
    verdicts = {rule: set() for rule in rules}
    for text in texts:
        assert text == text.rstrip(" ") and text.strip(), repr(text)
        result = content_validator(text, rules)
        for rule in rules:
            verdicts[rule].add(rule in result["passed"])
    assert verdicts.pop("non_empty") == {True}
    assert all(seen == {True, False} for seen in verdicts.values()), verdicts
    assert sum("\n" in text for text in texts) > 100


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_varied_topics_are_longer_phrases_for_every_template(lang):
    rng = random.Random(1)
    for kind in PARTS[lang]:
        topics = [varied_topic(rng, lang, kind, FILL) for _ in range(40)]
        assert len(set(topics)) > 30, kind
        assert min(len(topic.split()) for topic in topics) >= 2
        assert not any("{" in topic for topic in topics)
