"""Claim 2b: a mixed-adapter batch on the batched LoRA path runs at >= 0.9x the tokens/s of a one-adapter batch.

PEFT's `adapter_names=` path loops over the batch's adapters in every LoRA layer; the batched path
(lessons_lib/batched_lora.py) gathers stacked A/B by row index and runs two batched matmuls. Grid: batch sizes
8 / 24 / 64 (held-out prompts of json, coding, support, interleaved) x answer lengths: "equal" (every row generates
max_new_tokens, eos suppressed) and "natural" (rows stop at eos; the batch runs until its longest answer ends). Per
cell, interleaved: one batch through one adapter (PEFT's ordinary path: the bound; for natural answers it runs as
many steps as the mixed batch and is credited with the same answer tokens), switching per sub-batch
(`set_adapter` + one generate per adapter; and the same with the batched path), and the mixed batch (PEFT's
`adapter_names`; the batched path). Metric: answer tokens per second. The ratios divide by the one-adapter batch of
the same cell; the headline is their geometric mean over the cells for the batched path (`peft_ratio`: PEFT's).

`python -m benchmarks.bench_batched_lora [--repeats N] [--device cpu|cuda|all] [--plot]`
"""

from __future__ import annotations

import math

from benchmarks.bench_mixed_batch import ADAPTERS, traffic
from benchmarks.common import (
    BenchResult,
    Variant,
    load_bench_base,
    main_for,
    medians,
    pick_clock,
    time_alternating,
    tiny_profile,
)

NAME = "mixed_batch_batched"
TITLE = "Mixed-adapter batch: batched LoRA path vs PEFT's adapter_names vs one adapter vs switching"
GOAL = 0.9
SIZES = (8, 24, 64)
LENGTHS = ("equal", "natural")
MAX_NEW = 48
VARIANTS = ("one adapter", "switch PEFT", "switch batched", "mixed PEFT", "mixed batched")


