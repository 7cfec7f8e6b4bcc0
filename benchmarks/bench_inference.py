"""Claim 4: a merged model (`merge_and_unload`) costs what the base costs; an unmerged adapter costs extra.

Variants, interleaved: the base model; the base + json adapter (unmerged LoRA, computed beside each
layer); the json adapter merged into a copy of the base; and a second copy of the base as a noise
control (two identical models should time the same). Each run generates a fixed number of tokens
(min_new_tokens = max_new_tokens) for a batch of prompts, so every variant does the same work.
Goal: merged within +-5% of the base's time. Also checked: merged answers equal the adapter's answers.

`python -m benchmarks.bench_inference [--repeats N] [--device cpu|cuda|all] [--plot]`
"""

from __future__ import annotations

import statistics

from benchmarks.common import (
    BenchResult,
    Variant,
    load_bench_base,
    main_for,
    medians,
    pick_clock,
    spread,
    time_alternating,
    tiny_profile,
)

NAME = "inference"
TITLE = "Inference overhead: base vs unmerged adapter vs merged model"
TOLERANCE = 0.05
ADAPTER = "json"
CONTROL = "base again (noise control)"


def measure(repeats: int = 15, device: str = "cpu", new_tokens: int = 32, batch: int = 8) -> BenchResult:
    """Time fixed-length generation on the three models; check merged == unmerged answers."""
    import torch

    from lessons_lib.adapters import load_with_adapters
    from lessons_lib.data import examples
    from lessons_lib.models import chat_text, generate, load_tokenizer

    profile = tiny_profile()
    tok = load_tokenizer(profile)
    base = load_bench_base(device)
    adapter = load_with_adapters(load_bench_base(device), profile, [ADAPTER])
    merged = load_with_adapters(load_bench_base(device), profile, [ADAPTER]).merge_and_unload()
    merged.eval()
    prompts = [ex.prompt for ex in examples(ADAPTER, batch, "heldout", seed=5)]
    enc = tok([chat_text(tok, p) for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False).to(
        device
    )

    def run(model):
        with torch.no_grad():
            out = model.generate(
                **enc,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
        assert out.shape[1] == enc["input_ids"].shape[1] + new_tokens

    # A second, identical copy of the base shows how far two equal models drift apart on this machine.
    models = {"base": base, "unmerged adapter": adapter, "merged": merged, CONTROL: load_bench_base(device)}
    variants = [Variant(name, lambda m=model: run(m)) for name, model in models.items()]
    clock = pick_clock(device)
    samples = time_alternating(variants, repeats, warmup=1, device=device, clock=clock)
    med = medians(samples)
    answers = {
        name: generate(models[name], tok, prompts, profile.max_new_tokens) for name in ("unmerged adapter", "merged")
    }
    with torch.no_grad():
        logit_gap = (adapter(**enc).logits.float() - merged(**enc).logits.float()).abs().max().item()
    same = answers["merged"] == answers["unmerged adapter"]
    tokens = batch * new_tokens
    base_time = statistics.median(samples["base"] + samples[CONTROL])  # both identical copies, pooled
    rows = [
        {
            "variant": name,
            "median s": med[name],
            "spread": spread(samples[name]),
            "tokens/s": tokens / med[name],
            "x base time": med[name] / base_time,
        }
        for name in med
    ]
    ratio = med["merged"] / base_time
    within = abs(ratio - 1) <= TOLERANCE
    noise = abs(med[CONTROL] / med["base"] - 1)
    return BenchResult(
        name=NAME,
        title=TITLE,
        device=device,
        rows=rows,
        ratio=ratio,
        clock=clock,
        ratio_label="merged / base, median generation time (base = both base copies pooled)",
        goal=f"within 1 +- {TOLERANCE:g}",
        goal_met=within and same,
        plot_values={name: tokens / med[name] for name in med},
        plot_label="generated tokens/s (higher is better)",
        extra={
            "unmerged_x": med["unmerged adapter"] / base_time,
            "noise_floor": noise,
            "merged_equals_adapter": same,
            "max_logit_gap": logit_gap,
        },
        notes=[
            f"batch {batch}, {new_tokens} new tokens per row, greedy; merged answers "
            f"{'equal' if same else 'DIFFER FROM'} the unmerged adapter's (max logit gap {logit_gap:.2g})",
            f"noise floor: two identical base copies differ by {noise:.1%} on this run"
            + (
                f", more than the {TOLERANCE:.0%} tolerance: the verdict is limited by machine noise"
                if noise > TOLERANCE
                else ""
            ),
        ],
    )


def main(argv: list[str] | None = None) -> list[BenchResult]:
    """Command-line entry point."""
    return main_for(measure, __doc__.splitlines()[0], default_repeats=15, argv=argv)


if __name__ == "__main__":
    main()
