"""The shared decode loop: greedy rows equal `model.generate`, and streamed text is final when it goes out."""

from __future__ import annotations

import pytest

from lessons_lib.generation import RowRequest, _held_back, _Row, decode_batch, row_seed

PROMPTS = (
    "Extract JSON: Anna Petrova, 31, Kazan.",
    "Write a Python function that adds two numbers.",
    "My order 4411 is late, please help.",
    "hi",
)
NAMES = ("json", "coding", "support", "__base__")


def rendered(tok, prompts=PROMPTS):
    from lessons_lib.models import chat_text

    return [chat_text(tok, p) for p in prompts]


def hf_generate(model, tok, texts, names, max_new_tokens, **kwargs):
    """The reference: one greedy `model.generate` for the batch; new ids per row, padding removed."""
    import torch

    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            adapter_names=list(names),
            **kwargs,
        )
    return [[i for i in row if i != tok.pad_token_id] for row in out[:, enc["input_ids"].shape[1] :].tolist()]


def test_greedy_mixed_adapter_batch_equals_hf_generate(course_model, tokenizer):
    texts = rendered(tokenizer)  # four prompt lengths, three adapters and the bare base
    expected = hf_generate(course_model, tokenizer, texts, NAMES, 40)
    steps = []
    got = decode_batch(
        course_model, tokenizer, [RowRequest(t, a, 40) for t, a in zip(texts, NAMES)], on_step=steps.append
    )
    assert [r.token_ids for r in got] == expected
    assert [r.text for r in got] == [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in expected]
    assert {r.finish_reason for r in got} == {"stop", "length"}  # some rows ended early ...
    assert steps[-1] < len(texts)  # ... and left the batch
    assert [r.prompt_tokens for r in got] == [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]


def test_rows_that_all_name_the_active_adapter_skip_the_per_row_split_and_equal_hf_generate(course_model, tokenizer):
    import contextlib

    from lessons_lib.generation import adapter_rows

    texts = rendered(tokenizer)
    assert course_model.active_adapter == "json"
    context, extra = adapter_rows(course_model, ["json"] * len(texts))
    assert isinstance(context, contextlib.nullcontext) and extra == {}  # PEFT's plain forward: nothing to split
    assert not isinstance(adapter_rows(course_model, ["coding"] * len(texts))[0], contextlib.nullcontext)
    for name in ("json", "coding"):  # the active adapter, and one that is not active (PEFT's per-row hooks)
        expected = hf_generate(course_model, tokenizer, texts, [name] * len(texts), 24)
        got = decode_batch(course_model, tokenizer, [RowRequest(t, name, 24) for t in texts])
        assert [r.token_ids for r in got] == expected, name
    assert course_model.active_adapter == "json"


def test_a_batch_that_raises_midway_leaves_no_adapter_hooks_behind(course_model, tokenizer):
    """PEFT's hook context leaks its per-row adapter names when the block raises; the loop's does not."""
    import torch

    texts = rendered(tokenizer)

    def explode(ids):
        raise RuntimeError("constraint crashed")

    crashing = [
        RowRequest(t, a, 8, allowed_tokens=explode if k == 0 else None) for k, (t, a) in enumerate(zip(texts, NAMES))
    ]
    hooks = lambda: sum(len(module._forward_pre_hooks) for module in course_model.modules())  # noqa: E731
    before = hooks()
    for _ in range(2):  # twice: nothing piles up either
        with pytest.raises(RuntimeError, match="constraint crashed"):
            decode_batch(course_model, tokenizer, crashing)
    assert hooks() == before
    enc = tokenizer(texts[:1], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        course_model(**enc)  # a plain forward of one row: PEFT's leaked hooks would refuse it (4 names, 1 row)
    expected = hf_generate(course_model, tokenizer, texts[:1], ["coding"], 8)
    assert [r.token_ids for r in decode_batch(course_model, tokenizer, [RowRequest(texts[0], "coding", 8)])] == expected


def test_constrained_rows_equal_hf_prefix_allowed_tokens(course_model, tokenizer):
    texts = rendered(tokenizer)[:2]
    digits = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)] + [tokenizer.eos_token_id]
    expected = hf_generate(
        course_model,
        tokenizer,
        texts,
        NAMES[:2],
        6,
        prefix_allowed_tokens_fn=lambda b, ids: digits if b == 0 else list(range(len(tokenizer))),
    )
    got = decode_batch(
        course_model,
        tokenizer,
        [
            RowRequest(texts[0], "json", 6, allowed_tokens=lambda ids: digits),
            RowRequest(texts[1], "coding", 6, allowed_tokens=lambda ids: None),
        ],
    )
    assert [r.token_ids for r in got] == expected
    assert set(got[0].token_ids) <= set(digits)


