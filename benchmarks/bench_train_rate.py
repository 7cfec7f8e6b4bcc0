"""Claim 9: the notebooks' training-time estimates use the speed the tiny profile really trains at.

`budget.estimate_seconds` divides padded tokens per step by the tiny profile's `train_tokens_per_second` (the "about
N s ... (measured)" lines of notebooks 01-06). This trains the json adapter as notebook 01 does: the tiny profile's
SFTConfig and LoRA, its batch, each batch padded to its longest row, no checkpointing, fp32 on the CPU, at the
notebooks' thread count (`env.cpu_threads`). It measures padded tokens (rows x the batch's longest row) per second
over the steps after the first (the first pays warm-up costs) and puts the profile's rate beside it.
Goal: the profile's rate within 20% of the measured one, so an estimate is off by less than a fifth.

`python -m benchmarks.bench_train_rate [--repeats N]`
"""

from __future__ import annotations

import statistics
import tempfile

from benchmarks.bench_training import build_trainer, quiet_training_logs
from benchmarks.common import BENCH_DIR, BenchResult, main_for, pick_clock, skipped_result, spread, tiny_profile

NAME = "train_rate"
TITLE = "Training speed behind the notebooks' time estimates: measured vs the tiny profile's rate"
GOAL_OFF = 0.2
GOAL = f"the profile's rate within {GOAL_OFF:.0%} of the measured one"


def measure(repeats: int = 3, device: str = "cpu", steps: int = 12) -> BenchResult:
    """Train notebook 01's json run `repeats` times; padded tokens/s measured vs the profile's rate."""
    import torch

    from lessons_lib.data import sft_rows
    from lessons_lib.env import cpu_threads

    if device != "cpu":
        return skipped_result(NAME, TITLE, "the tiny profile's rate is a CPU figure", GOAL, device)
    quiet_training_logs()
    profile = tiny_profile()
    rows = sft_rows("json", steps * profile.batch_size * profile.grad_accum)
    threads = torch.get_num_threads()
    torch.set_num_threads(cpu_threads())  # as setup_lesson does in every notebook
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=BENCH_DIR, prefix="rate-") as tmp:
            trainer = build_trainer(
                rows, False, "bfd", False, device, steps, profile.batch_size, tmp, pick_clock(device)
            )
            rates = []
            for _ in range(repeats):
                trainer.reset_counts()
                trainer.train()
                real_rate, pad_share = trainer.throughput()
                rates.append(real_rate / (1 - pad_share))  # every slot of the padded batch, as the estimates count
    finally:
        torch.set_num_threads(threads)
    measured, assumed = statistics.median(rates), profile.train_tokens_per_second
    ratio = assumed / measured
    return BenchResult(
        name=NAME,
        title=TITLE,
        device=device,
        rows=[
            {"rate": "measured: notebook 01's json run", "padded tokens/s": measured, "spread": spread(rates)},
            {"rate": "the tiny profile's (the estimates)", "padded tokens/s": assumed, "spread": 0.0},
        ],
        ratio=ratio,
        ratio_label="profile rate / measured rate (1 = the estimates are exact)",
        goal=GOAL,
        goal_met=abs(ratio - 1) <= GOAL_OFF,
        plot_values={"measured": measured, "profile": assumed},
        plot_label="padded tokens/s",
        notes=[
            f"{steps} steps of batch {profile.batch_size} per run, first step not timed, {cpu_threads()} torch "
            "threads; a machine busy with other work (e.g. `make course --jobs 2`) trains slower than this"
        ],
    )


def main(argv: list[str] | None = None) -> list[BenchResult]:
    """Command-line entry point."""
    return main_for(measure, __doc__.splitlines()[0], default_repeats=3, argv=argv)


if __name__ == "__main__":
    main()
