"""Plumbing for merging and mixing LoRA adapters: safe weighted adapters, runtime mixes, merged models.

The PEFT calls themselves (`add_weighted_adapter`, `merge_and_unload`, `set_adapter([...])`, `set_scale`)
are taught in notebook 03; this module wraps only the checks and bookkeeping around them:

- `create_weighted_adapter` validates before touching the model (names, weights, ranks, dtype for SVD,
  density), replaces an existing adapter of the same name (PEFT silently keeps it otherwise), writes
  the true per-module ranks into the new config so the adapter reloads from disk (peft #3737), and puts
  the new adapter's modules in eval mode (they are injected in train mode, so LoRA dropout would be live).
- Adapters that trained full copies of modules (`modules_to_save`: the tools adapter's lm_head) are refused by
  `create_weighted_adapter` (SavedModulesMixError saying what to do): PEFT's add_weighted_adapter combines only
  LoRA matrices, so the mix would silently answer with the base's lm_head.
- `runtime_mix` / `set_runtime_mix` / `restore_mix` activate several adapters with per-adapter scales
  and put the previous state back.
- Weights are checked everywhere they are taken (`check_weights`): real numbers (not strings, None or bools),
  finite, and at most MAX_WEIGHT in size (negative ones only for `create_weighted_adapter`). The server's
  `adapter_weights` and the WeightMixer use the same bound.
- A PeftModel whose adapters were merged into its base (`merge_and_unload`) or removed (`unload`) is stale:
  PEFT would let `set_adapter("coding")` succeed and keep answering with the merged adapter. Importing this
  module installs `install_merge_guard`, so that call raises StaleModelError saying what to do, whoever merged.
- `merge_for_deployment` is the quantized-base path: reload the base unquantized (fp16/fp32), attach,
  merge, save, and optionally re-quantize; on CPU it runs the same steps in fp32. Where an fp16 copy of the
  base does not fit the GPU (7b on a T4), `merge_checkpoint` merges the checkpoint files tensor by tensor on
  the CPU instead, one output shard in memory at a time.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .i18n import plural_ru, tr
from .profiles import Profile
from .storage import active_adapters

COMBINATION_TYPES = ("linear", "cat", "svd", "ties", "dare_linear", "dare_ties", "ties_svd", "magnitude_prune")
ALL_COMBINATION_TYPES = COMBINATION_TYPES + ("dare_linear_svd", "dare_ties_svd", "magnitude_prune_svd")
EQUAL_RANK_TYPES = ("linear", "ties", "dare_linear", "dare_ties", "magnitude_prune")
DENSITY_TYPES = (
    "ties",
    "ties_svd",
    "dare_linear",
    "dare_ties",
    "dare_linear_svd",
    "dare_ties_svd",
    "magnitude_prune",
    "magnitude_prune_svd",
)
DEFAULT_DENSITY = 0.5
RUNTIME_SCALING = "runtime scaling"
# The largest mix weight the course accepts (library, widget and server's adapter_weights). Notebook 03's sweep
# shows answers over-driven at weight 2 (the WeightMixer's slider ends there); 4 leaves room to see it, while
# NaN, inf or 1e30 can only break the logits.
MAX_WEIGHT = 4.0


class MixError(ValueError):
    """A weighted combination that cannot be built; the message says why and what to do instead."""


class RankMismatchError(MixError):
    """Element-wise combination types (linear, ties, dare_*, magnitude_prune) got adapters of different ranks."""


class SvdDtypeError(MixError):
    """An SVD-based combination was asked for on fp16/bf16 LoRA weights (torch.linalg.svd needs fp32)."""


class MixWeightError(MixError):
    """A mix weight that is NaN, infinite or out of the course's range (see MAX_WEIGHT)."""


class MixWeightTypeError(MixError, TypeError):
    """A mix weight that is not a number (a string, None, a bool ...); also a TypeError."""


class SavedModulesMixError(MixError):
    """A mix of an adapter that trained full copies of modules (`modules_to_save`, e.g. the tools adapter's lm_head)."""


class StaleModelError(RuntimeError):
    """A PeftModel whose adapters were merged into the base or unloaded: switching it would silently do nothing."""


# ------------------------------------------------------------------ weights
def check_weight(adapter: str, weight, allow_negative: bool = True) -> float:
    """`weight` as a float if it is a finite number within ±MAX_WEIGHT (0..MAX_WEIGHT without negatives)."""
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
        raise MixWeightTypeError(
            tr(
                en=f"The weight for {adapter!r} is {weight!r} ({type(weight).__name__}); pass a "
                "number (e.g. 0.5), not a string, None or a bool.",
                ru=f"Вес для {adapter!r} равен {weight!r} ({type(weight).__name__}); передайте "
                "число (например, 0.5), а не строку, None или bool.",
            )
        )
    value = float(weight)
    low = -MAX_WEIGHT if allow_negative else 0.0
    if not math.isfinite(value) or not low <= value <= MAX_WEIGHT:
        raise MixWeightError(
            tr(
                en=f"The weight for {adapter!r} is {weight!r}; pass a finite number from {low:g} to "
                f"{MAX_WEIGHT:g} (e.g. 0.5). Weights above 2 already over-drive an adapter (notebook "
                "03's sweep).",
                ru=f"Вес для {adapter!r} равен {weight!r}; передайте конечное число от {low:g} до "
                f"{MAX_WEIGHT:g} (например, 0.5). Веса больше 2 уже перегружают адаптер (перебор весов "
                "в ноутбуке 03).",
            )
        )
    return value


