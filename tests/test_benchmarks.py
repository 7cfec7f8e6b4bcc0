"""The benchmarks run, agree on results, and report finite ratios in the agreed format (never a wall time)."""

from __future__ import annotations

import gc
import json
import math
import re
import sys
import types

import pytest

from benchmarks import (
    bench_batched_lora,
    bench_collect,
    bench_constrained,
    bench_constraint_vocab,
    bench_course,
    bench_inference,
    bench_mixed_batch,
    bench_router,
    bench_serve_throughput,
    bench_switching,
    bench_train_rate,
    bench_training,
    run_all,
)
from benchmarks.common import (
    BenchResult,
    Variant,
    final_line,
    format_table,
    skipped_result,
    time_alternating,
    write_plot,
)

RATIO_LINE = re.compile(
    r"^(\w+): ratio=(\S+) \(.+\) goal: .+ (goal met|goal not met|no goal \(informational\)|not run: .+)$"
)


def assert_reported(result: BenchResult, name: str) -> float:
    """The result has rows, a finite positive ratio, and a ratio line in the agreed format."""
    assert result.name == name and result.skipped is None and result.rows
    assert math.isfinite(result.ratio) and result.ratio > 0
    match = RATIO_LINE.match(final_line([result]))
    assert match, final_line([result])
    assert match.group(1) == name and float(match.group(2)) > 0
    return result.ratio


