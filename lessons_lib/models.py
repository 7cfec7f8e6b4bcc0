"""Load a profile's base model and tokenizer, and generate answers from chat prompts."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence

from . import env
from .i18n import tr
from .paths import TINY_MODEL_DIR, require_dir
from .profiles import Profile


def tiny_hint() -> str:
    """How to get the tiny model when its folder is missing, in the course language."""
    return tr(
        en="Clone the whole course repository (assets/ ships the tiny model) or rebuild it with "
        "`python -m lessons_lib.tiny build`.",
        ru="Клонируйте репозиторий курса целиком (папка assets/ содержит модель tiny) или соберите её заново командой "
        "`python -m lessons_lib.tiny build`.",
    )


def model_source(profile: Profile) -> str:
    """The path or Hub id to load; for the tiny weights (tiny and rehearsal profiles), check the shipped folder."""
    if profile.tiny_weights:
        require_dir(TINY_MODEL_DIR, tr(en="The tiny course model", ru="Модель курса tiny"), tiny_hint())
        return str(TINY_MODEL_DIR)
    return profile.model_id


def load_tokenizer(profile: Profile):
    """The profile's tokenizer, with a pad token distinct from eos so generation knows when to stop."""
    from transformers import AutoTokenizer

    from .hub_access import explain_hub_errors

    with explain_hub_errors(profile.model_id):
        tok = AutoTokenizer.from_pretrained(model_source(profile))
    if profile.chat_template:  # a rehearsal: the real model's chat format on the tiny tokenizer
        from .chat_format import wear_template

        wear_template(tok, profile.chat_template)
    if tok.pad_token is None or tok.pad_token_id == tok.eos_token_id:
        # Llama-style tokenizers ship without a pad token; reusing eos hides eos from the loss (trl #1623).
        tok.pad_token = tok.unk_token or tok.eos_token
    tok.padding_side = "left"
    return tok


def quantization_config(profile: Profile, log=print, dtype=None):
    """A 4-bit NF4 BitsAndBytesConfig when the profile asks for it and a GPU (or a rehearsal) + bitsandbytes exist;
    it computes in the profile's dtype, or `dtype`."""
    if not profile.load_in_4bit:
        return None
    if not env.has_package("bitsandbytes"):
        log("4-bit loading needs bitsandbytes (`pip install bitsandbytes`): loading the model unquantized instead.")
        return None
    if not profile.gpu_path():
        log("4-bit loading needs a CUDA GPU: loading the model unquantized instead.")
        return None
    from transformers import BitsAndBytesConfig  # bitsandbytes' CPU notice is silenced in lesson.quiet_library_notices

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype or profile.torch_dtype(),
    )


def load_kwargs(profile: Profile, quantization=None, dtype=None) -> dict:
    """`from_pretrained` arguments for a profile: its dtype (or `dtype`), the 4-bit config if any, GPU placement."""
    kwargs = {"dtype": dtype or profile.torch_dtype()}
    if env.cuda_available():
        kwargs["device_map"] = "auto"
    elif quantization is not None:
        kwargs["device_map"] = {"": "cpu"}  # a rehearsal: bitsandbytes' 4-bit layers on the CPU
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    return kwargs


def load_base(profile: Profile, quantize: bool | None = None, log=print, dtype=None):
    """Load the base causal LM for a profile (fp32 on CPU; fp16/bf16 and optional 4-bit on GPU; `dtype` overrides)."""
    from transformers import AutoModelForCausalLM

    source = model_source(profile)
    use_4bit = profile.load_in_4bit if quantize is None else quantize
    chosen = profile if use_4bit == profile.load_in_4bit else _with_4bit(profile, use_4bit)
    qconfig = quantization_config(chosen, log, dtype)
    from .hub_access import explain_hub_errors

    with explain_hub_errors(source):
        model = AutoModelForCausalLM.from_pretrained(source, **load_kwargs(profile, qconfig, dtype))
    if qconfig is not None:
        gpu_like_4bit(model)  # also: reading the state dict (hotswap, save) would re-round the repacked scales
    model.eval()
    return model


