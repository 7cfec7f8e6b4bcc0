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
