"""Claim 7b: what the call constraint costs per decoding step on a real-size (32k-token) vocabulary.

The tiny model's vocabulary has 2,048 tokens; TinyLlama's and Mistral's have 32,000 and 32,768, and the constraint's
Python runs once per row and step, whatever the GPU. No real tokenizer can be downloaded here, so a byte-level BPE
of 32,000 tokens is trained on the course's corpus (a few seconds) as the stand-in. Each hand-written dev request's
gold call is replayed token by token through a fresh `CallConstraint` (`tool_choice="required"`, no quoting: the
free-text steps allow most of the vocabulary), and each allowed list becomes the logits mask as the decode loop
builds it. Variants, interleaved:
- "scan every token": the constraint as it was — every token of an accepted first byte tested against the call
  pattern, every plain token re-checked for UTF-8 at each free-text step, the mask's ids read by `torch.tensor`;
- "token trie": the shipped constraint (`TokenTrie`, `plain_fitting`, `generation._mask`);
- "mask only": the floor — the same allowed lists, precomputed, turned into masks (any constraint that returns
  token lists pays this).
Metric: ms per row and step, scan / trie (goal: ≥ 5x); the table also shows how far the trie is above the floor.

`python -m benchmarks.bench_constraint_vocab [--repeats N] [--plot]`
"""

from __future__ import annotations

from benchmarks.common import (
    BenchResult,
    Variant,
    main_for,
    medians,
    pick_clock,
    skipped_result,
    spread,
    time_alternating,
)

NAME = "constraint_vocab"
TITLE = "Call constraint per decoding step on a 32k-token vocabulary (stand-in BPE)"
GOAL = "the token trie >= 5x faster than scanning every token"
VOCAB_SIZE = 32_000


def stand_in_tokenizer(vocab_size: int = VOCAB_SIZE, documents: int = 20_000):
    """A byte-level BPE of `vocab_size` tokens trained on `documents` of each tiny corpus, as a transformers
    tokenizer."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    from lessons_lib.tiny import copy_corpus, corpus

    bpe = ByteLevelBPETokenizer()
    texts = corpus.documents(documents, 0) + copy_corpus.documents(documents, 0)
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=["<s>", "</s>", "<unk>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>"
    )


def scanning_constraint(tokenizer):
    """The constraint before the token trie (its token searches as they were): the same answers, found by testing
    every candidate token on the whole text."""
    from lessons_lib.tools.constrained import CallConstraint, utf8_prefix_ok

    class Scanning(CallConstraint):
        def accepted_after(self, grammar, key, text, trie):
            if trie is not self.trie:  # the string-end tokens
                return [i for i in self.other if grammar.accepts_prefix(text + self.pieces[i])]
            return [
                i
                for first, ids in self.by_first.items()
                if grammar.accepts_prefix(text + bytes([first]))
                for i in ids
                if grammar.accepts_prefix(text + self.pieces[i])
            ]

        def plain_fitting(self, tail):
            return [i for i in self.plain if utf8_prefix_ok(tail + self.pieces[i])]

    return Scanning(tokenizer, [], 0)


def torch_mask(logits, allowed) -> None:
    """The mask as `generation._mask` built it before: ids read by `torch.tensor`."""
    import torch

    keep = torch.full_like(logits, float("-inf"))
    index = torch.tensor(list(allowed))
    keep[index] = logits[index]


def measure(
    repeats: int = 3, device: str = "cpu", n: int = 24, vocab_size: int = VOCAB_SIZE, documents: int = 20_000
) -> BenchResult:
    """Replay `n` gold calls through each variant; median ms per row and step."""
    import torch

    from lessons_lib.generation import RowRequest, _mask, _Row
    from lessons_lib.tools.calls import call_text
    from lessons_lib.tools.constrained import CallConstraint, CallGrammar
    from lessons_lib.tools.data import DEV_HANDWRITTEN_PATH, read_handwritten
    from lessons_lib.tools.schemas import tool_schemas

    if device != "cpu":
        return skipped_result(
            NAME, TITLE, "the constraint is Python on the CPU whatever the device: see cpu", GOAL, device
        )
    tok = stand_in_tokenizer(vocab_size, documents)
    schemas = tool_schemas()
    calls = [
        tok(call_text(ex.tool, ex.arguments), add_special_tokens=False).input_ids + [tok.eos_token_id]
        for ex in read_handwritten(DEV_HANDWRITTEN_PATH)[:n]
    ]
    steps = sum(len(ids) for ids in calls)
    logits = torch.randn(len(tok))

    def shipped_mask(lg, allowed) -> None:  # `_mask` on a decode row whose constraint returns `allowed`
        _mask(lg[None], [_Row(RowRequest([0], allowed_tokens=lambda _ids: allowed), 1, tok, set())])

    def replay(constraint, mask) -> list[list[int]]:
        seen = []
        for ids in calls:
            row = constraint.for_rows([CallGrammar(schemas)], 0, None)
            for k in range(len(ids)):
                allowed = row(0, torch.tensor(ids[:k]))
                mask(logits, allowed)
                seen.append(allowed)
        return seen

    answers: dict[str, list[list[int]]] = {}
    lists: list[list[int]] = []
    variants = [
        Variant("scan every token", lambda: answers.update(scan=replay(scanning_constraint(tok), torch_mask))),
        Variant(
            "token trie",
            lambda: answers.update(trie=replay(CallConstraint(tok, [], 0), shipped_mask)),
        ),
        Variant("mask only", lambda: [shipped_mask(logits, allowed) for allowed in lists]),
    ]
    lists.extend(replay(CallConstraint(tok, [], 0), lambda *_: None))
    clock = pick_clock(device)
    samples = time_alternating(variants, repeats, warmup=0, device=device, clock=clock)
    agreed = sum(sorted(a) == sorted(b) for a, b in zip(answers["scan"], answers["trie"]))
    if agreed != steps or len(answers["trie"]) != steps:
        raise AssertionError(f"the two constraints allowed the same tokens at {agreed} of {steps} steps only")
    per_step = {name: t * 1e3 / steps for name, t in medians(samples).items()}
    rows = [
        {"variant": name, "ms per row-step": ms, "spread": spread(samples[name]), "steps": steps}
        for name, ms in per_step.items()
    ]
    speedup = per_step["scan every token"] / per_step["token trie"]
    over_floor = per_step["token trie"] / per_step["mask only"]
    return BenchResult(
        name=NAME,
        title=TITLE,
        device=device,
        rows=rows,
        ratio=speedup,
        ratio_label="scan every token / token trie, ms per row-step",
        goal=GOAL,
        goal_met=speedup >= 5,
        clock=clock,
        plot_values=per_step,
        plot_label="ms per row and decoding step (lower is better)",
        extra={"over_floor_x": over_floor, "vocabulary": len(tok), "steps_agreed": agreed},
        notes=[
            f"{len(calls)} gold calls of hand-written dev requests replayed token by token ({steps} steps), "
            f"tool_choice='required' without quoting, a fresh constraint per run (cold caches); vocabulary: a "
            f"{len(tok)}-token byte-level BPE trained on the course corpus, standing in for TinyLlama's 32,000 and "
            "Mistral's 32,768 SentencePiece tokens; both constraints allowed the same tokens at every step",
            f"the trie is {over_floor:.1f}x the mask-only floor; on a GPU this cost is paid per row and step on "
            "top of the forward pass",
        ],
    )


def main(argv: list[str] | None = None) -> list[BenchResult]:
    """Command-line entry point."""
    return main_for(measure, __doc__.splitlines()[0], default_repeats=3, argv=argv)


if __name__ == "__main__":
    main()
