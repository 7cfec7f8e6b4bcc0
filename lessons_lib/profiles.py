"""The three course profiles (tiny, t4, 7b) and how one is chosen."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import NamedTuple

from . import env
from .i18n import tr
from .paths import TINY_MODEL_DIR
from .recipes import (
    ROUTER_BATCH,
    ROUTER_LEARNING_RATE,
    ROUTER_STEPS,
    ROUTER_TUNED_ON,
    TINY_TOOL_RECIPE,
    RouterRecipe,
    SFTRecipe,
    ToolRecipe,
)

PROFILE_ENV_VAR = "LESSONS_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Everything that changes between a laptop CPU, a Colab T4 and a 7B run."""

    name: str
    model_id: str
    description: str
    load_in_4bit: bool
    max_length: int
    max_new_tokens: int
    train_steps: int
    batch_size: int
    grad_accum: int
    learning_rate: float
    lora_r: int
    lora_alpha: int
    gradient_checkpointing: bool
    eval_examples: int
    dtype: str = "auto"  # "float32", or "auto": fp16/bf16 chosen from the GPU's compute capability
    quick_train_steps: int = 60  # a notebook that finds no trained artifact trains a quick one with this many steps
    chat_template: str | None = None  # a template in assets/chat_templates replacing the tokenizer's own
    rehearsal_of: str | None = None  # the GPU profile whose code path this CPU profile rehearses
    train_tokens_per_second: float | None = None  # padded tokens/s for time estimates (an assumption on GPUs)
    # TRL packing: None pads each batch to its longest row; "bfd" (padding-free best fit, needs a varlen attention
    # kernel such as FlashAttention 2 to be fast) or "wrapped" (rows cut at max_length, examples see each other).
    # With packing, per_device_train_batch_size counts packed rows of max_length, each holding several examples.
    packing_strategy: str | None = None
    ships_adapters: bool = False  # its trained adapters and router ship in assets/ (found first, never trained)
    train_speed_measured: bool = False  # train_tokens_per_second was measured (`make bench`), not assumed
    demo_train_steps: int | None = None  # notebook 01's demo run (None: train_steps)
    demo_eval_examples: int | None = None  # notebook 01's before/after evaluation (None: eval_examples)
    tuned_tool_recipe: ToolRecipe | None = None  # a tool-adapter recipe tuned for this model (None: derived)
    router_batch: int = ROUTER_BATCH  # the learned router's prompts per step (the shipped recipe's)

    @property
    def tiny_weights(self) -> bool:
        """True when the weights are the course's shipped tiny model (tiny and the rehearsal profiles)."""
        return self.model_id == str(TINY_MODEL_DIR)

    @property
    def sft_recipe(self) -> SFTRecipe:
        """The domain adapters' training recipe (what train.sft_config and train.lora_config build from)."""
        return SFTRecipe(
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            grad_accum=self.grad_accum,
            max_length=self.max_length,
            lora_r=self.lora_r,
            lora_alpha=self.lora_alpha,
            gradient_checkpointing=self.gradient_checkpointing,
            packing_strategy=self.packing_strategy,
        )

    @property
    def router_recipe(self) -> RouterRecipe:
        """The learned router's recipe: the shipped one's steps capped by the profile's step budget (a rehearsal
        trains only a few, on smaller batches), its learning rate scaled as this profile's SFT learning rate is."""
        tuned_on = PROFILES[ROUTER_TUNED_ON].learning_rate
        return RouterRecipe(
            steps=min(ROUTER_STEPS, self.train_steps),
            learning_rate=ROUTER_LEARNING_RATE * (self.learning_rate / tuned_on),
            batch_size=self.router_batch,
            lora_r=self.lora_r,
            lora_alpha=self.lora_alpha,
        )

    @property
    def tool_recipe(self) -> ToolRecipe:
        """The tool adapter's recipe: the tuned one if the profile has it, else the profile's own LoRA settings
        (rehearsals take their GPU profile's, with `quick_grad_accum`: tool rows are ~5x longer than domain rows)."""
        if self.tuned_tool_recipe is not None:
            return self.tuned_tool_recipe
        return ToolRecipe(self.lora_r, self.lora_alpha, self.learning_rate, self.batch_size, self.quick_grad_accum)

    @property
    def quick_grad_accum(self) -> int:
        """Micro-batches per step outside notebook 01's own training: the profile's, but one on a rehearsal.

        The 4-bit/fp16 path trains at ~200 tokens/s on a CPU (measured), so accumulating the GPU's micro-batches
        would turn seconds into minutes; notebook 01 rehearses accumulation, the quick and tool trainings need not.
        """
        return 1 if self.rehearsal else self.grad_accum

    @property
    def access_note(self) -> str:
        """What a learner must do before the model can be downloaded (gated models); empty for open ones."""
        from .hub_access import access_note

        return access_note(self.model_id)

    @property
    def rehearsal(self) -> bool:
        """True for a CPU stand-in that runs the exact code path of a GPU profile on the tiny weights."""
        return self.rehearsal_of is not None

    def gpu_path(self) -> bool:
        """Whether the GPU code path runs (4-bit, fp16, checkpointing): on a CUDA GPU, or when rehearsing it."""
        return self.dtype != "float32" and (self.rehearsal or env.cuda_available())

    def capability(self) -> tuple[int, int] | None:
        """The compute capability whose decisions this profile takes (None: no GPU path here).

        $LESSONS_CAPABILITY when set; else the GPU's. A rehearsal takes its GPU's (REHEARSAL_GPUS) on a CPU, and on a
        GPU the lower of the two, so the t4 rehearsal computes in fp16 on any GPU and the 7b one in bf16 where native.
        """
        real, override = env.device_capability(), env.capability_override()
        if override is not None and (real is not None or self.rehearsal):
            return override
        if not self.rehearsal:
            return real
        target = REHEARSAL_GPUS[self.rehearsal_of].capability
        return target if real is None else min(real, target)

    def torch_dtype(self, capability: tuple[int, int] | None = None):
        """The torch dtype for weights and compute: fp32 on CPU, bf16 only where it is native."""
        import torch

        if self.dtype == "float32":
            return torch.float32
        cap = capability if capability is not None else self.capability()
        if cap is None:
            return torch.float32
        return torch.bfloat16 if env.native_bf16(cap) else torch.float16

    def dtype_reason(self) -> str:
        """Where torch_dtype()'s choice comes from, in words: the GPU, $LESSONS_CAPABILITY or a rehearsal's GPU."""
        cap, real, override = self.capability(), env.device_capability(), env.capability_override()
        if self.dtype == "float32" or cap is None:
            return tr(en="fp32: no GPU path on this profile", ru="fp32: у этого профиля нет пути GPU")
        chosen, gpu = "{}.{}".format(*cap), real and "{}.{}".format(*real)
        var = env.CAPABILITY_ENV_VAR
        if override is not None:
            why = tr(en=f"compute capability {chosen} from ${var}", ru=f"compute capability {chosen} из ${var}")
        elif self.rehearsal and cap != real:
            as_on, name = REHEARSAL_GPUS[self.rehearsal_of], self.rehearsal_of
            why = tr(
                en=f"the {name} rehearsal, decided as on {as_on.en} ({chosen})",
                ru=f"репетиция {name}, решено как на {as_on.ru} ({chosen})",
            )
        else:
            why = f"compute capability {chosen}"
        if real is None:
            return why + tr(en=", on a CPU", ru=", на CPU")
        return why if cap == real else why + tr(en=f"; this GPU: {gpu}", ru=f"; у этой видеокарты: {gpu}")

    def merge_dtype(self, capability: tuple[int, int] | None = None):
        """The dtype to merge adapters into unquantized weights in: the compute dtype, but fp16 instead of bf16.

        Rounded to bf16's 8 significant bits, `W + B·A` loses the part of an update below half a step of W (fp16 keeps
        11): a 3-step adapter merged in bf16 moved the logits by 0.17, a wrong adapter by 0.25 (measured, 03).
        """
        import torch

        dtype = self.torch_dtype(capability)
        return torch.float16 if dtype == torch.bfloat16 else dtype


