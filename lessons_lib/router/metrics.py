"""Accuracy, per-class precision/recall and the confusion matrix of a router on labeled prompts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..i18n import tr
from .base import Router


@dataclass(frozen=True)
class RouterReport:
    """How a router did on a labeled set: predictions, metrics and routing time."""

    name: str
    labels: tuple[str, ...]
    gold: list[str]
    predicted: list[str]
    seconds: float

    @property
    def accuracy(self) -> float:
        """Share of prompts routed to their gold label."""
        return sum(g == p for g, p in zip(self.gold, self.predicted)) / max(1, len(self.gold))

    @property
    def ms_per_prompt(self) -> float:
        """Average routing time per prompt, in milliseconds."""
        return 1000 * self.seconds / max(1, len(self.gold))

    def confusion(self) -> list[list[int]]:
        """Rows = gold label, columns = predicted label, in `labels` order."""
        index = {label: i for i, label in enumerate(self.labels)}
        matrix = [[0] * len(self.labels) for _ in self.labels]
        for g, p in zip(self.gold, self.predicted):
            matrix[index[g]][index[p]] += 1
        return matrix

    def per_class(self) -> dict[str, dict[str, float]]:
        """precision, recall, f1 and support for each label."""
        out = {}
        for label in self.labels:
            tp = sum(g == p == label for g, p in zip(self.gold, self.predicted))
            n_pred = sum(p == label for p in self.predicted)
            n_gold = sum(g == label for g in self.gold)
            precision = tp / n_pred if n_pred else 0.0
            recall = tp / n_gold if n_gold else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            out[label] = {"precision": precision, "recall": recall, "f1": f1, "support": n_gold}
        return out

    def table(self) -> str:
        """The per-class table as aligned text."""
        head = tr(en="label precision recall f1 support", ru="метка precision recall f1 примеров").split()
        lines = [f"{head[0]:10s} {head[1]:>9s} {head[2]:>7s} {head[3]:>6s} {head[4]:>8s}"]  # RU words fit too
        for label, m in self.per_class().items():
            lines.append(f"{label:10s} {m['precision']:9.2f} {m['recall']:7.2f} {m['f1']:6.2f} {m['support']:8d}")
        return "\n".join(lines)

    def mistakes(self, texts: Sequence[str]) -> list[tuple[str, str, str]]:
        """(text, gold, predicted) for every misrouted prompt."""
        return [(t, g, p) for t, g, p in zip(texts, self.gold, self.predicted) if g != p]


def evaluate_router(router: Router, rows: Sequence[dict], name: str | None = None) -> RouterReport:
    """Route every `{"text", "label"}` row in one batch and compare with the gold labels."""
    if not rows:
        raise ValueError(
            tr(
                en="No rows to evaluate: give at least one {'text': ..., 'label': ...} row.",
                ru="Нет строк для оценки: дайте хотя бы одну строку {'text': ..., 'label': ...}.",
            )
        )
    gold = [r["label"] for r in rows]
    unknown = sorted(set(gold) - set(router.labels))
    if unknown:
        labels = ", ".join(router.labels)
        raise ValueError(
            tr(
                en=f"Gold labels {unknown} are not labels this router can output ({labels}).",
                ru=f"Эталонные метки {unknown} — не те метки, которые может выдать этот маршрутизатор ({labels}).",
            )
        )
    start = time.perf_counter()
    decisions = router.route_batch([r["text"] for r in rows])
    seconds = time.perf_counter() - start
    labels = tuple(router.labels)
    return RouterReport(name or type(router).__name__, labels, gold, [d.label for d in decisions], seconds)


def side_by_side(reports: Sequence[RouterReport]) -> str:
    """One line per router: accuracy and routing time per prompt."""
    head = tr(en="router|accuracy|ms/prompt", ru="маршрутизатор|точность|мс/промпт").split("|")
    w = [max(12, len(head[0])), max(8, len(head[1])), max(10, len(head[2]))]
    lines = [f"{head[0]:{w[0]}s} {head[1]:>{w[1]}s} {head[2]:>{w[2]}s}"]
    for r in reports:
        lines.append(f"{r.name:{w[0]}s} {r.accuracy:{w[1]}.3f} {r.ms_per_prompt:{w[2]}.2f}")
    return "\n".join(lines)


def threshold_accuracy(
    probabilities: Sequence[Sequence[float]],
    gold: Sequence[str],
    labels: Sequence[str],
    threshold: float,
    fallback: str,
) -> float:
    """Accuracy when every top label below `threshold` probability is replaced by `fallback`."""
    if len(probabilities) != len(gold) or not gold:
        raise ValueError(
            tr(
                en=f"Need one probability row per gold label, got {len(probabilities)} rows, {len(gold)} labels.",
                ru=f"Нужна одна строка вероятностей на эталонную метку, получено строк: {len(probabilities)}, "
                f"меток: {len(gold)}.",
            )
        )
    right = 0
    for row, g in zip(probabilities, gold):
        best = max(range(len(row)), key=row.__getitem__)
        right += (labels[best] if row[best] >= threshold else fallback) == g
    return right / len(gold)


def choose_threshold(
    probabilities: Sequence[Sequence[float]],
    gold: Sequence[str],
    labels: Sequence[str],
    fallback: str,
    candidates: Sequence[float] = (0.0, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8),
) -> tuple[float, float]:
    """(threshold, accuracy): the confidence threshold with the best accuracy on a dev set (ties → the lowest)."""
    scored = [(threshold_accuracy(probabilities, gold, labels, t, fallback), -t) for t in sorted(candidates)]
    accuracy, neg_t = max(scored)
    return -neg_t, accuracy
