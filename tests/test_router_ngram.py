"""The character n-gram router: features, deterministic training, save/load, threshold, held-out accuracy, errors."""

from __future__ import annotations

import json

import pytest
import torch

from lessons_lib.router import GENERAL, KINDS, course_labels, load_router
from lessons_lib.router.data import heldout_rows, natural_rows, split_rows, training_rows
from lessons_lib.router.metrics import choose_threshold, evaluate_router, threshold_accuracy
from lessons_lib.router.ngram import (
    CONFIG_FILE,
    NgramConfig,
    NgramRouter,
    char_ngrams,
    shipped_ngram_dir,
)

SMALL = NgramConfig(max_n=3, buckets=2**10, steps=30)
HELDOUT_MEASURED = 0.875  # `python -m lessons_lib.router evaluate --router ngram --data assets/router/heldout.jsonl`


@pytest.fixture(scope="module")
def small_rows():
    return training_rows(24, seed=1)


@pytest.fixture(scope="module")
def small_router(small_rows):
    return NgramRouter.train(small_rows, SMALL)


def test_char_ngrams_are_lowercased_per_word_with_boundaries():
    assert char_ngrams("Hi!", 2, 2) == [" h", "hi", "i!", "! "]
    assert char_ngrams("ab cd", 1, 1) == ["a", "b", "c", "d"]  # a lone space is not a feature
    assert char_ngrams("Ёж", 3, 3) == [" ёж", "ёж "]


def test_training_is_deterministic(small_rows, small_router):
    again = NgramRouter.train(small_rows, SMALL)
    assert torch.equal(again.weight, small_router.weight) and torch.equal(again.bias, small_router.bias)


def test_save_load_round_trip(tmp_path, small_router):
    small_router.threshold = 0.4
    folder = small_router.save(tmp_path / "ngram", extra={"note": "test"})
    loaded = NgramRouter.load(folder)
    texts = ["Turn this into JSON: Ada, 36", "Мой заказ не пришёл", "why is the sky blue?"]
    assert loaded.labels == small_router.labels and loaded.config == small_router.config
    assert loaded.threshold == 0.4
    assert torch.equal(loaded.probabilities(texts), small_router.probabilities(texts))
    assert json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))["note"] == "test"
    small_router.threshold = 0.0


def test_threshold_sends_low_confidence_requests_to_general(small_router):
    text = "Turn this into a JSON object: Tom is 31."
    confident = small_router.route(text)
    assert confident.label == "json" and set(confident.scores) == set(course_labels())
    p = confident.scores["json"]
    unsure = NgramRouter(
        small_router.weight, small_router.bias, small_router.labels, SMALL, threshold=min(0.99, p + 0.01)
    )
    decision = unsure.route(text)
    assert decision.label == GENERAL and decision.adapter == "__base__"
    assert decision.scores == confident.scores and "json" in decision.reason


def test_choose_threshold_takes_the_best_and_lowest_on_ties():
    labels = ("json", GENERAL)
    probs = [[0.9, 0.1], [0.55, 0.45], [0.3, 0.7]]
    assert threshold_accuracy(probs, ["json", GENERAL, GENERAL], labels, 0.6, GENERAL) == 1.0
    assert threshold_accuracy(probs, ["json", GENERAL, GENERAL], labels, 0.0, GENERAL) == pytest.approx(2 / 3)
    assert choose_threshold(probs, ["json", GENERAL, GENERAL], labels, GENERAL) == (0.6, 1.0)
    assert choose_threshold(probs, ["json", "json", GENERAL], labels, GENERAL) == (0.0, 1.0)


def test_split_rows_is_deterministic_disjoint_and_stratified():
    rows = natural_rows()
    train, dev = split_rows(rows, 1 / 3)
    assert (train, dev) == split_rows(rows, 1 / 3)
    assert len(train) + len(dev) == len(rows)
    assert not {r["text"] for r in train} & {r["text"] for r in dev}
    assert {r["label"] for r in dev} == set(course_labels())
    with pytest.raises(ValueError, match="dev_share"):
        split_rows(rows, 1.0)


def test_natural_training_rows_are_not_held_out_prompts():
    held = {r["text"].strip().lower() for r in heldout_rows()}
    natural = natural_rows()
    assert {r["label"] for r in natural} == set(course_labels())
    assert not [r["text"] for r in natural if r["text"].strip().lower() in held]


def test_heldout_accuracy_beats_keyword_rules_with_margin():
    router = load_router("ngram")
    assert "ngram" in KINDS and isinstance(router, NgramRouter)
    heldout = heldout_rows()
    ngram = evaluate_router(router, heldout).accuracy
    keyword = evaluate_router(load_router("keyword"), heldout).accuracy
    assert ngram >= HELDOUT_MEASURED - 0.075, ngram  # measured 0.875; margin: 6 of 80 prompts
    assert ngram >= keyword + 0.15, (ngram, keyword)


def test_bad_input_errors(tmp_path, small_router, small_rows):
    with pytest.raises(ValueError, match="Empty prompt"):
        small_router.route("   ")
    with pytest.raises(ValueError, match="route_batch takes a list"):
        small_router.route_batch("one prompt")
    with pytest.raises(FileNotFoundError, match="ngram_router.json"):
        NgramRouter.load(tmp_path)
    folder = small_router.save(tmp_path / "broken")
    (folder / CONFIG_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not an n-gram router config"):
        NgramRouter.load(folder)
    with pytest.raises(ValueError, match="No training rows for labels"):
        NgramRouter.train([r for r in small_rows if r["label"] != "json"], SMALL)
    with pytest.raises(ValueError, match="needs labeled rows"):
        NgramRouter.train([], SMALL)
    with pytest.raises(ValueError, match="threshold"):
        NgramRouter(small_router.weight, small_router.bias, small_router.labels, SMALL, threshold=1.5)
    with pytest.raises(ValueError, match="do not match"):
        NgramRouter(small_router.weight, small_router.bias, small_router.labels, NgramConfig(buckets=2**11))
    with pytest.raises(ValueError, match="min_n"):
        NgramConfig(min_n=3, max_n=2)


def test_cli_evaluates_and_rebuilds_the_ngram_router(tmp_path, capsys):
    from lessons_lib.router.__main__ import main

    assert main(["evaluate", "--router", "ngram", "--data", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err
    threads = torch.get_num_threads()
    try:
        assert main(["train-ngram", "--out", str(tmp_path / "ngram")]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "held-out accuracy (seen once)" in out and "threshold=" in out
    rebuilt, shipped = NgramRouter.load(tmp_path / "ngram"), NgramRouter.load(shipped_ngram_dir())
    assert torch.allclose(rebuilt.weight, shipped.weight, atol=1e-5) and rebuilt.threshold == shipped.threshold