class RehearsalGpu(NamedTuple):
    """The GPU a rehearsal decides as: its compute capability, and its name in each course language."""

    capability: tuple[int, int]
    en: str
    ru: str


# The GPU whose decisions each rehearsal takes ($LESSONS_CAPABILITY overrides): the t4 one a T4's (compute capability
# 7.5: fp16, no native bf16), the 7b one an A100's or L4's (8.0 and up: bf16, as on a learner's RTX card too), so
# `make rehearse` runs both half precisions' code paths on a CPU.
REHEARSAL_GPUS = {"t4": RehearsalGpu((7, 5), "a T4", "T4"), "7b": RehearsalGpu((8, 0), "an A100 or L4", "A100 или L4")}

PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny",
        model_id=str(TINY_MODEL_DIR),
        description="the course's own 2M-parameter Llama, CPU, offline",
        dtype="float32",
        load_in_4bit=False,
        max_length=256,
        max_new_tokens=112,
        train_steps=120,
        batch_size=16,
        grad_accum=1,
        learning_rate=2e-3,
        lora_r=8,
        lora_alpha=16,
        gradient_checkpointing=False,
        eval_examples=40,
        quick_train_steps=120,
        # padded tokens/s of notebook 01's json run on 2 CPUs: `python -m benchmarks.bench_train_rate` (4,585 and
        # 4,628 on 2026-12-04; the 9,000 before was measured on the first tiny base and made estimates half the time)
        train_tokens_per_second=4600.0,
        train_speed_measured=True,
        ships_adapters=True,
        demo_train_steps=30,  # notebook 01: a 30-step demo (the shipped ones: tiny.course_adapters.TRAIN_STEPS)
        demo_eval_examples=16,  # notebook 01: 16 of the 40 keep the CPU demo short
        # The tiny model never saw JSON: its tool adapter needs its own recipe (recipes.TINY_TOOL_RECIPE says why).
        tuned_tool_recipe=TINY_TOOL_RECIPE,
        # Measured (benchmarks/bench_training.py, one domain at batch 16 as the adapters train, 14% padding):
        # "wrapped" 0.96x padding at equal tokens per step, "bfd" 0.75x (one flattened row, SDPA) — padding wins.
        packing_strategy=None,
    ),
    "t4": Profile(
        name="t4",
        model_id="TinyLlama/TinyLlama-1.1B-Chat-v1.0",
        description="TinyLlama-1.1B-Chat on a Colab T4, fp16 compute, 4-bit weights",
        load_in_4bit=True,
        max_length=512,
        max_new_tokens=160,
        train_steps=200,
        batch_size=4,
        grad_accum=4,
        learning_rate=2e-4,
        lora_r=16,
        lora_alpha=32,
        gradient_checkpointing=True,
        eval_examples=40,
        quick_train_steps=60,
        # Assumed, not measured (no GPU here): ~5 TFLOP/s sustained on a T4 for QLoRA with checkpointing
        # (6 × params × tokens × 4/3); the 4-bit dequantization keeps it far below the T4's fp16 peak.
        train_tokens_per_second=600.0,
        # Notebook 01's section-5 run: 100 steps ≈ 12 min by the course's estimate (~7.4 s a step at the assumed
        # rate, FineTome chats counted as filling max_length); 200 would be ≈ 25 min before section 9's loop.
        demo_train_steps=100,
        # A T4 (compute capability 7.5) has no FlashAttention 2: "bfd" would attend over the whole flattened batch
        # (correct, but quadratic in its total length), and "wrapped" cuts examples and lets them see each other.
        packing_strategy=None,
    ),
    "7b": Profile(
        name="7b",
        model_id="mistralai/Mistral-7B-Instruct-v0.3",
        description="Mistral-7B-Instruct in 4-bit (QLoRA), as in the original course",
        load_in_4bit=True,
        max_length=1024,
        max_new_tokens=200,
        train_steps=300,
        batch_size=2,
        grad_accum=8,
        learning_rate=1e-4,
        lora_r=16,
        lora_alpha=32,
        gradient_checkpointing=True,
        eval_examples=40,
        quick_train_steps=40,
        train_tokens_per_second=90.0,  # assumed as for t4: ~5 TFLOP/s sustained on a T4; not measured
        # Notebook 01's section-5 run: 20 steps ≈ 23 min by the course's estimate (~68 s a step at the assumed
        # rate); all 300 would be ≈ 5.6 h before section 9's loop even starts.
        demo_train_steps=20,
        packing_strategy=None,  # as for t4: the 7B runs on a T4 too (no FlashAttention 2)
    ),
}

