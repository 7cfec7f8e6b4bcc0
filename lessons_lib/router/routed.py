"""RoutedModel: route each prompt, then generate every answer in one mixed-adapter batch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

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

    def __init__(self, model, tokenizer, router: Router, max_new_tokens: int = 112):
        loaded = set(getattr(model, "peft_config", {}))
        missing = [a for a in map(label_to_adapter, router.labels) if a != BASE_ADAPTER and a not in loaded]
        if missing:
            raise ValueError(f"The router can choose {missing}, but the model has no such adapter loaded "
                             f"(loaded: {sorted(loaded)}). Load them with model.load_adapter(folder, adapter_name=...).")
        self.model, self.tokenizer, self.router, self.max_new_tokens = model, tokenizer, router, max_new_tokens

    def generate_batch(self, prompts: Sequence[str]) -> list[RoutedAnswer]:
        """Route all prompts, then one `generate` call with `adapter_names` (base rows use "__base__")."""
        from ..models import generate

        prompts = list(prompts)
        decisions = self.router.route_batch(prompts)
        adapters = [d.adapter for d in decisions]
        answers = generate(self.model, self.tokenizer, prompts, self.max_new_tokens, adapter_names=adapters) if prompts else []
        return [RoutedAnswer(p, d, a, ans) for p, d, a, ans in zip(prompts, decisions, adapters, answers)]

    def generate(self, prompt: str) -> RoutedAnswer:
        """Route one prompt and answer it with the chosen adapter (or the base)."""
        return self.generate_batch([prompt])[0]


__all__ = ["BASE_ADAPTER", "RoutedAnswer", "RoutedModel"]