def test_a_token_bias_is_added_to_the_logits_before_the_pick(course_model, tokenizer):
    texts = rendered(tokenizer)[:2]
    digits = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
    only = decode_batch(course_model, tokenizer, [RowRequest(texts[0], "json", 6, allowed_tokens=lambda ids: digits)])
    plain, pushed, untouched = decode_batch(
        course_model,
        tokenizer,
        [
            RowRequest(texts[0], "json", 6),
            RowRequest(texts[0], "json", 6, token_bias=lambda ids: dict.fromkeys(digits, 1e4)),  # outweighs any logit
            RowRequest(texts[1], "coding", 6, token_bias=lambda ids: None),  # None: this step, no nudge
        ],
    )
    assert pushed.token_ids == only[0].token_ids != plain.token_ids
    assert (
        untouched.token_ids == decode_batch(course_model, tokenizer, [RowRequest(texts[1], "coding", 6)])[0].token_ids
    )


def test_seeded_sampling_is_repeatable_and_seeds_differ(course_model, tokenizer):
    text = rendered(tokenizer)[2]
    rows = lambda seeds: [RowRequest(text, "support", 24, temperature=1.2, seed=s) for s in seeds]  # noqa: E731
    first = decode_batch(course_model, tokenizer, rows([row_seed(7, i) for i in range(3)]))
    again = decode_batch(course_model, tokenizer, rows([row_seed(7, i) for i in range(3)]))
    assert [r.token_ids for r in first] == [r.token_ids for r in again]
    assert len({tuple(r.token_ids) for r in first}) == 3


def test_top_p_near_zero_is_greedy(course_model, tokenizer):
    text = rendered(tokenizer)[0]
    greedy, nucleus = decode_batch(
        course_model,
        tokenizer,
        [RowRequest(text, "json", 12), RowRequest(text, "json", 12, temperature=5.0, top_p=1e-6, seed=1)],
    )
    assert nucleus.token_ids == greedy.token_ids


def test_stop_strings_cut_the_text_and_streamed_deltas_never_hold_them(course_model, tokenizer):
    text = rendered(tokenizer)[2]
    full = decode_batch(course_model, tokenizer, [RowRequest(text, "support", 30)])[0].text
    stop = "order"
    assert stop in full
    deltas = []
    got = decode_batch(
        course_model,
        tokenizer,
        [RowRequest(text, "support", 30, stop=(stop, "zzz"), on_text=lambda *d: deltas.append(d))],
    )[0]
    assert got.text == full[: full.index(stop)].rstrip() and got.finish_reason == "stop"
    assert "".join(d[0] for d in deltas) == got.text
    assert [d[1] for d in deltas] == [None] * (len(deltas) - 1) + ["stop"]
    assert not any(d[0].endswith(("o", "or", "ord", "orde")) for d in deltas[:-1])  # could begin "order": held


def test_logprobs_are_the_models_own_distribution_in_openai_shape(course_model, tokenizer):
    import torch

    text = rendered(tokenizer)[0]
    greedy, hot = decode_batch(
        course_model,
        tokenizer,
        [
            RowRequest(text, "json", 5, logprobs=True, top_logprobs=3),
            RowRequest(text, "json", 5, temperature=3.0, seed=0, logprobs=True),
        ],
    )
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        first = torch.log_softmax(course_model(**enc, adapter_names=["json"]).logits[0, -1].float(), -1)
    for result in (greedy, hot):  # temperature does not change what is reported
        entry = result.logprobs[0]
        assert set(entry) == {"token", "logprob", "bytes", "top_logprobs"}
        assert entry["logprob"] == pytest.approx(float(first[result.token_ids[0]]), abs=1e-4)
        assert bytes(entry["bytes"]).decode() == tokenizer.decode([result.token_ids[0]])
    assert len(greedy.logprobs) == len([i for i in greedy.token_ids if i != tokenizer.eos_token_id])
    tops = greedy.logprobs[0]["top_logprobs"]
    assert len(tops) == 3 and tops[0]["logprob"] == greedy.logprobs[0]["logprob"]
    assert [t["logprob"] for t in tops] == sorted((t["logprob"] for t in tops), reverse=True)
    assert hot.logprobs[0]["top_logprobs"] == []


