"""Faithful final answers: once an answer starts repeating the tool's result, it repeats it exactly.

A small model that copies a tool's result into its answer slips a letter now and then ("Friday" -> "Fозay"), and
the answer then reports a result the tool never gave. `CopyGuard` lets the model write anything, but once its answer
is repeating the result — a line of the answer begins like the result does, or its last MIN_COPY bytes are a piece of
the result that starts at a word — the next tokens must go on copying the result until a sentence or a quoted string
of it ends (or the result does); then the answer is free again. The model still chooses the lead-in, whether to
repeat the result at all and where to stop.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..copying import SourceHook, copy_ends
from ..i18n import tr
from ..models import generate_texts
from .constrained import is_word_byte, reply_budgets

MIN_COPY = 8  # bytes of the result repeated (from a word start) before the copy is held to the result
SENTENCE_ENDS = b".!?"


def word_start(data: bytes, at: int) -> bool:
    """Does a word start at byte `at` of `data` (a word byte after a non-word byte or at the start)?"""
    return at < len(data) and is_word_byte(data[at]) and (at == 0 or not is_word_byte(data[at - 1]))


def may_stop(source: bytes, end: int) -> bool:
    """May a copy of `source` that has reached byte `end` stop there (the source, a sentence or a string ends)?"""
    if end >= len(source) or source[end] == ord('"'):
        return True
    return source[end - 1] in SENTENCE_ENDS and (source[end : end + 1].isspace() or source[end] == ord("'"))


def line_copy(answer: bytes, source: bytes) -> list[int]:
    """Where the copy ends when the answer's current line (past its indent) begins like the source (past its own),
    unless an earlier line already began the copy."""
    cut = answer.rfind(b"\n") + 1
    line, start = answer[cut:].lstrip(b" \t"), len(source) - len(source.lstrip())
    first_line = source[start:].split(b"\n", 1)[0]
    if not line or not source.startswith(line, start) or first_line in answer[:cut]:
        return []
    return [start + len(line)]


def copy_in_progress(answer: bytes, source: bytes) -> list[int]:
    """Where in `source` the copy that `answer` is making ends (all places, empty when it is copying nothing).

    The copy is the answer's line when it begins like the source, or the longest tail of `answer`, at least
    MIN_COPY bytes, that starts at a word in both texts."""
    return line_copy(answer, source) + copy_ends(answer, source, word_start, MIN_COPY, len(source))


class CopyGuard(SourceHook):
    """Each row's allowed next tokens (`generate_texts`' `allowed_tokens`; None = any): once an answer repeats its
    source, only tokens that go on repeating it."""

    def allowed(self, answer: bytes, source: bytes) -> list[int] | None:
        """Tokens that may follow `answer`: any (None) while no copy is held, else only those that go on copying."""
        ends = copy_in_progress(answer, source)
        if not ends or any(may_stop(source, end) for end in ends):
            return None
        allowed = {i for rest in {source[end:] for end in ends} for i in self.spelling(rest, beyond=True)}
        return sorted(allowed) or None  # no token spells the next bytes: let the model go on

    def decide(self, answer: bytes, source: bytes) -> list[int] | None:
        return self.allowed(answer, source)


def faithful_generate(
    model,
    tokenizer,
    texts: Sequence[str],
    sources: Sequence[str | None],
    max_new_tokens: int | Sequence[int] | None = None,
    adapter_names: Sequence[str] | None = None,
    batch_size: int = 32,
) -> list[str]:
    """Greedy answers for rendered chat texts whose repeats of `sources[i]` (a tool's result, or None) are exact;
    `max_new_tokens`: one budget, or one per text; None: room for each answer to repeat its source whole (see
    `constrained.reply_budgets`)."""
    if len(sources) != len(texts):
        raise ValueError(
            tr(
                en=f"Got {len(texts)} texts but {len(sources)} sources; pass one source (or None) per text.",
                ru=f"Текстов {len(texts)}, а источников {len(sources)}; передайте по одному источнику (или None) "
                "на каждый текст.",
            )
        )
    guard = CopyGuard.for_tokenizer(tokenizer).batches(sources)
    budgets = reply_budgets(tokenizer, sources, max_new_tokens)
    return generate_texts(model, tokenizer, texts, budgets, adapter_names, batch_size, allowed_tokens=guard)