# What a rehearsal profile shrinks (step counts, sample and batch sizes only); every other setting is the GPU
# profile's. A CPU without fp16/bf16 matrix units computes half precision ~9x slower than fp32 (50 vs 5.8 ms for a
# 2048x192 @ 192x512 product on CI's CPUs), so a rehearsal's time goes on its fp16 rows. Two rows a batch still pad
# and mask as the GPU's four do (7b trains two anyway); they cut the rehearsal of notebook 01 from 107 to 67 s, and
# with the router's batch of 8 (REHEARSAL_ROUTER_BATCH), notebook 04's from 131 to 93 s. Notebook 01 accumulates two
# micro-batches a step, not the GPU's 4 (t4) or 8 (7b): still an accumulation, at a quarter of 7b's passes. A quick
# training (what a notebook trains when it finds nothing) takes two steps, the second with the optimizer's state: its
# 7b rehearsal computes in bf16 (REHEARSAL_GPUS), and three steps of the tool adapter took 65 of CI's 180 s for 05.
REHEARSAL_ROUTER_BATCH = 8
REHEARSAL_SIZES = dict(
    batch_size=2,
    grad_accum=2,
    router_batch=REHEARSAL_ROUTER_BATCH,
    train_steps=6,
    quick_train_steps=2,
    eval_examples=4,
    max_new_tokens=24,
    demo_train_steps=None,
    demo_eval_examples=None,
)
REHEARSAL_TEMPLATES = {"t4": "zephyr", "7b": "mistral-v0.3"}


