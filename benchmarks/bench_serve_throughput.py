"""Claim 2c: the serving engine answers 64 concurrent mixed-adapter requests faster with the batched LoRA path.

Two BatchingEngines (lessons_lib/serve/engine.py) share one model: one passes `batched_lora=BatchedLora(model)`,
the other uses PEFT's `adapter_names=`. Traffic: 64 requests submitted at once, greedy, held-out prompts of json,
coding and support plus the bare base, interleaved (the engine's defaults: window 10 ms, max_batch 32, so two
decode batches of 32). Metric: completion tokens per second until the last answer arrives; the runs alternate.
Goal: the batched engine >= 1.2x the PEFT engine on CPU, with identical answers.

`python -m benchmarks.bench_serve_throughput [--repeats N] [--device cpu|cuda|all] [--plot]`
"""

from __future__ import annotations

from benchmarks.bench_mixed_batch import ADAPTERS
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

NAME = "serve_throughput"
TITLE = "Serving engine under 64 concurrent mixed requests: batched LoRA path vs PEFT's adapter_names"
GOAL = 1.2
REQUESTS = 64
MAX_TOKENS = 48
PUBLIC = (*ADAPTERS, "base")  # what the requests ask for, in turn


def requests(n: int = REQUESTS) -> list[tuple[str, str]]:
    """(prompt, requested model) pairs: json, coding, support, base, json, ..."""
    from lessons_lib.data import examples

    per = -(-n // len(PUBLIC))
    domains = {name: [ex.prompt for ex in examples(name, per, "heldout", seed=5)] for name in ADAPTERS}
    domains["base"] = [ex.prompt for ex in examples("support", per, "heldout", seed=11)]
    return [(domains[PUBLIC[i % len(PUBLIC)]][i // len(PUBLIC)], PUBLIC[i % len(PUBLIC)]) for i in range(n)]


def measure(
    repeats: int = 3, device: str = "cpu", n_requests: int = REQUESTS, max_tokens: int = MAX_TOKENS, max_batch: int = 32
) -> BenchResult:
    """Serve the same burst through both engines, alternating; compare tokens/s and the answers."""
    from lessons_lib.adapters import load_with_adapters
    from lessons_lib.batched_lora import BatchedLora
    from lessons_lib.models import chat_text, load_tokenizer
    from lessons_lib.serve.engine import BatchingEngine, Job

    profile = tiny_profile()
    tok = load_tokenizer(profile)
    model = load_with_adapters(load_bench_base(device), profile, ADAPTERS)
    traffic = requests(n_requests)
    engines = {
        "PEFT adapter_names": BatchingEngine(model, tok, ADAPTERS, max_batch=max_batch),
        "batched LoRA": BatchingEngine(model, tok, ADAPTERS, max_batch=max_batch, batched_lora=BatchedLora(model)),
    }
    answers: dict[str, list] = {}

    def burst(name: str):
        jobs = [
            Job(prompt=chat_text(tok, prompt), route_text=prompt, model=public, max_tokens=max_tokens)
            for prompt, public in traffic
        ]
        futures = [engines[name].submit(job) for job in jobs]
        answers[name] = [f.result(timeout=600) for f in futures]

    try:
        variants = [Variant(name, lambda name=name: burst(name)) for name in engines]
        clock = pick_clock(device)
        samples = time_alternating(variants, repeats, warmup=1, device=device, clock=clock)
    finally:
        for engine in engines.values():
            engine.close()
    med = medians(samples)
    tokens = {name: sum(a.completion_tokens for a in out) for name, out in answers.items()}
    rate = {name: tokens[name] / med[name] for name in engines}
    peft, batched = answers["PEFT adapter_names"], answers["batched LoRA"]
    same = sum(a.text == b.text for a, b in zip(peft, batched))
    path = engines["batched LoRA"].stats["lora_path"]
    rows = [
        {
            "engine": name,
            "lora_path": engines[name].stats["lora_path"],
            "median s": med[name],
            "spread": spread(samples[name]),
            "tokens/s": rate[name],
            "batches": engines[name].stats["batches"],
            "max batch": engines[name].stats["max_batch_seen"],
            "answers equal to PEFT": f"{same}/{len(peft)}",
        }
        for name in engines
    ]
    ratio = rate["batched LoRA"] / rate["PEFT adapter_names"]
    equal = same == len(peft) and path == "batched"
    notes = [
        f"{n_requests} requests submitted at once ({', '.join(PUBLIC)} in turn), greedy, max_tokens={max_tokens}, "
        f"max_batch={max_batch}; {tokens['batched LoRA']} completion tokens per burst"
    ]
    if path != "batched":
        notes.append(f"the batched engine fell back: {path}")
    return BenchResult(
        name=NAME,
        title=TITLE,
        device=device,
        rows=rows,
        ratio=ratio,
        clock=clock,
        ratio_label="engine tokens/s with the batched LoRA path / with PEFT's adapter_names",
        goal=f">= {GOAL:g} (on CPU)",
        goal_met=(ratio >= GOAL and equal) if device == "cpu" else None,
        plot_values=rate,
        plot_label="completion tokens/s (higher is better)",
        extra={"answers_equal": same == len(peft), "lora_path": path},
        notes=notes,
    )


def main(argv: list[str] | None = None) -> list[BenchResult]:
    """Command-line entry point."""
    return main_for(measure, __doc__.splitlines()[0], default_repeats=3, argv=argv)


if __name__ == "__main__":
    main()
