"""Shared benchmark machinery: alternating timing with medians, results, tables, plots and reports.

Every benchmark times its variants in one run, interleaved (round-robin with a rotating start, so no
variant always runs first or last), repeats that, and reports medians: the machines running CI and
these benchmarks are shared and noisy, and a median of interleaved runs is what survives that.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LESSONS_PROFILE", "tiny")
warnings.filterwarnings("ignore", category=FutureWarning)  # deprecation chatter from transformers

from lessons_lib.env import cuda_available  # noqa: E402
from lessons_lib.paths import BUILD_DIR  # noqa: E402

BENCH_DIR = BUILD_DIR / "bench"
DEFAULT_THREADS = 1
NO_GPU = "GPU: not measured (no CUDA on this machine)"


# ----------------------------------------------------------------------------- timing
@dataclass
class Variant:
    """One way of doing the benchmarked thing; `run` is timed, `before`/`after` are not."""

    name: str
    run: Callable[[], Any]
    before: Callable[[], Any] | None = None
    after: Callable[[], Any] | None = None


def sync(device: str) -> None:
    """Wait for queued GPU work so the clock measures it (no-op on CPU)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def pick_clock(device: str) -> str:
    """'cpu' (process CPU time) for single-threaded CPU runs, else 'wall'; $BENCH_CLOCK=wall|cpu overrides.

    With one torch thread, the CPU time a run consumed is the work it did, whatever else the machine
    is running; wall time on a shared machine also counts the time other processes held the cores.
    """
    import torch

    forced = os.environ.get("BENCH_CLOCK", "").strip().lower()
    if forced in ("wall", "cpu"):
        return forced
    return "cpu" if device == "cpu" and torch.get_num_threads() == 1 else "wall"


def clock_fn(clock: str) -> Callable[[], float]:
    """The timer behind a clock name."""
    return time.process_time if clock == "cpu" else time.perf_counter


def clock_note(clock: str) -> str:
    """One sentence on what the times mean."""
    if clock == "cpu":
        return "times are process CPU seconds (1 torch thread), robust to other load on the machine"
    return "times are wall-clock seconds"


def time_alternating(
    variants: Sequence[Variant], repeats: int, warmup: int = 1, device: str = "cpu", clock: str | None = None
) -> dict[str, list[float]]:
    """Seconds per call of each variant: `repeats` rounds, variants interleaved, start rotated each round."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    now = clock_fn(clock or pick_clock(device))
    samples: dict[str, list[float]] = {v.name: [] for v in variants}
    for round_no in range(warmup + repeats):
        shift = round_no % len(variants)
        for variant in list(variants[shift:]) + list(variants[:shift]):
            if variant.before:
                variant.before()
            sync(device)
            start = now()
            variant.run()
            sync(device)
            elapsed = now() - start
            if variant.after:
                variant.after()
            if round_no >= warmup:
                samples[variant.name].append(elapsed)
    return samples


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    """The median of each variant's samples."""
    return {name: statistics.median(values) for name, values in samples.items()}


def spread(values: Sequence[float]) -> float:
    """Relative spread of samples: (max - min) / median, a quick noise gauge."""
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if mid else float("nan")


# ----------------------------------------------------------------------------- results
@dataclass
class BenchResult:
    """What one benchmark measured: a table of variants, its headline ratio and whether the goal is met."""

    name: str
    title: str
    device: str
    rows: list[dict]
    ratio: float
    ratio_label: str
    goal: str
    goal_met: bool | None
    plot_values: dict[str, float] = field(default_factory=dict)
    plot_label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    clock: str | None = None

    def goal_text(self) -> str:
        """'goal met', 'goal not met', or why there is no verdict."""
        if self.skipped:
            return f"not run: {self.skipped}"
        if self.goal_met is None:
            return "no goal (informational)"
        return "goal met" if self.goal_met else "goal not met"

    def ratio_line(self, gpu: BenchResult | None = None) -> str:
        """The one-line summary every script ends with: `name: ratio=<float> ...` (+ the GPU's ratio)."""
        details = " ".join(f"{k}={_fmt(v)}" for k, v in self.extra.items())
        parts = [f"{self.name}: ratio={_fmt(self.ratio)}", f"({self.ratio_label})", f"goal: {self.goal}"]
        if self.device != "cpu":
            parts.insert(1, f"device={self.device}")
        if details:
            parts.append(details)
        if gpu is not None:
            parts.append(f"gpu_ratio={_fmt(gpu.ratio)} gpu: {gpu.goal_text()};")
        parts.append(self.goal_text())
        return " ".join(parts)


