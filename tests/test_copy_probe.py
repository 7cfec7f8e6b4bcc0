"""The copy probe and the copy-heavy corpus: deterministic, bilingual, disjoint from the course's pools."""

import random
import re

import pytest

from lessons_lib.paths import TINY_MODEL_DIR
from lessons_lib.tiny import copy_corpus, probe

CYRILLIC = re.compile("[а-яё]", re.I)
ITEMS = probe.items()


@pytest.fixture(scope="module")
def copy_text():
    """A sample of the copy corpus (no course text)."""
    return "\n".join(copy_corpus.documents(20000, 0, course_share=0.0))


def test_probe_has_200_items_balanced_by_language_and_frame():
    assert len(ITEMS) == 200
    assert sum(it.lang == "en" for it in ITEMS) == 100
    assert sum(it.seen for it in ITEMS) == 100
    assert {it.kind for it in ITEMS} == {"person", "place", "number", "function"}
    assert probe.items() == ITEMS and probe.items(1) != ITEMS


def test_every_target_is_in_its_prompt_and_outside_the_course_pools():
    for it in ITEMS:
        assert it.target in it.prompt
        assert not set(it.target.split()) & copy_corpus.COURSE_POOLS


def _segments(frame: str) -> list[str]:
    """The fixed text between a frame's placeholders."""
    return [s.replace("{{", "{") for s in re.split(r"\{[a-z]\}", frame)]


def test_seen_frames_end_with_corpus_cues_and_new_frames_use_new_phrasings(copy_text):
    seen_cues = [_segments(f)[-1].split("\n")[-1] for _, _, s, f in probe.FRAMES if s]
    assert not [c for c in seen_cues if c not in copy_text]
    new = [max(_segments(f), key=len) for _, _, s, f in probe.FRAMES if not s]
    assert not [c for c in new if c in copy_text]


def test_probe_entities_never_appear_in_the_copy_corpus(copy_text):
    people = [p for names in probe.PEOPLE.values() for p in names]
    places = [c for names in probe.PLACES.values() for c in names]
    assert not [e for e in people + places + probe.FUNCTIONS if e in copy_text]


def test_copied_is_exact_from_the_start():
    assert probe.copied(' "Zofia Wrenfield", "age"', "Zofia Wrenfield")
    assert probe.copied(" «Тотьма»", "Тотьма")
    assert probe.copied(" 893289\nWhich", "893289")
    assert not probe.copied(" Zofia Wren", "Zofia Wrenfield")
    assert not probe.copied(" Выборград", "Выборг") and not probe.copied(" 8932890", "893289")
    assert not probe.copied(" Dear Zofia Wrenfield", "Zofia Wrenfield")


def test_score_splits_seen_and_new():
    seen = next(it for it in ITEMS if it.seen)
    new = next(it for it in ITEMS if not it.seen)
    report = probe.score([(seen, " " + seen.target), (new, " nope")])
    assert (report["overall"], report["seen_frames"], report["new_frames"]) == (0.5, 1.0, 0.0)


def test_probe_runs_on_the_shipped_base():
    report, pairs = probe.run(TINY_MODEL_DIR, ITEMS[:2])
    assert report["n"] == 2 and len(pairs) == 2
    assert all(isinstance(c, str) for _, c in pairs)
    assert 0.0 <= report["overall"] <= 1.0


def test_corpus_is_deterministic_and_bilingual():
    a = copy_corpus.documents(300, 3)
    assert a == copy_corpus.documents(300, 3)
    assert a != copy_corpus.documents(300, 4)
    copy_docs = copy_corpus.documents(300, 3, course_share=0.0)
    share_ru = sum(bool(CYRILLIC.search(d)) for d in copy_docs) / len(copy_docs)
    assert 0.4 <= share_ru <= 0.7


def test_corpus_mixes_in_the_course_text():
    from lessons_lib.tiny import corpus

    course = set(corpus.documents(30, 5))
    mixed = copy_corpus.documents(100, 5, course_share=0.3)
    assert len(mixed) == 100 and course <= set(mixed)
    with pytest.raises(ValueError, match="course_share"):
        copy_corpus.documents(10, 0, course_share=1.5)


def test_induction_share_sets_the_share_of_bare_repeats(monkeypatch):
    """`induction_share` (the v3 ablation's knob) sets how many copy documents are bare repeated spans."""
    monkeypatch.setattr(copy_corpus, "induction", lambda *_: "<induction>")

    def bare_repeats(share: float) -> float:
        docs = copy_corpus.documents(600, 7, course_share=0.0, induction_share=share)
        return docs.count("<induction>") / len(docs)

    assert bare_repeats(0.0) == 0 and 0.25 < bare_repeats(0.3) < 0.35 and bare_repeats(1.0) == 1
    with pytest.raises(ValueError, match="induction_share"):
        copy_corpus.documents(10, 0, induction_share=-0.1)


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_entities_are_fresh_and_respect_a_ban_list(lang):
    rng = random.Random(0)
    ent = copy_corpus.Entities(rng, lang)
    people = [ent.person() for _ in range(500)]
    assert not {w for p in people for w in p.split()} & copy_corpus.COURSE_POOLS
    assert len(set(people)) > 450, "names should rarely repeat: a pool would be memorised"
    banned = frozenset(people[:50])
    again = copy_corpus.Entities(random.Random(0), lang, banned)
    assert not set(again.person() for _ in range(500)) & banned
    assert all(bool(CYRILLIC.search(p)) == (lang == "ru") for p in people)


