"""Claim 3: packing short examples into full rows trains more real tokens per second than padding.

TRL `SFTTrainer` with `SFTConfig(packing=False)` (pad each batch to its longest row) and
`SFTConfig(packing=True)` (TRL's default best-fit packing: whole examples packed into rows of
max_length, padding-free), each with and without gradient checkpointing, on the tiny model and a mix
of the three course domains; also `packing_strategy="wrapped"` (fixed-length rows), and both packings at equal
tokens per optimizer step (as many packed rows as padding's real tokens fill: a packed row holds several examples,
and bigger steps alone run faster per token). Metric: real (non-pad) tokens per second over the steps after the
first. Goal: packing >= 1.5x padding (both without checkpointing). `measure(domains=("json",), batch_size=16)` is
what a course adapter trains on (one domain, the tiny profile's batch); the profiles' `packing_strategy` follows it.

`python -m benchmarks.bench_training [--repeats N] [--device cpu|cuda|all] [--plot]`
"""

from __future__ import annotations

import math
import random
import statistics
import tempfile

from benchmarks.common import (
    BENCH_DIR,
    BenchResult,
    Variant,
    clock_fn,
    load_bench_base,
    main_for,
    pick_clock,
    quiet,
    spread,
    time_alternating,
    tiny_profile,
)

NAME = "training"
TITLE = "Training throughput: packing vs padding, with and without gradient checkpointing"
GOAL_SPEEDUP = 1.5
# (name, packing, packing_strategy, gradient_checkpointing, batch): "rows" = `batch_size` rows per step (packed rows
# hold several examples each); "tokens" = as many max_length rows as padding's real tokens per step fill, so the two
# compare at equal work per optimizer step (bigger steps alone run faster per token on a CPU).
VARIANTS = (
    ("padding", False, "bfd", False, "rows"),
    ("packing", True, "bfd", False, "rows"),
    ("packing wrapped", True, "wrapped", False, "rows"),
    ("packing, equal tokens", True, "bfd", False, "tokens"),
    ("packing wrapped, equal tokens", True, "wrapped", False, "tokens"),
    ("padding + grad ckpt", False, "bfd", True, "rows"),
    ("packing + grad ckpt", True, "bfd", True, "rows"),
)


def training_rows(per_domain: int = 96, seed: int = 0, domains: tuple[str, ...] | None = None) -> list[dict]:
    """Prompt-completion rows of the given domains (default: all three), shuffled (lengths vary, as in a real mix)."""
    from lessons_lib.data import DOMAINS, sft_rows

    rows = [row for domain in (domains or DOMAINS) for row in sft_rows(domain, per_domain, "train", seed)]
    random.Random(seed).shuffle(rows)
    return rows


def counting_trainer_class(clock: str = "wall"):
    """SFTTrainer that records, per optimizer step, the real (non-pad) tokens, all token slots and a timestamp."""
    import torch
    from transformers import TrainerCallback
    from trl import SFTTrainer

    now = clock_fn(clock)

    class CountingSFTTrainer(SFTTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.step_tokens: list[tuple[int, int]] = []
            self.step_ends: list[float] = []
            trainer = self

            class StepClock(TrainerCallback):
                def on_step_end(self, args, state, control, **kw):
                    if torch.cuda.is_available():
                        torch.cuda.synchronize()
                    trainer.step_ends.append(now())

            self.add_callback(StepClock())

        def training_step(self, model, inputs, *args, **kwargs):
            ids = inputs["input_ids"]
            real = int((ids != self.processing_class.pad_token_id).sum())
            self.step_tokens.append((real, ids.numel()))
            return super().training_step(model, inputs, *args, **kwargs)

        def reset_counts(self) -> None:
            self.step_tokens, self.step_ends = [], []

        def throughput(self) -> tuple[float, float]:
            """(real tokens/s, pad share) over the steps after the first (the first pays warm-up costs)."""
            if len(self.step_ends) < 2:
                raise RuntimeError("Need at least 2 training steps to measure throughput.")
            real = sum(r for r, _ in self.step_tokens[1:])
            slots = sum(s for _, s in self.step_tokens[1:])
            return real / (self.step_ends[-1] - self.step_ends[0]), 1 - real / slots

    return CountingSFTTrainer


def quiet_training_logs() -> None:
    """No datasets progress bars, transformers notices or TRL log lines in a benchmark's output."""
    import logging

    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)


