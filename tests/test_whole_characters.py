"""The decode loop never writes a broken UTF-8 character (U+FFFD in the text), whatever the model prefers."""

from __future__ import annotations

import pytest

from lessons_lib.generation import RowRequest, decode_batch
from lessons_lib.tools.constrained import token_bytes_of
from lessons_lib.whole_characters import CharacterGuard, allowed_after, owed_after, piece_shape

PROMPT_TEXT = "Extract JSON: Anna Petrova, 31, Kazan."


@pytest.mark.parametrize(
    ("piece", "opening", "owed", "valid"),
    [
        (b"abc", 0, 0, True),
        ("и".encode(), 0, 0, True),
        (b"\xd0", 0, 1, True),  # opens a 2-byte character
        (b"\xe2\x82", 0, 1, True),  # two bytes of a 3-byte one
        (b"\xbf", 1, 0, True),  # a continuation byte alone
        (b"\xbf\xd0\xb8", 1, 0, True),  # ends a character, then "и" (the piece seen as "I\ufffdиatius")
        (b"\xc0", 0, 0, False),  # 0xC0 starts no character
        (b"\xd0a", 0, 0, False),  # a lead byte cut short by ASCII
        (b"\xf5", 0, 0, False),
    ],
)
def test_piece_shapes(piece, opening, owed, valid):
    shape = piece_shape(piece)
    assert (shape.opening, shape.owed, shape.valid) == (opening, owed, valid)


def test_what_may_follow_an_open_or_a_whole_character():
    whole, lone, special = piece_shape(b"ab"), piece_shape(b"\xbf"), piece_shape(None)
    two = piece_shape(b"\x82\xac")  # the last two bytes of a 3-byte character
    assert allowed_after(whole, 0) and allowed_after(special, 0)
    assert not allowed_after(lone, 0), "a continuation byte cannot start text"
    assert not allowed_after(whole, 1) and not allowed_after(special, 1), "nor can eos or ASCII end a character early"
    assert allowed_after(lone, 1) and allowed_after(lone, 2) and allowed_after(two, 2)
    assert not allowed_after(two, 1), "a piece that pays more than is owed would start text with a stray byte"
    assert owed_after(lone, 2) == 1 and owed_after(two, 2) == 0 and owed_after(piece_shape(b"a\xe2"), 0) == 2


def test_padded_vocabulary_rows_are_allowed_only_between_characters():
    import torch

    guard = CharacterGuard([b"a", b"\xd0", b"\xb8", None])
    bias = guard.bias(6, "cpu", torch.float32)  # 2 embedding rows past the tokenizer
    assert torch.isfinite(bias[0]).tolist() == [True, True, False, True, True, True]
    assert torch.isfinite(bias[1]).tolist() == [False, False, True, False, False, False]


def pushed_to(ids: list[int]):
    """A token_bias that makes the model want ids[k] above anything else at step k (the last one from then on)."""
    return lambda so_far: {ids[min(len(so_far), len(ids) - 1)]: 1e4}


def test_a_model_pushed_to_broken_bytes_still_writes_whole_characters(course_model, tokenizer):
    from lessons_lib.models import chat_text

    pieces = token_bytes_of(tokenizer)
    lone = next(i for i, p in enumerate(pieces) if p == b"\xb8")  # a continuation byte alone
    opener = next(i for i, p in enumerate(pieces) if p == b"\xd0")  # the lead byte of "и" (and all of а..п)
    eos = tokenizer.eos_token_id
    text = chat_text(tokenizer, PROMPT_TEXT)
    free, guarded = decode_batch(
        course_model,
        tokenizer,
        [
            RowRequest(text, "json", 4, token_bias=pushed_to([lone]), whole_characters=False),
            RowRequest(text, "json", 4, token_bias=pushed_to([lone])),
        ],
    )
    assert "\ufffd" in free.text, "without the guard the pushed byte breaks the text"
    assert "\ufffd" not in guarded.text and lone not in guarded.token_ids[:1]
    # Wanting eos right after an open lead byte: the guard finishes the character first (a continuation byte).
    (closed,) = decode_batch(
        course_model, tokenizer, [RowRequest(text, "json", 4, token_bias=pushed_to([opener, eos]))]
    )
    assert closed.token_ids[:1] == [opener] and closed.token_ids[-1] == eos
    assert "\ufffd" not in closed.text and closed.text.encode("utf-8").startswith(b"\xd0")