def rehearsal_profile(gpu_name: str) -> Profile:
    """A CPU profile that takes `gpu_name`'s code path with the tiny weights and the real model's chat format."""
    gpu = PROFILES[gpu_name]
    half = "bf16" if env.native_bf16(REHEARSAL_GPUS[gpu_name].capability) else "fp16"
    return replace(
        gpu,
        name=f"{gpu_name}-rehearsal",
        model_id=str(TINY_MODEL_DIR),
        rehearsal_of=gpu_name,
        description=f"the {gpu_name} code path with the tiny weights (4-bit NF4, {half}, "
        f"{REHEARSAL_TEMPLATES[gpu_name]} chat format): a CPU rehearsal or a quick GPU check",
        chat_template=REHEARSAL_TEMPLATES[gpu_name],
        train_tokens_per_second=None,
        **REHEARSAL_SIZES,
    )


PROFILES.update({f"{name}-rehearsal": rehearsal_profile(name) for name in REHEARSAL_TEMPLATES})


def get_profile(name: str) -> Profile:
    """Look a profile up by name, with an error that lists the valid names."""
    names = "|".join(PROFILES)
    how = tr(
        en=f"(pass profile=... or set {PROFILE_ENV_VAR}={names})",
        ru=f"(передайте profile=... или задайте {PROFILE_ENV_VAR}={names})",
    )
    if not isinstance(name, str):
        kind = type(name).__name__
        raise TypeError(
            tr(
                en=f"A profile name is text, got {name!r} ({kind}). Choose one of {', '.join(PROFILES)} {how}.",
                ru=f"Имя профиля — это текст, а получено {name!r} ({kind}). Выберите один из: {', '.join(PROFILES)} "
                f"{how}.",
            )
        )
    key = name.strip().lower()
    if key not in PROFILES:
        raise ValueError(
            tr(
                en=f"Unknown profile {name!r}. Choose one of {', '.join(PROFILES)} {how}.",
                ru=f"Неизвестный профиль {name!r}. Выберите один из: {', '.join(PROFILES)} {how}.",
            )
        )
    return PROFILES[key]


# Where a profile can be asked for by name (choose_profile's `asked_in`) -> the reason it then gives.
ASKED_IN = {
    "notebook": "asked for in the notebook's parameters cell",
    "--profile": "asked for with --profile",
}
REASONS_RU = {  # choose_profile's reasons (English, as it returns them) as the Russian edition prints them
    "asked for in the notebook's parameters cell": "задан в ячейке параметров ноутбука",
    "asked for with --profile": "задан параметром --profile",
    "a CUDA GPU is present": "есть GPU с CUDA",
    "no CUDA GPU: the offline tiny model runs on CPU": "нет GPU с CUDA: офлайн-модель tiny работает на CPU",
    f"set by ${PROFILE_ENV_VAR}": f"задан через ${PROFILE_ENV_VAR}",
}


def reason_text(reason: str) -> str:
    """A reason `choose_profile` returned, in the course language (a reason without a translation as it is)."""
    return tr(en=reason, ru=REASONS_RU.get(reason, reason))


def choose_profile(requested: str | None = None, *, asked_in: str = "notebook") -> tuple[Profile, str]:
    """Pick the profile: an explicit name, then $LESSONS_PROFILE, then tiny on CPU / t4 on GPU.

    Returns the profile and a sentence saying why it was chosen, in English (`reason_text` shows it to a learner);
    `asked_in` (a key of ASKED_IN: "notebook" or "--profile") says where an explicit name was given.
    """
    if asked_in not in ASKED_IN:
        places = ", ".join(map(repr, ASKED_IN))
        raise ValueError(
            tr(
                en=f"asked_in must be one of {places}, got {asked_in!r}.",
                ru=f"asked_in должен быть одним из: {places}, а получено {asked_in!r}.",
            )
        )
    if requested:
        return get_profile(requested), ASKED_IN[asked_in]
    from_env = os.environ.get(PROFILE_ENV_VAR, "").strip()
    if from_env:
        return get_profile(from_env), f"set by ${PROFILE_ENV_VAR}"
    if env.cuda_available():
        return PROFILES["t4"], "a CUDA GPU is present"
    return PROFILES["tiny"], "no CUDA GPU: the offline tiny model runs on CPU"


def with_overrides(profile: Profile, **changes) -> Profile:
    """A copy of `profile` with some fields changed (e.g. fewer steps for a quick run)."""
    return replace(profile, **changes)
