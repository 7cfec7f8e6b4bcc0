"""Routers that send each request to the right adapter: keyword rules, a learned PEFT classifier, embeddings,
character n-grams with a linear layer."""

from __future__ import annotations

from pathlib import Path

from ..i18n import term, tr
from .base import BASE_ADAPTER, GENERAL, RouteDecision, Router, course_labels, label_to_adapter
from .keywords import KeywordRouter, default_rules

KINDS = ("keyword", "learned", "embedding", "ngram")
MODEL_KINDS = ("learned", "embedding")  # the kinds `load_router` loads the base model for
DEFAULT_KIND = "ngram"  # what serves model="auto" unless told otherwise: the best on learners' own requests (nb 04)
EMBEDDING_ROWS_PER_LABEL = 120


def shipped_router_dir() -> Path:
    """Where the trained tiny-profile router adapter ships (follows $LESSONS_ASSETS)."""
    from .data import ROUTER_ASSETS

    return ROUTER_ASSETS / "adapter"


def router_dir(profile, work_dir: Path | None = None) -> Path:
    """The router adapter folder for a profile: shipped (profile.ships_adapters), else `<work_dir>/adapters/router`."""
    from ..adapters import ROUTER, local_dir, shipped_dir, work_dir_or_default

    if profile.ships_adapters:
        return shipped_dir(ROUTER)
    return local_dir(ROUTER, work_dir_or_default(work_dir, profile))


def load_router(
    kind: str,
    profile=None,
    work_dir: Path | None = None,
    hub_namespace: str | None = None,
    log=print,
    steps: int | None = None,
) -> Router:
    """A ready router: keyword rules, the learned LoRA classifier (found, or trained here), embeddings or n-grams.

    A learned router not found (shipped → work dir → Drive → Hub) is trained into the work dir with `steps` steps
    (default: the profile's quick-training steps); the tiny profile's router ships, so there it never trains.
    """
    from ..profiles import Profile, choose_profile, get_profile

    if kind not in KINDS:
        raise ValueError(
            tr(
                en=f"Unknown router kind {kind!r}; choose one of {', '.join(KINDS)}.",
                ru=f"Неизвестный вид маршрутизатора {kind!r}; выберите один из: {', '.join(KINDS)}.",
            )
        )
    if profile is not None and not isinstance(profile, Profile):  # checked for every kind: a typo is never ignored
        profile = get_profile(profile)
    if kind == "keyword":
        return KeywordRouter()
    if kind == "ngram":  # needs no base model: the shipped file, or tuned here in seconds
        from .ngram import load_or_train

        return load_or_train()
    if profile is None:
        profile = choose_profile(None)[0]
    if kind == "embedding":
        from ..models import load_base, load_tokenizer
        from .data import training_rows
        from .embedding import EmbeddingRouter

        return EmbeddingRouter(load_base(profile), load_tokenizer(profile), training_rows(EMBEDDING_ROWS_PER_LABEL))
    from .learned import LearnedRouter

    return LearnedRouter.load(find_or_train(profile, work_dir, hub_namespace, steps, log), profile)


def find_or_train(
    profile, work_dir: Path | None = None, hub_namespace: str | None = None, steps: int | None = None, log=print
) -> Path:
    """The learned router's folder: found where the course keeps artifacts, or trained into the work dir now."""
    from ..adapters import ROUTER, find_artifact, local_dir, not_found_error, where_searched, work_dir_or_default
    from ..models import free_memory
    from ..storage import settle_leftovers
    from .learned import describe_training, train_and_save

    work_dir = work_dir_or_default(work_dir, profile)
    if profile.ships_adapters:  # find_artifact settles the other places; a killed rebuild may have left this aside
        settle_leftovers(shipped_router_dir())
    found = find_artifact(ROUTER, profile, work_dir, hub_namespace, log=log)
    if found is not None:
        log(f"router: {term(found.source)} ({found.folder})")
        return found.folder
    if profile.ships_adapters:
        raise not_found_error(ROUTER, profile, work_dir, hub_namespace)  # its router ships with the course
    steps = steps or profile.quick_train_steps
    where, estimate = where_searched(ROUTER, profile, work_dir, hub_namespace), describe_training(profile, steps)
    log(
        tr(
            en=f"router: not found ({where}).\nrouter: training it here, {steps} steps ({estimate}).",
            ru=f"router: не найден ({where}).\nrouter: обучаем здесь, {steps} шагов ({estimate}).",
        )
    )
    folder = train_and_save(profile, local_dir(ROUTER, work_dir), steps, log=log)
    free_memory()  # the training copy is gone: give its GPU memory back before the router is loaded for use
    log(tr(en=f"router: saved to {folder}", ru=f"router: сохранён в {folder}"))
    return folder


def __getattr__(name: str):
    if name == "LABELS":  # read from the domain registry on each access, so a newly registered domain is listed
        return course_labels()
    if name == "DEFAULT_RULES":
        return default_rules()
    lazy = {
        "LearnedRouter": ".learned",
        "EmbeddingRouter": ".embedding",
        "NgramRouter": ".ngram",
        "RoutedModel": ".routed",
        "RoutedAnswer": ".routed",
        "evaluate_router": ".metrics",
        "RouterReport": ".metrics",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BASE_ADAPTER",
    "DEFAULT_KIND",
    "DEFAULT_RULES",
    "GENERAL",
    "KINDS",
    "MODEL_KINDS",
    "LABELS",
    "EmbeddingRouter",
    "KeywordRouter",
    "LearnedRouter",
    "NgramRouter",
    "RouteDecision",
    "RoutedAnswer",
    "RoutedModel",
    "Router",
    "RouterReport",
    "course_labels",
    "default_rules",
    "evaluate_router",
    "find_or_train",
    "label_to_adapter",
    "load_router",
    "router_dir",
    "shipped_router_dir",
]
