"""LoRA fine-tuning with TRL: the configs a profile implies, and a resumable train-one-adapter loop."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import env
from .data import sft_rows
from .profiles import Profile

CHECKPOINTS = "checkpoints"


class DataError(ValueError):
    """Training data that cannot be used as is."""


def lora_config(profile: Profile, r: int | None = None, alpha: int | None = None, dropout: float = 0.05,
                target_modules: str | list[str] = "all-linear", task_type: str = "CAUSAL_LM"):
    """A LoraConfig with the profile's rank and alpha (scale = alpha / r)."""
    from peft import LoraConfig

    return LoraConfig(r=r or profile.lora_r, lora_alpha=alpha or profile.lora_alpha, lora_dropout=dropout,
                      target_modules=target_modules, task_type=task_type, bias="none")


def sft_config(profile: Profile, output_dir: str | Path, max_steps: int | None = None, save_steps: int | None = None,
               save_total_limit: int = 2, seed: int = 0, **overrides):
    """An SFTConfig tuned for the profile: fp32 on CPU, fp16 on a T4, bf16 only where native."""
    import torch
    from trl import SFTConfig

    on_gpu = env.cuda_available()
    dtype = profile.torch_dtype()
    steps = max_steps or profile.train_steps
    kwargs = dict(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=profile.batch_size,
        gradient_accumulation_steps=profile.grad_accum,
        learning_rate=profile.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, steps // 20),
        max_length=profile.max_length,
        packing=False,
        gradient_checkpointing=profile.gradient_checkpointing and on_gpu,
        fp16=on_gpu and dtype == torch.float16,
        bf16=on_gpu and dtype == torch.bfloat16,
        use_cpu=not on_gpu,
        logging_steps=max(1, steps // 20),
        save_strategy="steps",
        save_steps=save_steps or max(10, steps // 4),
        save_total_limit=save_total_limit,
        report_to="none",
        seed=seed,
        dataloader_pin_memory=on_gpu,
    )
    kwargs.update(overrides)
    return SFTConfig(**kwargs)


def check_rows(rows: list[dict]) -> None:
    """Raise DataError naming the first bad row when rows are not prompt/completion chats."""
    if not rows:
        raise DataError("The training set is empty: give at least one prompt/completion row.")
    for i, row in enumerate(rows):
        completion = row.get("completion") if isinstance(row, dict) else None
        if not isinstance(completion, list) or not any(
                isinstance(m, dict) and m.get("role") == "assistant" and str(m.get("content", "")).strip()
                for m in completion):
            raise DataError(f"Row {i} has no assistant turn to learn from: {str(row)[:200]}. "
                            "Each row needs 'prompt' (user messages) and 'completion' (an assistant message).")
        if not isinstance(row.get("prompt"), list) or not row["prompt"]:
            raise DataError(f"Row {i} has no prompt messages: {str(row)[:200]}.")


def check_lengths(rows: list[dict], tokenizer, max_length: int) -> None:
    """Raise DataError when a prompt alone fills max_length, so nothing of the answer would be learned."""
    for i, row in enumerate(rows):
        prompt_ids = tokenizer.apply_chat_template(row["prompt"], tokenize=True, add_generation_prompt=True)
        if hasattr(prompt_ids, "keys"):
            prompt_ids = prompt_ids["input_ids"]
        if len(prompt_ids) >= max_length:
            raise DataError(f"Row {i}: the prompt is {len(prompt_ids)} tokens but max_length is {max_length}, "
                            "so no answer token would be trained. Raise max_length or shorten the prompt.")


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest checkpoint-N folder under output_dir/checkpoints, if any."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(output_dir) / CHECKPOINTS
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


@dataclass
class TrainResult:
    """What a training run produced."""

    adapter_dir: Path
    steps: int
    resumed_from: str | None
    seconds: float
    log_history: list[dict] = field(default_factory=list)

    def losses(self) -> list[tuple[int, float]]:
        """(step, loss) pairs from the trainer's log."""
        return [(h["step"], h["loss"]) for h in self.log_history if "loss" in h]


def train_adapter(model, tokenizer, rows: list[dict], profile: Profile, output_dir: str | Path,
                  max_steps: int | None = None, save_steps: int | None = None, resume: bool = True,
                  callbacks: list | None = None, lora=None, seed: int = 0, **config_overrides) -> TrainResult:
    """Train one LoRA adapter on prompt/completion rows with SFTTrainer; resume from the last checkpoint.

    The adapter (only) is saved to `output_dir`; checkpoints go to `output_dir/checkpoints`.
    """
    from datasets import Dataset
    from trl import SFTTrainer

    check_rows(rows)
    check_lengths(rows, tokenizer, profile.max_length)
    output_dir = Path(output_dir)
    args = sft_config(profile, output_dir / CHECKPOINTS, max_steps, save_steps, seed=seed, **config_overrides)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=lora or lora_config(profile), callbacks=callbacks)
    resume_from = last_checkpoint(output_dir) if resume else None
    start = time.time()
    trainer.train(resume_from_checkpoint=resume_from)
    trainer.model.save_pretrained(output_dir)
    return TrainResult(output_dir, trainer.state.global_step, resume_from, time.time() - start,
                       list(trainer.state.log_history))


def train_domain(domain: str, profile: Profile, output_dir: str | Path, n_rows: int = 2000,
                 max_steps: int | None = None, seed: int = 0, log=print, **kwargs) -> TrainResult:
    """Load a fresh base and train the adapter for one course domain (what the adapter loop calls)."""
    from .models import load_base, load_tokenizer

    base, tok = load_base(profile, log=log), load_tokenizer(profile)
    result = train_adapter(base, tok, sft_rows(domain, n_rows, "train", seed), profile, output_dir,
                           max_steps=max_steps, seed=seed, **kwargs)
    log(f"{domain}: {result.steps} steps in {result.seconds:.0f}s -> {output_dir}")
    return result


def write_json(path: Path, payload: dict) -> None:
    """Write a small JSON file (UTF-8, indented)."""
    Path(path).write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
