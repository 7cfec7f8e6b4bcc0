"""Rehearse the GPU path without a GPU: every notebook alone, in a fresh empty work dir, on each rehearsal profile.

`python -m lessons_lib.rehearse [--profiles t4-rehearsal 7b-rehearsal] [--only 02 05] [--jobs 2]` runs each
notebook in its own kernel with nothing from other notebooks and no shipped tiny adapters (the rehearsal
profiles are not `tiny`), so each must find or quick-train what it needs, as in a fresh Colab runtime.
t4-rehearsal runs the English edition (notebooks/), 7b-rehearsal the Russian one (notebooks/ru/, see `EDITIONS`).
Prints a table; the last line is `rehearsal: <ok>/<total> notebooks ok`; exits non-zero if any failed.
Executed copies land in build/rehearsal/<profile>/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .cli import CourseArgumentParser, until_interrupted
from .course import USAGE_ERROR, job_env, lesson_paths, run_in_child, side_by_side, usage_problem
from .paths import BUILD_DIR
from .paths import NOTEBOOKS_DIR as NOTEBOOKS
from .profiles import PROFILES

REHEARSALS = tuple(name for name, p in PROFILES.items() if p.rehearsal)
OUT_DIR = BUILD_DIR / "rehearsal"
# The edition each profile rehearses (others: the English one in notebooks/). The editions' code cells are the same
# (tests/test_russian_edition.py), so every profile's code path still runs every lesson; the Russian edition runs on
# 7b, the model of the Russian course this one grew from, end to end from notebooks/ru/ as a learner opens it.
EDITIONS = {"7b-rehearsal": NOTEBOOKS / "ru"}


def lessons(profile: str, only: list[str] | None = None) -> list[Path]:
    """The notebooks `profile` rehearses, in lesson order (`only`: lesson numbers such as "02")."""
    return lesson_paths(EDITIONS.get(profile, NOTEBOOKS), only)


def run_alone(notebook: Path, profile: str, out_dir: Path, timeout: int, jobs: int = 1) -> dict:
    """Execute one notebook in a child process with a fresh, empty build/work dir and the profile set (its share of
    the CPUs when `jobs` run side by side)."""
    scratch = Path(tempfile.mkdtemp(prefix=f"rehearse-{profile}-{notebook.stem[:2]}-"))
    settings = {"LESSONS_PROFILE": profile, "LESSONS_BUILD": str(scratch / "build"), "HF_HUB_OFFLINE": "1"}
    env = job_env(jobs, dict(os.environ, **settings))
    try:
        row = run_in_child(notebook, out_dir, timeout, env)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # "ru/01_fine_tune.ipynb" for the Russian edition
    return {"profile": profile, **row, "notebook": str(notebook.relative_to(NOTEBOOKS))}


def rehearse(profiles: list[str], only: list[str] | None = None, jobs: int = 2, timeout: int = 900) -> list[dict]:
    """Run every (profile, notebook) pair alone; returns one row each, in order."""
    pairs = [(profile, path) for profile in profiles for path in lessons(profile, only)]
    return side_by_side(
        pairs, lambda pair: pair[1], lambda pair: run_alone(pair[1], pair[0], OUT_DIR / pair[0], timeout, jobs), jobs
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = CourseArgumentParser(
        prog="python -m lessons_lib.rehearse", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", nargs="*", default=list(REHEARSALS), choices=sorted(PROFILES))
    parser.add_argument("--only", nargs="*", default=None, help="lesson numbers, e.g. 02 05")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks run side by side (one CPU each)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per notebook")
    parser.add_argument(
        "--require-cuda",
        action="store_true",
        help="the GPU check: fail at once without CUDA, so CPU kernels never pass for GPU ones",
    )
    args = parser.parse_args(argv)
    problem = next(filter(None, (usage_problem(args, EDITIONS.get(p, NOTEBOOKS)) for p in args.profiles)), None)
    if args.timeout < 1:  # nbclient reads -1 as no limit: a stuck cell would hold the rehearsal forever
        problem = f"--timeout must be at least 1 (seconds per notebook), not {args.timeout}"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return USAGE_ERROR
    label = "rehearsal"
    if args.require_cuda:
        from . import env

        if not env.cuda_available():
            print("gpu-check: no CUDA device visible to torch; run it on a GPU machine (nvidia-smi should list one).")
            return 2
        import torch

        label = f"gpu-check on {torch.cuda.get_device_name(0)}"
    rows = rehearse(args.profiles, args.only, args.jobs, args.timeout)
    from .evaluate import format_table

    print()
    print(format_table(rows))
    ok = sum(r["status"] == "ok" for r in rows)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "summary.json").write_text(json.dumps(rows, indent=2))
    print(f"{label}: {ok}/{len(rows)} notebooks ok")
    return 0 if rows and ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(until_interrupted(main))