def check_weights(adapters: Sequence[str], weights, allow_negative: bool = True) -> list[float]:
    """One checked float per adapter; MixError/MixWeightTypeError saying what to pass instead."""
    if isinstance(weights, (str, bytes, Mapping, set, frozenset)) or not isinstance(weights, Collection):
        raise MixWeightTypeError(
            tr(
                en=f"weights must be a list with one number per adapter ({list(adapters)}), e.g. "
                f"{[1.0] * len(adapters)}; got {weights!r}.",
                ru=f"weights — список с одним числом на адаптер ({list(adapters)}), например "
                f"{[1.0] * len(adapters)}; получено {weights!r}.",
            )
        )
    if len(weights) != len(adapters):
        n, k = len(adapters), len(weights)
        raise MixError(
            tr(
                en=f"{n} adapters but {k} weights; give one weight per adapter.",
                ru=f"{n} {plural_ru(n, 'адаптер', 'адаптера', 'адаптеров')} и {k} "
                f"{plural_ru(k, 'вес', 'веса', 'весов')}; задайте по одному весу на адаптер.",
            )
        )
    return [check_weight(a, w, allow_negative) for a, w in zip(adapters, weights)]


def not_loaded_message(missing: Sequence[str], loaded: Sequence[str]) -> str:
    """The start of the error for adapters that are not loaded (the caller adds what to do)."""
    return tr(
        en=f"Adapters {list(missing)} are not loaded (loaded: {list(loaded)})",
        ru=f"Адаптеры {list(missing)} не загружены (загружены: {list(loaded)})",
    )


def load_them_first(missing: Sequence[str], loaded: Sequence[str]) -> str:
    """The whole error for adapters that are not loaded: which, and how to load them."""
    return not_loaded_message(missing, loaded) + tr(
        en="; load them with model.load_adapter(folder, adapter_name=...) first.",
        ru="; сначала загрузите их через model.load_adapter(folder, adapter_name=...).",
    )


def lora_layers(model) -> list[tuple[str, object]]:
    """Every LoRA-wrapped module of a PeftModel as (name without the PEFT prefix, layer)."""
    from peft.tuners.lora import LoraLayer

    inner = model.base_model.model
    return [(name, module) for name, module in inner.named_modules() if isinstance(module, LoraLayer)]


def module_ranks(model, adapter: str) -> dict[str, int]:
    """The rank each module really has for `adapter` (read from the lora_A weights, not the config)."""
    return {
        name: layer.lora_A[adapter].weight.shape[0] for name, layer in lora_layers(model) if adapter in layer.lora_A
    }


def _lora_dtypes(model, adapters: Sequence[str]) -> set:
    return {layer.lora_A[a].weight.dtype for _, layer in lora_layers(model) for a in adapters if a in layer.lora_A}


def saved_modules(model, adapter: str) -> list[str]:
    """The modules of which `adapter` holds a full trained copy (PEFT's `modules_to_save`), e.g. ['lm_head']."""
    from peft.utils.other import ModulesToSaveWrapper

    inner = model.base_model.model
    return sorted(
        name
        for name, module in inner.named_modules()
        if isinstance(module, ModulesToSaveWrapper) and adapter in module.modules_to_save
    )


def unmixable_message(saved: Mapping[str, Sequence[str]], others: Sequence[str]) -> str:
    """Why adapters with `modules_to_save` copies ({adapter: modules}) cannot be mixed, and what to do instead."""
    names = ", ".join(repr(a) for a in saved)
    modules = ", ".join(sorted({m for ms in saved.values() for m in ms}))
    first = next(iter(saved))
    rest = ", ".join(repr(a) for a in others)
    who, kto = ("it", "этот адаптер") if len(saved) == 1 else ("each", "каждый из них")
    return tr(
        en=f"Cannot mix {names}: besides LoRA matrices {who} trained a full copy of {modules} (PEFT's "
        f"modules_to_save). A weighted mix (add_weighted_adapter, the server's model='mix') combines only LoRA "
        f"matrices, so the mix would silently answer with the base model's {modules}. Mix only adapters without "
        f"such copies{f' ({rest})' if rest else ' (e.g. the domain adapters json, coding, support)'} and serve "
        f"{first!r} on its own (model={first!r}, or set_adapter({first!r})); or merge {first!r} into the base model "
        "first (merge_and_unload) and load the other adapters on the merged model.",
        ru=f"Нельзя смешать {names}: кроме матриц LoRA {kto} обучил полную копию {modules} (modules_to_save в "
        f"PEFT). Смешивание с весами (add_weighted_adapter, model='mix' на сервере) объединяет только матрицы LoRA, "
        f"поэтому смесь молча отвечала бы с {modules} базовой модели. Смешивайте только адаптеры без таких копий"
        f"{f' ({rest})' if rest else ' (например, предметные адаптеры json, coding, support)'}, а {first!r} "
        f"используйте отдельно (model={first!r} или set_adapter({first!r})); или сначала выполните слияние {first!r} "
        "с базовой моделью (merge_and_unload) и загрузите остальные адаптеры на объединённую модель.",
    )