def cell_traffic(size: int) -> tuple[list[str], list[str]]:
    """`size` prompts, adapters interleaved json, coding, support, json, ..."""
    prompts, names = traffic(-(-size // len(ADAPTERS)))
    return prompts[:size], names[:size]


def answer_counts(ids, prompt_len: int, eos: int) -> int:
    """Answer tokens in a generate output: per row up to and including the first eos (padding after it excluded)."""
    total = 0
    for row in ids[:, prompt_len:].tolist():
        total += row.index(eos) + 1 if eos in row else len(row)
    return total


def measure(
    repeats: int = 3,
    device: str = "cpu",
    max_new_tokens: int = MAX_NEW,
    sizes: tuple[int, ...] = SIZES,
    lengths: tuple[str, ...] = LENGTHS,
) -> BenchResult:
    """Time the grid; check that the batched path's token ids equal PEFT's in every cell; report the ratios."""
    import torch

    from lessons_lib.adapters import load_with_adapters
    from lessons_lib.batched_lora import BatchedLora
    from lessons_lib.models import chat_text, load_tokenizer

    profile = tiny_profile()
    tok = load_tokenizer(profile)
    model = load_with_adapters(load_bench_base(device), profile, ADAPTERS)
    batched = BatchedLora(model)
    clock = pick_clock(device)

    def encode(prompts):
        return tok(
            [chat_text(tok, p) for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(device)

    def run(enc, equal: bool, steps: int = max_new_tokens, **kwargs):
        extra = {"min_new_tokens": steps} if equal else {}
        with torch.no_grad():
            return model.generate(
                **enc,
                max_new_tokens=steps,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
                **extra,
                **kwargs,
            )

    rows, plot, ratios, peft_ratios, all_equal = [], {}, [], [], True
    for size in sizes:
        prompts, names = cell_traffic(size)
        enc = encode(prompts)
        subs = {a: ([i for i, n in enumerate(names) if n == a]) for a in ADAPTERS}
        sub_enc = {a: encode([prompts[i] for i in rows_]) for a, rows_ in subs.items() if rows_}
        for length in lengths:
            equal = length == "equal"
            out: dict[str, object] = {}
            width = enc["input_ids"].shape[1]
            # natural answers: the bound runs as many steps as the mixed batch (its longest answer), eos suppressed
            steps = max_new_tokens if equal else run(enc, False, adapter_names=names).shape[1] - width

            def one():
                model.set_adapter(ADAPTERS[0], inference_mode=True)
                out["one adapter"] = [run(enc, True, steps)]

            def switch_peft():
                res = []
                for a, e in sub_enc.items():
                    model.set_adapter(a, inference_mode=True)
                    res.append(run(e, equal))
                out["switch PEFT"] = res

            def switch_batched():
                res = []
                for a, e in sub_enc.items():
                    with batched.rows([a] * e["input_ids"].shape[0]):
                        res.append(run(e, equal))
                out["switch batched"] = res

            def mixed_peft():
                out["mixed PEFT"] = [run(enc, equal, adapter_names=names)]

            def mixed_batched():
                with batched.rows(names):
                    out["mixed batched"] = [run(enc, equal)]

            variants = [
                Variant(n, f) for n, f in zip(VARIANTS, (one, switch_peft, switch_batched, mixed_peft, mixed_batched))
            ]
            med = medians(time_alternating(variants, repeats, warmup=1, device=device, clock=clock))
            eos = tok.eos_token_id
            tokens = {}
            for name, outputs in out.items():
                widths = [width] if len(outputs) == 1 else [e["input_ids"].shape[1] for e in sub_enc.values()]
                tokens[name] = sum(answer_counts(o, w, eos) for o, w in zip(outputs, widths))
            if not equal:
                tokens["one adapter"] = tokens["mixed PEFT"]  # same steps, same batch: credited the same answers
            rate = {name: tokens[name] / med[name] for name in VARIANTS}
            same = bool(torch.equal(out["mixed batched"][0], out["mixed PEFT"][0])) and all(
                torch.equal(a, b) for a, b in zip(out["switch batched"], out["switch PEFT"])
            )
            all_equal &= same
            ratio, peft_ratio = rate["mixed batched"] / rate["one adapter"], rate["mixed PEFT"] / rate["one adapter"]
            ratios.append(ratio)
            peft_ratios.append(peft_ratio)
            plot[f"{size} {length} PEFT"] = peft_ratio
            plot[f"{size} {length} batched"] = ratio
            rows.append(
                {
                    "batch": size,
                    "answers": length,
                    **{f"{n} tok/s": rate[n] for n in VARIANTS},
                    "mixed PEFT x one": peft_ratio,
                    "mixed batched x one": ratio,
                    "batched ids = PEFT ids": same,
                }
            )
    headline, peft = _geomean(ratios), _geomean(peft_ratios)
    notes = [
        f"greedy, max_new_tokens={max_new_tokens}; 'equal' suppresses eos (min_new_tokens) so every row "
        "generates the same number of tokens; 'natural' stops each row at eos (the batch runs until its longest "
        "answer ends)",
        "'one adapter' runs the whole batch through json alone (PEFT's ordinary forward): the bound; in "
        "'natural' cells it runs exactly as many steps as the mixed batch and is credited with the mixed batch's "
        "answer tokens (the same work, no routing: json's own answers would end at other lengths); the ratios "
        "divide each cell's mixed-batch tokens/s by it",
        f"headline = geometric mean over the {len(ratios)} cells; worst cell {min(ratios):.3g} (batched), "
        f"{min(peft_ratios):.3g} (PEFT)",
    ]
    if not all_equal:
        notes.append("the batched path's token ids differ from PEFT's in some cell (see the table)")
    return BenchResult(
        name=NAME,
        title=TITLE,
        device=device,
        rows=rows,
        ratio=headline,
        clock=clock,
        ratio_label="batched mixed batch tokens/s / one-adapter batch tokens/s, geometric mean over the grid",
        goal=f">= {GOAL:g} (on CPU)",
        goal_met=(headline >= GOAL and all_equal) if device == "cpu" else None,
        plot_values=plot,
        plot_label="mixed-batch tokens/s / one-adapter tokens/s",
        extra={
            "peft_ratio": peft,
            "batched_over_peft": headline / peft,
            "worst_cell": min(ratios),
            "ids_equal": all_equal,
        },
        notes=notes,
    )


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main(argv: list[str] | None = None) -> list[BenchResult]:
    """Command-line entry point."""
    return main_for(measure, __doc__.splitlines()[0], default_repeats=3, argv=argv)


if __name__ == "__main__":
    main()