def _with_4bit(profile: Profile, on: bool) -> Profile:
    from .profiles import with_overrides

    return with_overrides(profile, load_in_4bit=on)


def freeze_imports() -> None:
    """Import the training stack, then hide what is alive now from the garbage collector's full passes.

    torch, transformers and PEFT leave ~450k objects that every full collection walks (`free_memory`'s and Python's
    own): 0.24 s each on CI's CPUs, ~0 s once frozen with `gc.freeze` (`python -m benchmarks.bench_collect`). Called
    before any model exists, so models deleted later are still collected; once anything is frozen it does nothing,
    since a model may be alive by then (a rerun setup cell).
    """
    import gc

    if gc.get_freeze_count():
        return
    import peft  # noqa: F401  (with transformers and torch: what every lesson imports next)

    gc.collect()
    gc.freeze()


def free_memory() -> None:
    """Collect garbage and return cached GPU memory, so the next model loads into a clean GPU (call after `del`)."""
    import gc

    gc.collect()
    if env.cuda_available():
        import torch

        torch.cuda.empty_cache()


def gpu_like_4bit(model):
    """On a CPU, make bitsandbytes' 4-bit layers compute as on a GPU: dequantize to the compute dtype, then matmul.

    On CPUs with AVX512-BF16, bitsandbytes 0.50 repacks 4-bit weights at the first inference forward for a fused
    bf16 kernel that has no autograd: a model evaluated and then trained (notebook 01) would silently get no
    gradient through its base layers, and it computes in bf16 where the profile says fp16. The products themselves
    run in fp32 kernels (`sum_products_in_fp32`). No-op on a GPU.
    """
    if env.cuda_available():
        return model
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):  # bitsandbytes Linear4bit
            module.support_avx512bf16_for_cpu = False
    sum_products_in_fp32()
    return model


@functools.cache  # once per process
def sum_products_in_fp32() -> None:
    """On a CPU, bitsandbytes' 4-bit product multiplies the compute dtype's values with fp32 kernels, then rounds.

    Its CPU fallback hands fp16/bf16 matrices to torch, which a CPU without half-precision matrix units multiplies
    ~10x slower than fp32 (a 2048x192 @ 192x512 product: 77 vs 6.5 ms on one CPU here), a large share of a
    rehearsal's time. The values are the same (weights dequantized to the compute dtype, inputs in it, sums in fp32 as
    there and on a GPU), so results differ at most in the last bit, where the order of summation does.
    """
    import bitsandbytes  # noqa: F401  (defines the op)
    import torch

    if not hasattr(torch.ops.bitsandbytes, "gemm_4bit"):  # a release without it multiplies elsewhere: left as is
        return
    torch.library.register_kernel("bitsandbytes::gemm_4bit", "cpu", _gemm_4bit_fp32_sums)


def _gemm_4bit_fp32_sums(
    A, B, shapeB, absmax, blocksize, quant_type, bias=None, absmax_8bit=None, absmax_code=None, absmax_offset=None
):
    """bitsandbytes' `gemm_4bit` (same schema): dequantize B to A's dtype, multiply and sum in fp32, round back.

    The lines before the product are those of bitsandbytes' own default kernel (`backends.default.ops.
    _gemm_4bit_default_impl`); calling it on fp32 inputs instead would dequantize B straight to fp32, skipping the
    rounding to the compute dtype that a GPU's values have."""
    import torch

    ops = torch.ops.bitsandbytes
    if absmax_8bit is not None:  # double quantization: the per-block scales are 8-bit themselves
        absmax = ops.dequantize_blockwise.default(absmax_8bit, absmax, absmax_code, 256, torch.float32) + absmax_offset
    weight = ops.dequantize_4bit.default(B, absmax, blocksize, quant_type, shapeB, A.dtype)
    bias = None if bias is None else bias.float()
    return torch.nn.functional.linear(A.float(), weight.float(), bias).to(A.dtype)