def check_mixable(model, adapters: Sequence[str]) -> None:
    """Raise SavedModulesMixError if an adapter to mix holds `modules_to_save` copies: a mix would drop them."""
    saved = {a: modules for a in adapters if (modules := saved_modules(model, a))}
    if saved:
        raise SavedModulesMixError(unmixable_message(saved, [a for a in adapters if a not in saved]))


def check_weighted_request(
    model,
    adapters: Sequence[str],
    weights: Sequence[float],
    adapter_name: str,
    combination_type: str,
    density: float | None = None,
) -> None:
    """Raise MixError (with the fix) if `add_weighted_adapter` would fail, misbehave or build an unloadable adapter."""
    import torch

    loaded = list(model.peft_config)
    if combination_type not in ALL_COMBINATION_TYPES:
        types = ", ".join(ALL_COMBINATION_TYPES)
        raise MixError(
            tr(
                en=f"Unknown combination_type {combination_type!r}; choose one of {types}.",
                ru=f"Неизвестный combination_type {combination_type!r}; выберите один из: {types}.",
            )
        )
    if not adapters:
        raise MixError(
            tr(en="Give at least one adapter to combine.", ru="Укажите хотя бы один адаптер для объединения.")
        )
    missing = [a for a in adapters if a not in loaded]
    if missing:
        raise MixError(load_them_first(missing, loaded))
    check_weights(adapters, weights)
    _refuse_stale(getattr(model, "base_model", None), "create_weighted_adapter")
    check_mixable(model, adapters)
    if not adapter_name or "." in adapter_name:
        raise MixError(
            tr(
                en=f"Adapter name {adapter_name!r} is not usable by PEFT (no dots, not empty); e.g. 'mix_w15'.",
                ru=f"Имя адаптера {adapter_name!r} не годится для PEFT (без точек, не пустое); например, 'mix_w15'.",
            )
        )
    if adapter_name in adapters:
        raise MixError(
            tr(
                en=f"The new adapter cannot reuse the name of a source adapter ({adapter_name!r}); pick a new name.",
                ru=f"Новый адаптер не может взять имя исходного ({adapter_name!r}); выберите новое имя.",
            )
        )
    if density is not None and not 0.0 < density <= 1.0:
        raise MixError(
            tr(
                en=f"density must be in (0, 1] (the share of weights kept), got {density}.",
                ru=f"density должна быть в интервале (0, 1] (доля сохраняемых весов), получено {density}.",
            )
        )
    if combination_type.endswith("svd"):
        low = sorted(str(d) for d in _lora_dtypes(model, adapters) if d in (torch.float16, torch.bfloat16))
        if low:
            raise SvdDtypeError(
                tr(
                    en=f"combination_type={combination_type!r} runs torch.linalg.svd, which does not support "
                    f"{', '.join(low)} LoRA weights. Load the adapters in fp32 (PEFT's default "
                    "autocast_adapter_dtype=True keeps them fp32 on an fp16 base), or use combination_type='cat', "
                    "which needs no SVD.",
                    ru=f"combination_type={combination_type!r} вызывает torch.linalg.svd, а он не поддерживает веса "
                    f"LoRA в {', '.join(low)}. Загрузите адаптеры в fp32 (по умолчанию в PEFT "
                    "autocast_adapter_dtype=True оставляет их в fp32 на базовой модели в fp16) или используйте "
                    "combination_type='cat', которому SVD не нужен.",
                )
            )
    if combination_type in EQUAL_RANK_TYPES and len(adapters) > 1:
        ranks = {a: module_ranks(model, a) for a in adapters}
        modules = set().union(*(r.keys() for r in ranks.values()))
        for module in sorted(modules):
            seen = {a: r[module] for a, r in ranks.items() if module in r}
            if len(set(seen.values())) > 1:
                raise RankMismatchError(
                    tr(
                        en=f"combination_type={combination_type!r} adds the adapters' A and B matrices element-wise, "
                        f"so every adapter needs the same rank in every module, but {module} has ranks {seen}. Use "
                        "combination_type='cat' (concatenates: new rank = sum of ranks) or 'svd' (re-factorises the "
                        "summed update to a chosen svd_rank) for adapters of different ranks.",
                        ru=f"combination_type={combination_type!r} складывает матрицы A и B адаптеров поэлементно, "
                        f"поэтому у всех адаптеров должен быть одинаковый ранг в каждом модуле, а в {module} ранги "
                        f"{seen}. Для адаптеров разного ранга используйте combination_type='cat' (объединение: новый "
                        "ранг = сумма рангов) или 'svd' (заново раскладывает суммарное обновление до выбранного "
                        "svd_rank).",
                    )
                )


def create_weighted_adapter(
    model,
    adapters: Sequence[str],
    weights: Sequence[float],
    adapter_name: str,
    combination_type: str = "cat",
    density: float | None = None,
    **kwargs,
) -> str:
    """`add_weighted_adapter` with the traps handled: checks first, replaces an existing name, reloadable config.

    Returns `adapter_name`. The new adapter is not activated (as in PEFT), unless it replaced the active one.
    Weights are finite numbers within ±MAX_WEIGHT (negative ones subtract an adapter's update).
    """
    if density is None and combination_type in DENSITY_TYPES:
        density = DEFAULT_DENSITY
    check_weighted_request(model, adapters, weights, adapter_name, combination_type, density)
    weights = check_weights(adapters, weights)
    was_active = adapter_name in active_adapters(model)
    if adapter_name in model.peft_config:
        # add_weighted_adapter returns silently when the name exists, so the old weights would stay.
        if was_active:
            model.set_adapter(adapters[0])
        model.delete_adapter(adapter_name)
    if density is not None:
        kwargs["density"] = density
    before = active_adapters(model)
    try:
        model.add_weighted_adapter(list(adapters), weights, adapter_name, combination_type=combination_type, **kwargs)
    except Exception:
        if adapter_name in model.peft_config:
            model.delete_adapter(adapter_name)
        _activate(model, before)
        raise
    _record_true_ranks(model, adapter_name)
    if not model.training:
        model.eval()  # the new adapter's modules are injected in train mode: its dropout would be live
    if was_active:
        model.set_adapter(adapter_name, inference_mode=True)
    return adapter_name


