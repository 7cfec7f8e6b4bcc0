"""EmbeddingRouter: nearest centroid on mean-pooled hidden states of the base model (no training step)."""

from __future__ import annotations

from collections.abc import Sequence

from ..i18n import tr
from .base import GENERAL, RouteDecision, Router, course_labels
from .encode import encode_batch


def embed(model, tokenizer, texts: Sequence[str], batch_size: int = 32):
    """Mean-pooled last hidden states over the real (non-pad) tokens, L2-normalised; one row per prompt."""
    import torch

    device = next(model.parameters()).device
    rows = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = encode_batch(tokenizer, texts[start : start + batch_size], device)
            hidden = model(**enc, output_hidden_states=True).hidden_states[-1].float()
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1).cpu())
    return torch.cat(rows)


class EmbeddingRouter(Router):
    """Cosine similarity to each label's mean training embedding; the nearest label wins."""

    def __init__(
        self,
        model,
        tokenizer,
        rows: Sequence[dict],
        labels: Sequence[str] | None = None,
        temperature: float = 0.05,
        fallback: str = GENERAL,
        margin: float = 0.0,
    ):
        import torch

        if not rows:
            raise ValueError(
                tr(
                    en="EmbeddingRouter needs labeled rows to build its centroids (router.data.training_rows()).",
                    ru="EmbeddingRouter нужны размеченные строки, чтобы построить центроиды "
                    "(router.data.training_rows()).",
                )
            )
        labels = tuple(labels or course_labels())
        missing = [lbl for lbl in labels if not any(r["label"] == lbl for r in rows)]
        if missing:
            raise ValueError(
                tr(
                    en=f"No training rows for labels {missing}; every label needs examples.",
                    ru=f"Нет обучающих строк для меток {missing}; у каждой метки должны быть примеры.",
                )
            )
        self.model, self.tokenizer, self.labels = model, tokenizer, tuple(labels)
        self.temperature, self.fallback, self.margin = temperature, fallback, margin
        vectors = embed(model, tokenizer, [r["text"] for r in rows])
        gold = [r["label"] for r in rows]
        centroids = [vectors[[i for i, g in enumerate(gold) if g == lbl]].mean(0) for lbl in self.labels]
        self.centroids = torch.nn.functional.normalize(torch.stack(centroids), dim=-1)

    def _route_many(self, texts: list[str]) -> list[RouteDecision]:
        sims = embed(self.model, self.tokenizer, texts) @ self.centroids.T
        probs = (sims / self.temperature).softmax(-1)
        decisions = []
        for sim_row, prob_row in zip(sims.tolist(), probs.tolist()):
            scores = dict(zip(self.labels, prob_row))
            ranked = sorted(range(len(sim_row)), key=sim_row.__getitem__, reverse=True)
            best, second = ranked[0], ranked[1] if len(ranked) > 1 else ranked[0]
            gap = sim_row[best] - sim_row[second]
            label = self.labels[best]
            if gap < self.margin:
                decisions.append(
                    RouteDecision(
                        self.fallback,
                        scores,
                        tr(
                            en=f"too close to call ({label} by {gap:.3f} < {self.margin}) → {self.fallback}",
                            ru=f"слишком близко, не решить ({label} на {gap:.3f} < {self.margin}) → {self.fallback}",
                        ),
                    )
                )
            else:
                decisions.append(
                    RouteDecision(
                        label,
                        scores,
                        tr(
                            en=f"nearest centroid: {label} (cosine {sim_row[best]:.3f})",
                            ru=f"ближайший центроид: {label} (косинус {sim_row[best]:.3f})",
                        ),
                    )
                )
        return decisions