def test_streamed_text_is_final_for_multibyte_characters_and_whitespace(tokenizer):
    """Fed token by token, a row only emits text no later token can change: never half a character, never
    trailing whitespace that the final strip would remove."""
    target = "  Привет, мир! ✓ Ünïcödé — 日本語  \n"
    ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    deltas = []
    row = _Row(
        RowRequest("x", max_tokens=len(ids), on_text=lambda *d: deltas.append(d)),
        1,
        tokenizer,
        {tokenizer.eos_token_id},
    )
    for token in ids:
        row.add(token, None)
    assert row.finish == "length" and row.text == target.strip()
    assert "".join(d[0] for d in deltas) == target.strip()
    assert not any("\ufffd" in d[0] for d in deltas)
    assert all(d[0] == d[0].rstrip() or d[1] for d in deltas)


def test_held_back_text():
    assert _held_back("Hello wor", ("world",)) == "Hello"
    assert _held_back("Hello w\ufffd", ()) == "Hello w"
    assert _held_back("a b  ", ()) == "a b"


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(max_tokens=0), "max_tokens"),
        (dict(temperature=-1), "temperature"),
        (dict(top_p=0), "top_p"),
        (dict(top_logprobs=6), "top_logprobs"),
        (dict(stop=("",)), "stop"),
    ],
)
def test_bad_settings_are_refused_before_any_work(tokenizer, bad, message):
    with pytest.raises(ValueError, match=message):
        decode_batch(None, tokenizer, [RowRequest("x", **bad)])


def test_cancelled_rows_leave_the_batch(course_model, tokenizer):
    texts = rendered(tokenizer)[:2]
    seen = []
    got = decode_batch(
        course_model,
        tokenizer,
        [RowRequest(texts[0], "json", 20, cancelled=lambda: len(seen) >= 3), RowRequest(texts[1], "coding", 20)],
        on_step=seen.append,
    )
    assert got[0].finish_reason == "cancelled" and len(got[0].token_ids) == 2
    assert got[1].token_ids == hf_generate(course_model, tokenizer, texts[1:], ["coding"], 20)[0]
    assert seen[3:] and set(seen[3:]) == {1}


def test_logprob_tokens_carry_their_raw_bytes(tokenizer):
    """A token holding part of a character reports its bytes (OpenAI's `bytes:\\x..` text); they add up."""
    from lessons_lib.generation import TokenText

    text = "Привет ✓ 日本語"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    token_text = TokenText(tokenizer)
    assert b"".join(bytes(token_text(i)[1]) for i in ids) == text.encode()
    assert any(token_text(i)[0].startswith("bytes:\\x") for i in ids)


# ------------------------------------------------------------------ models.generate_texts runs this loop
def test_generate_texts_equals_hf_generate_mixed_active_and_constrained(course_model, tokenizer):
    from lessons_lib.models import generate_texts

    texts = rendered(tokenizer)
    expected = hf_generate(course_model, tokenizer, texts, NAMES, 40)
    decoded = [tokenizer.decode(ids, skip_special_tokens=True) for ids in expected]
    assert generate_texts(course_model, tokenizer, texts, 40, NAMES, batch_size=3) == decoded

    import torch  # no adapter_names: the model's active adapter (json), as model.generate uses it

    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = course_model.generate(
            **enc,
            max_new_tokens=20,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    active = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert generate_texts(course_model, tokenizer, texts, 20) == active

    digits = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)] + [tokenizer.eos_token_id]
    seen = []

    def only_digits_in_row_0(rows, prompt_length):  # generate_texts' hook: a prefix_allowed_tokens_fn per batch
        def allowed(batch_id, input_ids):
            seen.append((rows.start + batch_id, len(input_ids) >= prompt_length))
            return digits if rows.start + batch_id == 0 else list(range(len(tokenizer)))

        return allowed

    width = enc["input_ids"].shape[1]
    expected = hf_generate(
        course_model, tokenizer, texts, NAMES, 6, prefix_allowed_tokens_fn=only_digits_in_row_0(slice(0, 4), width)
    )
    seen.clear()
    got = generate_texts(course_model, tokenizer, texts, 6, NAMES, allowed_tokens=only_digits_in_row_0)
    assert got == [tokenizer.decode(ids, skip_special_tokens=True) for ids in expected]
    assert {row for row, _ in seen} == {0, 1, 2, 3} and all(full for _, full in seen)


def test_rows_with_and_without_an_adapter_name_are_refused(course_model, tokenizer):
    texts = rendered(tokenizer)[:2]
    with pytest.raises(ValueError, match="name one for every row"):
        decode_batch(course_model, tokenizer, [RowRequest(texts[0], None, 4), RowRequest(texts[1], "json", 4)])