def load_base_and_tokenizer(profile: Profile, quantize: bool | None = None, log=print):
    """Base model and tokenizer in one call."""
    return load_base(profile, quantize, log), load_tokenizer(profile)


def chat_text(tokenizer, prompt: str | list[dict], system: str | None = None, tools: list | None = None) -> str:
    """Render a user prompt (or a message list) with the chat template, ready for the assistant turn."""
    from .chat_format import prepare

    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system:
        messages = [{"role": "system", "content": system}] + messages
    messages, tools = prepare(tokenizer, messages, tools)  # what this template cannot render, spelled out
    return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)


def budgets_per_row(
    max_new_tokens: int | Sequence[int | None] | None, rows: int, unit: str = "row"
) -> list[int | None]:
    """One budget per row: a number (or None) for every row, or a list with one entry per row."""
    if max_new_tokens is None or isinstance(max_new_tokens, int):
        return [max_new_tokens] * rows
    budgets = list(max_new_tokens)
    if len(budgets) != rows:
        unit_ru = {"row": ("строку", "строк"), "text": ("текст", "текстов")}.get(unit, (unit, unit))
        raise ValueError(
            tr(
                en=f"Got {len(budgets)} budgets for {rows} {unit}s; pass one max_new_tokens per {unit}, or one number.",
                ru=f"Получено бюджетов: {len(budgets)}, а {unit_ru[1]}: {rows}; передайте по одному max_new_tokens "
                f"на {unit_ru[0]} или одно число.",
            )
        )
    return budgets


def max_new_tokens_or_default(max_new_tokens: int | None) -> int:
    """`max_new_tokens`, or when None the active profile's (`profiles.choose_profile`: $LESSONS_PROFILE, else tiny on
    a CPU, t4 on a GPU)."""
    if max_new_tokens is not None:
        return max_new_tokens
    from .profiles import choose_profile

    return choose_profile(None)[0].max_new_tokens


def generate(
    model,
    tokenizer,
    prompts: str | Sequence[str | list[dict]],
    max_new_tokens: int | None = None,
    adapter_names: Sequence[str] | None = None,
    system: str | None = None,
    batch_size: int = 16,
    max_prompt_tokens: int | None = None,
    tools: list | None = None,
    batched_lora=None,
    copy_bias: float = 0.0,
    requested_names: bool = False,
) -> list[str]:
    """Greedy answers for chat prompts, batched with left padding; `adapter_names` mixes adapters per row.

    `max_new_tokens=None` means the active profile's (see `max_new_tokens_or_default`); `batched_lora` (a
    `lessons_lib.batched_lora.BatchedLora`) runs the mixed batch on the batched LoRA path instead of PEFT's.
    `copy_bias > 0` turns on copy-aware decoding (`lessons_lib.copying`, e.g. `copy_bias=copying.COPY_BIAS`): a word
    of the prompt that an answer starts to repeat is nudged to come out exactly. `requested_names=True`: a function the
    answer defines is named as the request names it (`copying.RequestedNames`).
    """
    single = isinstance(prompts, str)
    prompts = [prompts] if single else list(prompts)
    if adapter_names is not None and len(adapter_names) != len(prompts):
        raise ValueError(
            tr(
                en=f"adapter_names has {len(adapter_names)} names for {len(prompts)} prompts; give one per prompt.",
                ru=f"В adapter_names имён: {len(adapter_names)}, а промптов: {len(prompts)}; укажите по одному имени "
                "на каждый промпт.",
            )
        )
    texts = [chat_text(tokenizer, p, system, tools=tools) for p in prompts]
    from .copying import CopyBias, RequestedNames, prompt_source

    sources = [prompt_source(p) for p in prompts] if copy_bias or requested_names else []
    token_bias = CopyBias.for_tokenizer(tokenizer).with_bias(copy_bias).batches(sources) if copy_bias else None
    allowed_tokens = RequestedNames.for_tokenizer(tokenizer).batches(sources) if requested_names else None
    answers = generate_texts(
        model,
        tokenizer,
        texts,
        max_new_tokens,
        adapter_names,
        batch_size,
        max_prompt_tokens,
        batched_lora=batched_lora,
        allowed_tokens=allowed_tokens,
        token_bias=token_bias,
    )
    return answers[0] if single else answers


