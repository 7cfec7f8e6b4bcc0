"""Routers: labels, input checks, truncation, batch == one-by-one, the CLI, learned beats keyword on held-out."""

from __future__ import annotations

import json
import warnings

import pytest

from lessons_lib.router import LABELS, KeywordRouter, RouteDecision, label_to_adapter, load_router
from lessons_lib.router.data import HELDOUT_PATH, heldout_rows, read_jsonl, training_rows
from lessons_lib.router.metrics import evaluate_router

MIXED = [
    "Convert this to JSON: Ivan, 30, Omsk",
    "Напиши функцию, которая сортирует список",
    "My parcel never arrived, please help",
    "Why is the sky blue?",
    "Посылка не пришла, верните деньги",
    "schema for an api payload",
]


@pytest.fixture(scope="module")
def learned(tiny):
    return load_router("learned", tiny)


@pytest.fixture(scope="module")
def embedding(tiny):
    from lessons_lib.models import load_base, load_tokenizer
    from lessons_lib.router.embedding import EmbeddingRouter

    return EmbeddingRouter(load_base(tiny), load_tokenizer(tiny), training_rows(16))


def test_label_to_adapter():
    assert label_to_adapter("general") == "__base__"
    assert [label_to_adapter(lbl) for lbl in LABELS[:3]] == ["json", "coding", "support"]


def test_keyword_rules_explain_and_fall_back():
    router = KeywordRouter()
    decision = router.route("Please return this as JSON")
    assert decision.label == "json" and "'json'" in decision.reason
    assert router.route("Как приготовить борщ?").label == "general"
    assert "no keyword" in router.route("Как приготовить борщ?").reason
    assert router.route("Исправь рефакторинг функции").label == "coding"


def test_keyword_router_accepts_extra_labels():
    rules = {"tools": ["weather", "погода"], "json": ["json"]}
    router = KeywordRouter(rules)
    assert router.labels == ("tools", "json", "general")
    assert router.route("What is the weather in Oslo?").label == "tools"


@pytest.mark.parametrize("rules", [{}, {"json": []}, {"json": "json"}])
def test_keyword_router_rejects_bad_rules(rules):
    with pytest.raises(ValueError):
        KeywordRouter(rules)


@pytest.mark.parametrize("kind", ["keyword", "learned", "embedding"])
def test_routers_output_known_labels_and_reject_empty(kind, learned, embedding):
    router = {"keyword": KeywordRouter(), "learned": learned, "embedding": embedding}[kind]
    decisions = router.route_batch(MIXED)
    assert all(isinstance(d, RouteDecision) and d.label in LABELS for d in decisions)
    assert all(set(d.scores) == set(LABELS) for d in decisions)
    for bad in ["", "   \n\t"]:
        with pytest.raises(ValueError, match="Empty prompt"):
            router.route(bad)
        with pytest.raises(ValueError, match="Empty prompt"):
            router.route_batch(["fine prompt", bad])
    assert router.route_batch([]) == []


@pytest.mark.parametrize("kind", ["learned", "embedding"])
def test_batch_routing_equals_one_by_one(kind, learned, embedding):
    router = {"learned": learned, "embedding": embedding}[kind]
    batch = router.route_batch(MIXED)
    single = [router.route(t) for t in MIXED]
    assert [d.label for d in batch] == [d.label for d in single]
    for b, s in zip(batch, single):
        assert all(abs(b.scores[k] - s.scores[k]) < 1e-4 for k in LABELS)


def test_very_long_prompt_is_truncated(learned, tokenizer):
    from lessons_lib.router.encode import ROUTER_MAX_PROMPT_TOKENS, encode_batch

    long_text = "Write a Python function that sorts numbers. " + "blah " * 5000
    enc = encode_batch(tokenizer, [long_text])
    assert enc["input_ids"].shape[1] <= ROUTER_MAX_PROMPT_TOKENS + 16  # prompt budget + chat markers
    assert learned.route(long_text).label in LABELS


def test_learned_threshold_sends_unsure_prompts_to_general(learned):
    from lessons_lib.router.learned import LearnedRouter

    strict = LearnedRouter(learned.model, learned.tokenizer, threshold=1.0)
    decision = strict.route("Convert this to JSON: Ivan, 30, Omsk")
    assert decision.label == "general" and "low confidence" in decision.reason
    with pytest.raises(ValueError, match="threshold"):
        LearnedRouter(learned.model, learned.tokenizer, threshold=1.5)