def build_trainer(
    rows: list[dict],
    packing: bool,
    strategy: str,
    checkpointing: bool,
    device: str,
    steps: int,
    batch_size: int,
    output_dir: str,
    clock: str = "wall",
):
    """A counting SFTTrainer for one variant on a fresh tiny base (fp32 weights; fp16 AMP on CUDA)."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback

    from lessons_lib.models import load_base, load_tokenizer
    from lessons_lib.train import keep_adapter_fp32, lora_config, sft_config

    profile = tiny_profile()
    on_gpu = device.startswith("cuda")
    base = load_base(profile, log=quiet) if on_gpu else load_bench_base(device)
    args = sft_config(
        profile,
        output_dir,
        max_steps=steps,
        packing=packing,
        packing_strategy=strategy,
        gradient_checkpointing=checkpointing,
        per_device_train_batch_size=batch_size,
        save_strategy="no",
        logging_steps=steps,
        disable_tqdm=True,
        use_cpu=not on_gpu,
        fp16=on_gpu,
        bf16=False,
        dataloader_pin_memory=on_gpu,
        warmup_steps=0,
    )
    trainer = counting_trainer_class(clock)(
        model=base,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=load_tokenizer(profile),
        peft_config=lora_config(profile),
    )
    trainer.remove_callback(PrinterCallback)  # no per-run log dicts in the benchmark's output
    if on_gpu:
        keep_adapter_fp32(trainer.model)  # LoRA weights stay fp32 under fp16 AMP (T4 settings)
    return trainer


def equal_token_rows(rows: list[dict], batch_size: int, max_length: int) -> int:
    """How many packed rows of max_length hold the real tokens of `batch_size` unpacked examples (at least 1)."""
    from lessons_lib.models import load_tokenizer

    tok = load_tokenizer(tiny_profile())
    lengths = [len(tok.apply_chat_template(r["prompt"] + r["completion"], tokenize=True)["input_ids"]) for r in rows]
    return max(1, round(batch_size * sum(lengths) / len(lengths) / max_length))


def measure(
    repeats: int = 3,
    device: str = "cpu",
    steps: int = 3,
    batch_size: int = 8,
    per_domain: int = 96,
    domains: tuple[str, ...] | None = None,
) -> BenchResult:
    """Train a few steps per variant, interleaved; compare real tokens per second."""
    quiet_training_logs()
    rows = training_rows(per_domain, domains=domains)
    packed_batch = equal_token_rows(rows, batch_size, tiny_profile().max_length)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(dir=BENCH_DIR, prefix="train-")
    clock = pick_clock(device)
    trainers = {
        name: build_trainer(
            rows,
            packing,
            strategy,
            ckpt,
            device,
            steps,
            packed_batch if batch == "tokens" else batch_size,
            f"{tmp.name}/{i}",
            clock,
        )
        for i, (name, packing, strategy, ckpt, batch) in enumerate(VARIANTS)
    }
    rates: dict[str, list[float]] = {name: [] for name in trainers}
    pad_share: dict[str, float] = {}
    losses: dict[str, float] = {}

    def variant(name: str) -> Variant:
        trainer = trainers[name]

        def record():
            rate, pad_share[name] = trainer.throughput()
            rates[name].append(rate)
            losses[name] = trainer.state.log_history[-1].get("train_loss", float("nan"))

        return Variant(name, lambda: trainer.train(), before=trainer.reset_counts, after=record)

    samples = time_alternating([variant(name) for name in trainers], repeats, warmup=0, device=device, clock=clock)
    tmp.cleanup()
    median_rate = {name: statistics.median(r) for name, r in rates.items()}
    tokens_per_step = {
        name: sum(r for r, _ in t.step_tokens) / max(1, len(t.step_tokens)) for name, t in trainers.items()
    }
    rows_out = [
        {
            "variant": name,
            "real tokens/s": median_rate[name],
            "spread": spread(rates[name]),
            "real tokens/step": tokens_per_step[name],
            "pad share": pad_share[name],
            "x padding": median_rate[name] / median_rate["padding"],
            "train loss": losses[name],
            "median s/run": statistics.median(samples[name]),
        }
        for name in trainers
    ]
    ratio = median_rate["packing"] / median_rate["padding"]
    finite = all(math.isfinite(v) for v in losses.values())
    return BenchResult(
        name=NAME,
        title=TITLE,
        device=device,
        rows=rows_out,
        ratio=ratio,
        clock=clock,
        ratio_label="packing / padding, real tokens per second, no checkpointing",
        goal=f">= {GOAL_SPEEDUP:g}",
        goal_met=ratio >= GOAL_SPEEDUP and finite,
        plot_values=dict(median_rate),
        plot_label="real (non-pad) tokens/s (higher is better)",
        extra={
            "wrapped_x": median_rate["packing wrapped"] / median_rate["padding"],
            "bfd_equal_tokens_x": median_rate["packing, equal tokens"] / median_rate["padding"],
            "wrapped_equal_tokens_x": median_rate["packing wrapped, equal tokens"] / median_rate["padding"],
            "packing_ckpt_x": median_rate["packing + grad ckpt"] / median_rate["padding + grad ckpt"],
            "ckpt_cost": median_rate["padding"] / median_rate["padding + grad ckpt"],
            "losses_finite": finite,
        },
        notes=[
            f"{len(rows)} rows of {', '.join(domains) if domains else 'all three domains'}, batch {batch_size} "
            f"(the tiny profile trains at {tiny_profile().batch_size}; smaller keeps the padding-free variant "
            f"affordable), {steps} steps per run, "
            "first step not timed; "
            "'packing' is SFTConfig(packing=True) with TRL's default best-fit strategy, which is padding-free: "
            "the whole batch becomes one sequence, so without a varlen (flash) attention kernel attention "
            "cost grows with the square of the batch's total length; 'packing wrapped' is "
            "packing_strategy='wrapped' (fixed max_length rows, examples cut across rows); a packed row holds "
            f"several examples, so the 'equal tokens' variants take {packed_batch} packed row(s) per step: about "
            "the real tokens of one padded batch, the fair comparison at equal work per optimizer step"
        ],
    )


def main(argv: list[str] | None = None) -> list[BenchResult]:
    """Command-line entry point."""
    return main_for(measure, __doc__.splitlines()[0], default_repeats=3, argv=argv)


if __name__ == "__main__":
    main()
