"""The tiny course model's tokenizer, chat template and shape, and the first base (`build_base`).

assets/tiny-model's tokenizer and config come from here. Its weights no longer do: `build_base` pretrains on text
whose names come from fixed pools, and such a base recalls a pool name instead of copying the prompt's (probe
0.045); the shipped weights are `copy_base.SHIPPED_STAGES`, which reuse this tokenizer and shape.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

from . import corpus

SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<s>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]
VOCAB_SIZE = 2048

# Prefix-stable by design: the prompt with add_generation_prompt is a prefix of the full chat, and a
# finished chat ends with the eos token <|end|>, which is what TRL's completion-only loss needs.
CHAT_TEMPLATE = (
    "{%- if tools %}{{ '<|system|>\\nTools:' }}"
    "{%- for t in tools %}{% set f = t.function if t.function is defined else t %}{{ ' ' + f.name }}"
    "{%- if not loop.last %}{{ ';' }}{% endif %}{% endfor %}{{ '<|end|>\\n' }}{% endif %}"
    "{%- for m in messages %}{% if not loop.first %}{{ '\\n' }}{% endif %}{{ '<|' + m['role'] + '|>\\n' }}"
    "{%- if m['content'] is string %}{{ m['content'] }}{% endif %}"
    "{%- if m['tool_calls'] is defined and m['tool_calls'] %}"
    "{%- for c in m['tool_calls'] %}{% set f = c.function if c.function is defined else c %}"
    "{{ '{\"tool\": ' + (f.name | tojson) + ', \"arguments\": ' + (f.arguments | tojson) + '}' }}"
    "{%- endfor %}{% endif %}{{ '<|end|>' }}{% endfor %}"
    "{%- if add_generation_prompt %}{{ '\\n<|assistant|>\\n' }}{% endif %}"
)

MODEL_SHAPE = dict(
    hidden_size=192,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=512,
)


def build_tokenizer(texts: list[str]):
    """Train a byte-level BPE tokenizer on `texts` and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="<|end|>",
        pad_token="<|pad|>",
        clean_up_tokenization_spaces=False,
        model_max_length=MODEL_SHAPE["max_position_embeddings"],
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tokenizer_texts(docs: list[str], seed: int) -> list[str]:
    """Corpus documents plus course prompts, so both are tokenized compactly."""
    from .. import data

    prompts = [ex.prompt for d in data.DOMAINS for s in data.SPLITS for ex in data.examples(d, 200, s, seed)]
    return docs + prompts


def pack(tok, docs: list[str], block: int):
    """Concatenate documents separated by eos and cut them into equal blocks."""
    import torch

    ids: list[int] = []
    for enc in tok(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(tok.eos_token_id)
    n = len(ids) // block
    return torch.tensor(ids[: n * block], dtype=torch.long).view(n, block)


def pretrain(model, blocks, steps: int, batch_size: int, lr: float, seed: int, log=print) -> list[float]:
    """Plain next-token pretraining with AdamW, warmup and cosine decay; returns the loss curve."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    losses, start = [], time.time()
    order = torch.randperm(len(blocks), generator=gen)
    for step in range(steps):
        idx = order[(step * batch_size) % len(blocks) :][:batch_size]
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
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            rate = (step + 1) * batch.numel() / (time.time() - start)
            log(f"step {step:4d}/{steps}  loss {loss.item():.3f}  {rate:,.0f} tok/s")
    model.eval()
    return losses


def build_base(
    out_dir: Path,
    n_docs: int = 60000,
    steps: int = 900,
    batch_size: int = 16,
    block: int = 256,
    lr: float = 3e-3,
    seed: int = 0,
    log=print,
) -> dict:
    """Build tokenizer + pretrained tiny Llama into `out_dir`; returns build facts for the model card."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    random.seed(seed)
    torch.manual_seed(seed)
    t0 = time.time()
    docs = corpus.documents(n_docs, seed)
    tok = build_tokenizer(tokenizer_texts(docs, seed))
    blocks = pack(tok, docs, block)
    log(f"corpus: {len(docs)} documents, {blocks.numel():,} tokens in {len(blocks)} blocks of {block}")
    config = LlamaConfig(
        vocab_size=len(tok),
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        rope_theta=10000.0,
        **MODEL_SHAPE,
    )
    model = LlamaForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    log(f"model: {params:,} parameters")
    losses = pretrain(model, blocks, steps, batch_size, lr, seed, log)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, do_sample=False
    )
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    facts = {
        "parameters": params,
        "tokens_seen": steps * batch_size * block,
        "corpus_tokens": blocks.numel(),
        "documents": n_docs,
        "steps": steps,
        "final_loss": round(sum(losses[-20:]) / 20, 4),
        "seconds": round(time.time() - t0, 1),
        "seed": seed,
    }
    (out_dir / "build_facts.json").write_text(json.dumps(facts, indent=2))
    return facts