def _record_true_ranks(model, adapter_name: str) -> None:
    """Write per-module ranks that differ from the config's `r` into rank_pattern/alpha_pattern (peft #3737).

    Element-wise types keep each module's source rank; with source `rank_pattern`s that differs from the new
    config's `r`, and `from_pretrained` would then fail with a size mismatch.
    """
    config = model.peft_config[adapter_name]
    scale = config.lora_alpha / config.r  # add_weighted_adapter sets alpha = r, i.e. scaling 1
    wrong = {name: rank for name, rank in module_ranks(model, adapter_name).items() if rank != config.r}
    if not wrong:
        return
    config.rank_pattern = {**config.rank_pattern, **{f"^{re.escape(n)}$": r for n, r in wrong.items()}}
    config.alpha_pattern = {**config.alpha_pattern, **{f"^{re.escape(n)}$": r * scale for n, r in wrong.items()}}
    for name, layer in lora_layers(model):
        if name in wrong:
            layer.r[adapter_name] = wrong[name]
            layer.lora_alpha[adapter_name] = wrong[name] * scale


# ------------------------------------------------------------------ runtime mixing (no new adapter)
@dataclass(frozen=True)
class MixState:
    """What `set_runtime_mix` changed: the previously active adapters and every (module, adapter) scaling."""

    active: tuple[str, ...]
    scaling: dict = field(default_factory=dict)


def _activate(model, names: Sequence[str]) -> None:
    names = [n for n in names if n in model.peft_config]
    if not names:
        return
    if len(names) == 1:
        model.set_adapter(names[0], inference_mode=True)
    else:
        model.base_model.set_adapter(list(names), inference_mode=True)


def check_runtime_weights(model, weights: Mapping[str, float]) -> dict[str, float]:
    """Runtime weights as {loaded adapter: float in 0..MAX_WEIGHT}; MixError saying what to pass instead."""
    if not isinstance(weights, Mapping):
        raise MixWeightTypeError(
            tr(
                en="Runtime weights are a dict {adapter: weight}, e.g. {'json': 1.0, 'support': 0.5}; "
                f"got {weights!r}.",
                ru="Веса на лету — словарь {адаптер: вес}, например {'json': 1.0, 'support': 0.5}; "
                f"получено {weights!r}.",
            )
        )
    loaded = list(model.peft_config)
    missing = [a for a in weights if a not in loaded]
    if missing:
        raise MixError(not_loaded_message(missing, loaded) + ".")
    if not weights:
        raise MixError(tr(en="Give at least one adapter weight.", ru="Задайте вес хотя бы одного адаптера."))
    bad = {a: w for a, w in weights.items() if isinstance(w, numbers.Real) and not isinstance(w, bool) and w < 0}
    if bad:
        raise MixWeightError(
            tr(
                en=f"Runtime weights must be >= 0 (got {bad}); for a negative weight build an adapter "
                "with create_weighted_adapter, which accepts negative weights.",
                ru=f"Веса на лету должны быть >= 0 (получено {bad}); для отрицательного веса соберите адаптер "
                "через create_weighted_adapter, он принимает отрицательные веса.",
            )
        )
    return {a: check_weight(a, w, allow_negative=False) for a, w in weights.items()}


def set_runtime_mix(model, weights: Mapping[str, float]) -> MixState:
    """Activate every adapter with a non-zero weight and scale it by that weight; returns the state to restore."""
    weights = check_runtime_weights(model, weights)
    _refuse_stale(model.base_model, "set_runtime_mix")
    layers = lora_layers(model)
    state = MixState(
        tuple(active_adapters(model)),
        {(name, a): layer.scaling[a] for name, layer in layers for a in weights if a in layer.scaling},
    )
    on = [a for a, w in weights.items() if w != 0] or list(weights)  # all zero: keep them on at scale 0
    _activate(model, on)
    for _, layer in layers:
        for adapter, weight in weights.items():
            layer.set_scale(adapter, weight)
    return state


def restore_mix(model, state: MixState) -> None:
    """Put back the scalings and active adapters recorded by `set_runtime_mix`."""
    layers = dict(lora_layers(model))
    for (module, adapter), value in state.scaling.items():
        if adapter in layers[module].scaling:  # an adapter deleted meanwhile has nothing to restore
            layers[module].scaling[adapter] = value
    _activate(model, state.active)


@contextlib.contextmanager
def runtime_mix(model, weights: Mapping[str, float]) -> Iterator[MixState]:
    """Within the block, several adapters are active at once, each scaled by its weight."""
    state = set_runtime_mix(model, weights)
    try:
        yield state
    finally:
        restore_mix(model, state)


