"""The batching engine in-process (no HTTP): mixed batches equal single answers, failures stay per request."""
from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from lessons_lib.serve.engine import BatchingEngine, GenerationError, Job, mix_name

PROMPTS = ("Extract JSON: Anna Petrova, 31, Kazan.", "Write a Python function that adds two numbers.",
           "My order 4411 is late, please help.")


def job(tok, prompt: str, model: str, max_tokens: int = 8) -> Job:
    from lessons_lib.models import chat_text

    return Job(prompt=chat_text(tok, prompt), route_text=prompt, model=model, max_tokens=max_tokens)


def test_concurrent_jobs_match_single_adapter_generate(course_model, tokenizer):
    from lessons_lib.models import generate

    expected = {(p, m): generate(course_model, tokenizer, p, 8, adapter_names=["__base__" if m == "base" else m])
                for p in PROMPTS for m in ("json", "coding", "support", "base")}
    engine = BatchingEngine(course_model, tokenizer, ["json", "coding", "support"], window_ms=50)
    try:
        keys = list(expected)
        with ThreadPoolExecutor(max_workers=len(keys)) as pool:
            futures = list(pool.map(lambda k: engine.submit(job(tokenizer, *k)), keys))
        answers = [f.result(timeout=120) for f in futures]
    finally:
        engine.close()
    assert [a.text for a in answers] == [expected[k].strip() for k in keys]
    assert [a.adapter for a in answers] == [m for _, m in keys]
    assert max(a.batch_size for a in answers) > 1
    assert course_model.active_adapter == "json"  # the engine never switched the global adapter


def test_shorter_max_tokens_in_a_batch_equals_its_own_generate(course_model, tokenizer):
    from lessons_lib.models import generate

    engine = BatchingEngine(course_model, tokenizer, ["json", "coding", "support"], window_ms=50)
    try:
        short, long = job(tokenizer, PROMPTS[2], "support", 5), job(tokenizer, PROMPTS[2], "support", 30)
        engine.submit(short), engine.submit(long)
        got_short, got_long = short.future.result(60), long.future.result(60)
    finally:
        engine.close()
    assert got_short.completion_tokens == 5 and got_short.finish_reason == "length"
    assert got_short.text == generate(course_model, tokenizer, PROMPTS[2], 5, adapter_names=["support"]).strip()
    assert got_long.text.startswith(got_short.text)


def test_a_failing_request_fails_alone_and_the_worker_survives(course_model, tokenizer):
    def fault(jobs):
        if any("BOOM" in j.route_text for j in jobs):
            raise RuntimeError("boom")

    engine = BatchingEngine(course_model, tokenizer, ["json", "coding", "support"], window_ms=50, fault=fault)
    try:
        bad, good = job(tokenizer, "BOOM", "json"), job(tokenizer, PROMPTS[0], "json")
        engine.submit(bad), engine.submit(good)
        with pytest.raises(GenerationError, match="RuntimeError: boom"):
            bad.future.result(60)
        assert good.future.result(60).text
        assert engine.submit(job(tokenizer, PROMPTS[1], "coding")).result(60).adapter == "coding"
    finally:
        engine.close()
    assert engine.stats["errors"] == 1


def test_auto_without_a_router_is_a_clear_error(course_model, tokenizer):
    engine = BatchingEngine(course_model, tokenizer, ["json"], router=None)
    try:
        with pytest.raises(GenerationError, match="no router"):
            engine.submit(job(tokenizer, PROMPTS[0], "auto")).result(60)
    finally:
        engine.close()


def test_mix_names_are_stable():
    assert mix_name({"support": 0.5, "json": 1.0}) == "mix:json=1,support=0.5"


def test_adapter_store_folders_with_unsafe_names_are_skipped(tmp_path, tiny):
    from lessons_lib.adapters import adapter_dir
    from lessons_lib.serve.loading import find_adapter_folders, load_router

    shutil.copytree(adapter_dir("json", tiny), tmp_path / "json_v2")
    shutil.copytree(adapter_dir("json", tiny), tmp_path / "json.old")
    (tmp_path / "notes").mkdir()
    found, skipped = find_adapter_folders(tiny, tmp_path)
    assert list(found) == ["json_v2"]
    assert len(skipped) == 1 and "json.old" in skipped[0]
    with pytest.raises(FileNotFoundError, match="--adapters-dir"):
        find_adapter_folders(tiny, tmp_path / "missing")
    assert load_router("none", tiny) == (None, "started without a router (--router none)")


def test_32_requests_with_6_mixes_run_in_one_pass(course_model, tokenizer):
    """Before: more than 4 mixes in one batch evicted each other from the cache (max_mixes=4), the batch failed
    and was redone one request at a time (32 requests: 1.4 s -> 5.5 s). Now a batch keeps all its mixes alive."""
    mixes = [{"json": 1.0, "support": w} for w in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)]
    jobs = [job(tokenizer, PROMPTS[i % 3], "mix") for i in range(32)]
    for i, j in enumerate(jobs):
        j.weights = mixes[i % 6]
    engine = BatchingEngine(course_model, tokenizer, ["json", "coding", "support"], window_ms=5000, max_batch=32)
    try:
        for j in jobs:
            engine.submit(j)
        answers = [j.future.result(120) for j in jobs]
        stats = dict(engine.stats)
        engine.window_s = 0.0  # the references run alone: no need to wait for company
        references = {}
        for i in range(6):  # each mix alone, in its own batch
            alone = job(tokenizer, PROMPTS[i % 3], "mix")
            alone.weights = mixes[i]
            references[i] = engine.submit(alone).result(120)
    finally:
        engine.close()
    print(f"\n32 requests, 6 mixes: {stats['batches']} batch, {stats['fallback_runs']} fallback re-runs")
    assert (stats["batches"], stats["fallback_runs"], stats["failed_batches"]) == (1, 0, 0)
    assert stats["mixes_built"] == 6 and {a.batch_size for a in answers} == {32}
    assert [a.adapter for a in answers] == [mix_name(mixes[i % 6]) for i in range(32)]
    for i in range(6):
        assert answers[i].text == references[i].text  # no cross-talk between the mixes of one batch
    # The cache is trimmed back to max_mixes by the next batches, never during one.
    assert stats["mixes_evicted"] == 0
    assert len(engine._mixes) == engine.max_mixes == 4 and engine.stats["mixes_evicted"] >= 2


def test_a_request_the_router_refuses_fails_alone_and_its_batch_is_not_redone(course_model, tokenizer):
    from lessons_lib.router import load_router
    from lessons_lib.profiles import PROFILES

    router = load_router("keyword", PROFILES["tiny"], log=lambda *_: None)
    engine = BatchingEngine(course_model, tokenizer, ["json", "coding", "support"], router=router, window_ms=200)
    try:
        blank = Job(prompt=job(tokenizer, " ", "auto").prompt, route_text=" ", model="auto", max_tokens=8)
        others = [job(tokenizer, p, m) for p in PROMPTS for m in ("json", "auto")]
        for j in [blank, *others]:
            engine.submit(j)
        with pytest.raises(GenerationError, match="Empty prompt"):
            blank.future.result(60)
        answers = [j.future.result(60) for j in others]
    finally:
        engine.close()
    assert max(a.batch_size for a in answers) == len(others)
    assert (engine.stats["fallback_runs"], engine.stats["failed_batches"], engine.stats["errors"]) == (0, 0, 1)