def test_rows_that_never_meet_a_broken_character_are_unchanged(course_model, tokenizer):
    from lessons_lib.models import chat_text

    texts = [chat_text(tokenizer, p) for p in (PROMPT_TEXT, "Привет! Мой заказ 4411 опаздывает.")]
    names = ("json", "support")
    on = decode_batch(course_model, tokenizer, [RowRequest(t, n, 24) for t, n in zip(texts, names)])
    off = decode_batch(
        course_model, tokenizer, [RowRequest(t, n, 24, whole_characters=False) for t, n in zip(texts, names)]
    )
    assert [r.token_ids for r in on] == [r.token_ids for r in off]
    assert all("\ufffd" not in r.text for r in on)


def test_unguarded_and_any_token_rows_share_a_batch_with_guarded_ones(course_model, tokenizer):
    """Before: a row the guard did not cover ran its debt below zero, and the batch died with an IndexError."""
    from lessons_lib.models import chat_text

    pieces = token_bytes_of(tokenizer)
    lone = next(i for i, p in enumerate(pieces) if p == b"\xb8")
    text = chat_text(tokenizer, PROMPT_TEXT)
    off, anything, on = decode_batch(
        course_model,
        tokenizer,
        [
            RowRequest(text, "json", 10, token_bias=pushed_to([lone]), whole_characters=False),
            RowRequest(text, "json", 10, token_bias=pushed_to([lone]), allowed_tokens=lambda ids: None),
            RowRequest(text, "json", 10),
        ],
    )
    assert off.token_ids == [lone] * 10, "the unguarded row wrote what it was pushed to"
    assert "\ufffd" not in anything.text, "allowed_tokens returning None (any token) leaves the guard on"
    assert on.token_ids == decode_batch(course_model, tokenizer, [RowRequest(text, "json", 10)])[0].token_ids


def test_a_reply_cut_by_its_token_limit_mid_character_drops_the_half_character(course_model, tokenizer):
    from lessons_lib.models import chat_text

    opener = next(i for i, p in enumerate(token_bytes_of(tokenizer)) if p == b"\xd0")
    text = chat_text(tokenizer, PROMPT_TEXT)
    (cut,) = decode_batch(course_model, tokenizer, [RowRequest(text, "json", 1, token_bias=pushed_to([opener]))])
    assert cut.token_ids == [opener] and cut.finish_reason == "length" and cut.text == ""


def test_seeded_samples_that_break_nothing_are_the_same_with_the_guard(course_model, tokenizer):
    """Re-picking only a banned token keeps every other sample: the guard changes only the broken ones."""
    from lessons_lib.models import chat_text

    prompts = [PROMPT_TEXT, "Привет! Мой заказ 4411 опаздывает.", "Напиши функцию на Python.", "hi"]
    texts = [chat_text(tokenizer, p) for p in prompts for _ in range(4)]

    def rows(guard: bool) -> list[RowRequest]:
        return [
            RowRequest(t, "support", 24, temperature=1.3, seed=i, whole_characters=guard) for i, t in enumerate(texts)
        ]

    off = decode_batch(course_model, tokenizer, rows(False))
    on = decode_batch(course_model, tokenizer, rows(True))
    whole = [k for k, r in enumerate(off) if "\ufffd" not in r.text]
    assert len(whole) >= len(off) // 2, "the check needs samples that break nothing"
    assert [on[k].token_ids for k in whole] == [off[k].token_ids for k in whole]
    assert all("\ufffd" not in r.text for r in on)