def combination_label(combination_type: str) -> str:
    """How a combination type reads in the course language: add_weighted_adapter's types are identifiers and stay."""
    return (
        tr(en=RUNTIME_SCALING, ru="масштабирование на лету")
        if combination_type == RUNTIME_SCALING
        else combination_type
    )


def describe_mix(weights: Mapping[str, float], combination_type: str) -> str:
    """A one-line name for a mix, e.g. 'cat: json×1.0 + support×0.5'."""
    parts = [f"{a}×{w:g}" for a, w in weights.items() if w != 0]
    none = tr(en="no adapter (base)", ru="без адаптеров (base)")
    return f"{combination_label(combination_type)}: {' + '.join(parts) if parts else none}"


# ------------------------------------------------------------------ stale wrappers after a merge
_GUARD = "__lessons_merge_guard__"
_UNLOADED = "_lessons_unloaded"  # set on a PEFT tuner by merge_and_unload / unload: what happened to it


def merged_away(tuner) -> bool:
    """Whether a PEFT tuner (`peft_model.base_model`) has adapters configured but none of its layers left."""
    from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer

    if not isinstance(tuner, BaseTuner) or not getattr(tuner, "peft_config", None):
        return False
    return not any(isinstance(module, BaseTunerLayer) for module in tuner.model.modules())


def stale_message(tuner, call: str) -> str:
    """What happened to a stale wrapper and what to do instead."""
    how, names = getattr(tuner, _UNLOADED, (None, None))
    listed = ", ".join(names or getattr(tuner, "active_adapters", None) or [])
    if how == "unloaded":
        what = tr(en="unload() removed its LoRA layers", ru="unload() удалил её слои LoRA")
        keeps = tr(en="the bare base", ru="голая базовая модель")
    else:
        names = listed or tr(en="the active adapter", ru="активный адаптер")
        what = tr(
            en=f"merge_and_unload() baked {names} into its base weights and removed the LoRA layers",
            ru=f"merge_and_unload() вшил {names} в веса базовой модели и удалил слои LoRA",
        )
        keeps = names
    return tr(
        en=f"{call} refused: {what}. This old PeftModel cannot switch adapters any more (PEFT would accept the "
        f"call and keep answering as {keeps}). Use the model merge_and_unload() returned for the merged "
        "behaviour; to switch adapters again, load a fresh base and attach the adapters, e.g. "
        "load_with_adapters(load_base(profile), profile).",
        ru=f"{call} отклонён: {what}. Эта старая PeftModel больше не может переключать адаптеры (PEFT принял бы "
        f"вызов и продолжал бы отвечать как {keeps}). Для объединённого поведения используйте модель, которую вернул "
        "merge_and_unload(); чтобы снова переключать адаптеры, загрузите свежую базовую модель и подключите к ней "
        "адаптеры, например load_with_adapters(load_base(profile), profile).",
    )


def _refuse_stale(tuner, call: str) -> None:
    """Raise StaleModelError if `tuner` lost its adapter layers to a merge or an unload."""
    if merged_away(tuner):
        raise StaleModelError(stale_message(tuner, call))


def _guarded_set_adapter(original, tuner_of):
    """`set_adapter` that first refuses a stale wrapper; `tuner_of(self)` finds the PEFT tuner to check."""

    @functools.wraps(original)
    def set_adapter(self, adapter_name, *args, **kwargs):
        _refuse_stale(tuner_of(self), f"set_adapter({adapter_name!r})")
        return original(self, adapter_name, *args, **kwargs)

    setattr(set_adapter, _GUARD, True)
    return set_adapter


def _recording(original, how: str):
    """`merge_and_unload` / `unload` that remember on the tuner what they did (for StaleModelError's message)."""

    @functools.wraps(original)
    def unload(self, *args, **kwargs):
        names = kwargs.get("adapter_names") or list(getattr(self, "active_adapters", []) or [])
        result = original(self, *args, **kwargs)
        object.__setattr__(self, _UNLOADED, (how, list(names)))
        return result

    setattr(unload, _GUARD, True)
    return unload


def install_merge_guard() -> bool:
    """Make PEFT's `set_adapter` raise StaleModelError on a wrapper whose adapters were merged away (idempotent).

    Patches `PeftModel.set_adapter` and `BaseTuner.set_adapter` (so `peft_model.base_model.set_adapter([...])`
    too) to check first, and `BaseTuner.merge_and_unload` / `unload` to record what they did for the message.
    A healthy model is untouched: the check only raises where PEFT's call is a silent no-op. False if this PEFT
    version lacks one of those methods (then nothing is patched).
    """
    try:
        from peft import PeftModel
        from peft.tuners.tuners_utils import BaseTuner
    except ImportError:
        return False
    targets = [
        (PeftModel, "set_adapter", lambda f: _guarded_set_adapter(f, lambda model: model.base_model)),
        (BaseTuner, "set_adapter", lambda f: _guarded_set_adapter(f, lambda tuner: tuner)),
        (BaseTuner, "merge_and_unload", lambda f: _recording(f, "merged")),
        (BaseTuner, "unload", lambda f: _recording(f, "unloaded")),
    ]
    if not all(callable(getattr(cls, name, None)) for cls, name, _ in targets):
        return False
    for cls, name, wrap in targets:
        if not getattr(getattr(cls, name), _GUARD, False):
            setattr(cls, name, wrap(getattr(cls, name)))
    return True