def test_heldout_is_balanced_bilingual_and_not_templated():
    rows = heldout_rows()
    assert len(rows) >= 60
    counts = {lbl: sum(r["label"] == lbl for r in rows) for lbl in LABELS}
    assert min(counts.values()) == max(counts.values())
    assert any(any("а" <= ch <= "я" for ch in r["text"].lower()) for r in rows)
    train_texts = {r["text"] for r in training_rows()}
    assert not train_texts & {r["text"] for r in rows}


def test_learned_beats_keyword_on_heldout(learned):
    """Issue 16: the learned router >= 0.75 and >= keyword + 0.15 on the natural held-out set.

    Trained on template rows only with a fixed 0.5 threshold it scored 0.6375; on the n-gram router's train split
    (templates + 2/3 of the hand-written requests) with the threshold chosen on the other third: 0.80 (keyword 0.5375).
    """
    rows = heldout_rows()
    keyword = evaluate_router(KeywordRouter(), rows).accuracy
    learned_acc = evaluate_router(learned, rows).accuracy
    assert learned_acc >= 0.75 and learned_acc >= keyword + 0.15, f"learned {learned_acc:.3f}, keyword {keyword:.3f}"


def test_the_shipped_threshold_is_the_one_dev_chooses(learned):
    import json

    from lessons_lib.router import shipped_router_dir
    from lessons_lib.router.data import course_splits
    from lessons_lib.router.learned import ROUTER_FILE, LearnedRouter

    meta = json.loads((shipped_router_dir() / ROUTER_FILE).read_text(encoding="utf-8"))
    again = LearnedRouter(learned.model, learned.tokenizer, learned.labels, threshold=0.0)
    dev_accuracy = again.calibrate(course_splits()[1])
    assert again.threshold == learned.threshold == meta["threshold"]
    assert round(dev_accuracy, 4) == meta["dev_accuracy"]
    with pytest.raises(ValueError, match="calibrate needs dev rows"):
        again.calibrate([])


def test_read_jsonl_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hi", "label": "json"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        read_jsonl(bad)
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"text": "hi", "label": "poetry"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="poetry"):
        read_jsonl(unknown, LABELS)
    with pytest.raises(FileNotFoundError, match="JSONL"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_cli_evaluate_format(tmp_path, capsys):
    from lessons_lib.router.__main__ import main

    data = tmp_path / "mini.jsonl"
    data.write_text(
        "".join(
            json.dumps({"text": t, "label": lbl}, ensure_ascii=False) + "\n"
            for t, lbl in [
                ("return JSON please", "json"),
                ("fix this python code", "coding"),
                ("my order is lost, help", "support"),
                ("tell me a joke", "general"),
            ]
        ),
        encoding="utf-8",
    )
    assert main(["evaluate", "--router", "keyword", "--data", str(data)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "accuracy=1.0000"
    assert any(line.split()[:1] == ["label"] and "precision" in line and "recall" in line for line in out)
    assert {line.split()[0] for line in out} >= set(LABELS)
    assert main(["evaluate", "--router", "keyword", "--data", str(tmp_path / "nope.jsonl")]) == 2
    assert "JSONL" in capsys.readouterr().err


def test_cli_evaluate_of_the_learned_router_prints_no_library_notice(tmp_path, capsys):
    """Before: transformers' is_gradient_checkpointing FutureWarning above the table, as the base model loaded."""
    from lessons_lib.router.__main__ import main

    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"text": "return JSON please", "label": "json"}) + "\n", encoding="utf-8")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # every warning raised is recorded, unless the CLI silences it
        assert main(["evaluate", "--router", "learned", "--data", str(data)]) == 0
    assert [f"{w.category.__name__}: {w.message}" for w in seen] == []
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("accuracy=")


def test_heldout_file_is_valid_jsonl():
    lines = HELDOUT_PATH.read_text(encoding="utf-8").splitlines()
    assert all(set(json.loads(line)) == {"text", "label"} for line in lines)


def test_routed_model_mixed_batch_matches_single(course_model, tokenizer):
    from lessons_lib.models import generate
    from lessons_lib.router import RoutedModel

    routed = RoutedModel(course_model, tokenizer, KeywordRouter(), max_new_tokens=16)
    answers = routed.generate_batch(MIXED[:4])
    assert [a.adapter for a in answers] == ["json", "coding", "support", "__base__"]
    alone = generate(course_model, tokenizer, MIXED[1], 16, adapter_names=["coding"])
    assert answers[1].answer == alone
    assert routed.generate(MIXED[0]).adapter == "json"
    with pytest.raises(ValueError, match="not loaded|no such adapter"):
        RoutedModel(course_model, tokenizer, KeywordRouter({"tools": ["weather"]}))


