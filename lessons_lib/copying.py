"""Copy-aware decoding: once an answer starts repeating a word of the prompt, nudge it to finish that word exactly.

A small model that copies a name from the prompt slips mid-word ("Thorvaldsen" -> "Thorvalus", "Blackwood" ->
"Black"). While the answer's last word is the beginning of a word of the prompt (the same bytes, both starting a
word), `CopyBias` adds `bias` to the logits of the tokens that go on spelling that prompt word, until the word ends
(a space, a comma, a closing quote or bracket, a full stop before a space). It forbids nothing: a sure model still
leaves the copy, and it never chooses *which* word to copy — that stays the model's (and the adapter's) decision.
A "word" here runs through `_ . @ - (` so identifiers, e-mails and calls like `double(xs)` count as one. At a word's
end the nudge pauses; if the answer then writes the space the prompt has there, the prompt's next word is nudged in
turn, so a name or an item of several words can be copied whole.
It is the decoding-time cousin of a pointer-generator's copy mechanism; prompt-lookup decoding matches the same way.

`RequestedNames` is the one hard rule, for code: a function the answer defines (`def NAME(`) gets a name the request
gives (an identifier with `_` or followed by `(`, like `celsius_to_kelvin` or `stutter(s)`), the way a tool call's
arguments must quote the request (`tools.constrained`). The model still picks which name; the body stays its own.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Self

from .i18n import tr

# Logits added to the tokens that continue a copy. On the tiny adapters 4 to 8 gave about the same gains on the
# natural sets; 12 starts to spoil template answers that copy little (coding held-out: 1.00 -> 0.80).
COPY_BIAS = 6.0
MAX_WORD = 64  # bytes of the answer's last word that are matched against the prompt

_OPENERS = frozenset(b" \t\r\n\"'`([{:,")
_CLOSERS = frozenset(b" \t\r\n,;:!?)]}\"'`")
_GUILLEMET_OPEN, _GUILLEMET_CLOSE = "«".encode(), "»".encode()


def copy_aware_kwargs(on: bool = True) -> dict:
    """`generate`'s keywords for the course's copy-aware decoding, as a ticked "copy names exactly" box sends them:
    the copy bias and requested function names (none when off, so a custom generate_fn needs them only when used)."""
    return {"copy_bias": COPY_BIAS, "requested_names": True} if on else {}


def checked_bias(bias: float) -> float:
    """`bias` as a float, or a clear error when it is negative (a negative nudge would push answers off the prompt)."""
    if not bias >= 0:
        raise ValueError(
            tr(
                en=f"copy bias must be >= 0 (0 turns it off; copying.COPY_BIAS = {COPY_BIAS}), got {bias}.",
                ru=f"смещение копирования (copy bias) должно быть >= 0 (0 отключает его; copying.COPY_BIAS = "
                f"{COPY_BIAS}), а получено {bias}.",
            )
        )
    return float(bias)


def starts_word(data: bytes, at: int) -> bool:
    """Does a word start at byte `at` (the text's start, or after a space, an opening quote or bracket, `:` or `,`)?"""
    if at == 0:
        return True
    return data[at - 1] in _OPENERS or data[max(at - 2, 0) : at] == _GUILLEMET_OPEN


def ends_word(data: bytes, at: int) -> bool:
    """Does a word end just before byte `at` (the end, a space, `, ; : ! ?`, a closing quote or bracket, `. `)?"""
    if at >= len(data) or data[at] in _CLOSERS or data[at : at + 2] == _GUILLEMET_CLOSE:
        return True
    return data[at] == ord(".") and (at + 1 == len(data) or data[at + 1] in b" \t\r\n")


def copy_ends(
    answer: bytes, source: bytes, starts=starts_word, shortest: int = 1, longest: int = MAX_WORD
) -> list[int]:
    """Where in `source` the copy that `answer` is making ends: every end of a match of the answer's longest tail
    (`shortest`..`longest` bytes) that starts a word in both texts, by `starts` (empty when nothing matches)."""
    for start in range(max(len(answer) - longest, 0), len(answer) - shortest + 1):
        if not starts(answer, start):
            continue
        piece, ends = answer[start:], []
        at = source.find(piece)
        while at >= 0:
            if starts(source, at):
                ends.append(at + len(piece))
            at = source.find(piece, at + 1)
        if ends:
            return ends
    return []


class SourceHook:
    """A per-row decoding hook over a batch (`generate_texts`' `allowed_tokens` or `token_bias`): each row's source
    text and the answer its generated ids spell; a subclass's `decide(answer, source)` says what may follow."""

    def __init__(self, tokenizer, sources: Sequence[str | None] = (), prompt_length: int = 0):
        from .tools.constrained import by_first_byte, token_bytes

        self.pieces = token_bytes(tokenizer)
        self.by_first = by_first_byte(self.pieces)
        self.sources = [None if s is None else s.encode() for s in sources]
        self.prompt_length = prompt_length

    @classmethod
    def for_tokenizer(cls, tokenizer) -> Self:
        """One with no rows yet: its token tables, built once per tokenizer."""
        return _vocabulary(cls, tokenizer)

    def for_rows(self, sources: Sequence[str | None], prompt_length: int) -> Self:
        """The same hook for another batch of rows (token tables shared, not rebuilt)."""
        other = copy.copy(self)
        other.sources = [None if s is None else s.encode() for s in sources]
        other.prompt_length = prompt_length
        return other

    def batches(self, sources: Iterable[str | None]) -> Callable[[slice, int], Self]:
        """`generate_texts`' per-batch factory: the hook for each batch's rows of `sources`."""
        sources = list(sources)
        return lambda rows, prompt_length: self.for_rows(sources[rows], prompt_length)

    def spelled(self, ids: Sequence[int]) -> bytes:
        """The bytes that token ids spell (special tokens spell nothing)."""
        return b"".join(self.pieces[i] or b"" for i in ids)

    def spelling(self, rest: bytes, beyond: bool = False) -> list[int]:
        """Tokens whose bytes begin `rest` (`beyond`: or that spell all of it and go on)."""
        return [
            i
            for i in self.by_first.get(rest[0], ())
            if rest.startswith(self.pieces[i]) or (beyond and self.pieces[i].startswith(rest))
        ]

    def decide(self, answer: bytes, source: bytes):
        """What may follow `answer`, given the row's `source` (None: no say)."""
        raise NotImplementedError

    def row(self, source: str) -> Callable[[list[int]], object]:
        """One row's hook on its generated ids so far (the serving engine's `RowRequest` form)."""
        data = source.encode()
        return lambda generated: self.decide(self.spelled(generated), data)

    def __call__(self, batch_id: int, input_ids):
        source = self.sources[batch_id]
        if source is None:
            return None
        return self.decide(self.spelled(input_ids[self.prompt_length :].tolist()), source)


@lru_cache(maxsize=8)
def _vocabulary(cls: type[SourceHook], tokenizer) -> SourceHook:
    return cls(tokenizer)


class CopyBias(SourceHook):
    """Each row's logit nudges (`token_bias`): tokens that go on spelling the prompt word that the answer has begun
    to repeat get `bias` more."""

    def __init__(self, tokenizer, sources: Sequence[str | None] = (), prompt_length: int = 0, bias: float = COPY_BIAS):
        super().__init__(tokenizer, sources, prompt_length)
        self.bias = checked_bias(bias)

    def with_bias(self, bias: float) -> CopyBias:
        """The same nudge with another bias (checked now, before any generation)."""
        other = copy.copy(self)
        other.bias = checked_bias(bias)
        return other

    def for_rows(self, sources: Sequence[str | None], prompt_length: int, bias: float | None = None) -> CopyBias:
        """The same nudge for another batch of rows, with another bias if given."""
        other = super().for_rows(sources, prompt_length)
        return other if bias is None else other.with_bias(bias)

    def nudges(self, answer: bytes, source: bytes) -> dict[int, float] | None:
        """Token id -> added logit after `answer` (None while the answer is not inside a word of `source`)."""
        ends = copy_ends(answer, source)
        if not ends or any(ends_word(source, end) for end in ends):  # nothing copied, or it may be a whole word
            return None
        return {i: self.bias for rest in {source[end:] for end in ends} for i in self.spelling(rest)} or None

    def decide(self, answer: bytes, source: bytes) -> dict[int, float] | None:
        return self.nudges(answer, source) if self.bias else None


_IDENTIFIER = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_DEF_LINE = re.compile(rb"[ \t]*def( [A-Za-z0-9_]*)?$")  # a line that is still writing its `def` name


def requested_names(source: bytes) -> set[bytes]:
    """The identifiers a request names: words with an inner `_` (`celsius_to_kelvin`) or followed by `(` (`f(x)`)."""
    found = set()
    for match in _IDENTIFIER.finditer(source):
        word = match.group()
        if b"_" in word.strip(b"_") or source[match.end() : match.end() + 1] == b"(":
            found.add(word)
    return found


class RequestedNames(SourceHook):
    """Each row's allowed next tokens (`allowed_tokens`): while the answer writes the name of a `def` line, only
    tokens that go on spelling an identifier the request names, then `(` — the model still picks which one, and
    a request that names no identifier leaves the answer free."""

    def allowed(self, answer: bytes, source: bytes) -> list[int] | None:
        """Tokens that may follow `answer` (None = any: not in a `def` name, or no requested name fits)."""
        match = _DEF_LINE.match(answer[answer.rfind(b"\n") + 1 :])
        if not match:
            return None
        written = match.group(1) or b""
        wanted = (b" " + name + b"(" for name in requested_names(source))
        rests = {full[len(written) :] for full in wanted if full.startswith(written)}
        return sorted({i for rest in rests for i in self.spelling(rest, beyond=True)}) or None

    def decide(self, answer: bytes, source: bytes) -> list[int] | None:
        return self.allowed(answer, source)


def prompt_source(prompt: str | list[dict]) -> str:
    """The text an answer may copy from: the prompt, or a conversation's user messages (one per line)."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(m.get("content") or "") for m in prompt if m.get("role") == "user")
