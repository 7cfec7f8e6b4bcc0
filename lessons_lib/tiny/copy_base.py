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
from dataclasses import dataclass
from pathlib import Path

from ..cli import CourseArgumentParser
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


SHAPE_KEYS = ("hidden_size", "num_hidden_layers", "intermediate_size")  # what --shape may change


def fresh_model(tokenizer_dir: Path, seed: int, shape: dict[str, int] | None = None):
    """A randomly initialised model with the shipped model's config, or that config with another `shape`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig.from_pretrained(tokenizer_dir)
    for key, value in (shape or {}).items():
        if key not in SHAPE_KEYS or not isinstance(value, int) or value < 1:
            raise ValueError(f"shape: {key}={value!r}; give positive whole numbers for {', '.join(SHAPE_KEYS)}.")
        setattr(config, key, value)
    if config.hidden_size % config.num_attention_heads:
        raise ValueError(
            f"hidden_size {config.hidden_size} is not a multiple of the {config.num_attention_heads} attention heads."
        )
    config.head_dim = config.hidden_size // config.num_attention_heads
    return LlamaForCausalLM(config)


def parse_shape(text: str) -> dict[str, int]:
    """argparse type for --shape: 'hidden_size=256,num_hidden_layers=6' -> a dict of whole numbers."""
    shape = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key.strip() not in SHAPE_KEYS or not value.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f"expected KEY=N[,KEY=N] with KEY in {', '.join(SHAPE_KEYS)}, got {text!r}"
            )
        shape[key.strip()] = int(value)
    return shape


def start_model(base_dir: Path, seed: int, init: Path | None = None, shape: dict[str, int] | None = None):
    """The model to train: new (`init` None; in `shape` if given), or a saved checkpoint to train further."""
    if init is None:
        return fresh_model(base_dir, seed, shape)
    if shape:
        raise ValueError("--shape applies to a new model; --init continues a checkpoint in its own shape. Drop one.")
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
    shape: dict[str, int] | None = None,
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
    model = start_model(base_dir, seed, init, shape)
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
        "shape": {k: getattr(model.config, k) for k in SHAPE_KEYS},
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


@dataclass(frozen=True)
class Stage:
    """One pretraining run of a base's recipe (the arguments of `train`, and the thread count it was run with)."""

    out: Path
    steps: int
    lr: float
    seed: int
    threads: int
    ckpt_every: int
    init: Path | None = None


# The shipped base: 10.2M tokens from scratch, then 16.4M more at half the learning rate. It was built with one thread,
# then two; on torch 2.13 CPU the thread count leaves the weights bit for bit the same (checked at 40, 100, 200 and 300
# steps of the first stage), so both stages now take two: a first-stage step takes 0.25 s instead of 0.44 s (200-step
# runs side by side on 2 CPUs), ~38 min -> ~22 min.
SHIPPED_STAGES = (
    Stage(Path("build/tiny-model-v2"), 5000, 3e-3, 0, 2, 1000),
    Stage(Path("build/tiny-model-v2b"), 8000, 1.5e-3, 1, 2, 4000, Path("build/tiny-model-v2/final")),
)
SHIPPED_FILES = ("model.safetensors", "config.json", "generation_config.json", "build_facts.json")


def build_shipped(target: Path = TINY_MODEL_DIR, stages=SHIPPED_STAGES, log=print) -> dict:
    """Run the shipped recipe's stages and put the final weights into `target` (its tokenizer stays)."""
    import torch

    for stage in stages:
        torch.set_num_threads(stage.threads)
        log(f"stage {stage.out}: {stage.steps} steps, lr {stage.lr}, {stage.threads} thread(s)")
        train(
            stage.out, stage.steps, lr=stage.lr, seed=stage.seed, ckpt_every=stage.ckpt_every, init=stage.init, log=log
        )
    final = stages[-1].out / "final"
    for name in SHIPPED_FILES:
        shutil.copy2(final / name, Path(target) / name)
    return json.loads((final / "build_facts.json").read_text())


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = CourseArgumentParser(prog="python -m lessons_lib.tiny.copy_base", description=__doc__)
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
    p.add_argument(
        "--shape",
        type=parse_shape,
        default=None,
        help="a new model of another size, e.g. hidden_size=256,num_hidden_layers=6",
    )
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
        shape=a.shape,
    )
    print(json.dumps(facts, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
