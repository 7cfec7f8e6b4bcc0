"""What a run costs before you start it: training time from padded tokens per step, GPU memory per lesson."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .i18n import current, tr
from .profiles import Profile

GB = 1e9
T4_MEMORY_GB = 15.0  # what a Colab T4 offers (about 14.7 GB usable)


@dataclass(frozen=True)
class ModelSize:
    """Parameter counts of a real base model (embedding + lm_head stay 16-bit under bitsandbytes 4-bit)."""

    params: float
    embedding_params: float  # input embeddings + untied lm_head

    def gigabytes(self, precision: str) -> float:
        """Weight bytes in GB for "4bit" (NF4 + double quantization, ~0.5 byte/param) or "fp16"."""
        if precision == "fp16":
            return 2 * self.params / GB
        quantized = self.params - self.embedding_params
        return (0.5 * quantized + 2 * self.embedding_params) / GB


MODEL_SIZES = {
    "t4": ModelSize(1.10e9, 2 * 32000 * 2048),  # TinyLlama-1.1B-Chat
    "7b": ModelSize(7.25e9, 2 * 32768 * 4096),  # Mistral-7B-Instruct-v0.3
}

FP16_IF_IT_FITS = "fp16 if it fits"  # a precision: fp16 where the model's fp16 weights fit a T4, else 4bit

# What each lesson holds on the GPU at its peak, as (what, precision, how many); bases are freed in between.
LESSON_PEAKS = {
    "01": [("base being trained (QLoRA)", "4bit", 1), ("LoRA + optimizer + activations", "train", 1)],
    "02": [("base + 3 adapters", "4bit", 1), ("fresh base for the reload timing", "4bit", 1)],
    # 03 merges into an fp16 copy of the base where one fits a T4; on 7b it mixes on the 4-bit base and merges
    # the checkpoint files on the CPU (one 2 GB shard in RAM at a time), reloading the merged model in 4-bit.
    "03": [("base + adapters to mix and merge", FP16_IF_IT_FITS, 1), ("merged model", FP16_IF_IT_FITS, 1)],
    "04": [
        ("router's classifier base (to the end)", "4bit", 1),
        ("router training, or the 2nd base (embeddings, then generation)", "train", 1),
    ],
    "05": [("base training the tool adapter", "4bit", 1), ("LoRA + optimizer + activations", "train", 1)],
    "06": [("base + 3 adapters (the notebook's, freed, then the server's)", "4bit", 1)],
}
PEAKS_RU = {  # LESSON_PEAKS' rows as the Russian edition prints them (GLOSSARY.md terms)
    "base being trained (QLoRA)": "обучаемая базовая модель (QLoRA)",
    "LoRA + optimizer + activations": "LoRA + оптимизатор + активации",
    "base + 3 adapters": "базовая модель + 3 адаптера",
    "fresh base for the reload timing": "свежая базовая модель для замера перезагрузки",
    "base + adapters to mix and merge": "базовая модель + адаптеры для смешивания и слияния",
    "merged model": "объединённая модель",
    "router's classifier base (to the end)": "база классификатора маршрутизатора (до конца урока)",
    "router training, or the 2nd base (embeddings, then generation)": (
        "обучение маршрутизатора или 2-я базовая модель (эмбеддинги, затем генерация)"
    ),
    "base training the tool adapter": "базовая модель, обучающая адаптер инструментов",
    "base + 3 adapters (the notebook's, freed, then the server's)": (
        "базовая модель + 3 адаптера (ноутбука — освобождена, затем сервера)"
    ),
}
TRAINING_OVERHEAD_GB = {"t4": 2.5, "7b": 5.0}  # activations with checkpointing, LoRA grads, AdamW states (rough)


def size_of(profile: Profile) -> ModelSize | None:
    """The real model's size for a GPU profile or its rehearsal; None for tiny."""
    return MODEL_SIZES.get(profile.rehearsal_of or profile.name)


def lesson_memory(profile: Profile, lesson: str) -> list[tuple[str, float]]:
    """(what, GB) rows of a lesson's peak GPU memory on the profile's real model (empty for tiny)."""
    size = size_of(profile)
    if size is None:
        return []
    kind = profile.rehearsal_of or profile.name
    rows = []
    for what, precision, count in LESSON_PEAKS.get(lesson, []):
        if precision == FP16_IF_IT_FITS:
            precision = "fp16" if fits_t4(profile, "fp16") else "4bit"
        gigabytes = TRAINING_OVERHEAD_GB[kind] if precision == "train" else size.gigabytes(precision)
        rows.append((f"{what} [{precision}]" if precision != "train" else what, count * gigabytes))
    return rows


