"""Generated text stays whole UTF-8: the decode loop never picks a token that breaks a character.

Byte-level and byte-fallback vocabularies have tokens that are pieces of a multi-byte character (`\\xbf\\xd0\\xb8` =
the end of one character, then "и"). Sampled freely, a model can follow a whole character with such a piece, or stop
halfway through one, and the text then shows U+FFFD. The guard keeps, per row, how many continuation bytes the
text still owes (0-3) and allows only the tokens that pay exactly that debt: any token once the text is whole, and
while a character is open, only its continuation (never eos). A token that can never be valid (a stray lead byte
such as 0xC0) is never allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

MAX_OWED = 3  # a 4-byte character owes 3 continuation bytes after its lead byte


def is_continuation(byte: int) -> bool:
    """A UTF-8 continuation byte (10xxxxxx)."""
    return 0x80 <= byte <= 0xBF


def character_length(lead: int) -> int | None:
    """The byte length of the character a lead byte starts, or None when `lead` cannot start one."""
    if lead <= 0x7F:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return None


@dataclass(frozen=True)
class PieceShape:
    """How a token's bytes sit on character boundaries."""

    opening: int  # continuation bytes it starts with (they finish a character opened before it)
    owed: int  # continuation bytes still missing after its last byte
    valid: bool  # False when no text around it can make it whole (a stray lead byte, a lead cut by another)
    text: bool  # False for special tokens (eos, role markers), which add no bytes
    length: int


def piece_shape(piece: bytes | None) -> PieceShape:
    """The shape of one token's bytes (None or b"" for a special token)."""
    if not piece:
        return PieceShape(0, 0, True, False, 0)
    opening = 0
    while opening < len(piece) and is_continuation(piece[opening]):
        opening += 1
    owed = 0
    for byte in piece[opening:]:
        if owed:
            if not is_continuation(byte):
                return PieceShape(opening, 0, False, True, len(piece))
            owed -= 1
            continue
        size = character_length(byte)
        if size is None:
            return PieceShape(opening, 0, False, True, len(piece))
        owed = size - 1
    return PieceShape(opening, owed, True, True, len(piece))


def allowed_after(shape: PieceShape, owed: int) -> bool:
    """May a token of `shape` follow text that owes `owed` continuation bytes?"""
    if not shape.valid:
        return False
    if not shape.text:
        return owed == 0
    if shape.opening == shape.length:  # only continuation bytes: it pays part or all of the debt
        return 0 < shape.length <= owed
    return shape.opening == owed


def owed_after(shape: PieceShape, owed: int) -> int:
    """What the text owes once a token of `shape` (allowed after `owed`) is added."""
    if shape.text and shape.opening == shape.length:
        return owed - shape.length
    return shape.owed if shape.text else 0


class CharacterGuard:
    """Per-tokenizer tables: the logit bias (0 or -inf) for each debt, and each token's shape."""

    def __init__(self, pieces: Sequence[bytes | None]):
        self.shapes = [piece_shape(piece) for piece in pieces]
        self._bias: dict[tuple, object] = {}

    def bias(self, width: int, device, dtype):
        """A (MAX_OWED + 1, width) tensor: row k adds -inf to the tokens not allowed when k bytes are owed; ids past
        the tokenizer (padded embedding rows) are allowed only when nothing is owed."""
        import torch

        key = (width, str(device), dtype)
        if key not in self._bias:
            table = torch.zeros((MAX_OWED + 1, width), dtype=dtype)
            for owed in range(MAX_OWED + 1):
                banned = [i for i, shape in enumerate(self.shapes[:width]) if not allowed_after(shape, owed)]
                if owed:
                    banned += range(len(self.shapes), width)
                table[owed, banned] = float("-inf")
            self._bias[key] = table.to(device)
        return self._bias[key]

    def allows(self, token: int, owed: int) -> bool:
        """May `token` follow text that owes `owed` continuation bytes?"""
        return owed == 0 if token >= len(self.shapes) else allowed_after(self.shapes[token], owed)

    def owed_after(self, token: int, owed: int) -> int:
        """The debt after `token` is added to text that owed `owed` (0..MAX_OWED whatever the token: a constrained
        step may take a token the guard would not)."""
        if token >= len(self.shapes):
            return 0
        return min(max(owed_after(self.shapes[token], owed), 0), MAX_OWED)


@lru_cache(maxsize=4)
def character_guard(tokenizer) -> CharacterGuard:
    """The guard of a tokenizer, built once (its token bytes come from the course's one table of them)."""
    from .tools.constrained import token_bytes_of

    return CharacterGuard(token_bytes_of(tokenizer))