def test_word_vocab_leaves_out_course_names(tokenizer):
    vocab = copy_corpus.word_vocab(tokenizer)
    assert len(vocab) > 300 and not set(vocab) & copy_corpus.COURSE_POOLS


def test_lr_schedule_warms_up_holds_and_decays():
    from lessons_lib.tiny.copy_base import lr_factor

    assert lr_factor(0, 1000) == pytest.approx(0.05)
    assert lr_factor(500, 1000) == 1.0
    assert lr_factor(999, 1000) == pytest.approx(0.1045, abs=1e-3)


@pytest.mark.parametrize("domain", ["json", "support", "coding"])
def test_fresh_rows_swap_every_entity_for_one_the_prompt_holds(domain):
    import json

    from lessons_lib.varied_data import fresh_rows

    rows = fresh_rows(domain, 40)
    assert rows == fresh_rows(domain, 40) and rows != fresh_rows(domain, 40, seed=1)
    for row in rows:
        prompt, answer = row["prompt"][0]["content"], row["completion"][0]["content"]
        if domain == "json":
            values = [str(v) for v in json.loads(answer).values()]
        elif domain == "support":
            values = [answer.split("\n")[0].split(", ", 1)[1].rstrip("!")]
        else:
            fn, arg = re.findall(r"def (\w+)\((\w+)\)", answer)[0]
            assert arg in prompt
            values = [fn]  # the argument may be a plain word such as "values"; the name must be fresh
        for v in values:
            assert v in prompt, (v, prompt)
            assert not set(v.split()) & copy_corpus.COURSE_POOLS


def test_training_can_start_from_a_checkpoint_of_the_same_shape_only(tmp_path):
    import torch
    from transformers import LlamaConfig

    from lessons_lib.paths import TINY_MODEL_DIR
    from lessons_lib.tiny.copy_base import start_model

    further = start_model(TINY_MODEL_DIR, 0, init=TINY_MODEL_DIR)
    again = start_model(TINY_MODEL_DIR, 1, init=TINY_MODEL_DIR)
    fresh = start_model(TINY_MODEL_DIR, 0)
    first = next(iter(further.state_dict()))
    assert torch.equal(further.state_dict()[first], again.state_dict()[first])  # the checkpoint's, whatever the seed
    assert not torch.equal(further.state_dict()[first], fresh.state_dict()[first])
    with pytest.raises(FileNotFoundError, match="no config.json"):
        start_model(TINY_MODEL_DIR, 0, init=tmp_path)
    other = LlamaConfig.from_pretrained(TINY_MODEL_DIR)
    other.hidden_size *= 2
    other.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="hidden_size"):
        start_model(TINY_MODEL_DIR, 0, init=tmp_path)


def test_a_new_model_can_have_another_shape_and_bad_shapes_are_refused():
    import argparse

    from lessons_lib.paths import TINY_MODEL_DIR
    from lessons_lib.tiny.copy_base import fresh_model, parse_shape, start_model

    shape = parse_shape("hidden_size=256,num_hidden_layers=6,intermediate_size=704")
    bigger = fresh_model(TINY_MODEL_DIR, 0, shape)
    assert (bigger.config.hidden_size, bigger.config.num_hidden_layers, bigger.config.head_dim) == (256, 6, 64)
    assert sum(p.numel() for p in bigger.parameters()) == 5_344_512  # 21.4 MB in fp32: within the 25 MB asked
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=N"):
        parse_shape("vocab_size=10")
    with pytest.raises(ValueError, match="multiple of the 4 attention heads"):
        fresh_model(TINY_MODEL_DIR, 0, {"hidden_size": 250})
    with pytest.raises(ValueError, match="Drop one"):
        start_model(TINY_MODEL_DIR, 0, init=TINY_MODEL_DIR, shape=shape)


def test_the_shipped_recipe_runs_its_stages_in_order_and_ships_the_last(tmp_path):
    """`build_shipped` trains each stage (the second from the first's final), then copies weights into the target."""
    import json
    import shutil

    import torch

    from lessons_lib.tiny.copy_base import SHIPPED_FILES, SHIPPED_STAGES, Stage, build_shipped

    assert [s.init for s in SHIPPED_STAGES] == [None, SHIPPED_STAGES[0].out / "final"]  # the recipe chains too
    target = tmp_path / "model"
    shutil.copytree(TINY_MODEL_DIR, target)
    before = {p.name: p.read_bytes() for p in target.iterdir() if p.name not in SHIPPED_FILES}
    one, two = tmp_path / "one", tmp_path / "two"
    stages = (Stage(one, 2, 3e-3, 0, 1, 1), Stage(two, 1, 1e-3, 1, 1, 1, one / "final"))
    threads = torch.get_num_threads()
    try:
        facts = build_shipped(target, stages, log=lambda *_: None)
    finally:
        torch.set_num_threads(threads)
    assert (facts["steps"], facts["init"], facts["seed"]) == (1, str(one / "final"), 1)
    assert json.loads((target / "build_facts.json").read_text()) == facts
    assert (target / "model.safetensors").read_bytes() == (two / "final" / "model.safetensors").read_bytes()
    assert {p.name: p.read_bytes() for p in target.iterdir() if p.name not in SHIPPED_FILES} == before