def skipped_result(name: str, title: str, reason: str, goal: str, device: str = "cpu") -> BenchResult:
    """A result for a benchmark that could not run (ratio nan), with the reason."""
    return BenchResult(
        name=name,
        title=title,
        device=device,
        rows=[],
        ratio=float("nan"),
        ratio_label="not run",
        goal=goal,
        goal_met=None,
        skipped=reason,
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def format_table(rows: Sequence[dict]) -> str:
    """A Markdown table (also readable in a terminal) from a list of dicts with the same keys."""
    if not rows:
        return "(no rows)"
    headers = list(rows[0])
    for row in rows[1:]:
        headers += [k for k in row if k not in headers]
    cells = [[_fmt(row.get(h, "")) for h in headers] for row in rows]
    widths = [max(len(str(h)), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = lambda values: "| " + " | ".join(str(v).ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)])


def print_tables(result: BenchResult) -> None:
    """Print a benchmark's table and notes for one device."""
    print(f"\n## {result.title} [{result.device}]")
    if result.skipped:
        print(f"not run: {result.skipped}")
    if result.rows:
        print(format_table(result.rows))
    for note in result.notes:
        print(f"note: {note}")
    if result.clock:
        print(f"note: {clock_note(result.clock)}")


def final_line(results: Sequence[BenchResult]) -> str:
    """The single closing line: the first (CPU) result's ratio line, with the GPU's ratio appended."""
    gpu = next((r for r in results[1:] if r.device.startswith("cuda")), None)
    return results[0].ratio_line(gpu)


# ----------------------------------------------------------------------------- plots and CLI
def write_plot(results: Sequence[BenchResult], path: Path) -> Path | None:
    """A bar chart of one benchmark's variants (one bar group per device); None when there is nothing to plot."""
    results = [r for r in results if r.plot_values]
    if not results:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results[0].plot_values)
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for i, result in enumerate(results):
        xs = [j + (i - (len(results) - 1) / 2) * width for j in range(len(names))]
        values = [result.plot_values.get(n, 0.0) for n in names]
        bars = ax.bar(xs, values, width, label=result.device)
        ax.bar_label(bars, labels=[_fmt(float(v)) for v in values], fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=12, fontsize=8)
    ax.set_ylabel(results[0].plot_label)
    ax.set_title(
        f"{results[0].title}\n{results[0].name}: ratio={_fmt(results[0].ratio)} ({results[0].ratio_label})", fontsize=9
    )
    if len(results) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def quiet(*_args, **_kwargs) -> None:
    """A log function that says nothing."""


def tiny_profile():
    """The tiny profile, whose shipped model and adapters every benchmark uses."""
    from lessons_lib.profiles import get_profile

    return get_profile("tiny")


def load_bench_base(device: str = "cpu"):
    """A fresh tiny base: fp32 on CPU; fp16 on CUDA (T4-class settings)."""
    import torch

    from lessons_lib.models import load_base

    base = load_base(tiny_profile(), log=quiet)  # on a GPU machine device_map="auto" puts it on the GPU: move it
    base = base.to(device=device, dtype=torch.float16 if device.startswith("cuda") else torch.float32)
    base.eval()
    return base


def bench_args(description: str, default_repeats: int, argv: list[str] | None = None) -> argparse.Namespace:
    """Common CLI of every script: --repeats, --device (cpu | cuda | all), --plot."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=default_repeats, help="timed rounds per variant")
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda", "all"],
        default="cpu",
        help="where to run; 'all' adds the GPU (fp16) when CUDA is present",
    )
    parser.add_argument("--plot", action="store_true", help=f"also write a PNG to {BENCH_DIR}")
    add_threads_arg(parser)
    return parser.parse_args(argv)


def add_threads_arg(parser: argparse.ArgumentParser) -> None:
    """--threads: torch CPU threads (default 1; 0 keeps torch's default)."""
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help="torch CPU threads (default 1: on a shared or busy machine, multi-threaded "
        "kernels stall on each other and ratios turn to noise; 0 = torch's default)",
    )


def set_threads(threads: int) -> int:
    """Pin torch's CPU threads (0 leaves the default); return the count in use."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def devices_for(choice: str) -> list[str]:
    """The devices a --device choice means on this machine."""
    if choice == "cpu":
        return ["cpu"]
    if choice == "cuda" and not cuda_available():
        raise SystemExit("--device cuda asked for, but torch sees no CUDA device.")
    return ["cuda"] if choice == "cuda" else (["cpu", "cuda"] if cuda_available() else ["cpu"])


def main_for(
    measure: Callable[..., BenchResult], description: str, default_repeats: int, argv: list[str] | None = None
) -> list[BenchResult]:
    """Run one benchmark from the command line: print each device's table, the ratio line last."""
    args = bench_args(description, default_repeats, argv)
    print(f"torch CPU threads: {set_threads(args.threads)}")
    results = [measure(repeats=args.repeats, device=device) for device in devices_for(args.device)]
    for result in results:
        print_tables(result)
    if args.device == "all" and not cuda_available():
        print(NO_GPU)
    if args.plot:
        print(f"plot: {write_plot(results, BENCH_DIR / f'{results[0].name}.png')}")
    print(final_line(results), flush=True)
    return results
