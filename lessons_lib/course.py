"""Run the whole course: execute every notebook top to bottom and print what each one took and checked.

`python -m lessons_lib.course run [--only 01 03] [--jobs 2]` writes executed copies to build/notebooks/ and a
summary to build/course_summary.json; it exits non-zero if any notebook fails. It also reports (without failing)
"stray" output lines a learner should not read: warnings, raw trainer logs, frozen progress bars. Each run starts
from an empty work dir (build/work/<profile>), as a fresh Colab runtime does, so a second run trains again instead of
resuming the first run's finished checkpoints (`--keep-work` keeps it).
`--only` takes lesson numbers ("3" is read as "03"); one that matches no notebook, or a `--jobs` below 1, is a usage
error (one `error:` line, exit code 2).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TypeVar

from .cli import USAGE_ERROR, CourseArgumentParser, error_line, until_interrupted
from .i18n import tr
from .paths import BUILD_DIR, default_work_dir
from .paths import NOTEBOOKS_DIR as NOTEBOOKS

T = TypeVar("T")
LESSON_NUMBER = re.compile(r"\A(\d{1,2})(?!\d)")  # "3", "03", "03_merge", "03_merge.ipynb" -> "03"


def count_asserts(nb) -> int:
    """How many self-check `assert` statements the notebook's code cells contain."""
    return sum(
        line.lstrip().startswith("assert ")
        for cell in nb.cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
    )


# What a learner should never read in a cell's output: Python warnings, raw trainer log dicts, progress bars frozen
# short of 100% in a saved notebook, and library notices the course silences in setup_lesson.
STRAY = re.compile(
    r"Warning: |\{'(?:loss|train_runtime)': |(?<!\d)\d{1,2}%\|.*\| *\d+/\d+ \["
    r"|Failed to load CPU|mtime may not be reliable"
)


def shown_texts(outputs: list) -> list[str]:
    """The printed text of a cell's outputs as a reader sees it: consecutive outputs of one stream joined (Jupyter
    renders them as one), widgets' saved text apart."""
    texts: list[str] = []
    previous = None
    for output in outputs:
        if output.get("output_type") == "stream":
            name = output.get("name")
            if name == previous:
                texts[-1] += output.get("text", "")
            else:
                texts.append(output.get("text", ""))
            previous = name
            continue
        previous = None
        if "application/vnd.jupyter.widget-view+json" in output.get("data", {}):
            texts.append(output["data"].get("text/plain", ""))
    return texts


def stray_lines(nb) -> list[str]:
    """Lines of printed output (streams, and widgets' saved text) that match STRAY, as 'cell N: line'."""
    found = []
    for index, cell in enumerate(nb.cells):
        for text in shown_texts(cell.get("outputs", [])) if cell.cell_type == "code" else []:
            shown = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]  # a carriage return redraws: last wins
            found += [f"cell {index}: {line.strip()[:160]}" for line in shown if STRAY.search(line)]
    return found


ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def failure_line(err: Exception) -> str:
    """A cell error's last line without the terminal colours IPython adds, e.g. `AssertionError: too low`."""
    return ANSI_COLOUR.sub("", str(err)).strip().splitlines()[-1][:300]


def kernel_config():
    """nbclient's config: the kernel's sockets encrypted with CurveZMQ where jupyter_client and pyzmq support it.

    ipykernel 7.4 logs "Kernel is running over TCP without encryption" on the terminal (not in the notebook) at every
    start of a kernel without CurveZMQ keys. jupyter_client 8.10 provisions the keys with
    `transport_encryption="auto"` when the kernelspec declares support (ipykernel 7.4's does): that removes the cause
    and leaves every other kernel message alone. Older versions lack the setting and keep their default.
    """
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    if "transport_encryption" in KernelManager.class_trait_names() and zmq.has("curve"):
        return Config({"KernelManager": {"transport_encryption": "auto"}})
    return Config()