# ------------------------------------------------------------------ profiles: rehearsal training, lookup, mixed batches
def test_router_recipe_scales_with_the_profile():
    from lessons_lib.profiles import PROFILES
    from lessons_lib.router.learned import TRAIN_LR, TRAIN_STEPS, router_learning_rate, router_train_steps

    assert router_learning_rate(PROFILES["tiny"]) == TRAIN_LR  # the shipped router's recipe is unchanged
    assert router_learning_rate(PROFILES["7b"]) < router_learning_rate(PROFILES["t4"]) < TRAIN_LR
    assert router_train_steps(PROFILES["t4"]) == TRAIN_STEPS
    assert router_train_steps(PROFILES["t4-rehearsal"]) == PROFILES["t4-rehearsal"].train_steps < TRAIN_STEPS
    # the GPU profiles train the shipped batch; their CPU rehearsals a smaller one (fp16 on a CPU is slow)
    from lessons_lib.profiles import REHEARSAL_ROUTER_BATCH
    from lessons_lib.router.learned import TRAIN_BATCH

    assert PROFILES["t4"].router_recipe.batch_size == PROFILES["7b"].router_recipe.batch_size == TRAIN_BATCH
    assert PROFILES["7b-rehearsal"].router_recipe.batch_size == REHEARSAL_ROUTER_BATCH < TRAIN_BATCH


def test_router_trains_on_the_4bit_fp16_path_with_fp32_weights():
    import math

    import torch

    from lessons_lib.profiles import get_profile
    from lessons_lib.router.learned import half_dtype, train_learned_router

    profile = get_profile("t4-rehearsal")
    router, result = train_learned_router(profile, training_rows(8), steps=2, batch_size=8)
    trainable = {n: p.dtype for n, p in router.model.named_parameters() if p.requires_grad}
    assert any("score" in n for n in trainable) and set(trainable.values()) == {torch.float32}
    assert getattr(router.model.base_model.model, "is_loaded_in_4bit", False)
    assert half_dtype(router.model) == torch.float16 and router.half == torch.float16
    assert math.isfinite(result.final_loss)
    assert all(d.label in LABELS for d in router.route_batch(MIXED[:2]))


def test_find_or_train_trains_once_into_the_work_dir(tmp_path, monkeypatch):
    import shutil

    from lessons_lib.profiles import get_profile
    from lessons_lib.router import find_or_train, shipped_router_dir
    from lessons_lib.router import learned as learned_module

    calls = []

    def fake_train(profile, folder, steps, seed=0, log=print):
        calls.append(steps)
        return shutil.copytree(shipped_router_dir(), folder)

    monkeypatch.setattr(learned_module, "train_and_save", fake_train)
    profile = get_profile("t4-rehearsal")
    logs: list[str] = []
    folder = find_or_train(profile, tmp_path, steps=5, log=logs.append)
    assert calls == [5] and folder == tmp_path / "adapters" / "router"
    assert any("training it here, 5 steps" in line for line in logs)
    assert find_or_train(profile, tmp_path, steps=5, log=logs.append) == folder and calls == [5]
    assert logs[-1].startswith("router: local")


class ShiftedRows:
    """The course model with a routing bug: in a mixed batch every row runs through the next row's adapter."""

    def __init__(self, model):
        self.model, self.peft_config = model, model.peft_config

    def parameters(self):
        return self.model.parameters()

    def __call__(self, adapter_names, **inputs):
        if len(adapter_names) > 1:
            adapter_names = adapter_names[1:] + adapter_names[:1]
        return self.model(adapter_names=adapter_names, **inputs)


def test_mixed_batch_rows_are_nearest_their_own_adapter(course_model, tokenizer, tiny):
    from lessons_lib.router.routed import check_mixed_batch

    prompts, adapters = MIXED[:4], ["json", "coding", "support", "__base__"]
    rows = check_mixed_batch(course_model, tokenizer, prompts, adapters, tiny)
    assert all(r.ok for r in rows) and max(r.noise for r in rows) < 1e-4
    buggy = check_mixed_batch(ShiftedRows(course_model), tokenizer, prompts, adapters, tiny)
    assert not any(r.ok for r in buggy) and all(r.noise > r.nearest_other for r in buggy)
