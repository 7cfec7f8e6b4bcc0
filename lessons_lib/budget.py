"""What a run costs before you start it: training time from padded tokens per step, GPU memory per lesson."""

from __future__ import annotations

import errno
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from .adapters import TOOLS
from .i18n import current, plural_ru, tr
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


def tokens_per_step(profile: Profile, lengths: list[int], rows: tuple[int, int] | None = None) -> float:
    """Padded tokens one optimizer step processes: batch size × accumulation × padded row length (`rows`: the
    (batch size, accumulation) of a recipe other than the profile's, see `step_rows`)."""
    batch, accumulation = rows or (profile.batch_size, profile.grad_accum)
    return batch * accumulation * padded_length(lengths, batch)


def step_rows(name: str, profile: Profile) -> tuple[int, int]:
    """(batch size, accumulation) an artifact trains with: the tool adapter's own recipe, else the profile's."""
    if name == TOOLS:
        from .tools.adapter import tool_recipe

        recipe = tool_recipe(profile)
        return recipe.batch_size, recipe.grad_accum
    return profile.batch_size, profile.grad_accum


def estimate_seconds(
    profile: Profile,
    steps: int,
    lengths: list[int],
    tokens_per_second: float | None = None,
    rows: tuple[int, int] | None = None,
) -> float | None:
    """Training time from padded tokens per step and a tokens/s rate (default the profile's; None without one)."""
    rate = tokens_per_second or profile.train_tokens_per_second
    if not rate:
        return None
    return steps * tokens_per_step(profile, lengths, rows) / rate


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
    if name == TOOLS:  # rendered with the tools the template shows, uncut (see tools.adapter.training_length)
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
        return rehearsal_note()
    return describe_lengths(profile, steps, sample_lengths(name, profile), step_rows(name, profile))


def rehearsal_note() -> str:
    """What a CPU rehearsal's time estimate says."""
    return tr(en="a CPU rehearsal: seconds", ru="репетиция на CPU: секунды")


def describe_lengths(profile: Profile, steps: int, lengths: list[int], rows: tuple[int, int] | None = None) -> str:
    """The estimate sentence for `steps` steps over rows of these token lengths (rehearsal and no-rate cases too;
    `rows` as in `tokens_per_step`)."""
    if profile.rehearsal:
        return rehearsal_note()
    seconds = estimate_seconds(profile, steps, lengths, rows=rows)
    if seconds is None:
        return tr(en="no time estimate for this profile", ru="для этого профиля нет оценки времени")
    return estimate_sentence(seconds, tokens_per_step(profile, lengths, rows), profile)


def duration(seconds: float) -> str:
    """'about 40 s' under a minute and a half, else 'about N min' (in the course language)."""
    if seconds < 90:
        return tr(en=f"about {max(1, round(seconds))} s", ru=f"около {max(1, round(seconds))} с")
    minutes = round(seconds / 60)
    return tr(en=f"about {minutes} min", ru=f"около {minutes} мин")


def estimate_sentence(seconds: float, tokens: float, profile: Profile) -> str:
    """'about N min: T padded tokens per step at ~R tokens/s (measured | assumed)' in the course language."""
    rate, measured = profile.train_tokens_per_second, profile.train_speed_measured
    return tr(
        en=f"{duration(seconds)}: {tokens:.0f} padded tokens per step at ~{rate:.0f} tokens/s "
        f"({'measured' if measured else 'assumed, not measured'})",
        ru=f"{duration(seconds)}: {tokens:.0f} токенов с паддингом на шаг при ~{rate:.0f} токенов/с "
        f"({'измерено' if measured else 'предположение, не измерено'})",
    )


# ------------------------------------------------------------------ what a standalone notebook trains first
def router_step_tokens(profile: Profile) -> float:
    """Padded tokens one router training step processes (its batch of prompts, as router.learned trains it)."""
    from .models import load_tokenizer
    from .recipes import ROUTER_BATCH
    from .router.data import training_rows
    from .router.encode import router_texts

    tok = load_tokenizer(profile)
    texts = router_texts(tok, [r["text"] for r in training_rows(16)])
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    return ROUTER_BATCH * padded_length(lengths, ROUTER_BATCH)