def run_notebook(path: Path, out_dir: Path, timeout: int = 900) -> dict:
    """Execute one notebook in a fresh kernel; return its timing and self-check result."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        config=kernel_config(),
    )
    start, error = time.time(), None
    try:
        client.execute()
    except CellExecutionError as err:
        error = failure_line(err)
    seconds = time.time() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    stray = stray_lines(nb)
    for line in stray[:5]:
        print(f"  stray output in {path.name}, {line}", flush=True)
    return {
        "notebook": path.name,
        "seconds": round(seconds, 1),
        "asserts": count_asserts(nb),
        "stray lines": len(stray),
        "status": "ok" if error is None else f"FAILED: {error}",
    }


def run_in_child(notebook: Path, out_dir: Path, timeout: int = 900, env: dict | None = None) -> dict:
    """`run_notebook` in a child Python process (its own kernel, `env` or this one's environment), so several run side
    by side; a child that dies or overruns `timeout` by two minutes is a FAILED row, never a stalled run."""
    code = (
        "import json; from pathlib import Path; from lessons_lib.course import run_notebook; "
        f"print(json.dumps(run_notebook(Path({str(notebook)!r}), Path({str(out_dir)!r}), {timeout})))"
    )
    failed = {"notebook": notebook.name, "seconds": float(timeout), "asserts": 0, "stray lines": 0}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout + 120
        )
    except subprocess.TimeoutExpired:
        return {**failed, "status": "FAILED: timed out"}
    rows = []
    for line in proc.stdout.splitlines():  # stray-output notices are passed on, the row is kept
        if line.startswith("{"):
            rows.append(line)
        else:
            print(line, flush=True)
    if rows:
        return json.loads(rows[-1])
    said = proc.stderr.strip()[-300:]
    return {**failed, "seconds": 0.0, "status": f"FAILED: runner exited {proc.returncode}: {said}"}


def fresh_work_dir(profile_name: str) -> Path:
    """Empty the profile's default work dir (build/work/<profile>) and return it, so a run starts as a fresh one."""
    folder = default_work_dir(profile_name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def lesson_number(selector: str) -> str | None:
    """The two-digit lesson number a `--only` value names ("3" and "03_merge" -> "03"), or None."""
    match = LESSON_NUMBER.match(selector.strip())
    return match.group(1).zfill(2) if match else None


def unmatched_lessons(paths: list[Path], only: list[str]) -> list[str]:
    """The `only` values that name no notebook in `paths` (a typo, or a lesson that does not exist)."""
    numbers = {p.name[:2] for p in paths}
    return [s for s in only if lesson_number(s) not in numbers]


def lesson_paths(folder: Path = NOTEBOOKS, only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in `folder`, in lesson order (`only`: lesson numbers such as "02" or "2")."""
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    wanted = {lesson_number(s) for s in only or []}
    return [p for p in paths if not only or p.name[:2] in wanted]


def usage_problem(args: argparse.Namespace, folder: Path = NOTEBOOKS) -> str | None:
    """Why these arguments cannot run: a --jobs below 1, or --only values that match no notebook (None: fine)."""
    if args.jobs < 1:
        return tr(
            en=f"--jobs must be at least 1, not {args.jobs} (1 runs the notebooks one after another)",
            ru=f"--jobs должно быть не меньше 1, а не {args.jobs} (1 — ноутбуки выполняются по очереди)",
        )
    paths = lesson_paths(folder)
    unmatched = unmatched_lessons(paths, args.only or [])
    if not paths or not unmatched:
        return None
    bad, known = ", ".join(unmatched), ", ".join(p.name[:2] for p in paths)
    return tr(
        en=f"--only {bad}: no such lesson in {folder}; the lessons are {known} (e.g. --only 01 03)",
        ru=f"--only {bad}: такого урока нет в {folder}; есть уроки {known} (например, --only 01 03)",
    )


def side_by_side(tasks: Sequence[T], lesson: Callable[[T], Path], run: Callable[[T], dict], jobs: int) -> list[dict]:
    """`run` every task, `jobs` at a time, printing each row as it ends; returns the rows in the order of `tasks`.

    The last lessons start first: they take longest (05 on tiny, 06 in a rehearsal), so the jobs end closer together.
    """
    order = sorted(range(len(tasks)), key=lambda i: lesson(tasks[i]).name, reverse=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {i: pool.submit(run, tasks[i]) for i in order}
        for future in as_completed(futures.values()):
            row = future.result()
            where = " ".join(filter(None, (row.get("profile"), row["notebook"])))
            print(f"  {where}: {row['status']} in {row['seconds']}s", flush=True)
    return [futures[i].result() for i in range(len(tasks))]


def job_env(jobs: int, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child that runs beside `jobs - 1` others: `env` (or this process's) with OMP_NUM_THREADS
    sharing the CPUs among the jobs, unless it is set already. Each kernel's torch otherwise takes every CPU, and
    threads spinning against each other made two notebooks on 2 CPUs crawl (03's mix sweep 7 s -> 323 s)."""
    child = dict(os.environ if env is None else env)
    if not child.get("OMP_NUM_THREADS", "").strip():
        child["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, jobs)))
    return child


def run_all(paths: list[Path], out_dir: Path, jobs: int = 1) -> list[dict]:
    """Execute `paths` in this process one after another, or `jobs` side by side, each in a child process; returns
    the rows in the order of `paths`."""
    if jobs > 1:
        print(f"running {len(paths)} notebooks, {jobs} side by side ...", flush=True)
        env = job_env(jobs)
        return side_by_side(paths, lambda path: path, lambda path: run_in_child(path, out_dir, env=env), jobs)
    results = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        results.append(run_notebook(path, out_dir))
        print(f"  {results[-1]['status']} in {results[-1]['seconds']}s", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = CourseArgumentParser(prog="python -m lessons_lib.course")
    parser.add_argument("command", choices=["run"])
    parser.add_argument(
        "--only",
        nargs="+",
        default=None,
        help=tr(
            en="lesson numbers to run, e.g. 01 03 (default: every lesson)",
            ru="номера уроков для запуска, например 01 03 (по умолчанию: все уроки)",
        ),
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help=tr(
            en="notebooks run side by side, at least 1 (each in its own process)",
            ru="сколько ноутбуков выполнять одновременно, не меньше 1 (каждый в своём процессе)",
        ),
    )
    parser.add_argument(
        "--keep-work",
        action="store_true",
        help=tr(
            en="keep build/work/<profile> (default: empty it, as a fresh runtime)",
            ru="сохранить build/work/<profile> (по умолчанию она очищается, как в новой среде выполнения)",
        ),
    )
    args = parser.parse_args(argv)
    problem = usage_problem(args)
    if problem:
        print(error_line(problem), file=sys.stderr)
        return USAGE_ERROR
    os.environ.setdefault("LESSONS_PROFILE", "tiny")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    notebooks = lesson_paths(only=args.only)
    if not notebooks:
        print(
            error_line(
                tr(
                    en=f"no notebooks in {NOTEBOOKS}; build them with `make notebooks`.",
                    ru=f"в {NOTEBOOKS} нет ноутбуков; соберите их командой `make notebooks`.",
                )
            ),
            file=sys.stderr,
        )
        return 1
    if not args.keep_work:
        print(f"starting from an empty work dir: {fresh_work_dir(os.environ['LESSONS_PROFILE'])}", flush=True)
    start = time.time()
    results = run_all(notebooks, BUILD_DIR / "notebooks", args.jobs)
    from .evaluate import format_table

    total, wall = sum(r["seconds"] for r in results), time.time() - start
    side = f", {args.jobs} side by side" if args.jobs > 1 else ""
    print()
    print(format_table(results))
    print(
        f"\ntotal: {total:.0f}s for {len(results)} notebooks ({wall:.0f}s of wall time{side}); "
        f"executed copies in {BUILD_DIR / 'notebooks'}"
    )
    write_summary(BUILD_DIR / "course_summary.json", results)
    return 0 if all(r["status"] == "ok" for r in results) else 1


def write_summary(path: Path, results: list[dict]) -> dict:
    """Merge this run's results into the summary file (a partial `--only` run keeps the others' rows)."""
    rows: dict[str, dict] = {}
    if path.is_file():
        try:
            rows = {r["notebook"]: r for r in json.loads(path.read_text()).get("notebooks", [])}
        except (ValueError, KeyError, TypeError):
            rows = {}
    rows.update({r["notebook"]: r for r in results})
    merged = [rows[name] for name in sorted(rows)]
    summary = {"notebooks": merged, "total_seconds": round(sum(r["seconds"] for r in merged), 1)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    sys.exit(until_interrupted(main))
