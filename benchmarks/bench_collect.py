"""Claim 8: freezing the imports (`models.freeze_imports`, which `setup_lesson` calls) takes the garbage collector's
cost out of a lesson's work.

torch, transformers and PEFT leave ~450k objects that every full collection walks: `free_memory` runs one after each
`del model`, and Python runs its own as a lesson allocates. Two parts, in one run:
1. one full collection in a fresh process, imports tracked vs frozen (`gc.unfreeze` / `gc.freeze` in turn, no model
   alive), interleaved;
2. a lesson's work in fresh processes, alternating: two quick trainings and a batch generation on the t4-rehearsal
   path (4-bit, fp16) with `free_memory` between them, as notebooks 02-06 do in a fresh runtime. Variants: imports
   tracked (before), imports frozen (now), and the bound: no collection at all (`gc.disable`, `gc.collect` a no-op:
   what a run would cost if collecting were free). Times are process CPU seconds of the work, imports excluded.
Goal: the frozen work within 5% of the bound.

`python -m benchmarks.bench_collect [--repeats N]`
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from benchmarks.common import BenchResult, main_for, medians, skipped_result
from lessons_lib.paths import REPO_DIR

NAME = "collect"
TITLE = "Garbage collection: imports tracked vs frozen (one collection; a lesson's work in fresh processes)"
GOAL_OVER_BOUND = 0.05
GOAL = f"frozen work within {GOAL_OVER_BOUND:.0%} of the no-collection bound"
WORK_VARIANTS = ("tracked", "frozen", "bound")
LABELS = {
    "tracked": "imports tracked (before)",
    "frozen": "imports frozen (freeze_imports)",
    "bound": "bound: no collection",
}

WORK = """
import contextlib, gc, io, json, sys, tempfile, time
import torch, transformers, peft, trl, datasets
variant = sys.argv[1]
from lessons_lib.adapters import quick_train
from lessons_lib.data import examples
from lessons_lib.models import free_memory, freeze_imports, generate, load_base, load_tokenizer
from lessons_lib.profiles import PROFILES
if variant == "frozen":
    freeze_imports()
elif variant == "bound":
    gc.disable()
    gc.collect = lambda *args: 0
spent = [0.0]
started = {}
def timer(phase, info):
    if phase == "start":
        started["t"] = time.process_time()
    else:
        spent[0] += time.process_time() - started["t"]
gc.callbacks.append(timer)
profile = PROFILES["t4-rehearsal"]
start = time.process_time()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    work = tempfile.mkdtemp()
    for name in ("json", "coding"):
        quick_train(name, profile, work)
        free_memory()
    tok = load_tokenizer(profile)
    model = load_base(profile)
    prompts = [e.prompt for e in examples("support", 8, "heldout", seed=1)]
    for _ in range(3):
        generate(model, tok, prompts, profile.max_new_tokens)
    del model
    free_memory()
print(json.dumps({"work_s": time.process_time() - start, "collect_s": spent[0], "frozen": gc.get_freeze_count()}))
"""


COLLECTION = """
import gc, json, sys
import torch, transformers, peft
from benchmarks.common import Variant, time_alternating
variants = [Variant("tracked", gc.collect, before=gc.unfreeze), Variant("frozen", gc.collect, before=gc.freeze)]
samples = time_alternating(variants, int(sys.argv[1]), clock="wall")  # no model alive to freeze
gc.unfreeze()
print(json.dumps({"seconds": samples, "objects": len(gc.get_objects())}))
"""


def run_child(script: str, *args: str) -> dict:
    """Run `script` in a fresh process (one torch thread) and read the JSON line it prints last."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_DIR))
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600, cwd=REPO_DIR, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"the benchmark's child {args} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def one_collection(repeats: int) -> tuple[dict[str, float], int]:
    """Median seconds of one full collection in a fresh process, imports tracked vs frozen; objects tracked."""
    out = run_child(COLLECTION, str(repeats))
    return medians(out["seconds"]), out["objects"]


def measure(repeats: int = 3, device: str = "cpu", work: bool = True) -> BenchResult:
    """Time a full collection both ways, then (`work`) the lesson's work in alternating fresh processes."""
    if device != "cpu":
        return skipped_result(NAME, TITLE, "measured on the CPU: collection is CPU work", GOAL, device)
    collection, tracked_objects = one_collection(max(repeats, 3))
    rows = [
        {
            "part": "one full collection",
            "variant": LABELS[name],
            "ms": seconds * 1000,
            "objects walked": tracked_objects if name == "tracked" else "only those made after the freeze",
        }
        for name, seconds in collection.items()
    ]
    ratio = ratio_one = collection["tracked"] / max(collection["frozen"], 1e-9)
    extra: dict = {"collection_ms_tracked": round(collection["tracked"] * 1000, 1)}
    goal_met = None
    label = "one collection, tracked / frozen"
    if work:
        runs: dict[str, list[dict]] = {name: [] for name in WORK_VARIANTS}
        for round_no in range(repeats):
            shift = round_no % len(WORK_VARIANTS)
            for name in WORK_VARIANTS[shift:] + WORK_VARIANTS[:shift]:
                runs[name].append(run_child(WORK, name))
        work_s = {name: statistics.median(r["work_s"] for r in got) for name, got in runs.items()}
        for name, got in runs.items():
            rows.append(
                {
                    "part": "a lesson's work",
                    "variant": LABELS[name],
                    "ms": round(work_s[name] * 1000),
                    "in the collector (s)": round(statistics.median(r["collect_s"] for r in got), 2),
                }
            )
        ratio = work_s["tracked"] / work_s["frozen"]
        over_bound = work_s["frozen"] / work_s["bound"] - 1
        goal_met = over_bound <= GOAL_OVER_BOUND
        label = "a lesson's work, tracked / frozen"
        extra |= {"over_bound": round(over_bound, 3), "one_collection_ratio": round(ratio_one)}
    return BenchResult(
        name=NAME,
        title=TITLE,
        device=device,
        rows=rows,
        ratio=ratio,
        ratio_label=label,
        goal=GOAL,
        goal_met=goal_met,
        extra=extra,
        plot_values={row["variant"]: row["ms"] for row in rows if row["part"] != "one full collection"},
        plot_label="CPU ms of the work",
        notes=["one full collection: wall ms in one process; a lesson's work: the child's CPU ms, imports excluded"],
    )


def main(argv: list[str] | None = None) -> list[BenchResult]:
    """CLI entry point."""
    return main_for(measure, __doc__, 3, argv)


if __name__ == "__main__":
    main()
