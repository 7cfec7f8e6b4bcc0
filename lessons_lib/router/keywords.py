"""KeywordRouter: the original course's substring rules, in English and Russian, with "general" as fallback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .. import domains
from ..i18n import tr
from .base import GENERAL, RouteDecision, Router


def default_rules() -> dict[str, tuple[str, ...]]:
    """{label: keywords} of every registered domain (lessons_lib.domains holds each domain's keywords)."""
    return domains.keywords()


def __getattr__(name: str):
    if name == "DEFAULT_RULES":  # the registry's rules now, so a newly registered domain is included
        return default_rules()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class KeywordRouter(Router):
    """Counts keyword hits per label; the label with most hits wins, no hit → `fallback` (the base model).

    Without `rules`, the labels and keywords are those of the registered domains (lessons_lib.domains)."""

    def __init__(self, rules: Mapping[str, Sequence[str]] | None = None, fallback: str = GENERAL):
        rules = default_rules() if rules is None else rules
        if not rules:
            raise ValueError(
                tr(
                    en="KeywordRouter needs at least one rule, e.g. {'json': ['json', 'schema']}.",
                    ru="KeywordRouter нужно хотя бы одно правило, например {'json': ['json', 'schema']}.",
                )
            )
        clean: dict[str, tuple[str, ...]] = {}
        for label, words in rules.items():
            if isinstance(words, str):
                raise ValueError(
                    tr(
                        en=f"Rules for {label!r} must be a list of keywords, not the string {words!r}.",
                        ru=f"Правила для {label!r} — список ключевых слов, а не строка {words!r}.",
                    )
                )
            kept = tuple(w.lower().strip() for w in words if w and w.strip())
            if not kept:
                raise ValueError(
                    tr(
                        en=f"Label {label!r} has no keywords; give at least one or drop the label.",
                        ru=f"У метки {label!r} нет ключевых слов; задайте хотя бы одно или уберите метку.",
                    )
                )
            clean[label] = kept
        if not isinstance(fallback, str) or not fallback:
            raise ValueError(
                tr(
                    en="fallback must be a label name, e.g. 'general'.",
                    ru="fallback — имя метки, например 'general'.",
                )
            )
        self.rules = clean
        self.fallback = fallback
        self.labels = tuple(dict.fromkeys([*clean, fallback]))

    def _route_checked(self, text: str) -> RouteDecision:
        lowered = text.lower()
        hits = {label: [w for w in words if w in lowered] for label, words in self.rules.items()}
        counts = {label: float(len(found)) for label, found in hits.items()}
        scores = {label: counts.get(label, 0.0) for label in self.labels}
        best = max(counts.values())
        if best == 0:
            return RouteDecision(
                self.fallback,
                scores,
                tr(
                    en=f"no keyword matched → fallback {self.fallback!r}",
                    ru=f"ни одно ключевое слово не найдено → запасной вариант {self.fallback!r}",
                ),
            )
        # Ties go to the label listed first in the rules: that order is part of the configuration.
        label = next(lbl for lbl in self.rules if counts[lbl] == best)
        fired = ", ".join(repr(w) for w in hits[label])
        others = {lbl: found for lbl, found in hits.items() if found and lbl != label}
        reason = tr(en=f"matched {fired} for {label!r}", ru=f"найдено {fired} для {label!r}")
        if others:
            also = "; ".join(f"{lbl}: {', '.join(map(repr, f))}" for lbl, f in others.items())
            reason += tr(en="; also matched ", ru="; также найдено ") + also
        return RouteDecision(label, scores, reason)