def artifact_seconds(name: str, profile: Profile, steps: int) -> float | None:
    """Estimated seconds to train a course artifact for `steps` steps (None: a rehearsal, or no rate)."""
    rate = profile.train_tokens_per_second
    if profile.rehearsal or not rate:
        return None
    if name == "router":
        return steps * router_step_tokens(profile) / rate
    return estimate_seconds(profile, steps, sample_lengths(name, profile), rows=step_rows(name, profile))


def describe_plan(plan: dict[str, int], profile: Profile) -> str:
    """One line for what a notebook trains before its lesson: each artifact's steps and minutes, and the sum."""
    seconds = {name: artifact_seconds(name, profile, steps) for name, steps in plan.items()}
    if any(s is None for s in seconds.values()):
        parts = ", ".join(
            tr(en=f"{name} {steps} steps", ru=f"{name} {steps} {plural_ru(steps, 'шаг', 'шага', 'шагов')}")
            for name, steps in plan.items()
        )
        why = rehearsal_note() if profile.rehearsal else tr(en="no time estimate", ru="оценки времени нет")
        return f"{parts}: {why}"
    parts = ", ".join(
        tr(
            en=f"{name} {steps} steps ≈ {seconds[name] / 60:.1f} min",
            ru=f"{name} {steps} {plural_ru(steps, 'шаг', 'шага', 'шагов')} ≈ {seconds[name] / 60:.1f} мин",
        )
        for name, steps in plan.items()
    )
    total, rate = sum(seconds.values()), profile.train_tokens_per_second
    basis = (
        tr(en="measured", ru="измерено")
        if profile.train_speed_measured
        else tr(en="assumed, not measured", ru="предположение, не измерено")
    )
    return tr(
        en=f"{parts}; in all {duration(total)} at ~{rate:.0f} padded tokens/s ({basis}), plus loading the base "
        "model for each",
        ru=f"{parts}; всего {duration(total)} при ~{rate:.0f} токенов с паддингом/с ({basis}), плюс загрузка "
        "базовой модели для каждого",
    )


# ------------------------------------------------------------------ disk: merged full checkpoints
def merged_bytes(profile: Profile) -> float:
    """Bytes of one merged full checkpoint: the real model in fp16 (t4/7b), else the tiny weights' files (tiny and
    the rehearsals, which merge the tiny model)."""
    if not profile.tiny_weights:
        return MODEL_SIZES[profile.name].gigabytes("fp16") * GB
    from .models import model_source

    files = sum(p.stat().st_size for p in Path(model_source(profile)).rglob("*.safetensors"))
    return files if profile.dtype == "float32" else files / 2  # the tiny files are fp32; a rehearsal merges in fp16


def free_bytes(folder: Path) -> int:
    """Free bytes on the disk that holds `folder` (or its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


def disk_size(n: float) -> str:
    """Bytes as "1.2 GB" (or "8.7 MB" under a gigabyte), in the course language."""
    if n >= GB:
        return tr(en=f"{n / GB:.1f} GB", ru=f"{n / GB:.1f} ГБ")
    return tr(en=f"{n / 1e6:.1f} MB", ru=f"{n / 1e6:.1f} МБ")


def check_free_space(folder: Path, needed: float, what: str) -> str:
    """A line saying `what` needs `needed` bytes in `folder` and how much is free; OSError when it does not fit."""
    free = free_bytes(folder)
    line = tr(
        en=f"{what}: about {disk_size(needed)} in {folder}; {disk_size(free)} free there",
        ru=f"{what}: около {disk_size(needed)} в {folder}; свободно там {disk_size(free)}",
    )
    if free < needed * 1.1:  # a tenth more: the tokenizer, the config and the file system's own overhead
        raise OSError(
            errno.ENOSPC,
            line
            + tr(
                en=". Not enough: free some space on that disk (old folders in it, models you no longer use in the "
                "Hugging Face cache under ~/.cache/huggingface) and rerun this cell.",
                ru=". Этого мало: освободите место на этом диске (старые папки в нём, больше не нужные модели в кэше "
                "Hugging Face в ~/.cache/huggingface) и запустите ячейку снова.",
            ),
        )
    return line
