"""NgramRouter: hashed character n-grams of the prompt + one linear layer (multinomial logistic regression).

A strong, cheap baseline: no base model, trains on CPU in about a second, deterministic (full-batch, zero init),
EN and RU alike. Below a confidence threshold (chosen on a dev split) it answers "general" → the base model.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..i18n import tr
from ..storage import settle_leftovers
from .base import GENERAL, RouteDecision, Router, course_labels, router_folder

WEIGHTS_FILE = "ngram_router.safetensors"
CONFIG_FILE = "ngram_router.json"
FILES = (CONFIG_FILE, WEIGHTS_FILE)


@dataclass(frozen=True)
class NgramConfig:
    """Feature and training settings: n-gram sizes, hash buckets, L2 penalty, steps, learning rate."""

    min_n: int = 1
    max_n: int = 4
    buckets: int = 2**14
    l2: float = 1e-4
    steps: int = 60
    learning_rate: float = 0.5

    def __post_init__(self):
        if not 1 <= self.min_n <= self.max_n:
            raise ValueError(
                tr(
                    en=f"Need 1 <= min_n <= max_n, got min_n={self.min_n}, max_n={self.max_n}.",
                    ru=f"Нужно 1 <= min_n <= max_n, получено min_n={self.min_n}, max_n={self.max_n}.",
                )
            )
        if self.buckets < 16:
            raise ValueError(
                tr(
                    en=f"buckets must be at least 16, got {self.buckets}.",
                    ru=f"buckets должно быть не меньше 16, получено {self.buckets}.",
                )
            )
        if self.l2 < 0 or self.steps < 1 or self.learning_rate <= 0:
            raise ValueError(
                tr(
                    en="Need l2 >= 0, steps >= 1 and learning_rate > 0.",
                    ru="Нужно l2 >= 0, steps >= 1 и learning_rate > 0.",
                )
            )


def char_ngrams(text: str, min_n: int = 1, max_n: int = 4) -> list[str]:
    """Character n-grams of each lowercased word padded with spaces: "Hi!" → " h", "hi", "i!", ... (n in min..max)."""
    grams = []
    for word in re.findall(r"\S+", text.lower()):
        padded = f" {word} "
        for n in range(min_n, max_n + 1):
            grams += [padded[i : i + n] for i in range(len(padded) - n + 1) if padded[i : i + n] != " "]
    return grams


def featurize(texts: Sequence[str], config: NgramConfig):
    """(indices, offsets, weights) for torch.nn.functional.embedding_bag: log(1+count) per hashed n-gram, L2-normed."""
    import torch

    indices, offsets, weights = [], [], []
    for text in texts:
        counts: dict[int, int] = {}
        for gram in char_ngrams(text, config.min_n, config.max_n):
            bucket = zlib.crc32(gram.encode("utf-8")) % config.buckets  # stable across runs, unlike hash()
            counts[bucket] = counts.get(bucket, 0) + 1
        values = torch.tensor([float(c) for c in counts.values()]).log1p()
        offsets.append(len(indices))
        indices += list(counts)
        weights += (values / values.norm().clamp(min=1e-12)).tolist()
    return torch.tensor(indices, dtype=torch.long), torch.tensor(offsets, dtype=torch.long), torch.tensor(weights)


def logits(weight, bias, texts: Sequence[str], config: NgramConfig):
    """The linear layer on the sparse features: one row of label scores per text."""
    import torch

    indices, offsets, values = featurize(texts, config)
    return torch.nn.functional.embedding_bag(indices, weight, offsets, mode="sum", per_sample_weights=values) + bias


def fit(rows: Sequence[dict], labels: Sequence[str], config: NgramConfig):
    """(weight, bias, final loss): full-batch Adam on cross-entropy + L2, from zeros, so the same rows give the same
    weights."""
    import torch

    missing = [lbl for lbl in labels if not any(r["label"] == lbl for r in rows)]
    if missing:
        raise ValueError(
            tr(
                en=f"No training rows for labels {missing}; every label needs examples.",
                ru=f"Нет обучающих строк для меток {missing}; каждой метке нужны примеры.",
            )
        )
    unknown = sorted({r["label"] for r in rows} - set(labels))
    if unknown:
        known = ", ".join(labels)
        raise ValueError(
            tr(
                en=f"Training rows have labels {unknown} outside {known}.",
                ru=f"В обучающих строках есть метки {unknown}, которых нет среди {known}.",
            )
        )
    index = {lbl: i for i, lbl in enumerate(labels)}
    target = torch.tensor([index[r["label"]] for r in rows])
    features = featurize([r["text"] for r in rows], config)
    weight = torch.zeros(config.buckets, len(labels), requires_grad=True)
    bias = torch.zeros(len(labels), requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=config.learning_rate)
    for _ in range(config.steps):
        optimizer.zero_grad()
        scores = torch.nn.functional.embedding_bag(
            features[0], weight, features[1], mode="sum", per_sample_weights=features[2]
        )
        loss = torch.nn.functional.cross_entropy(scores + bias, target) + config.l2 * weight.pow(2).sum()
        loss.backward()
        optimizer.step()
    return weight.detach(), bias.detach(), float(loss.detach())


class NgramRouter(Router):
    """Softmax over label scores from hashed character n-grams; below `threshold` confidence → `fallback`."""

    def __init__(
        self, weight, bias, labels: Sequence[str], config: NgramConfig, threshold: float = 0.0, fallback: str = GENERAL
    ):
        labels = tuple(labels)
        if tuple(weight.shape) != (config.buckets, len(labels)) or tuple(bias.shape) != (len(labels),):
            shapes = f"{tuple(weight.shape)} / {tuple(bias.shape)}"
            raise ValueError(
                tr(
                    en=f"Weights of shape {shapes} do not match {config.buckets} buckets "
                    f"and labels {labels}; train with NgramRouter.train or load a matching file.",
                    ru=f"Веса формы {shapes} не подходят к {config.buckets} корзинам (buckets) и меткам {labels}; "
                    "обучите маршрутизатор через NgramRouter.train или загрузите подходящий файл.",
                )
            )
        if not 0.0 <= threshold < 1.0:
            raise ValueError(
                tr(
                    en=f"threshold is a probability in [0, 1), got {threshold}.",
                    ru=f"threshold — вероятность в интервале [0, 1), получено {threshold}.",
                )
            )
        if fallback not in labels:
            raise ValueError(
                tr(
                    en=f"fallback {fallback!r} is not one of the labels {labels}.",
                    ru=f"fallback {fallback!r} не входит в метки {labels}.",
                )
            )
        self.weight, self.bias, self.labels, self.config = weight, bias, labels, config
        self.threshold, self.fallback = threshold, fallback

    @classmethod
    def train(
        cls,
        rows: Sequence[dict],
        config: NgramConfig | None = None,
        labels: Sequence[str] | None = None,
        threshold: float = 0.0,
    ) -> NgramRouter:
        """Fit the linear layer on `{"text", "label"}` rows (deterministic: same rows and config → same weights)."""
        if not rows:
            raise ValueError(
                tr(
                    en="NgramRouter.train needs labeled rows, e.g. router.data.training_rows().",
                    ru="NgramRouter.train нужны размеченные строки, например из router.data.training_rows().",
                )
            )
        config = config or NgramConfig()
        labels = tuple(labels or course_labels())
        weight, bias, _ = fit(rows, labels, config)
        return cls(weight, bias, labels, config, threshold)

    def probabilities(self, texts: Sequence[str]):
        """Softmax label probabilities, one row per text (no threshold applied)."""
        import torch

        with torch.no_grad():
            return logits(self.weight, self.bias, texts, self.config).softmax(-1)

    def _route_many(self, texts: list[str]) -> list[RouteDecision]:
        decisions = []
        for row in self.probabilities(texts).tolist():
            scores = dict(zip(self.labels, row))
            best = max(range(len(row)), key=row.__getitem__)
            label, p = self.labels[best], row[best]
            if p < self.threshold and label != self.fallback:
                reason = tr(
                    en=f"unsure ({label} at p={p:.2f} < {self.threshold:.2f}) → {self.fallback}",
                    ru=f"не уверен ({label} с p={p:.2f} < {self.threshold:.2f}) → {self.fallback}",
                )
                decisions.append(RouteDecision(self.fallback, scores, reason))
            else:
                reason = tr(
                    en=f"character n-grams: {label} (p={p:.2f})", ru=f"символьные n-граммы: {label} (p={p:.2f})"
                )
                decisions.append(RouteDecision(label, scores, reason))
        return decisions

    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        """Write the weights (safetensors) and labels/config/threshold (JSON) as `folder`, replacing it whole.

        A save killed at any moment leaves the old router or the new one (`load` settles what it left aside).
        """
        from safetensors.torch import save_file

        meta = {
            "labels": list(self.labels),
            "config": asdict(self.config),
            "threshold": self.threshold,
            "fallback": self.fallback,
            **(extra or {}),
        }
        with router_folder(folder, FILES) as staging:
            tensors = {"weight": self.weight.contiguous(), "bias": self.bias.contiguous()}
            save_file(tensors, str(staging / WEIGHTS_FILE))
            (staging / CONFIG_FILE).write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> NgramRouter:
        """Read a router written by `save` (first settling what a killed save left beside `folder`)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        settle_leftovers(folder)
        for name in FILES:
            if not (folder / name).is_file():
                raise FileNotFoundError(
                    tr(
                        en=f"{folder / name} not found: an n-gram router folder holds {CONFIG_FILE} and "
                        f"{WEIGHTS_FILE} (write one with NgramRouter.save or "
                        "`python -m lessons_lib.router train-ngram`).",
                        ru=f"{folder / name} не найден: в папке n-граммного маршрутизатора лежат {CONFIG_FILE} и "
                        f"{WEIGHTS_FILE} (создайте её через NgramRouter.save или "
                        "`python -m lessons_lib.router train-ngram`).",
                    )
                )
        try:
            meta = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
            config = NgramConfig(**meta["config"])
            labels, threshold, fallback = meta["labels"], meta["threshold"], meta.get("fallback", GENERAL)
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(
                tr(
                    en=f"{folder / CONFIG_FILE} is not an n-gram router config ({err}).",
                    ru=f"{folder / CONFIG_FILE} — не конфигурация n-граммного маршрутизатора ({err}).",
                )
            ) from err
        tensors = load_file(str(folder / WEIGHTS_FILE))
        return cls(tensors["weight"], tensors["bias"], labels, config, threshold, fallback)


