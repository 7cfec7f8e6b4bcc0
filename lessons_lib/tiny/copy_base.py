"""Pretrain a tiny base that copies: the shipped shape and tokenizer, the copy-heavy corpus, into build/.

`python -m lessons_lib.tiny.copy_base --out build/tiny-model-v2 --steps 6000` trains from scratch with a
warmup-stable-decay schedule (so checkpoints taken before the decay are comparable) and saves a loadable
model folder every `--ckpt-every` steps. Deterministic for a given seed and thread count; `--time-budget`
only stops early (it says so in the facts), it never changes what a step does.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from ..paths import TINY_MODEL_DIR
from . import copy_corpus
from .build import pack


def lr_factor(step: int, steps: int, warmup_frac: float = 0.02, decay_frac: float = 0.2) -> float:
    """Warmup, a flat stretch, then linear decay to 10% over the last `decay_frac` of the steps."""
    warmup = max(1, int(steps * warmup_frac))
    decay_start = int(steps * (1 - decay_frac))
    if step < warmup:
        return (step + 1) / warmup
    if step < decay_start:
        return 1.0
    return 1.0 - 0.9 * (step - decay_start) / max(1, steps - decay_start)


def fresh_model(tokenizer_dir: Path, seed: int):
    """A randomly initialised model with the shipped model's exact config."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig.from_pretrained(tokenizer_dir)
    return LlamaForCausalLM(config)


def start_model(base_dir: Path, seed: int, init: Path | None = None):
    """The model to train: random (`init` None), or a saved checkpoint of the same shape to train further."""
    if init is None:
        return fresh_model(base_dir, seed)
    from transformers import LlamaConfig, LlamaForCausalLM

    init = Path(init)
    if not (init / "config.json").is_file():
        raise FileNotFoundError(
            f"--init {init}: no config.json there; pass a checkpoint folder such as build/tiny-model-v2/final."
        )
    shape = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
    want, got = LlamaConfig.from_pretrained(base_dir), LlamaConfig.from_pretrained(init)
    differs = [k for k in shape if getattr(want, k) != getattr(got, k)]
    if differs:
        raise ValueError(
            f"--init {init} has another shape ({', '.join(differs)} differ from {base_dir}); "
            "start from a checkpoint of this model."
        )
    return LlamaForCausalLM.from_pretrained(init)


def save(model, tok, folder: Path, facts: dict) -> None:
    """A folder that loads like assets/tiny-model (config, weights, tokenizer, template, facts)."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "build_facts.json").write_text(json.dumps(facts, indent=2))


def train(
    out: Path,
    steps: int,
    batch_size: int = 8,
    block: int = 256,
    lr: float = 3e-3,
    seed: int = 0,
    tokens_per_doc: float = 100.0,
    course_share: float = 0.3,
    induction_share: float = 0.12,
    ckpt_every: int = 1000,
    time_budget: float | None = None,
    base_dir: Path = TINY_MODEL_DIR,
    log=print,
    init: Path | None = None,
) -> dict:
    """Pretrain from scratch on enough fresh copy-corpus documents for `steps` without repeating a block."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig

    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(base_dir)
    n_docs = int(steps * batch_size * block / tokens_per_doc * 1.05) + 100
    docs = copy_corpus.documents(
        n_docs, seed, copy_corpus.word_vocab(tok), course_share, induction_share=induction_share
    )
    blocks = pack(tok, docs, block)
    log(f"corpus: {len(docs)} documents, {blocks.numel():,} tokens in {len(blocks)} blocks ({time.time() - t0:.0f}s)")
    model = start_model(base_dir, seed, init)
    model.generation_config = GenerationConfig(
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, do_sample=False
    )
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(blocks), generator=gen)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps))
    facts = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "corpus_tokens": blocks.numel(),
        "documents": len(docs),
        "course_share": course_share,
        "induction_share": induction_share,
        "steps_planned": steps,
        "batch_size": batch_size,
        "block": block,
        "lr": lr,
        "seed": seed,
        "init": str(init) if init else None,
        "threads": torch.get_num_threads(),
    }
    out = Path(out)
    model.train()
    start, recent, step = time.time(), [], 0
    for step in range(steps):
        pos = (step * batch_size) % len(blocks)
        idx = order[pos : pos + batch_size]
        if len(idx) < batch_size:
            order = torch.randperm(len(blocks), generator=gen)
            idx = order[:batch_size]
        batch = blocks[idx]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        recent = (recent + [loss.item()])[-50:]
        done = step + 1
        if done % 50 == 0 or done == steps:
            rate = done * batch.numel() / (time.time() - start)
            log(
                f"step {done}/{steps} tokens {done * batch.numel():,} loss {sum(recent) / len(recent):.3f} "
                f"{rate:,.0f} tok/s {time.time() - t0:.0f}s"
            )
        over = time_budget is not None and time.time() - t0 > time_budget
        if done % ckpt_every == 0 or done == steps or over:
            model.eval()
            step_facts = dict(
                facts,
                steps=done,
                tokens_seen=done * batch_size * block,
                loss_last50=round(sum(recent) / len(recent), 4),
                seconds=round(time.time() - t0, 1),
                stopped_by_time_budget=over and done < steps,
            )
            save(model, tok, out / f"ckpt-{done:06d}", step_facts)
            log(f"checkpoint {out / f'ckpt-{done:06d}'}")
            model.train()
        if over:
            break
    final = out / "final"
    shutil.rmtree(final, ignore_errors=True)
    shutil.copytree(out / f"ckpt-{step + 1:06d}", final)
    return json.loads((final / "build_facts.json").read_text())


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(prog="python -m lessons_lib.tiny.copy_base", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("build/tiny-model-v2"))
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--course-share", type=float, default=0.3)
    p.add_argument("--induction-share", type=float, default=0.12, help="share of copy documents that are pure repeats")
    p.add_argument("--ckpt-every", type=int, default=1000)
    p.add_argument("--time-budget", type=float, default=None, help="seconds; stop early and save if exceeded")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--init", type=Path, default=None, help="train this checkpoint further instead of a random model")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    facts = train(
        a.out,
        a.steps,
        a.batch_size,
        lr=a.lr,
        seed=a.seed,
        course_share=a.course_share,
        induction_share=a.induction_share,
        ckpt_every=a.ckpt_every,
        time_budget=a.time_budget,
        log=lambda m: print(m, flush=True),
        init=a.init,
    )
    print(json.dumps(facts, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