def memory_plan(profile: Profile, lesson: str) -> str:
    """The lesson's peak GPU memory as a small table, with a verdict against a T4's 15 GB."""
    rows = lesson_memory(profile, lesson)
    if not rows:
        return tr(
            en=f"{profile.name}: CPU profile, no GPU memory plan needed.",
            ru=f"{profile.name}: профиль для CPU, план памяти GPU не нужен.",
        )
    if current() == "ru":
        rows = [(_peak_ru(what), gb) for what, gb in rows]
    total = sum(gb for _, gb in rows)
    peak, gb_unit = tr(en="peak", ru="пик"), tr(en="GB", ru="ГБ")
    width = max(len(what) for what, _ in [*rows, (peak, 0)])
    lines = [f"{what.ljust(width)}  {gb:5.1f} {gb_unit}" for what, gb in rows]
    fits = total <= T4_MEMORY_GB
    verdict = tr(
        en=f"{'fits' if fits else 'does NOT fit'} a T4 ({T4_MEMORY_GB:.0f} GB)",
        ru=f"{'помещается' if fits else 'НЕ помещается'} в T4 ({T4_MEMORY_GB:.0f} ГБ)",
    )
    lines.append(f"{peak.ljust(width)}  {total:5.1f} {gb_unit} -> {verdict}")
    return "\n".join(lines)


def _peak_ru(what: str) -> str:
    """A memory-plan row in Russian; the precision tag ([4bit], [fp16]) stays."""
    text, _, tag = what.partition(" [")
    return PEAKS_RU.get(text, text) + (f" [{tag}" if tag else "")


def fits_t4(profile: Profile, precision: str, count: int = 1) -> bool:
    """Whether `count` copies of the profile's real model in `precision` fit a T4."""
    size = size_of(profile)
    return size is None or count * size.gigabytes(precision) <= T4_MEMORY_GB - 1.0


# ------------------------------------------------------------------ time from padded tokens
def padded_length(lengths: list[int], batch_size: int, trials: int = 200, seed: int = 0) -> float:
    """The mean padded row length of random batches (each batch pads to its longest row)."""
    if not lengths:
        return 0.0
    rng = random.Random(seed)
    return sum(max(rng.choices(lengths, k=batch_size)) for _ in range(trials)) / trials


def tokens_per_step(profile: Profile, lengths: list[int]) -> float:
    """Padded tokens one optimizer step processes: batch size × accumulation × padded row length."""
    return profile.batch_size * profile.grad_accum * padded_length(lengths, profile.batch_size)


def estimate_seconds(
    profile: Profile, steps: int, lengths: list[int], tokens_per_second: float | None = None
) -> float | None:
    """Training time from padded tokens per step and a tokens/s rate (default the profile's; None without one)."""
    rate = tokens_per_second or profile.train_tokens_per_second
    if not rate:
        return None
    return steps * tokens_per_step(profile, lengths) / rate


def implied_tflops(profile: Profile, tokens_per_second: float | None = None) -> float | None:
    """The sustained TFLOP/s a tokens/s rate implies for LoRA on the real model: ~6·N FLOPs per token.

    Forward 2·N, backward 2·N (activation gradients only: the frozen base needs no weight gradients), and 2·N
    more for the forward pass gradient checkpointing recomputes. None for the tiny profile or without a rate.
    """
    size, rate = size_of(profile), tokens_per_second or profile.train_tokens_per_second
    if size is None or not rate:
        return None
    return 6 * size.params * rate / 1e12


def row_lengths(rows: list[dict], tokenizer, max_length: int | None = None) -> list[int]:
    """Token lengths of prompt/completion rows as the trainer sees them: chat template applied, cut at max_length."""
    texts = [tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=False) for r in rows]
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    return [min(n, max_length) for n in lengths] if max_length else lengths


def sample_lengths(name: str, profile: Profile, n: int = 64) -> list[int]:
    """Token lengths of n training rows of an artifact, rendered with the profile's tokenizer."""
    from .models import load_tokenizer

    tok = load_tokenizer(profile)
    if name == "tools":  # rendered with the tools the template shows, uncut (see tools.adapter.training_length)
        from .tools.adapter import rendered_length
        from .tools.data import tool_sft_rows

        return [rendered_length(r, tok) for r in tool_sft_rows(n, tokenizer=tok)]
    from .data import sft_rows

    return row_lengths(sft_rows(name, n, "train", 0), tok, profile.max_length)


def describe_estimate(name: str, profile: Profile, steps: int) -> str:
    """A sentence with the honest time estimate for training an artifact on a profile."""
    if name == "router":  # the router's own loop (its batch, its texts) has its own estimate
        from .router.learned import describe_training

        return describe_training(profile, steps)
    if profile.rehearsal:
        return tr(en="a CPU rehearsal: seconds", ru="репетиция на CPU: секунды")
    lengths = sample_lengths(name, profile)
    seconds = estimate_seconds(profile, steps, lengths)
    if seconds is None:
        return tr(en="no time estimate for this profile", ru="для этого профиля нет оценки времени")
    return estimate_sentence(seconds, tokens_per_step(profile, lengths), profile)


def estimate_sentence(seconds: float, tokens: float, profile: Profile) -> str:
    """'about N min: T padded tokens per step at ~R tokens/s (measured | assumed)' in the course language."""
    minutes, rate = max(1, round(seconds / 60)), profile.train_tokens_per_second
    measured = profile.train_speed_measured
    return tr(
        en=f"about {minutes} min: {tokens:.0f} padded tokens per step at ~{rate:.0f} tokens/s "
        f"({'measured' if measured else 'assumed, not measured'})",
        ru=f"около {minutes} мин: {tokens:.0f} токенов с паддингом на шаг при ~{rate:.0f} токенов/с "
        f"({'измерено' if measured else 'предположение, не измерено'})",
    )
