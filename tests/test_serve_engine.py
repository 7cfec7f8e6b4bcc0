"""The batching engine in-process (no HTTP): mixed batches equal single answers, failures stay per request."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from lessons_lib.adapters import COURSE_ADAPTERS
from lessons_lib.serve.engine import BatchingEngine, GenerationError, Job, mix_name

PROMPTS = (
    "Extract JSON: Anna Petrova, 31, Kazan.",
    "Write a Python function that adds two numbers.",
    "My order 4411 is late, please help.",
)


def job(tok, prompt: str, model: str, max_tokens: int = 8) -> Job:
    from lessons_lib.models import chat_text

    return Job(prompt=chat_text(tok, prompt), route_text=prompt, model=model, max_tokens=max_tokens)


def test_concurrent_jobs_match_single_adapter_generate(course_model, tokenizer):
    from lessons_lib.models import generate

    expected = {
        (p, m): generate(course_model, tokenizer, p, 8, adapter_names=["__base__" if m == "base" else m])
        for p in PROMPTS
        for m in (*COURSE_ADAPTERS, "base")
    }
    engine = BatchingEngine(course_model, tokenizer, COURSE_ADAPTERS, window_ms=50)
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

    engine = BatchingEngine(course_model, tokenizer, COURSE_ADAPTERS, window_ms=50)
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

    engine = BatchingEngine(course_model, tokenizer, COURSE_ADAPTERS, window_ms=50, fault=fault)
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
    engine = BatchingEngine(course_model, tokenizer, COURSE_ADAPTERS, window_ms=5000, max_batch=32)
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
    from lessons_lib.profiles import PROFILES
    from lessons_lib.router import load_router

    router = load_router("keyword", PROFILES["tiny"], log=lambda *_: None)
    engine = BatchingEngine(course_model, tokenizer, COURSE_ADAPTERS, router=router, window_ms=200)
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


# ---------------------------------------------------------------- sampling, choices, streaming (issue 17)
def run_together(engine, jobs, timeout=120):
    for j in jobs:
        engine.submit(j)
    return [j.future.result(timeout) for j in jobs]


def sampled(tok, prompt, model, max_tokens=16, **settings):
    from lessons_lib.serve.engine import Sampling

    j = job(tok, prompt, model, max_tokens)
    j.sampling = Sampling(**settings)
    return j


def test_a_greedy_job_answers_the_same_alone_and_beside_sampled_jobs(course_model, tokenizer):
    engine = BatchingEngine(course_model, tokenizer, COURSE_ADAPTERS, window_ms=200)
    try:
        alone = engine.submit(job(tokenizer, PROMPTS[0], "json", 16)).result(60)
        mixed = run_together(
            engine,
            [
                sampled(tokenizer, PROMPTS[2], "support", temperature=1.2, seed=1, n=2),
                job(tokenizer, PROMPTS[0], "json", 16),
                sampled(tokenizer, PROMPTS[1], "coding", temperature=0.8, top_p=0.9),
            ],
        )
    finally:
        engine.close()
    assert mixed[1].batch_size == 3
    assert mixed[1].text == alone.text and mixed[1].completion_tokens == alone.completion_tokens
    assert len(mixed[0].choices) == 2 and mixed[0].text == mixed[0].choices[0].text


def test_a_seed_repeats_its_answer_and_n_choices_differ(course_model, tokenizer):
    engine = BatchingEngine(course_model, tokenizer, COURSE_ADAPTERS, window_ms=0)
    try:
        first = engine.submit(sampled(tokenizer, PROMPTS[2], "support", 24, temperature=1.2, seed=5, n=3)).result(60)
        again = engine.submit(sampled(tokenizer, PROMPTS[2], "support", 24, temperature=1.2, seed=5, n=3)).result(60)
        other = engine.submit(sampled(tokenizer, PROMPTS[2], "support", 24, temperature=1.2, seed=6)).result(60)
        engine.window_s = 0.2
        company = run_together(
            engine,
            [
                job(tokenizer, PROMPTS[0], "json", 24),
                sampled(tokenizer, PROMPTS[2], "support", 24, temperature=1.2, seed=5, n=3),
                sampled(tokenizer, PROMPTS[1], "coding", 24, temperature=1.2),
            ],
        )
    finally:
        engine.close()
    texts = [c.text for c in first.choices]
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert texts == [c.text for c in again.choices] == [c.text for c in company[1].choices]
    assert company[1].batch_size == 3
    assert len(set(texts)) == 3 and other.text != texts[0]
    assert engine.stats["tokens_generated"] == sum(
        c.completion_tokens for a in (first, again, other, *company) for c in a.choices
    )


def test_streamed_deltas_add_up_to_each_choice(course_model, tokenizer):
    deltas = []
    streamed = sampled(
        tokenizer,
        PROMPTS[2],
        "support",
        30,
        temperature=1.0,
        seed=3,
        n=2,
        stop=("order",),
        logprobs=True,
        top_logprobs=2,
    )
    streamed.on_delta = deltas.append
    engine = BatchingEngine(course_model, tokenizer, COURSE_ADAPTERS, window_ms=100)
    try:
        answer, plain = run_together(engine, [streamed, job(tokenizer, PROMPTS[0], "json")])
    finally:
        engine.close()
    assert plain.text and plain.choices[0].text == plain.text
    for choice in answer.choices:
        mine = [d for d in deltas if d.index == choice.index]
        assert "".join(d.text for d in mine) == choice.text
        assert mine[-1].finish_reason == choice.finish_reason and choice.finish_reason in ("stop", "length")
        assert all(d.finish_reason is None for d in mine[:-1])
        assert "order" not in choice.text
        assert [e for d in mine for e in d.logprobs] == choice.logprobs
        assert all(len(e["top_logprobs"]) == 2 for e in choice.logprobs)


def test_a_cancelled_job_stops_and_leaves_its_batch(course_model, tokenizer):
    engine = BatchingEngine(course_model, tokenizer, COURSE_ADAPTERS, window_ms=200)
    try:
        reference = engine.submit(job(tokenizer, PROMPTS[1], "coding", 24)).result(60)
        leaving = job(tokenizer, PROMPTS[2], "support", 24)
        leaving.on_delta = lambda delta: leaving.cancelled.set()  # the client went away after the first piece
        early = job(tokenizer, PROMPTS[0], "json", 24)
        early.cancelled.set()  # gone before its batch ran
        gone, stayed, never = run_together(engine, [leaving, job(tokenizer, PROMPTS[1], "coding", 24), early])
    finally:
        engine.close()
    assert gone.finish_reason == "cancelled" and gone.completion_tokens < 5
    assert never.finish_reason == "cancelled" and never.completion_tokens == 0
    assert stayed.text == reference.text
    assert engine.stats["cancelled"] == 2


def test_bad_sampling_fails_only_its_own_job(course_model, tokenizer):
    engine = BatchingEngine(course_model, tokenizer, COURSE_ADAPTERS, window_ms=100)
    try:
        bad, good = sampled(tokenizer, PROMPTS[0], "json", top_p=0.0), job(tokenizer, PROMPTS[0], "json")
        engine.submit(bad), engine.submit(good)
        with pytest.raises(GenerationError, match="top_p must be in"):
            bad.future.result(60)
        assert good.future.result(60).text
    finally:
        engine.close()
    assert engine.stats["failed_batches"] == 0


def test_a_batch_failing_mid_stream_fails_the_streamed_job_and_reruns_the_rest(course_model, tokenizer):
    def explode_late(ids):  # fails on the third step, after the streamed job has sent text
        if len(ids) >= 2:
            raise RuntimeError("constraint crashed")
        return None

    streamed, bad, plain = (
        job(tokenizer, PROMPTS[2], "support"),
        job(tokenizer, PROMPTS[0], "json"),
        job(tokenizer, PROMPTS[1], "coding"),
    )
    streamed.on_delta = lambda delta: None
    bad.allowed_tokens = explode_late
    engine = BatchingEngine(course_model, tokenizer, COURSE_ADAPTERS, window_ms=200)
    try:
        for j in (streamed, bad, plain):
            engine.submit(j)
        with pytest.raises(GenerationError, match="streamed"):
            streamed.future.result(60)
        with pytest.raises(GenerationError, match="constraint crashed"):
            bad.future.result(60)
        assert plain.future.result(60).text
    finally:
        engine.close()
    assert (engine.stats["failed_batches"], engine.stats["fallback_runs"], engine.stats["errors"]) == (1, 2, 2)


class PeftRows:
    """A stand-in for the batched LoRA object: applies PEFT's per-row hooks itself and records the batches."""

    def __init__(self, model, fail: bool = False):
        self.model, self.fail, self.seen = model, fail, []

    def rows(self, names):
        if self.fail:
            raise NotImplementedError("no stacked weights for this model")
        self.seen.append(list(names))
        return self.model._enable_peft_forward_hooks(adapter_names=list(names))


def test_a_batched_lora_object_runs_the_rows_and_a_broken_one_falls_back_to_peft(course_model, tokenizer):
    keys = [(p, m) for p in PROMPTS for m in ("json", "base")]
    results = {}
    for label, lora in (("peft", None), ("batched", PeftRows(course_model)), ("broken", PeftRows(course_model, True))):
        engine = BatchingEngine(course_model, tokenizer, COURSE_ADAPTERS, window_ms=200, batched_lora=lora)
        try:
            results[label] = [a.text for a in run_together(engine, [job(tokenizer, *k) for k in keys])]
            results[label + " path"] = engine.stats["lora_path"]
        finally:
            engine.close()
    assert results["batched"] == results["peft"] == results["broken"]
    assert (results["peft path"], results["batched path"]) == ("peft", "batched")
    assert results["broken path"].startswith("peft (batched LoRA failed: NotImplementedError")
