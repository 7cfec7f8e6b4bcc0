"""Claim 1: switching adapters in memory (`set_adapter`) is far cheaper than anything that reads files.

Variants, interleaved: `set_adapter` between loaded adapters; `peft.utils.hotswap.hotswap_adapter`
(new weights read from disk into the existing adapter); `load_adapter` from disk + `set_adapter`;
reloading the base model + adapter. Goal: set_adapter >= 20x faster than load_adapter from disk.

`python -m benchmarks.bench_switching [--repeats N] [--device cpu|cuda|all] [--plot]`
"""

from __future__ import annotations

import gc

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

NAME = "switching"
TITLE = "Switching adapters: set_adapter vs hotswap vs load from disk vs reload"
GOAL_SPEEDUP = 20.0
PAIR = ("coding", "json")
PROBE = "Return JSON with the name Anna Smith and the city Paris."


def measure(repeats: int = 15, device: str = "cpu") -> BenchResult:
    """Time each way of making a different adapter answer; check each leaves the right weights active."""
    from peft import PeftModel
    from peft.utils.hotswap import hotswap_adapter

    from lessons_lib.adapters import COURSE_ADAPTERS, adapter_dir, load_with_adapters
    from lessons_lib.models import chat_text, load_tokenizer

    profile = tiny_profile()
    tok = load_tokenizer(profile)
    folders = {name: str(adapter_dir(name, profile)) for name in COURSE_ADAPTERS}
    model = load_with_adapters(load_bench_base(device), profile)  # json, coding, support; json active
    slot = PeftModel.from_pretrained(load_bench_base(device), folders["json"], adapter_name="slot")
    slot.eval()
    probe = tok([chat_text(tok, PROBE)], return_tensors="pt", add_special_tokens=False).to(device)
    state = {"i": 0, "reloaded": None}

    def target() -> str:
        state["i"] += 1
        return PAIR[state["i"] % 2]

    def by_set_adapter():
        model.set_adapter(target(), inference_mode=True)

    def by_hotswap():
        hotswap_adapter(slot, folders[target()], adapter_name="slot", torch_device=device)

    def by_load_adapter():
        model.load_adapter(folders[target()], adapter_name="scratch", torch_device=device)
        model.set_adapter("scratch", inference_mode=True)

    def drop_scratch():
        model.set_adapter("json", inference_mode=True)
        model.delete_adapter("scratch")

    def by_reload():
        state["reloaded"] = PeftModel.from_pretrained(load_bench_base(device), folders[target()])

    def drop_reloaded():
        state["reloaded"] = None
        gc.collect()

    variants = [
        Variant("set_adapter", by_set_adapter),
        Variant("hotswap_adapter", by_hotswap),
        Variant("load_adapter from disk", by_load_adapter, after=drop_scratch),
        Variant("reload base + adapter", by_reload, after=drop_reloaded),
    ]
    clock = pick_clock(device)
    samples = time_alternating(variants, repeats, warmup=1, device=device, clock=clock)
    med = medians(samples)
    errors = _check_each_way(model, slot, folders, probe, device)
    fast = med["set_adapter"]
    rows = [
        {
            "variant": name,
            "median ms": med[name] * 1e3,
            "spread": spread(samples[name]),
            "runs": len(samples[name]),
            "x set_adapter": med[name] / fast,
            "max abs dlogit vs coding": errors[name],
        }
        for name in med
    ]
    ratio = med["load_adapter from disk"] / fast
    tolerance = 1e-4 if device == "cpu" else 1e-2  # fp32 noise across BLAS builds is ~1e-5
    correct = all(err <= tolerance for err in errors.values())
    notes = [] if correct else [f"a switch left the wrong weights active (tolerance {tolerance}): {errors}"]
    return BenchResult(
        name=NAME,
        title=TITLE,
        device=device,
        rows=rows,
        ratio=ratio,
        clock=clock,
        ratio_label="load_adapter from disk / set_adapter, median time per switch",
        goal=f">= {GOAL_SPEEDUP:g}",
        goal_met=ratio >= GOAL_SPEEDUP and correct,
        plot_values={name: med[name] * 1e3 for name in med},
        plot_label="median ms per switch (lower is better)",
        extra={
            "set_adapter_ms": fast * 1e3,
            "hotswap_x": med["hotswap_adapter"] / fast,
            "reload_x": med["reload base + adapter"] / fast,
            "correct": correct,
        },
        notes=notes,
    )


def _check_each_way(model, slot, folders: dict, probe, device: str) -> dict[str, float]:
    """Switch to `coding` each way and return the max logit difference from the reference coding logits."""
    import torch
    from peft import PeftModel
    from peft.utils.hotswap import hotswap_adapter

    def logits(m):
        with torch.no_grad():
            return m(**probe).logits.float()

    model.set_adapter("coding", inference_mode=True)
    reference = logits(model)
    model.set_adapter("json", inference_mode=True)
    model.set_adapter("coding", inference_mode=True)
    errors = {}
    errors["set_adapter"] = (logits(model) - reference).abs().max().item()
    hotswap_adapter(slot, folders["coding"], adapter_name="slot", torch_device=device)
    errors["hotswap_adapter"] = (logits(slot) - reference).abs().max().item()
    model.load_adapter(folders["coding"], adapter_name="scratch", torch_device=device)
    model.set_adapter("scratch", inference_mode=True)
    errors["load_adapter from disk"] = (logits(model) - reference).abs().max().item()
    model.set_adapter("json", inference_mode=True)
    model.delete_adapter("scratch")
    reloaded = PeftModel.from_pretrained(load_bench_base(device), folders["coding"])
    errors["reload base + adapter"] = (logits(reloaded) - reference).abs().max().item()
    return errors


def main(argv: list[str] | None = None) -> list[BenchResult]:
    """Command-line entry point."""
    return main_for(measure, __doc__.splitlines()[0], default_repeats=15, argv=argv)


if __name__ == "__main__":
    main()
