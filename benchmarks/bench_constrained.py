"""Claim 7: what schema-constrained decoding costs (tool_choice="required") against free decoding.

The shipped tiny tool adapter writes calls for the same held-out requests, interleaved: free (`generate`)
and constrained to the tools' schemas (`constrained_generate`, a Python `prefix_allowed_tokens_fn` run at every
step; `bench_constraint_vocab` measures it alone on a 32k-token vocabulary) — cold (the per-tokenizer token
tables and structure cache cleared first, as on a first call), warm (kept from the previous round) and warm with
quoting (`quotes=`: free text must be phrases of the request, as `quote=True` asks). Metric: median time per
request, cold constrained / free; the table also shows generated tokens, time per token and how many calls validate.
No goal: the table shows the price of a guaranteed-valid call.

`python -m benchmarks.bench_constrained [--repeats N] [--device cpu|cuda|all] [--plot]`
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

NAME = "constrained"
TITLE = "Tool calls: schema-constrained vs free decoding (tiny tool adapter)"
GOAL = "none (informational)"
MAX_NEW_TOKENS = 128


def measure(repeats: int = 5, device: str = "cpu", n: int = 12) -> BenchResult:
    """Generate calls for `n` held-out requests, free and constrained, interleaved; median time per request."""
    from peft import PeftModel

    from lessons_lib.models import chat_text, load_tokenizer
    from lessons_lib.paths import TINY_ADAPTERS_DIR
    from lessons_lib.tools.calls import CallError, parse_and_validate
    from lessons_lib.tools.constrained import constrained_generate, vocabulary_constraint
    from lessons_lib.tools.data import tool_examples
    from lessons_lib.tools.loop import complete
    from lessons_lib.tools.schemas import schemas_by_name, tool_schemas

    tok = load_tokenizer(tiny_profile())
    model = PeftModel.from_pretrained(load_bench_base(device), TINY_ADAPTERS_DIR / "tools", adapter_name="tools")
    model.to(device).eval()
    schemas = tool_schemas()
    requests = [ex.request for ex in tool_examples(n, "heldout", seed=13)]
    prompts = [chat_text(tok, [{"role": "user", "content": request}], tools=schemas) for request in requests]
    names = ["tools"] * n
    replies: dict[str, list[str]] = {}

    def run(kind: str) -> None:
        quotes = requests if kind == "quoting warm" else None
        replies[kind] = (
            complete(model, tok, prompts, MAX_NEW_TOKENS, names)
            if kind == "free"
            else constrained_generate(model, tok, prompts, schemas, quotes, MAX_NEW_TOKENS, adapter_names=names)
        )

    clock = pick_clock(device)
    variants = [
        Variant("free", lambda: run("free")),
        Variant("constrained cold", lambda: run("constrained cold"), before=vocabulary_constraint.cache_clear),
        Variant("constrained warm", lambda: run("constrained warm")),
        Variant("quoting warm", lambda: run("quoting warm")),
    ]
    samples = time_alternating(variants, repeats, warmup=1, device=device, clock=clock)
    per_request = {kind: t / n for kind, t in medians(samples).items()}
    by_name = schemas_by_name(schemas)

    def valid(reply: str) -> bool:
        try:
            parse_and_validate(reply, by_name)
        except CallError:
            return False
        return True

    tokens = {
        kind: sum(len(tok(r, add_special_tokens=False).input_ids) + 1 for r in out) for kind, out in replies.items()
    }  # + 1: the end token
    rows = [
        {
            "decoding": kind,
            "median ms/request": per_request[kind] * 1e3,
            "spread": spread(samples[kind]),
            "tokens": tokens[kind],
            "ms/token": per_request[kind] * n * 1e3 / tokens[kind],
            "valid calls": sum(map(valid, replies[kind])) / n,
        }
        for kind in per_request
    ]
    return BenchResult(
        name=NAME,
        title=TITLE,
        device=device,
        rows=rows,
        ratio=per_request["constrained cold"] / per_request["free"],
        ratio_label="constrained (cold) / free, median time per request",
        goal=GOAL,
        goal_met=None,
        clock=clock,
        plot_values={kind: per_request[kind] * 1e3 for kind in per_request},
        plot_label="median ms per request (lower is better)",
        extra={
            "warm_x": per_request["constrained warm"] / per_request["free"],
            "quoting_warm_x": per_request["quoting warm"] / per_request["free"],
            "per_token_cold_x": rows[1]["ms/token"] / rows[0]["ms/token"],
            "valid_free": rows[0]["valid calls"],
            "valid_constrained": rows[1]["valid calls"],
        },
        notes=[
            f"{n} held-out requests in one batch, greedy, up to {MAX_NEW_TOKENS} new tokens; the "
            "constraint checks candidate tokens in Python at every step; cold clears its per-tokenizer "
            "token tables and structure cache before each run, warm keeps them"
        ],
    )


def main(argv: list[str] | None = None) -> list[BenchResult]:
    """Command-line entry point."""
    return main_for(measure, __doc__.splitlines()[0], default_repeats=5, argv=argv)


if __name__ == "__main__":
    main()