def generate_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    max_new_tokens: int | Sequence[int] | None = None,
    adapter_names: Sequence[str] | None = None,
    batch_size: int = 16,
    max_prompt_tokens: int | None = None,
    allowed_tokens: Callable[[slice, int], Callable] | None = None,
    batched_lora=None,
    token_bias: Callable[[slice, int], Callable] | None = None,
) -> list[str]:
    """Greedy continuations of already-rendered chat texts (batched, left-padded; per-row PEFT adapters).

    The decoding is `generation.decode_batch`, the serving engine's loop (its greedy rows equal `model.generate`
    token for token). `allowed_tokens(rows, prompt_length)` returns each batch's `prefix_allowed_tokens_fn(row,
    input_ids)` as `model.generate` takes it (constrained decoding): `input_ids` is the row's left-padded prompt,
    `prompt_length` tokens long, followed by its tokens so far. `token_bias(rows, prompt_length)` likewise returns
    `fn(row, input_ids) -> {token id: logit added} | None` (see `copying.CopyBias`). `max_new_tokens`: one budget,
    or one per text; None: the active profile's.
    `batched_lora` replaces PEFT's per-row adapters with the batched LoRA path (it needs `adapter_names`).
    """
    from .generation import RowRequest, decode_batch

    if adapter_names is not None and len(adapter_names) != len(texts):
        raise ValueError(
            tr(
                en=f"adapter_names has {len(adapter_names)} names for {len(texts)} texts; give one per text.",
                ru=f"В adapter_names имён: {len(adapter_names)}, а текстов: {len(texts)}; укажите по одному имени "
                "на каждый текст.",
            )
        )
    if batched_lora is not None and adapter_names is None:
        raise ValueError(
            tr(
                en="batched_lora needs adapter_names: name each row's adapter ('__base__' for the base).",
                ru="Для batched_lora нужен adapter_names: укажите адаптер каждой строки ('__base__' — для базовой "
                "модели).",
            )
        )
    limits = budgets_per_row(max_new_tokens, len(texts), unit="text")
    if None in limits:
        default = max_new_tokens_or_default(None)
        limits = [default if limit is None else limit for limit in limits]
    answers: list[str] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        prompts = tokenizer(
            chunk, add_special_tokens=False, truncation=max_prompt_tokens is not None, max_length=max_prompt_tokens
        )["input_ids"]
        width = max(len(ids) for ids in prompts)
        rows = slice(start, start + len(chunk))
        prefix_fn = allowed_tokens(rows, width) if allowed_tokens is not None else None
        bias_fn = token_bias(rows, width) if token_bias is not None else None
        requests = [
            RowRequest(
                ids,
                adapter=None if adapter_names is None else adapter_names[start + k],
                max_tokens=limits[start + k],
                allowed_tokens=_per_row(prefix_fn, k, ids, width, tokenizer),
                token_bias=_per_row(bias_fn, k, ids, width, tokenizer),
            )
            for k, ids in enumerate(prompts)
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = decode_batch(model, tokenizer, requests, batched_lora=batched_lora)
        answers.extend(tokenizer.decode(r.token_ids, skip_special_tokens=True) for r in results)
    return answers


def _per_row(prefix_fn: Callable | None, row: int, prompt: list[int], width: int, tokenizer):
    """One row's `fn(generated ids)` for decode_batch, from a batch's `fn(row, input_ids)` (prefix_allowed_tokens_fn
    style)."""
    if prefix_fn is None:
        return None
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    padded = [pad] * (width - len(prompt)) + list(prompt)
    return lambda generated: prefix_fn(row, torch.tensor(padded + generated))
