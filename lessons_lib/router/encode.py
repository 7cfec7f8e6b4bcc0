"""Turn prompts into model inputs for the routers: chat template, prompt truncation, left-padded batches."""

from __future__ import annotations

from collections.abc import Sequence

ROUTER_MAX_PROMPT_TOKENS = 64


def truncate_prompt(tokenizer, text: str, max_tokens: int = ROUTER_MAX_PROMPT_TOKENS) -> str:
    """Keep the first `max_tokens` tokens of a prompt: the request's intent is usually stated first."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])


def router_texts(tokenizer, texts: Sequence[str], max_tokens: int = ROUTER_MAX_PROMPT_TOKENS) -> list[str]:
    """Each prompt truncated and rendered as a user turn, ending where the assistant would start."""
    from ..models import chat_text

    return [chat_text(tokenizer, truncate_prompt(tokenizer, t, max_tokens)) for t in texts]


def encode_batch(tokenizer, texts: Sequence[str], device=None, max_tokens: int = ROUTER_MAX_PROMPT_TOKENS):
    """A left-padded tensor batch (input_ids, attention_mask) for the router prompts."""
    enc = tokenizer(
        router_texts(tokenizer, texts, max_tokens), return_tensors="pt", padding=True, add_special_tokens=False
    )
    return enc.to(device) if device is not None else enc
