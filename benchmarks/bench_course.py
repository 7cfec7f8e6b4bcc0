"""Claim 6: the whole course runs in <= 10 minutes on 2 CPUs (tiny profile); the unit tests in <= 2 minutes.

Runs `python -m lessons_lib.course run` (every notebook, executed top to bottom; it writes
build/course_summary.json with per-notebook seconds) and `pytest tests` in subprocesses, and reports
each notebook's wall time and the totals. Expensive: `--reuse` reads an existing
build/course_summary.json (and the unit-test timing kept in build/bench/unit_tests.json, if any) and
never starts either run; `--skip-unit-tests` leaves the unit tests out.

`python -m benchmarks.bench_course [--reuse] [--skip-unit-tests]`
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import BENCH_DIR, BenchResult, final_line, print_tables, skipped_result
from lessons_lib.paths import BUILD_DIR, REPO_DIR

NAME = "course"
TITLE = "Whole course on the tiny profile: every notebook, and the unit tests alone"
COURSE_BUDGET_S = 600.0
UNIT_BUDGET_S = 120.0
GOAL = f"notebooks total <= {COURSE_BUDGET_S:.0f}s and unit tests <= {UNIT_BUDGET_S:.0f}s on 2 CPUs"
SUMMARY = BUILD_DIR / "course_summary.json"
UNIT_TIMING = BENCH_DIR / "unit_tests.json"


def child_env() -> dict[str, str]:
    """Environment for the subprocesses: offline, tiny profile, no progress bars."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1", TOKENIZERS_PARALLELISM="false", LESSONS_PROFILE="tiny"
    )
    return env


def run_course(summary_path: Path = SUMMARY) -> tuple[dict, float, int]:
    """Run every notebook via lessons_lib.course; return its summary, the wall time and the exit code."""
    env = child_env()
    if Path(summary_path).parent.resolve() != BUILD_DIR.resolve():
        env["LESSONS_BUILD"] = str(Path(summary_path).parent)  # lessons_lib.course writes BUILD_DIR/course_summary.json
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lessons_lib.course", "run"], cwd=REPO_DIR, env=env)
    wall = time.perf_counter() - start
    if not Path(summary_path).is_file():
        raise RuntimeError(
            f"`python -m lessons_lib.course run` exited {done.returncode} without writing {summary_path}."
        )
    return json.loads(Path(summary_path).read_text()), wall, done.returncode


def run_unit_tests(timing_path: Path = UNIT_TIMING) -> dict:
    """Time `pytest tests` (the unit tests alone, no notebooks) and keep the result in `timing_path`."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"],
        cwd=REPO_DIR,
        env=child_env(),
        capture_output=True,
        text=True,
    )
    result = {
        "seconds": round(time.perf_counter() - start, 1),
        "returncode": done.returncode,
        "summary": (done.stdout.strip().splitlines() or [""])[-1][:200],
    }
    Path(timing_path).parent.mkdir(parents=True, exist_ok=True)
    Path(timing_path).write_text(json.dumps(result, indent=2))
    return result


def measure(
    reuse: bool = False,
    unit_tests: bool = True,
    summary_path: Path = SUMMARY,
    timing_path: Path = UNIT_TIMING,
    device: str = "cpu",
    repeats: int = 1,
) -> BenchResult:
    """Course and unit-test wall times (one run each: too long to repeat), reusing earlier runs on request."""
    summary_path, timing_path = Path(summary_path), Path(timing_path)
    notes = []
    if reuse and summary_path.is_file():
        summary, wall, code = json.loads(summary_path.read_text()), None, None
        notes.append(f"course timings reused from {summary_path}")
    elif reuse:
        return skipped_result(
            NAME,
            TITLE,
            f"--reuse given but {summary_path} does not exist; run "
            "`python -m lessons_lib.course run` (or this script without --reuse)",
            GOAL,
            device,
        )
    else:
        summary, wall, code = run_course(summary_path)
        notes.append(f"lessons_lib.course exited {code}; wall time with kernel starts {wall:.0f}s")
    unit = None
    if not unit_tests:
        notes.append("unit tests not timed (--skip-unit-tests)")
    elif reuse and timing_path.is_file():
        unit = json.loads(timing_path.read_text())
        notes.append(f"unit-test timing reused from {timing_path}")
    elif reuse:  # --reuse never starts the expensive runs
        notes.append(f"unit tests not timed: --reuse given and no earlier timing at {timing_path}")
    else:
        unit = run_unit_tests(timing_path)
    if unit is not None:
        notes.append(f"pytest tests: exit {unit['returncode']}, {unit['summary']}")
    notebooks = summary.get("notebooks", [])
    total = float(summary.get("total_seconds", sum(nb["seconds"] for nb in notebooks)))
    rows = [
        {"step": nb["notebook"], "seconds": float(nb["seconds"]), "status": nb.get("status", "?")} for nb in notebooks
    ]
    rows.append({"step": "all notebooks", "seconds": total, "status": f"budget {COURSE_BUDGET_S:.0f}s"})
    if unit is not None:
        rows.append(
            {
                "step": "unit tests (pytest tests)",
                "seconds": float(unit["seconds"]),
                "status": f"budget {UNIT_BUDGET_S:.0f}s, exit {unit['returncode']}",
            }
        )
    all_ok = all(nb.get("status") == "ok" for nb in notebooks) and bool(notebooks)
    course_ok = total <= COURSE_BUDGET_S and all_ok
    unit_ok = None if unit is None else unit["seconds"] <= UNIT_BUDGET_S and unit["returncode"] == 0
    extra = {"total_s": total, "notebooks": len(notebooks), "all_ok": all_ok}
    if unit is not None:
        extra["unit_tests_s"] = float(unit["seconds"])
    return BenchResult(
        name=NAME,
        title=TITLE,
        device=device,
        rows=rows,
        ratio=total / COURSE_BUDGET_S,
        ratio_label=f"notebooks total / {COURSE_BUDGET_S:.0f}s budget, <= 1 is within it",
        goal=GOAL,
        goal_met=course_ok and unit_ok is not False,
        plot_values={nb["notebook"][:18]: float(nb["seconds"]) for nb in notebooks},
        plot_label="seconds per notebook (tiny profile)",
        extra=extra,
        notes=notes,
    )


def main(argv: list[str] | None = None) -> list[BenchResult]:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help=f"reuse {SUMMARY} instead of running the course")
    parser.add_argument("--skip-unit-tests", action="store_true", help="do not time `pytest tests`")
    args = parser.parse_args(argv)
    result = measure(reuse=args.reuse, unit_tests=not args.skip_unit_tests)
    print_tables(result)
    print(final_line([result]), flush=True)
    return [result]


if __name__ == "__main__":
    main()
