"""Claim 2: one mixed-adapter batch (`adapter_names=[...]`) beats switching adapters per sub-batch.

Traffic: 3 adapters x 8 prompts (held-out prompts of each adapter's domain, interleaved as requests
arrive). Variants, interleaved: one mixed batch of 24 rows; `set_adapter` + one sub-batch of 8 per
adapter; one prompt at a time (`set_adapter` + generate per request); the mixed batch on the batched LoRA path
(lessons_lib/batched_lora.py: stacked A/B, gather + batched matmuls; bench_batched_lora.py has its full grid);
and, as a bound, the same batch of 24 through one adapter (what batching gains without per-row adapter routing).
Metric: answer tokens per second.
Goal: mixed batch >= 1.5x the tokens/s of switching per sub-batch on CPU.

`python -m benchmarks.bench_mixed_batch [--repeats N] [--device cpu|cuda|all] [--plot]`
"""

from __future__ import annotations

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
from lessons_lib import domains

NAME = "mixed_batch"
TITLE = "Mixed-adapter batch vs switching per sub-batch vs one prompt at a time"
GOAL_SPEEDUP = 1.5
ADAPTERS = domains.names()  # one adapter per course domain
PER_ADAPTER = 8
BOUND = "one batch, one adapter (bound)"
BATCHED = "mixed batch, batched LoRA"


def traffic(per_adapter: int = PER_ADAPTER) -> tuple[list[str], list[str]]:
    """Prompts and the adapter each one wants, interleaved json, coding, support, json, ..."""
    from lessons_lib.data import examples

    per_domain = {name: [ex.prompt for ex in examples(name, per_adapter, "heldout", seed=3)] for name in ADAPTERS}
    prompts, names = [], []
    for i in range(per_adapter):
        for name in ADAPTERS:
            prompts.append(per_domain[name][i])
            names.append(name)
    return prompts, names


def measure(
    repeats: int = 5, device: str = "cpu", max_new_tokens: int | None = None, per_adapter: int = PER_ADAPTER
) -> BenchResult:
    """Generate the same traffic each way; check the answers agree; compare answer tokens per second."""
    from lessons_lib.adapters import load_with_adapters
    from lessons_lib.batched_lora import BatchedLora
    from lessons_lib.models import generate, load_tokenizer

    profile = tiny_profile()
    max_new = max_new_tokens or profile.max_new_tokens
    tok = load_tokenizer(profile)
    model = load_with_adapters(load_bench_base(device), profile, ADAPTERS)
    prompts, names = traffic(per_adapter)
    outputs: dict[str, list[str]] = {}

    def mixed():
        outputs["mixed batch"] = generate(model, tok, prompts, max_new, adapter_names=names, batch_size=len(prompts))

    batched = BatchedLora(model)

    def mixed_batched():
        outputs[BATCHED] = generate(
            model, tok, prompts, max_new, adapter_names=names, batch_size=len(prompts), batched_lora=batched
        )

    def switched():
        out: list[str | None] = [None] * len(prompts)
        for name in ADAPTERS:
            rows = [i for i, n in enumerate(names) if n == name]
            model.set_adapter(name, inference_mode=True)
            for i, answer in zip(rows, generate(model, tok, [prompts[i] for i in rows], max_new, batch_size=len(rows))):
                out[i] = answer
        outputs["switch per sub-batch"] = out

    def one_at_a_time():
        out = []
        for prompt, name in zip(prompts, names):
            model.set_adapter(name, inference_mode=True)
            out.append(generate(model, tok, [prompt], max_new)[0])
        outputs["one prompt at a time"] = out

    def unmixed_bound():
        model.set_adapter(ADAPTERS[0], inference_mode=True)
        outputs[BOUND] = generate(model, tok, prompts, max_new, batch_size=len(prompts))

    variants = [
        Variant("mixed batch", mixed),
        Variant("switch per sub-batch", switched),
        Variant("one prompt at a time", one_at_a_time),
        Variant(BATCHED, mixed_batched),
        Variant(BOUND, unmixed_bound),
    ]
    clock = pick_clock(device)
    samples = time_alternating(variants, repeats, warmup=1, device=device, clock=clock)
    med = medians(samples)
    reference = outputs["switch per sub-batch"]
    tokens = {name: sum(answer_tokens(tok, answer, max_new) for answer in out) for name, out in outputs.items()}
    same = {name: f"{sum(a == b for a, b in zip(out, reference))}/{len(prompts)}" for name, out in outputs.items()}
    same[BOUND] = "n/a (one adapter)"
    rate = {name: tokens[name] / med[name] for name in med}
    rows = [
        {
            "variant": name,
            "median s": med[name],
            "spread": spread(samples[name]),
            "tokens/s": rate[name],
            "x sub-batch": rate[name] / rate["switch per sub-batch"],
            "rows equal to sub-batch": same[name],
        }
        for name in med
    ]
    ratio = rate["mixed batch"] / rate["switch per sub-batch"]
    mixed_equal = outputs["mixed batch"] == reference and outputs[BATCHED] == reference
    notes = [
        f"{len(prompts)} prompts ({per_adapter} per adapter), greedy, max_new_tokens={max_new}, "
        f"{tokens['mixed batch']} answer tokens per run",
        f"'{BOUND}' runs all {len(prompts)} prompts through {ADAPTERS[0]} alone: the batching gain with no "
        "per-row adapter routing, an upper bound for the mixed batch",
    ]
    if not mixed_equal:
        notes.append(
            "mixed-batch answers (PEFT's or the batched path's) differ from the per-sub-batch answers "
            "(see 'rows equal')"
        )
    return BenchResult(
        name=NAME,
        title=TITLE,
        device=device,
        rows=rows,
        ratio=ratio,
        clock=clock,
        ratio_label="mixed batch tokens/s / switch-per-sub-batch tokens/s",
        goal=f">= {GOAL_SPEEDUP:g} (on CPU)",
        goal_met=(ratio >= GOAL_SPEEDUP and mixed_equal) if device == "cpu" else None,
        plot_values=rate,
        plot_label="answer tokens/s (higher is better)",
        extra={
            "vs_one_at_a_time": rate["mixed batch"] / rate["one prompt at a time"],
            "unmixed_bound_x": rate[BOUND] / rate["switch per sub-batch"],
            "batched_x": rate[BATCHED] / rate["switch per sub-batch"],
            "outputs_equal": mixed_equal,
            "tokens": tokens["mixed batch"],
        },
        notes=notes,
    )


def answer_tokens(tok, answer: str, max_new: int) -> int:
    """Tokens the model produced for an answer: its text re-encoded, plus eos unless cut at max_new."""
    n = len(tok(answer, add_special_tokens=False)["input_ids"])
    return min(max_new, n + 1)


def main(argv: list[str] | None = None) -> list[BenchResult]:
    """Command-line entry point."""
    return main_for(measure, __doc__.splitlines()[0], default_repeats=5, argv=argv)


if __name__ == "__main__":
    main()