@pytest.fixture(autouse=True)
def restore_threads():
    """Benchmarks pin torch to one thread; give the rest of the session its thread count back."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_time_alternating_rotates_order_and_keeps_untimed_steps_out():
    calls: list[str] = []
    variants = [Variant(n, lambda n=n: calls.append(n), after=lambda: calls.append("after")) for n in "abc"]
    samples = time_alternating(variants, repeats=3, warmup=0)
    assert {k: len(v) for k, v in samples.items()} == {"a": 3, "b": 3, "c": 3}
    firsts = [c for c in calls if c != "after"][::3]
    assert firsts == ["a", "b", "c"]  # each round starts with a different variant
    with pytest.raises(ValueError, match="repeats"):
        time_alternating(variants, repeats=0)


def test_table_plot_and_skipped_line(tmp_path):
    result = BenchResult(
        name="demo",
        title="Demo",
        device="cpu",
        rows=[{"variant": "x", "ms": 1.5}],
        ratio=2.0,
        ratio_label="x / y",
        goal=">= 1.5",
        goal_met=True,
        plot_values={"x": 1.5, "y": 3.0},
        plot_label="ms",
    )
    assert format_table(result.rows).splitlines()[0].startswith("| variant")
    assert final_line([result]).startswith("demo: ratio=2 (x / y) goal: >= 1.5") and final_line([result]).endswith(
        "goal met"
    )
    png = write_plot([result], tmp_path / "demo.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    skipped = skipped_result("demo", "Demo", "no module", "none")
    assert RATIO_LINE.match(final_line([skipped])) and "ratio=nan" in final_line([skipped])
    assert write_plot([skipped], tmp_path / "none.png") is None


def test_collect_benchmark_times_a_collection_both_ways_and_leaves_nothing_frozen_it_did_not_find():
    frozen_before = gc.get_freeze_count()  # the test worker froze its imports at session start (conftest.py)
    result = bench_collect.measure(repeats=1, work=False)
    assert gc.get_freeze_count() == frozen_before, "the benchmark toggles the collector in its own process only"
    assert_reported(result, "collect")
    assert [r["variant"] for r in result.rows] == [bench_collect.LABELS["tracked"], bench_collect.LABELS["frozen"]]
    assert result.ratio > 5, result.rows  # ~0.23 s vs well under 1 ms with the imports frozen
    assert bench_collect.measure(device="cuda").skipped


def test_a_bench_base_is_where_the_benchmark_asked(monkeypatch):
    """On a GPU machine load_base puts the tiny model on the GPU too (device_map="auto"): the CPU pass moves it back."""
    import torch

    from benchmarks.common import load_bench_base
    from lessons_lib import models

    load_base = models.load_base
    monkeypatch.setattr(models, "load_base", lambda *a, **k: load_base(*a, **k).half())  # placed and cast elsewhere
    weights = next(load_bench_base("cpu").parameters())
    assert weights.device.type == "cpu" and weights.dtype == torch.float32


def test_switching_every_way_leaves_the_right_adapter():
    result = bench_switching.measure(repeats=1)
    assert_reported(result, "switching")
    assert [r["variant"] for r in result.rows] == [
        "set_adapter",
        "hotswap_adapter",
        "load_adapter from disk",
        "reload base + adapter",
    ]
    assert result.extra["correct"] is True
    assert all(r["max abs dlogit vs coding"] <= 1e-4 for r in result.rows)  # fp32 noise across CPUs is ~1e-5


def test_mixed_batch_answers_equal_switched_answers():
    result = bench_mixed_batch.measure(repeats=1, max_new_tokens=12, per_adapter=2)
    assert_reported(result, "mixed_batch")
    assert result.extra["outputs_equal"] is True
    assert all(r["rows equal to sub-batch"] == "6/6" for r in result.rows if r["variant"] != bench_mixed_batch.BOUND)
    assert result.extra["tokens"] > 0


def test_batched_lora_grid_ids_equal_peft():
    result = bench_batched_lora.measure(repeats=1, max_new_tokens=4, sizes=(8,))
    assert_reported(result, "mixed_batch_batched")
    assert [(r["batch"], r["answers"]) for r in result.rows] == [(8, "equal"), (8, "natural")]
    assert result.extra["ids_equal"] is True and all(r["batched ids = PEFT ids"] for r in result.rows)
    assert result.extra["peft_ratio"] > 0


def test_serve_throughput_engines_answer_alike():
    result = bench_serve_throughput.measure(repeats=1, n_requests=8, max_tokens=4)
    assert_reported(result, "serve_throughput")
    assert [r["lora_path"] for r in result.rows] == ["peft", "batched"]
    assert result.extra["answers_equal"] is True and all(r["answers equal to PEFT"] == "8/8" for r in result.rows)


def test_training_packing_removes_padding():
    result = bench_training.measure(repeats=1, steps=2, batch_size=2, per_domain=6)
    assert_reported(result, "training")
    rows = {r["variant"]: r for r in result.rows}
    assert set(rows) == {
        "padding",
        "packing",
        "packing wrapped",
        "packing, equal tokens",
        "packing wrapped, equal tokens",
        "padding + grad ckpt",
        "packing + grad ckpt",
    }
    assert rows["packing"]["pad share"] == 0 < rows["padding"]["pad share"]
    assert rows["packing"]["real tokens/step"] > rows["padding"]["real tokens/step"]
    assert result.extra["losses_finite"] is True


def test_train_rate_sets_the_profiles_rate_beside_a_measured_one():
    from lessons_lib.profiles import PROFILES

    result = bench_train_rate.measure(repeats=1, steps=2)
    ratio = assert_reported(result, "train_rate")
    measured, profile = (row["padded tokens/s"] for row in result.rows)
    assert profile == PROFILES["tiny"].train_tokens_per_second and ratio == pytest.approx(profile / measured)
    assert result.goal_met == (abs(ratio - 1) <= bench_train_rate.GOAL_OFF)
    assert bench_train_rate.measure(device="cuda").skipped == "the tiny profile's rate is a CPU figure"


def test_inference_merged_equals_adapter():
    result = bench_inference.measure(repeats=1, new_tokens=4, batch=2)
    assert_reported(result, "inference")
    assert result.extra["merged_equals_adapter"] is True
    assert result.extra["max_logit_gap"] < 1e-4


class _FakeRouter:
    def __init__(self, answers: dict[str, str | None]):
        self.answers = answers

    def route(self, text: str):
        return types.SimpleNamespace(adapter=self.answers[text] or "__base__", label="ignored")


def test_router_benchmark_with_routers_and_a_failing_one(monkeypatch):
    answers = {text: expected for text, expected in bench_router.router_prompts(2)}

    def load_router(kind, profile):
        if kind == "embedding":
            raise RuntimeError("no embedding model here")
        return _FakeRouter(answers)

    monkeypatch.setitem(sys.modules, "lessons_lib.router", types.SimpleNamespace(load_router=load_router))
    result = bench_router.measure(repeats=1, per_domain=2)
    assert_reported(result, "router")
    hits = {r["router"]: r["routed right"] for r in result.rows}
    assert hits["keyword"] == 1.0 and hits["learned"] == 1.0
    assert "not loaded: RuntimeError" in hits["embedding"]


def test_router_benchmark_says_why_it_did_not_run(monkeypatch):
    monkeypatch.setitem(sys.modules, "lessons_lib.router", None)  # import fails, as before the module exists
    result = bench_router.measure(repeats=1)
    assert result.skipped and "lessons_lib.router is not available" in result.skipped
    assert "ratio=nan (not run)" in final_line([result])


def test_router_benchmark_on_the_real_routers():
    """With lessons_lib.router present the real routers are timed; without it, the result says why."""
    try:
        from lessons_lib.router import load_router  # noqa: F401
    except ImportError as err:
        result = bench_router.measure(repeats=1, per_domain=2, kinds=("keyword",))
        assert result.skipped and str(err) in result.skipped
    else:
        result = bench_router.measure(
            repeats=1, per_domain=2, kinds=("keyword",)
        )  # the cheap one; fakes cover the rest
        assert_reported(result, "router")
        assert [r["router"] for r in result.rows] == ["keyword"]


def test_constrained_benchmark_times_every_decoding_and_every_constrained_call_validates():
    result = bench_constrained.measure(repeats=1, n=3)
    assert_reported(result, "constrained")
    rows = {r["decoding"]: r for r in result.rows}
    assert set(rows) == {"free", "constrained cold", "constrained warm", "quoting warm"}
    assert all(rows[kind]["valid calls"] == 1.0 for kind in ("constrained cold", "constrained warm", "quoting warm"))
    quoting_x = rows["quoting warm"]["median ms/request"] / rows["free"]["median ms/request"]
    assert result.extra["quoting_warm_x"] == pytest.approx(quoting_x, rel=1e-9)
    assert all(r["tokens"] > 0 for r in rows.values())


def test_constraint_vocabulary_benchmark_replays_calls_with_the_same_tokens_allowed_both_ways():
    result = bench_constraint_vocab.measure(repeats=1, n=2, vocab_size=3000, documents=500)
    assert_reported(result, "constraint_vocab")
    rows = {r["variant"]: r for r in result.rows}
    assert set(rows) == {"scan every token", "token trie", "mask only"}
    assert (
        result.extra["steps_agreed"] == rows["token trie"]["steps"] > 20 and 2000 < result.extra["vocabulary"] <= 3000
    )
    assert result.ratio == pytest.approx(
        rows["scan every token"]["ms per row-step"] / rows["token trie"]["ms per row-step"]
    )
    assert bench_constraint_vocab.measure(device="cuda").skipped


def test_course_benchmark_reads_summaries(tmp_path):
    summary, timing = tmp_path / "course_summary.json", tmp_path / "unit.json"
    summary.write_text(
        json.dumps(
            {
                "notebooks": [
                    {"notebook": "01_a.ipynb", "seconds": 200.0, "status": "ok"},
                    {"notebook": "02_b.ipynb", "seconds": 100.0, "status": "ok"},
                ],
                "total_seconds": 300.0,
            }
        )
    )
    timing.write_text(json.dumps({"seconds": 60.0, "returncode": 0, "summary": "10 passed"}))
    result = bench_course.measure(reuse=True, summary_path=summary, timing_path=timing)
    assert assert_reported(result, "course") == pytest.approx(0.5)
    assert result.goal_met is True and result.extra["unit_tests_s"] == 60.0
    timing.write_text(json.dumps({"seconds": 130.0, "returncode": 0, "summary": "10 passed"}))
    assert bench_course.measure(reuse=True, summary_path=summary, timing_path=timing).goal_met is False
    missing = bench_course.measure(reuse=True, summary_path=tmp_path / "nope.json", timing_path=timing)
    assert missing.skipped and "does not exist" in missing.skipped


def test_course_reuse_never_starts_the_unit_tests(tmp_path, monkeypatch):
    summary = tmp_path / "course_summary.json"
    summary.write_text(
        json.dumps({"notebooks": [{"notebook": "01_a.ipynb", "seconds": 50.0, "status": "ok"}], "total_seconds": 50.0})
    )
    monkeypatch.setattr(bench_course.subprocess, "run", lambda *a, **k: pytest.fail("--reuse must not run anything"))
    result = bench_course.measure(reuse=True, summary_path=summary, timing_path=tmp_path / "none.json")
    assert assert_reported(result, "course") == pytest.approx(50 / 600)
    assert any("unit tests not timed" in note for note in result.notes) and "unit_tests_s" not in result.extra


def test_script_ends_with_exactly_one_ratio_line(capsys):
    bench_inference.main(["--repeats", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert RATIO_LINE.match(lines[-1]) and lines[-1].startswith("inference: ratio=")
    assert sum(bool(RATIO_LINE.match(line)) for line in lines) == 1


def test_run_all_writes_report_and_plots(tmp_path, monkeypatch, capsys):
    fake = types.SimpleNamespace(
        NAME="fake",
        TITLE="Fake claim",
        measure=lambda repeats, device: BenchResult(
            name="fake",
            title="Fake claim",
            device=device,
            rows=[{"variant": "a", "ms": 1.0}],
            ratio=3.0,
            ratio_label="a/b",
            goal=">= 2",
            goal_met=True,
            plot_values={"a": 1.0, "b": 3.0},
            plot_label="ms",
        ),
    )
    broken = types.SimpleNamespace(NAME="broken", TITLE="Broken claim", measure=lambda repeats, device: 1 / 0)
    monkeypatch.setattr(run_all, "TIMED", ((fake, 1, 1), (broken, 1, 1)))
    code = run_all.main(["--skip-course", "--device", "cpu", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1  # the broken benchmark is reported as failed, the others still ran
    report = (tmp_path / "report.md").read_text()
    assert "| fake " in report and "fake: ratio=3" in report and "broken: ratio=nan" in report
    assert "course: ratio=nan (not run)" in out and "--skip-course given" in report
    assert "GPU: not measured (no CUDA on this machine)" in report or "GPU: measured" in report
    assert (tmp_path / "fake.png").is_file() and "![fake](fake.png)" in report


def test_course_benchmark_runs_the_course_and_the_unit_tests(tmp_path, monkeypatch):
    summary, timing = tmp_path / "course_summary.json", tmp_path / "unit.json"
    commands = []

    def fake_run(cmd, **kwargs):
        commands.append(cmd[1:])
        if cmd[1:3] == ["-m", "lessons_lib.course"]:
            summary.write_text(
                json.dumps(
                    {
                        "notebooks": [{"notebook": "01_a.ipynb", "seconds": 700.0, "status": "ok"}],
                        "total_seconds": 700.0,
                    }
                )
            )
            return types.SimpleNamespace(returncode=0)
        return types.SimpleNamespace(returncode=1, stdout="1 failed, 9 passed in 50s\n")

    monkeypatch.setattr(bench_course.subprocess, "run", fake_run)
    result = bench_course.measure(summary_path=summary, timing_path=timing)
    assert [c[:3] for c in commands] == [["-m", "lessons_lib.course", "run"], ["-m", "pytest", "tests"]]
    assert result.ratio == pytest.approx(700 / 600) and result.goal_met is False
    assert json.loads(timing.read_text())["returncode"] == 1 and "1 failed" in " ".join(result.notes)


def test_route_name_reads_every_decision_shape():
    decision = types.SimpleNamespace(label="general", adapter="__base__")
    assert [bench_router.route_name(d) for d in ("json", decision, {"label": "coding"}, ("support", 0.9), None)] == [
        "json",
        "__base__",
        "coding",
        "support",
        None,
    ]
    assert bench_router.is_right("__base__", None) and not bench_router.is_right("json", "coding")
