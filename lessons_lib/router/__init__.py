"""Routers that send each request to the right adapter: keyword rules, a learned PEFT classifier, embeddings."""
from __future__ import annotations

from pathlib import Path

from .base import BASE_ADAPTER, GENERAL, LABELS, RouteDecision, Router, label_to_adapter
from .keywords import DEFAULT_RULES, KeywordRouter

KINDS = ("keyword", "learned", "embedding")
EMBEDDING_ROWS_PER_LABEL = 120


def shipped_router_dir() -> Path:
    """Where the trained tiny-profile router adapter ships (follows $LESSONS_ASSETS)."""
    from .data import ROUTER_ASSETS

    return ROUTER_ASSETS / "adapter"


def router_dir(profile, work_dir: Path | None = None) -> Path:
    """The router adapter folder for a profile: shipped for tiny, `<work_dir>/adapters/router` otherwise."""
    if profile.name == "tiny":
        return shipped_router_dir()
    from ..paths import BUILD_DIR

    return Path(work_dir or BUILD_DIR / "work" / profile.name) / "adapters" / "router"


def load_router(kind: str, profile=None, work_dir: Path | None = None, log=print) -> Router:
    """A ready router: keyword rules, the learned LoRA classifier (shipped/loaded/trained) or embeddings."""
    from ..profiles import choose_profile, get_profile

    if kind not in KINDS:
        raise ValueError(f"Unknown router kind {kind!r}; choose one of {', '.join(KINDS)}.")
    if kind == "keyword":
        return KeywordRouter()
    if profile is None:
        profile = choose_profile(None)[0]
    elif isinstance(profile, str):
        profile = get_profile(profile)
    from .data import training_rows

    if kind == "embedding":
        from ..models import load_base, load_tokenizer
        from .embedding import EmbeddingRouter

        return EmbeddingRouter(load_base(profile), load_tokenizer(profile), training_rows(EMBEDDING_ROWS_PER_LABEL))
    from .learned import LearnedRouter, train_learned_router

    folder = router_dir(profile, work_dir)
    if (folder / "adapter_config.json").is_file():
        return LearnedRouter.load(folder, profile)
    if profile.name == "tiny":
        raise FileNotFoundError(f"The shipped router adapter is missing at {folder}; rebuild it with "
                                "`python -m lessons_lib.router train`.")
    log(f"No router adapter in {folder}: training one for the {profile.name} profile (saved there).")
    router, _ = train_learned_router(profile, training_rows(), log=log)
    router.save(folder)
    return router


def __getattr__(name: str):
    lazy = {"LearnedRouter": ".learned", "EmbeddingRouter": ".embedding", "RoutedModel": ".routed",
            "RoutedAnswer": ".routed", "evaluate_router": ".metrics", "RouterReport": ".metrics"}
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BASE_ADAPTER", "DEFAULT_RULES", "GENERAL", "KINDS", "LABELS", "EmbeddingRouter", "KeywordRouter",
           "LearnedRouter", "RouteDecision", "RoutedAnswer", "RoutedModel", "Router", "RouterReport",
           "evaluate_router", "label_to_adapter", "load_router", "router_dir", "shipped_router_dir"]
