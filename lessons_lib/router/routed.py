"""RoutedModel: route each prompt, then generate every answer in one mixed-adapter batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..i18n import tr
from .base import BASE_ADAPTER, RouteDecision, Router, label_to_adapter


@dataclass(frozen=True)
class RoutedAnswer:
    """One prompt's route and answer."""

    prompt: str
    decision: RouteDecision
    adapter: str
    answer: str


class RoutedModel:
    """A PeftModel holding the course adapters plus a router that picks one of them per prompt."""

    def __init__(self, model, tokenizer, router: Router, max_new_tokens: int | None = None):
        loaded = set(getattr(model, "peft_config", {}))
        missing = [a for a in map(label_to_adapter, router.labels) if a != BASE_ADAPTER and a not in loaded]
        if missing:
            raise ValueError(
                tr(
                    en=f"The router can choose {missing}, but the model has no such adapter loaded "
                    f"(loaded: {sorted(loaded)}). Load them with model.load_adapter(folder, adapter_name=...).",
                    ru=f"Маршрутизатор может выбрать {missing}, но такие адаптеры в модель не загружены "
                    f"(загружены: {sorted(loaded)}). Загрузите их через model.load_adapter(folder, adapter_name=...).",
                )
            )
        self.model, self.tokenizer, self.router, self.max_new_tokens = model, tokenizer, router, max_new_tokens

    def generate_batch(self, prompts: Sequence[str]) -> list[RoutedAnswer]:
        """Route all prompts, then one `generate` call with `adapter_names` (base rows use "__base__")."""
        from ..models import generate

        prompts = list(prompts)
        decisions = self.router.route_batch(prompts)
        adapters = [d.adapter for d in decisions]
        answers = (
            generate(self.model, self.tokenizer, prompts, self.max_new_tokens, adapter_names=adapters)
            if prompts
            else []
        )
        return [RoutedAnswer(p, d, a, ans) for p, d, a, ans in zip(prompts, decisions, adapters, answers)]

    def generate(self, prompt: str) -> RoutedAnswer:
        """Route one prompt and answer it with the chosen adapter (or the base)."""
        return self.generate_batch([prompt])[0]


@dataclass(frozen=True)
class RowCheck:
    """One row of a mixed-adapter batch against runs of the same batch with one adapter on all rows, for each one."""

    adapter: str
    noise: float  # mean |logit difference| to its own adapter's run of the batch (checks.logit_distance)
    nearest_other: float  # the same to the closest *other* adapter's run
    close: bool  # within the profile's tolerance of its own adapter's run

    @property
    def ok(self) -> bool:
        """Close to its own adapter, and nearer to it than to any other: the row really used its adapter."""
        return self.close and self.noise < self.nearest_other


def next_token_logits(model, tokenizer, prompts: Sequence[str], adapter_names: Sequence[str]):
    """Logits of the first answer token of each chat prompt, all rows in one forward with per-row adapters."""
    import torch

    from ..models import chat_text

    texts = [chat_text(tokenizer, p) for p in prompts]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    enc = enc.to(next(model.parameters()).device)
    with torch.no_grad():
        return model(**enc, adapter_names=list(adapter_names)).logits[:, -1].float().cpu()


def check_mixed_batch(
    model, tokenizer, prompts: Sequence[str], adapter_names: Sequence[str], profile
) -> list[RowCheck]:
    """Compare each row of one mixed-adapter forward with the same batch run with one adapter on every row.

    The references share the prompts, the padding and the batch shape, so only the rows' adapters differ: a row must
    match its own adapter's run within the profile's tolerance (bitwise-close in fp32; on a GPU within the rounding of
    LoRA run on sub-batches) and be nearer to it than to every other adapter's: a wrong adapter fails on any profile.
    One-row references would add the padding's and batch shape's rounding, in bf16 as large as a barely trained
    adapter's whole effect (measured on the rehearsal: 0.036 mean logit difference against 0.036 to the base).
    """
    from ..checks import logit_distance, logits_close

    candidates = [*getattr(model, "peft_config", {}), BASE_ADAPTER]
    mixed = next_token_logits(model, tokenizer, prompts, adapter_names)
    alone = {a: next_token_logits(model, tokenizer, prompts, [a] * len(prompts)) for a in candidates}
    rows = []
    for i, adapter in enumerate(adapter_names):
        gap = {a: logit_distance(mixed[i], alone[a][i]) for a in candidates}
        close = logits_close(mixed[i], alone[adapter][i], profile)
        rows.append(RowCheck(adapter, gap.pop(adapter), min(gap.values()), close))
    return rows


def describe_checks(rows: Sequence[RowCheck]) -> str:
    """One line: the largest kernel noise against the smallest distance to a wrong adapter."""
    from ..i18n import tr

    ok, noise, other = sum(r.ok for r in rows), max(r.noise for r in rows), min(r.nearest_other for r in rows)
    return tr(
        en=f"{ok}/{len(rows)} rows match their own adapter: mean logit difference to it at most "
        f"{noise:.2g}, to any other adapter at least {other:.2g}",
        ru=f"{ok}/{len(rows)} строк совпадают со своим адаптером: средняя разница логитов с ним не больше "
        f"{noise:.2g}, с любым другим адаптером не меньше {other:.2g}",
    )


__all__ = [
    "BASE_ADAPTER",
    "RoutedAnswer",
    "RoutedModel",
    "RowCheck",
    "check_mixed_batch",
    "describe_checks",
    "next_token_logits",
]
