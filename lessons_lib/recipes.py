"""A run's settings as data: frozen SFT, router and tool-adapter recipes, and a check that two configs agree.

A profile reaches each recipe (`profile.sft_recipe`, `profile.router_recipe`, `profile.tool_recipe`); the code that
trains reads its settings from there, and a notebook that spells a recipe out compares its config with the
library's on every field (`recipe_differences`), so a knob added on one side cannot go unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass

from .i18n import tr


@dataclass(frozen=True)
class SFTRecipe:
    """What `train.sft_config` and `train.lora_config` build from: one domain adapter's training settings."""

    learning_rate: float
    batch_size: int  # rows per forward/backward pass
    grad_accum: int  # passes per optimizer step
    max_length: int  # tokens per row (prompt + answer)
    lora_r: int
    lora_alpha: int
    gradient_checkpointing: bool  # on the GPU path only (see Profile.gpu_path)
    packing_strategy: str | None  # None: pad each batch; else TRL's packing_strategy
    lora_dropout: float = 0.05
    target_modules: str = "all-linear"
    lr_scheduler_type: str = "cosine"
    completion_only_loss: bool = True  # loss on the assistant's answer only (prompt-completion rows)
    save_total_limit: int = 2  # checkpoints kept

    @staticmethod
    def warmup_steps(steps: int) -> int:
        """Learning-rate warmup: the first 5% of the steps."""
        return max(1, steps // 20)

    @staticmethod
    def logging_steps(steps: int) -> int:
        """How often the loss is recorded: 20 points per run."""
        return max(1, steps // 20)

    @staticmethod
    def save_steps(steps: int) -> int:
        """Checkpoint every quarter of the run (the most a disconnect costs), at least 10 steps apart.

        A checkpoint is a fixed-cost write (adapter + optimizer state, to Drive on Colab): below 40 steps (demos,
        rehearsals) the floor keeps saving from dominating a run whose loss would cost seconds anyway.
        """
        return max(10, steps // 4)


# The shipped tiny router's recipe (`python -m lessons_lib.router train`), also what load_router trains.
ROUTER_STEPS = 100
ROUTER_LEARNING_RATE = 5e-3  # tuned on the tiny profile; other profiles scale it as their SFT learning rate
ROUTER_BATCH = 32
ROUTER_TUNED_ON = "tiny"


@dataclass(frozen=True)
class RouterRecipe:
    """The learned router's LoRA (SEQ_CLS) and optimizer settings on one profile."""

    steps: int
    learning_rate: float
    batch_size: int
    lora_r: int
    lora_alpha: int
    lora_dropout: float = 0.1
    target_modules: str = "all-linear"


# The shipped tiny tool-adapter recipe, chosen on the dev split (n=120, correct tool / exact args; dev then still
# used training names): 240 steps on 1000 requests 0.93 / 0.00; with composed phrasings 480 steps on 2000 requests
# 0.95 / 0.27 (r32: 0.95 / 0.00), 960 on 4000 0.99 / 0.08, 1440 on 6000 1.00 / 0.45. On today's dev (made-up
# names, like held-out's unseen ones) it scores 0.93 / 0.01: copying unseen text is what it lacks.
TOOL_RANK = 16
TOOL_LEARNING_RATE = 5e-3
TOOL_BATCH_SIZE = 8
# The tiny model never saw tool-call text: with LoRA alone its output layer keeps predicting its old words and
# training crawls (loss 1.7 after 150 steps; r32 at lr 2e-2 or r64 at lr 1e-2 still ~5 after 60-100 steps); also
# training lm_head gets there in 40 steps. LoRA on lm_head itself is no way out: TRL's SFTTrainer refuses it (it
# computes log-probs from lm_head.weight directly, so LoRA there never trains). Tied embeddings mean PEFT saves an
# untied copy of lm_head (1.5 MB) in the adapter.
TOOL_MODULES_TO_SAVE = ("lm_head",)


@dataclass(frozen=True)
class ToolRecipe:
    """LoRA and optimizer settings for training the tool adapter on one profile."""

    rank: int
    alpha: int
    learning_rate: float
    batch_size: int
    grad_accum: int
    modules_to_save: tuple[str, ...] | None = None
    lora_dropout: float = 0.05
    target_modules: str = "all-linear"


TINY_TOOL_RECIPE = ToolRecipe(TOOL_RANK, 2 * TOOL_RANK, TOOL_LEARNING_RATE, TOOL_BATCH_SIZE, 1, TOOL_MODULES_TO_SAVE)

# Fields two configs may differ in without being different recipes: where they are written, and transformers'
# derived bookkeeping.
PLACE_FIELDS = ("output_dir", "logging_dir")


def _plain(value):
    """A value as compared: sequences by their items (a tuple equals the list with the same items), sets sorted."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(map(str, value))
    return value


def recipe_differences(ours, library, ignore: tuple[str, ...] = ()) -> dict[str, tuple]:
    """The fields whose values differ between two configs of one type, as {field: (ours, library's)}.

    Compares every dataclass field (SFTConfig, LoraConfig, the recipes here), except where they are written
    (PLACE_FIELDS) and the fields in `ignore`, so a knob added to either side shows up. Assert it is empty.
    """
    if type(ours) is not type(library) or not is_dataclass(ours):
        raise TypeError(
            tr(
                en=f"compare two configs of one dataclass type, got {type(ours).__name__} and "
                f"{type(library).__name__}.",
                ru=f"сравнивайте две конфигурации одного типа dataclass, а получены {type(ours).__name__} и "
                f"{type(library).__name__}.",
            )
        )
    unknown = set(ignore) - {f.name for f in fields(ours)}
    if unknown:
        raise ValueError(
            tr(
                en=f"ignore names no field of {type(ours).__name__}: {sorted(unknown)}.",
                ru=f"в ignore указаны поля, которых нет в {type(ours).__name__}: {sorted(unknown)}.",
            )
        )
    skip = set(PLACE_FIELDS) | set(ignore)
    return {
        f.name: (getattr(ours, f.name), getattr(library, f.name))
        for f in fields(ours)
        if f.name not in skip and _plain(getattr(ours, f.name)) != _plain(getattr(library, f.name))
    }
