"""Claim 5: what each router costs per prompt: keyword rules vs a learned classifier vs embeddings vs n-grams.

Uses `lessons_lib.router.load_router("keyword" | "learned" | "embedding" | "ngram", profile)`, whose routers
have `.route(text)`. Variants, interleaved: each router routes the same prompt set (held-out prompts
of the three domains plus general chit-chat). Metric: median latency per prompt. No goal: the table
shows the price of each router (and how often it routes right). If the router
module is not there yet, the benchmark says so and is reported as not run.

`python -m benchmarks.bench_router [--repeats N] [--device cpu|cuda|all] [--plot]`
"""

from __future__ import annotations

import random

from benchmarks.common import (
    BenchResult,
    Variant,
    main_for,
    medians,
    pick_clock,
    skipped_result,
    spread,
    time_alternating,
    tiny_profile,
)

NAME = "router"
TITLE = "Router latency per prompt: keyword vs learned vs embedding vs n-gram"
KINDS = ("keyword", "learned", "embedding", "ngram")
GOAL = "none (informational)"
GENERAL_NAMES = (None, "__base__", "general")


def router_prompts(per_domain: int = 8) -> list[tuple[str, str | None]]:
    """(prompt, expected adapter) pairs: held-out prompts of each domain, plus general ones (expected None)."""
    from lessons_lib.data import DOMAINS, examples, make_general_prompt

    pairs: list[tuple[str, str | None]] = [
        (ex.prompt, d) for d in DOMAINS for ex in examples(d, per_domain, "heldout", seed=7)
    ]
    rng = random.Random(7)
    pairs += [(make_general_prompt(rng, ("en", "ru")[i % 2], "heldout"), None) for i in range(per_domain)]
    return pairs


def route_name(decision) -> str | None:
    """The adapter name in whatever a router's .route() returns (a name, or an object/tuple holding one)."""
    if decision is None or isinstance(decision, str):
        return decision
    for attr in ("adapter", "name", "label", "target"):
        value = getattr(decision, attr, None)
        if isinstance(value, str):
            return value
    if isinstance(decision, dict):
        for key in ("adapter", "name", "label"):
            if isinstance(decision.get(key), str):
                return decision[key]
    if isinstance(decision, (tuple, list)) and decision and isinstance(decision[0], str):
        return decision[0]
    return str(decision)


def is_right(picked: str | None, expected: str | None) -> bool:
    """A domain prompt must go to its adapter; a general prompt to the bare base (or the 'general' label)."""
    return picked in GENERAL_NAMES if expected is None else picked == expected


def load_routers(profile, kinds: tuple[str, ...] = KINDS) -> tuple[dict, dict[str, str]]:
    """The routers that load, and for each that does not, why; raises ImportError without the module."""
    from lessons_lib.router import load_router  # noqa: F401  (ImportError here means: not written yet)

    routers, failures = {}, {}
    for kind in kinds:
        try:
            routers[kind] = load_router(kind, profile)
        except Exception as err:  # noqa: BLE001 - a router that fails to load is reported, the others still run
            failures[kind] = f"{type(err).__name__}: {err}"[:200]
    return routers, failures


def measure(repeats: int = 7, device: str = "cpu", per_domain: int = 8, kinds: tuple[str, ...] = KINDS) -> BenchResult:
    """Route the same prompts with each router, interleaved; report median latency per prompt."""
    profile = tiny_profile()
    if device != "cpu":
        return skipped_result(
            NAME, TITLE, "routers run where load_router puts them; measured on CPU only", GOAL, device
        )
    try:
        routers, failures = load_routers(profile, kinds)
    except ImportError as err:
        return skipped_result(
            NAME,
            TITLE,
            f"lessons_lib.router is not available ({err}); this benchmark needs load_router(kind, profile)",
            GOAL,
            device,
        )
    if not routers:
        return skipped_result(NAME, TITLE, f"no router could be loaded: {failures}", GOAL, device)
    pairs = router_prompts(per_domain)
    texts = [text for text, _ in pairs]
    picks: dict[str, list] = {}

    def route_all(kind: str):
        picks[kind] = [routers[kind].route(text) for text in texts]

    clock = pick_clock(device)
    samples = time_alternating(
        [Variant(kind, lambda k=kind: route_all(k)) for kind in routers], repeats, warmup=1, device=device, clock=clock
    )
    per_prompt = {kind: t / len(texts) for kind, t in medians(samples).items()}
    hits = {
        kind: sum(is_right(route_name(pick), expected) for pick, (_, expected) in zip(picks[kind], pairs)) / len(pairs)
        for kind in routers
    }
    fastest = min(per_prompt.values())
    rows = [
        {
            "router": kind,
            "median ms/prompt": per_prompt[kind] * 1e3,
            "spread": spread(samples[kind]),
            "x fastest": per_prompt[kind] / fastest,
            "routed right": hits[kind],
        }
        for kind in routers
    ]
    rows += [
        {
            "router": kind,
            "median ms/prompt": float("nan"),
            "spread": float("nan"),
            "x fastest": float("nan"),
            "routed right": f"not loaded: {why.split(':')[0]} (see note)",
        }
        for kind, why in failures.items()
    ]
    slow = "embedding" if "embedding" in per_prompt else max(per_prompt, key=per_prompt.get)
    ratio_base = "keyword" if "keyword" in per_prompt else min(per_prompt, key=per_prompt.get)
    return BenchResult(
        name=NAME,
        title=TITLE,
        device=device,
        rows=rows,
        ratio=per_prompt[slow] / per_prompt[ratio_base],
        ratio_label=f"{slow} / {ratio_base}, median latency per prompt",
        goal=GOAL,
        goal_met=None,
        clock=clock,
        plot_values={kind: per_prompt[kind] * 1e3 for kind in routers},
        plot_label="median ms per prompt (lower is better)",
        extra={f"{kind}_ms": per_prompt[kind] * 1e3 for kind in routers},
        notes=[
            f"{len(texts)} prompts ({per_domain} per domain + {per_domain} general); 'routed right' counts "
            "domain prompts sent to their adapter and general ones to the base",
            *(f"{kind} router not loaded: {why}" for kind, why in failures.items()),
        ],
    )


def main(argv: list[str] | None = None) -> list[BenchResult]:
    """Command-line entry point."""
    return main_for(measure, __doc__.splitlines()[0], default_repeats=7, argv=argv)


if __name__ == "__main__":
    main()
