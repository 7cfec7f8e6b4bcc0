"""Tell cross-talk from kernel noise: compare each answer with its own adapter's reference answer and with the
answers every other adapter gives to the same prompt.

On exact fp32 kernels an answer must equal its own reference. On fp16 / 4-bit GPU kernels a batch of 16 and a
batch of 1 round differently, so a near-tie can flip a token: such an answer matches *no* adapter's reference
(noise). Cross-talk is different: the answer is another adapter's answer. It shows only on prompts where the
adapters answer differently ("telling" requests), so the report counts those too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..i18n import plural_ru, tr

SAME = "same"
CROSS_TALK = "cross-talk"
NOISE = "no adapter's answer"


def classify(answer: str, own: str, others: Sequence[str]) -> str:
    """SAME as its own adapter's reference; CROSS_TALK if it is another adapter's answer instead; else NOISE."""
    if answer == own:
        return SAME
    return CROSS_TALK if answer in others else NOISE


@dataclass(frozen=True)
class CrossTalkReport:
    """Verdicts for a list of answers, and how many requests could reveal cross-talk at all."""

    verdicts: tuple[str, ...]
    telling: int  # requests whose own reference answer no other adapter gives

    def count(self, verdict: str) -> int:
        """How many answers got this verdict."""
        return self.verdicts.count(verdict)

    @property
    def same_share(self) -> float:
        """The share of answers identical to their own adapter's reference."""
        return self.count(SAME) / max(len(self.verdicts), 1)

    def summary(self) -> str:
        """One line with every count."""
        n = len(self.verdicts)
        same, cross, noise = self.count(SAME), self.count(CROSS_TALK), self.count(NOISE)
        return tr(
            en=f"{same}/{n} same as their own adapter's answer, {cross} another "
            f"adapter's answer (cross-talk), {noise} no adapter's answer; {self.telling}/{n} requests "
            "have an answer only their own adapter gives (where cross-talk would show)",
            ru=f"{same}/{n} совпадают с ответом своего адаптера, {cross} — ответ другого адаптера "
            f"(перекрёстные помехи), {noise} — ничей ответ; у {self.telling}/{n} "
            f"{plural_ru(n, 'запроса', 'запросов', 'запросов')} есть ответ, который даёт только свой адаптер "
            "(где перекрёстные помехи были бы видны)",
        )


def cross_talk_report(
    answers: Sequence[str], prompts: Sequence[str], adapters: Sequence[str], references: dict[tuple[str, str], str]
) -> CrossTalkReport:
    """Classify answer i (prompt i, adapter i) against `references[(prompt, adapter)]` for every adapter."""
    if not len(answers) == len(prompts) == len(adapters):
        counts = f"{len(answers)}, {len(prompts)}, {len(adapters)}"
        raise ValueError(
            tr(
                en=f"Give one prompt and adapter per answer: {counts}.",
                ru=f"Дайте по одному промпту и адаптеру на каждый ответ (ответов, промптов, адаптеров: {counts}).",
            )
        )
    verdicts, telling = [], 0
    for answer, prompt, adapter in zip(answers, prompts, adapters):
        if (prompt, adapter) not in references:
            raise KeyError(
                tr(
                    en=f"No reference answer for adapter {adapter!r} on prompt {prompt[:40]!r}.",
                    ru=f"Нет эталонного ответа адаптера {adapter!r} на промпт {prompt[:40]!r}.",
                )
            )
        own = references[prompt, adapter]
        others = [text for (p, a), text in references.items() if p == prompt and a != adapter]
        verdicts.append(classify(answer, own, [t for t in others if t != own]))
        telling += own not in others
    return CrossTalkReport(tuple(verdicts), telling)