# ------------------------------------------------------------------ merged models
def folder_bytes(folder: Path | str) -> int:
    """Total size of the files under a folder."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def save_merged(merged, tokenizer, folder: Path | str) -> Path:
    """Save a merged (plain transformers) model and its tokenizer so it reloads without PEFT."""
    from peft import PeftModel

    folder = Path(folder)
    if isinstance(merged, PeftModel):
        raise TypeError(
            tr(
                en="This is still a PeftModel; call model.merge_and_unload() first and save what it returns.",
                ru="Это всё ещё PeftModel; сначала вызовите model.merge_and_unload() и сохраните то, что он вернёт.",
            )
        )
    merged.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


def load_merged(folder: Path | str, dtype=None):
    """Reload a merged model with plain AutoModelForCausalLM (no PEFT involved)."""
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    model.eval()
    return model


def max_logit_diff(model_a, model_b, tokenizer, prompts: Sequence[str]) -> float:
    """Largest absolute difference between two models' logits on the same chat prompts."""
    import torch

    from .models import chat_text

    enc = tokenizer(
        [chat_text(tokenizer, p) for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False
    )
    with torch.no_grad():
        a = model_a(**enc.to(next(model_a.parameters()).device)).logits.float().cpu()
        b = model_b(**enc.to(next(model_b.parameters()).device)).logits.float().cpu()
    mask = enc["attention_mask"].cpu().bool()
    return (a - b).abs()[mask].max().item()


def dense_weight(linear):
    """A linear layer's weight in fp32, dequantized first if bitsandbytes keeps it in 4 bits."""
    weight = linear.weight
    if getattr(weight, "quant_state", None) is not None:
        import bitsandbytes.functional as bnb_functional

        return bnb_functional.dequantize_4bit(weight.data, weight.quant_state).float()
    return weight.detach().float()


# ------------------------------------------------------------------ merging a checkpoint shard by shard
SHARD_BYTES = 2 * 1024**3  # output shard size: bounds the CPU memory a streamed merge needs
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


@dataclass(frozen=True)
class LoraUpdate:
    """One targeted weight's LoRA factors: the merge adds `scaling · B @ A` to it."""

    A: object
    B: object
    scaling: float

    def delta(self):
        """The full-size update in fp32."""
        return self.scaling * (self.B.float() @ self.A.float())


def lora_updates(adapter_folder: Path | str) -> dict[str, LoraUpdate]:
    """Every update a saved LoRA adapter makes, keyed by the base checkpoint's weight name.

    The scaling follows PEFT: `lora_alpha / r` (`/ sqrt(r)` with rsLoRA), with per-module `alpha_pattern`.
    """
    import json
    import math

    from peft.utils.other import get_pattern_key
    from safetensors.torch import load_file

    folder = Path(adapter_folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    unsupported = [
        k
        for k in ("use_dora", "modules_to_save", "fan_in_fan_out", "lora_bias", "trainable_token_indices")
        if config.get(k)
    ]
    if config.get("peft_type", "LORA") != "LORA" or unsupported:
        found = unsupported or config.get("peft_type")
        raise MixError(
            tr(
                en=f"{folder.name}: merging checkpoint files handles plain LoRA only (found "
                f"{found}); merge in memory with merge_and_unload instead.",
                ru=f"{folder.name}: слияние по файлам чекпоинта умеет только обычный LoRA (найдено "
                f"{found}); выполните слияние в памяти через merge_and_unload.",
            )
        )
    factors: dict[str, dict] = {}
    for key, tensor in load_file(str(folder / "adapter_model.safetensors")).items():
        match = re.fullmatch(r"(?:base_model\.model\.)?(.+)\.lora_([AB])\.weight", key)
        if match is None:
            raise MixError(
                tr(
                    en=f"{folder.name}: unexpected tensor {key!r} in a LoRA adapter.",
                    ru=f"{folder.name}: неожиданный тензор {key!r} в адаптере LoRA.",
                )
            )
        factors.setdefault(match.group(1), {})[match.group(2)] = tensor
    updates = {}
    alphas = config.get("alpha_pattern") or {}
    for module, ab in factors.items():
        rank = ab["A"].shape[0]
        alpha = alphas.get(get_pattern_key(alphas.keys(), module), config["lora_alpha"])
        scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
        updates[f"{module}.weight"] = LoraUpdate(ab["A"], ab["B"], scaling)
    return updates


def checkpoint_files(source: str | Path) -> list[Path]:
    """The safetensors files of a model: a local folder, or a Hub repo (from the cache if already downloaded)."""
    import json

    folder = Path(source)
    if folder.is_dir():
        if (folder / INDEX_FILE).is_file():
            names = sorted(set(json.loads((folder / INDEX_FILE).read_text())["weight_map"].values()))
            return [folder / name for name in names]
        if (folder / SINGLE_FILE).is_file():
            return [folder / SINGLE_FILE]
        raise FileNotFoundError(
            tr(
                en=f"No {SINGLE_FILE} or {INDEX_FILE} in {folder}.",
                ru=f"В {folder} нет {SINGLE_FILE} или {INDEX_FILE}.",
            )
        )
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:  # sharded checkpoints list their shards (Mistral's repo also holds a consolidated file we skip)
        index = json.loads(Path(hf_hub_download(str(source), INDEX_FILE)).read_text())
        names = sorted(set(index["weight_map"].values()))
    except EntryNotFoundError:
        names = [SINGLE_FILE]
    return [Path(hf_hub_download(str(source), name)) for name in names]


def checkpoint_tensor(source: str | Path, key: str):
    """One tensor of a model checkpoint, read from its file without loading the model."""
    from safetensors import safe_open

    for file in checkpoint_files(source):
        with safe_open(str(file), framework="pt") as f:
            if key in f.keys():  # noqa: SIM118 - a safe_open handle has keys() but no __contains__/__iter__
                return f.get_tensor(key)
    raise KeyError(
        tr(
            en=f"{key!r} is not in the checkpoint of {source}.",
            ru=f"{key!r} нет в контрольной точке {source}.",
        )
    )


def merge_checkpoint(
    source: str | Path,
    adapter_folder: Path | str,
    out_dir: Path | str,
    dtype=None,
    shard_bytes: int = SHARD_BYTES,
    log=print,
) -> Path:
    """Merge a LoRA adapter into a model checkpoint file by file, tensor by tensor, on the CPU.

    Each targeted weight becomes `W + scaling · B @ A` (computed in fp32, stored in `dtype`; default fp16);
    other floating tensors are cast to `dtype`. Memory: one output shard (`shard_bytes`) plus one tensor —
    never the whole model, so a 7B merges in a Colab runtime whose GPU cannot hold its fp16 weights.
    """
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import AutoConfig

    dtype = dtype or torch.float16
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    updates = lora_updates(adapter_folder)
    pending, written, buffer, size = set(updates), [], {}, 0

    def flush() -> None:
        nonlocal buffer, size
        if buffer:
            written.append((out_dir / f"part-{len(written):05d}.tmp", list(buffer)))
            save_file(buffer, str(written[-1][0]), metadata={"format": "pt"})
            buffer, size = {}, 0

    for file in checkpoint_files(source):
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - a safe_open handle has keys() but no __contains__/__iter__
                tensor = f.get_tensor(key)
                if key in updates:
                    tensor = tensor.float() + updates[key].delta()
                    pending.discard(key)
                buffer[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
                size += buffer[key].numel() * buffer[key].element_size()
                if size >= shard_bytes:
                    flush()
        log(tr(en=f"merged {file.name}", ru=f"слит {file.name}"))
    flush()
    if pending:
        raise MixError(
            tr(
                en=f"The adapter targets weights the checkpoint lacks: {sorted(pending)[:3]} … — "
                "it was trained on another base.",
                ru=f"Адаптер меняет веса, которых нет в чекпоинте: {sorted(pending)[:3]} … — "
                "он обучен на другой базовой модели.",
            )
        )
    _name_shards(out_dir, written)
    config = AutoConfig.from_pretrained(str(source))
    config.dtype = dtype
    config.save_pretrained(out_dir)
    return out_dir


def _name_shards(out_dir: Path, written: list[tuple[Path, list[str]]]) -> None:
    """Rename the temporary shards to transformers' names and write the index when there are several."""
    import json

    if len(written) == 1:
        written[0][0].rename(out_dir / SINGLE_FILE)
        return
    weight_map, total = {}, 0
    for i, (tmp, keys) in enumerate(written, start=1):
        name = f"model-{i:05d}-of-{len(written):05d}.safetensors"
        tmp.rename(out_dir / name)
        total += (out_dir / name).stat().st_size
        weight_map.update(dict.fromkeys(keys, name))
    (out_dir / INDEX_FILE).write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )


@dataclass(frozen=True)
class DeployResult:
    """A merged model written to `folder`, reloaded from there (plain transformers, maybe 4-bit)."""

    folder: Path
    merged_dtype: str
    requantized: bool
    model: object
    notes: tuple[str, ...] = ()
    streamed: bool = False  # merged file by file on the CPU instead of in GPU memory


def merge_for_deployment(
    profile: Profile,
    adapter_folders: Mapping[str, Path | str],
    out_dir: Path | str,
    tokenizer=None,
    weights: Sequence[float] | None = None,
    combination_type: str = "cat",
    requantize: bool = False,
    streamed: bool | None = None,
    log=print,
) -> DeployResult:
    """Merge adapters into an *unquantized* base, save, reload, optionally re-quantize to 4-bit.

    Merging into a bitsandbytes 4-bit base rounds the LoRA update away (peft #2321, #2501), so the merge uses
    the base in the profile's compute dtype (fp16/bf16 on GPU, fp32 on CPU): reloaded in memory where that
    fits a T4, otherwise (`streamed`, the default for 7b) merged file by file on the CPU (`merge_checkpoint`)
    and re-quantized on reload, since the merged fp16 model would not fit either. With several adapters they
    are first combined with `create_weighted_adapter(..., combination_type)`.
    """
    from .budget import fits_t4

    if not adapter_folders:
        raise ValueError(
            tr(en="Give at least one adapter folder to merge.", ru="Укажите хотя бы одну папку адаптера для слияния.")
        )
    if weights is not None:  # checked now, not after minutes of loading the base
        check_weights(list(adapter_folders), weights)
    fits = fits_t4(profile, "fp16")
    streamed = not fits if streamed is None else streamed
    if streamed:
        merged_dtype, notes = _merge_streamed(
            profile, adapter_folders, out_dir, tokenizer, weights, combination_type, log
        )
    else:
        merged_dtype, notes = _merge_in_memory(
            profile, adapter_folders, out_dir, tokenizer, weights, combination_type, log
        )
    if not fits and not requantize:
        requantize = True
        notes.append(
            tr(
                en="re-quantizing anyway: the merged fp16 model does not fit the GPU either",
                ru="квантуем всё равно: объединённая модель в fp16 тоже не помещается в GPU",
            )
        )
    quant = None
    if requantize:
        from .models import quantization_config
        from .profiles import with_overrides

        quant = quantization_config(with_overrides(profile, load_in_4bit=True), log)
        notes.append(
            tr(
                en="re-quantized to 4-bit NF4 on reload (the saved files stay full precision)",
                ru="при повторной загрузке переквантована в 4-битный NF4 (сохранённые файлы — в полной точности)",
            )
            if quant
            else tr(
                en="re-quantization skipped (needs bitsandbytes and a CUDA GPU or a rehearsal profile)",
                ru="повторное квантование пропущено (нужны bitsandbytes и GPU с CUDA или профиль репетиции)",
            )
        )
    from transformers import AutoModelForCausalLM

    from .models import gpu_like_4bit, load_kwargs

    # unquantized: in the merge's dtype, since bf16 would round the merged update away again
    reloaded = AutoModelForCausalLM.from_pretrained(
        out_dir, **load_kwargs(profile, quant, None if quant else profile.merge_dtype())
    )
    if quant is not None:
        gpu_like_4bit(reloaded)
    reloaded.eval()
    return DeployResult(Path(out_dir), merged_dtype, quant is not None, reloaded, tuple(notes), streamed)


def _attach(base, adapter_folders: Mapping[str, Path | str], weights, combination_type: str, notes: list):
    """A PeftModel on `base` holding the adapters; returns it and the adapter to merge (combined if several)."""
    from peft import PeftModel

    names = list(adapter_folders)
    model = PeftModel.from_pretrained(base, str(adapter_folders[names[0]]), adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(str(adapter_folders[name]), adapter_name=name)
    if len(names) == 1:
        return model, names[0]
    notes.append(
        tr(en=f"combined {names} with {combination_type}", ru=f"{names} объединены методом {combination_type}")
    )
    return model, create_weighted_adapter(
        model, names, list(weights or [1.0] * len(names)), "deploy_mix", combination_type
    )


def _merge_in_memory(
    profile: Profile, adapter_folders, out_dir, tokenizer, weights, combination_type, log
) -> tuple[str, list[str]]:
    """Reload the base unquantized, merge with merge_and_unload, save; returns (merged dtype, notes)."""
    from .models import free_memory, load_base

    base = load_base(profile, quantize=False, log=log, dtype=profile.merge_dtype())
    notes = [
        tr(
            en=f"base reloaded unquantized in {base.dtype}",
            ru=f"базовая модель заново загружена без квантования в {base.dtype}",
        )
    ]
    model, target = _attach(base, adapter_folders, weights, combination_type, notes)
    merged = model.merge_and_unload(adapter_names=[target])
    merged_dtype = str(merged.dtype)
    save_merged(merged, tokenizer, out_dir)
    del model, merged, base
    free_memory()
    return merged_dtype, notes


def _merge_streamed(
    profile: Profile, adapter_folders, out_dir, tokenizer, weights, combination_type, log
) -> tuple[str, list[str]]:
    """Merge file by file on the CPU (several adapters: combined first on the profile's usual base)."""
    import tempfile

    from .models import free_memory, load_base, model_source

    dtype = profile.merge_dtype()
    notes = [
        tr(
            en=f"merged file by file on the CPU in {dtype} (an fp16 copy of the base does not fit the GPU)",
            ru=f"слияние выполнено пофайлово на CPU в {dtype} (fp16-копия базовой модели не помещается в GPU)",
        )
    ]
    with tempfile.TemporaryDirectory() as scratch:
        folder = next(iter(adapter_folders.values()))
        if len(adapter_folders) > 1:
            model, target = _attach(load_base(profile, log=log), adapter_folders, weights, combination_type, notes)
            model.save_pretrained(scratch, selected_adapters=[target])
            folder = Path(scratch) / target
            del model
            free_memory()
        merge_checkpoint(model_source(profile), folder, out_dir, dtype, log=lambda *_: None)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return str(dtype), notes


# ------------------------------------------------------------------ a cheap per-domain metric for sweeps
def answer_token_accuracy(model, tokenizer, items: Sequence, batch_size: int = 32) -> float:
    """Share of reference-answer tokens (plus the closing eos) that the model predicts greedily, given the
    correct prefix: one forward pass instead of generation, so a sweep over many mixes stays cheap."""
    import torch

    from .models import chat_text

    rows = []
    for ex in items:
        prompt = tokenizer(chat_text(tokenizer, ex.prompt), add_special_tokens=False)["input_ids"]
        answer = tokenizer(ex.response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((prompt, answer))
    device = next(model.parameters()).device
    hits = total = 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        width = max(len(p) + len(a) for p, a in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (p, a) in enumerate(chunk):
            ids[i, : len(p) + len(a)] = torch.tensor(p + a)
            mask[i, : len(p) + len(a)] = 1
        with torch.no_grad():
            predicted = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.argmax(-1).cpu()
        for i, (p, a) in enumerate(chunk):
            guess = predicted[i, len(p) - 1 : len(p) + len(a) - 1]
            hits += int((guess == torch.tensor(a)).sum())
            total += len(a)
    return hits / max(total, 1)


install_merge_guard()  # see the module docstring: a merged-away PeftModel refuses set_adapter