GRID = ((3, 1e-4), (4, 1e-5), (4, 1e-4), (5, 1e-4))  # (max_n, l2) pairs tried on the dev split


@dataclass(frozen=True)
class Tuned:
    """The router chosen on dev, its settings and the dev accuracy of every setting tried."""

    router: NgramRouter
    dev_accuracy: float  # with the chosen threshold
    tried: list[dict]


def tune(train: Sequence[dict], dev: Sequence[dict], grid: Sequence[tuple[int, float]] = GRID, labels=None) -> Tuned:
    """Fit one router per (max_n, l2) on `train`; keep the best on `dev`, then pick its confidence threshold on `dev`.

    Ties go to the earlier (simpler) grid entry and to the lower threshold. The test set is never seen here.
    """
    from .metrics import choose_threshold, evaluate_router

    if not train or not dev:
        raise ValueError(
            tr(
                en="tune needs non-empty train and dev rows (router.data.split_rows makes both).",
                ru="tune нужны непустые строки train и dev (router.data.split_rows делает обе части).",
            )
        )
    tried, best = [], None
    for max_n, l2 in grid:
        router = NgramRouter.train(train, NgramConfig(max_n=max_n, l2=l2), labels)
        accuracy = evaluate_router(router, dev).accuracy
        tried.append({"max_n": max_n, "l2": l2, "dev_accuracy": accuracy})
        if best is None or accuracy > best[0]:
            best = (accuracy, router)
    router = best[1]
    probabilities = router.probabilities([r["text"] for r in dev]).tolist()
    router.threshold, dev_accuracy = choose_threshold(
        probabilities, [r["label"] for r in dev], router.labels, router.fallback
    )
    return Tuned(router, dev_accuracy, tried)


def shipped_ngram_dir() -> Path:
    """Where the course's n-gram router ships (built by `python -m lessons_lib.router train-ngram`)."""
    from .data import ROUTER_ASSETS

    return ROUTER_ASSETS / "ngram"


def load_or_train() -> NgramRouter:
    """The shipped n-gram router, or (when its folder is missing) one tuned here in a few seconds."""
    folder = shipped_ngram_dir()
    settle_leftovers(folder)
    if (folder / CONFIG_FILE).is_file():
        return NgramRouter.load(folder)
    from .data import course_splits

    return tune(*course_splits()).router
