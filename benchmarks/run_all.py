"""Run every benchmark, print their tables and ratio lines, and write build/bench/report.md with PNG plots.

`python -m benchmarks.run_all [--skip-course] [--reuse] [--quick] [--threads N] [--device cpu|all]`
(`make bench` runs it with the defaults). On a machine with CUDA, `--device all` (the default) runs
each benchmark again on the GPU with fp16 (T4-class) settings and adds GPU columns.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

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
)
from benchmarks.common import (
    BENCH_DIR,
    NO_GPU,
    BenchResult,
    add_threads_arg,
    cuda_available,
    devices_for,
    final_line,
    format_table,
    print_tables,
    set_threads,
    skipped_result,
    write_plot,
)

# (module, default repeats, repeats with --quick)
TIMED = (
    (bench_switching, 15, 3),
    (bench_mixed_batch, 5, 1),
    (bench_batched_lora, 3, 1),
    (bench_serve_throughput, 3, 1),
    (bench_training, 3, 1),
    (bench_train_rate, 3, 1),
    (bench_inference, 15, 2),
    (bench_router, 7, 2),
    (bench_constrained, 5, 1),
    (bench_constraint_vocab, 3, 1),
    (bench_collect, 3, 1),
)


def run_one(measure: Callable[..., BenchResult], name: str, title: str, **kwargs) -> BenchResult:
    """Run one measurement; a crash becomes a 'not run' result with the error, so the others still run."""
    try:
        return measure(**kwargs)
    except Exception as err:  # noqa: BLE001 - report and go on: one broken benchmark must not hide the others
        traceback.print_exc()
        return skipped_result(
            name, title, f"failed: {type(err).__name__}: {str(err)[:300]}", "see table", kwargs.get("device", "cpu")
        )
    finally:
        gc.collect()


def machine_line(threads: int) -> str:
    """What the numbers were measured on."""
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} at start, torch "
        f"{torch.__version__} with {threads} CPU thread(s), Python {platform.python_version()}"
    )


def summary_rows(groups: list[list[BenchResult]]) -> list[dict]:
    """One row per benchmark: CPU ratio and verdict, plus GPU columns when a GPU result exists."""
    rows = []
    for results in groups:
        cpu = results[0]
        row = {
            "benchmark": cpu.name,
            "ratio": cpu.ratio,
            "measures": cpu.ratio_label,
            "goal": cpu.goal,
            "CPU": cpu.goal_text(),
        }
        gpu = next((r for r in results[1:] if r.device.startswith("cuda")), None)
        if gpu is not None:
            row.update({"GPU ratio (fp16)": gpu.ratio, "GPU": gpu.goal_text()})
        rows.append(row)
    return rows


def write_report(groups: list[list[BenchResult]], header: list[str], gpu_line: str, path: Path) -> Path:
    """build/bench/report.md: summary table, the ratio lines, then each benchmark's table, notes and plot."""
    from benchmarks.common import clock_note

    lines = [
        "# Benchmarks: the course's performance claims, measured side by side",
        "",
        *header,
        "",
        gpu_line,
        "",
        "## Summary",
        "",
        format_table(summary_rows(groups)),
        "",
        "## Ratio lines",
        "",
        "```",
        *[final_line(results) for results in groups],
        "```",
        "",
    ]
    for results in groups:
        lines += [f"## {results[0].title}", ""]
        for result in results:
            lines.append(f"### {result.device}")
            lines.append("")
            if result.skipped:
                lines += [f"Not run: {result.skipped}", ""]
            if result.rows:
                lines += [format_table(result.rows), ""]
            lines += [f"- {note}" for note in result.notes]
            if result.clock:
                lines.append(f"- {clock_note(result.clock)}")
            lines += [f"- `{result.ratio_line()}`", ""]
        plot = path.parent / f"{results[0].name}.png"
        if plot.is_file():
            lines += [f"![{results[0].name}]({plot.name})", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the suite; exit 1 if a benchmark crashed (goals not met do not fail the run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-course", action="store_true", help="leave out the whole-course benchmark (minutes)")
    parser.add_argument("--reuse", action="store_true", help="course benchmark: reuse build/course_summary.json")
    parser.add_argument("--quick", action="store_true", help="minimal repeats (a smoke run, not for figures)")
    parser.add_argument(
        "--device", choices=["cpu", "all"], default="all", help="'all' adds the GPU (fp16) columns when CUDA is present"
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="where report.md and the plots go")
    add_threads_arg(parser)
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    started = dt.datetime.now(dt.timezone.utc)
    header = [
        f"Run {started:%Y-%m-%d %H:%M} UTC: `python -m benchmarks.run_all {' '.join(argv or sys.argv[1:])}`".rstrip(),
        "",
        f"Machine: {machine_line(threads)}.",
        "",
        "Variants are interleaved (rotating order) and repeated; tables show medians. "
        "'spread' is (max - min) / median of the repeats.",
    ]
    print("\n".join(header), flush=True)
    devices = devices_for(args.device)
    gpu_line = f"GPU: measured on {_gpu_name()} with fp16 (T4-class) settings." if "cuda" in devices else NO_GPU
    groups: list[list[BenchResult]] = []
    for module, repeats, quick in TIMED:
        results = [
            run_one(module.measure, module.NAME, module.TITLE, repeats=quick if args.quick else repeats, device=device)
            for device in devices
        ]
        for result in results:
            print_tables(result)
        write_plot(results, args.out / f"{module.NAME}.png")
        print(final_line(results), flush=True)
        groups.append(results)
    if args.skip_course:
        course = skipped_result(bench_course.NAME, bench_course.TITLE, "--skip-course given", bench_course.GOAL)
    else:
        course = run_one(bench_course.measure, bench_course.NAME, bench_course.TITLE, reuse=args.reuse)
    print_tables(course)
    write_plot([course], args.out / f"{course.name}.png")
    print(final_line([course]), flush=True)
    groups.append([course])
    report = write_report(groups, header, gpu_line, args.out / "report.md")
    elapsed = (dt.datetime.now(dt.timezone.utc) - started).total_seconds()
    print(f"\n# Summary ({elapsed:.0f}s)\n{format_table(summary_rows(groups))}\n{gpu_line}\nreport: {report}\n")
    for results in groups:
        print(final_line(results))
    crashed = [r.name for results in groups for r in results if r.skipped and r.skipped.startswith("failed")]
    return 1 if crashed else 0


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if cuda_available() else "no GPU"


if __name__ == "__main__":
    sys.exit(main())
