"""Batched LoRA: serve a mixed-adapter batch at about the cost of a one-adapter batch.

PEFT's `adapter_names=[...]` path loops over the batch's adapters inside every LoRA layer (a sub-batch copy, two
small matmuls and a scatter per adapter). Here every LoRA Linear layer keeps its adapters' A and B matrices stacked
once per set of loaded adapters (slot 0 is the base: zeros), and a mixed batch is one gather by row index plus two
batched matmuls: the S-LoRA / Punica idea in plain PyTorch. Rows for the base skip the update. A decoding step (one
token per row) with a few adapters is cheaper another way, chosen per call: apply every adapter the batch uses to
every row and zero the other adapters' rank columns with a per-row mask (copying per-row A and B would cost more
than the products). Both give PEFT's logits within fp32 rounding and its greedy answers exactly.

    batched = BatchedLora(model)                 # a PeftModel with several LoRA adapters
    ok, reason = batched.covers()                # False and why: DoRA, Embedding/Conv targets, a 4-bit base, ...
    with batched.rows(["json", "__base__", "coding"]):
        model.generate(**batch)                  # every forward inside uses the batched path

Layout per layer (r = the largest rank among the layer's adapters; smaller ranks are zero-padded):
`a[k] = A_k^T` with shape [n_adapters + 1, in, r] and `b[k] = scaling_k * B_k^T` with shape [n_adapters + 1, r, out]
(the transposes of A: [r, in] and B: [out, r], laid out for `torch.bmm`). The stacks are rebuilt lazily when the
model's adapters change (load, delete, add_weighted_adapter, set_scale, a parameter replaced or updated in place by
autograd-visible ops). Writes that bypass autograd's version counter (`param.data.copy_(...)`, as PEFT's
`hotswap_adapter` does) cannot be seen cheaply: call `refresh()` after them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from .i18n import tr

BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch
# Up to this many tokens x (adapters in the batch - 1), applying every used adapter to every row and masking beats
# gathering per-row A and B (measured on CPU: decoding steps with up to 5 adapters).
MASKED_MAX = 4
PLAN_CACHE = 256  # row layouts remembered (a decode loop enters rows() with the same names step after step)


class NotCovered(ValueError):
    """The model holds something the batched path does not compute; use PEFT's `adapter_names=` path."""


# ----------------------------------------------------------------------------- what is covered
def _lora_classes():
    from peft.tuners.lora.layer import Linear, LoraLayer

    return Linear, LoraLayer


def _is_quantized(base_layer) -> bool:
    weight = getattr(base_layer, "weight", None)
    return (
        type(base_layer).__module__.split(".")[0] in ("bitsandbytes", "hqq", "auto_gptq", "awq", "torchao")
        or hasattr(weight, "quant_state")
        or hasattr(weight, "CB")
        or (weight is not None and not weight.dtype.is_floating_point)
    )


def _layer_problem(name: str, layer) -> str | None:
    """Why one LoRA layer cannot take the batched path, or None."""
    linear, _ = _lora_classes()
    if type(layer) is not linear:
        kind = f"{type(layer).__module__}.{type(layer).__name__}"
        return tr(
            en=f"{name} is a {kind}, not a plain LoRA Linear "
            "(Embedding, Conv, MultiheadAttention and quantized-base LoRA layers are not covered)",
            ru=f"{name} — это {kind}, а не обычный LoRA Linear "
            "(слои LoRA Embedding, Conv, MultiheadAttention и слои на квантованной базовой модели не поддерживаются)",
        )
    if _is_quantized(layer.base_layer):
        kind = type(layer.base_layer).__name__
        return tr(
            en=f"{name} has a quantized base layer ({kind})",
            ru=f"у {name} квантованный базовый слой ({kind})",
        )
    for adapter in layer.lora_A:
        if layer.use_dora.get(adapter, False) or adapter in layer.lora_variant:
            variant = type(layer.lora_variant.get(adapter)).__name__ if adapter in layer.lora_variant else "DoRA"
            return tr(
                en=f"adapter {adapter!r} uses a LoRA variant ({variant}) in {name}",
                ru=f"адаптер {adapter!r} использует вариант LoRA ({variant}) в {name}",
            )
        if layer.lora_bias.get(adapter, False):
            return tr(
                en=f"adapter {adapter!r} has a trainable LoRA bias (lora_bias=True) in {name}",
                ru=f"у адаптера {adapter!r} обучаемое смещение LoRA (lora_bias=True) в {name}",
            )
    if layer.merged:
        return tr(
            en=f"{name} has merged adapters {layer.merged_adapters} (unmerge them first)",
            ru=f"в {name} слиты адаптеры {layer.merged_adapters} (сначала отмените слияние)",
        )
    return None


def _model_problem(model) -> str | None:
    """Why the model as a whole cannot take the batched path, or None."""
    from peft.utils.other import AuxiliaryTrainingWrapper

    configs = getattr(model, "peft_config", None)
    if not configs:
        return tr(
            en="the model is not a PeftModel with adapters loaded",
            ru="модель — не PeftModel с загруженными адаптерами",
        )
    other = sorted({str(c.peft_type) for c in configs.values() if str(c.peft_type) not in ("LORA", "PeftType.LORA")})
    if other:
        return tr(
            en=f"the model holds non-LoRA adapters ({', '.join(other)})",
            ru=f"в модели есть адаптеры не LoRA ({', '.join(other)})",
        )
    if model.training:
        return tr(
            en="the model is in training mode (LoRA dropout would be live): call model.eval()",
            ru="модель в режиме обучения (dropout LoRA был бы активен): вызовите model.eval()",
        )
    from peft.utils.other import ModulesToSaveWrapper

    for name, module in model.named_modules():
        if (
            isinstance(module, AuxiliaryTrainingWrapper)
            and not isinstance(module, ModulesToSaveWrapper)
            and getattr(module, "_adapters", None)
        ):
            return tr(
                en=f"{name} is a trainable-tokens copy per adapter ({sorted(module._adapters)}); only LoRA layers "
                "and modules_to_save copies are batched",
                ru=f"{name} — копия trainable-tokens для каждого адаптера ({sorted(module._adapters)}); батчами "
                "считаются только слои LoRA и копии modules_to_save",
            )
    return None


def _saved_copies(model) -> list:
    """The model's modules_to_save wrappers (e.g. the tools adapter's own lm_head) that hold adapter copies."""
    from peft.utils.other import ModulesToSaveWrapper

    return [m for m in model.modules() if isinstance(m, ModulesToSaveWrapper) and getattr(m, "_adapters", None)]


def covers(model) -> tuple[bool, str]:
    """(True, "") if every adapter of `model` can run on the batched path, else (False, the first reason why not)."""
    _, lora_layer = _lora_classes()
    problem = _model_problem(model)
    if problem:
        return False, problem
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, lora_layer)]
    if not layers:
        return False, tr(en="the model has no LoRA layers", ru="в модели нет слоёв LoRA")
    for name, layer in layers:
        problem = _layer_problem(name, layer)
        if problem:
            return False, problem
        if layer.disable_adapters:
            return False, tr(
                en=f"adapters are disabled in {name} (inside disable_adapter()?)",
                ru=f"адаптеры отключены в {name} (внутри disable_adapter()?)",
            )
        live = [a for a, d in layer.lora_dropout.items() if d.training and getattr(d, "p", 0) > 0]
        if live:
            return False, tr(
                en=f"LoRA dropout of {live} in {name} is in training mode: call model.eval()",
                ru=f"dropout LoRA у {live} в {name} в режиме обучения: вызовите model.eval()",
            )
    return True, ""


def _raise_unless_covered(model) -> None:
    ok, reason = covers(model)
    if not ok:
        raise NotCovered(
            tr(
                en=f"The batched LoRA path does not cover this model: {reason}. Use PEFT's adapter_names= path "
                "instead.",
                ru=f"Батчевый путь LoRA не поддерживает эту модель: {reason}. Используйте вместо него путь PEFT "
                "с adapter_names=.",
            )
        )


# ----------------------------------------------------------------------------- stacked weights
@dataclass
class _Stack:
    """One layer's adapters stacked: slot 0 = base (zeros), slot k = names[k - 1]."""

    layer: object
    names: tuple[str, ...]
    a: object  # [n + 1, in, r_max]: A_k^T, zero-padded
    b: object  # [n + 1, r_max, out]: scaling_k * B_k^T, zero-padded
    a_flat: object  # [in, (n + 1) * r_max]: the same A's side by side (for few tokens per row, see _forward)
    ranks: tuple[int, ...]  # per slot (0 for the base)
    watch: tuple  # per adapter: what _stale compares (parameter dicts, parameters, versions, data pointers)
    scaling: dict  # the layer's scaling per adapter when built
    group: int = 0
    forward: object = None  # the replacement forward used inside rows()


def _stack_layer(layer) -> _Stack:
    import torch

    names = tuple(layer.lora_A.keys())
    first = layer.lora_A[names[0]].weight
    ranks = [layer.lora_A[n].weight.shape[0] for n in names]
    r_max = max(ranks)
    d_in, d_out = first.shape[1], layer.lora_B[names[0]].weight.shape[0]
    dtype = first.dtype  # the widest of the adapters' dtypes: an fp32 adapter beside an fp16 one stays fp32
    for name in names:
        for module in (layer.lora_A[name], layer.lora_B[name]):
            dtype = torch.promote_types(dtype, module.weight.dtype)
    a = torch.zeros(len(names) + 1, d_in, r_max, dtype=dtype, device=first.device)
    b = torch.zeros(len(names) + 1, r_max, d_out, dtype=dtype, device=first.device)
    watch = []
    with torch.no_grad():
        for k, name in enumerate(names, start=1):
            mod_a, mod_b = layer.lora_A[name], layer.lora_B[name]
            wa, wb, scale = mod_a.weight, mod_b.weight, layer.scaling[name]
            a[k, :, : wa.shape[0]] = wa.T.to(dtype)
            b[k, : wb.shape[1], :] = wb.T.to(b.dtype) * scale
            watch.append(
                (mod_a._parameters, mod_b._parameters, wa, wb, wa._version, wb._version, wa.data_ptr(), wb.data_ptr())
            )
    a_flat = a.permute(1, 0, 2).reshape(d_in, -1).contiguous()
    return _Stack(layer, names, a, b, a_flat, (0, *ranks), tuple(watch), dict(layer.scaling))


def _stale(stack: _Stack) -> bool:
    """Did this layer's adapters, scalings or LoRA weights change since the stack was built?"""
    layer = stack.layer
    if layer.scaling != stack.scaling or tuple(layer.lora_A._modules) != stack.names:
        return True
    for params_a, params_b, wa, wb, va, vb, pa, pb in stack.watch:
        if (
            params_a["weight"] is not wa
            or params_b["weight"] is not wb
            or wa._version != va
            or wb._version != vb
            or wa.data_ptr() != pa
            or wb.data_ptr() != pb
        ):
            return True
    return False


# ----------------------------------------------------------------------------- one batch's plan
@dataclass
class _Plan:
    """How one group of layers (same adapters, same ranks) computes this batch's deltas."""

    mode: str  # "base" (no adapter rows), "one" (one adapter), "gather" (several)
    rows: object | None  # row positions that have an adapter (None: every row has one)
    slot: int  # "one": the adapter's slot
    slots: object | None  # "gather": per active row, its slot
    r: int  # the largest rank among the adapters this batch uses (stacks are sliced to it)
    n_used: int = 0  # "gather": how many adapters the batch uses
    cols: object | None = None  # "gather", few tokens per row: the used adapters' columns of the flat stacks
    mask: object | None = None  # [batch, 1, n_used * r]: 1 where a row's own adapter's columns are


class BatchedLora:
    """Per-row LoRA for a PeftModel's mixed batches: stacked A/B per layer, gather + two batched matmuls."""

    def __init__(self, model):
        self.model = model
        self._stacks: list[_Stack] = []
        self._groups: list[_Stack] = []  # one representative layer per group (same adapters, ranks, device, dtype)
        self._config_key: tuple = ()
        self._plans: list[_Plan] = []
        self._batch = 0
        self._active = False
        self._known: tuple[str, ...] = ()
        self._plan_cache: dict[tuple[str, ...], list[_Plan]] = {}
        self.builds = 0  # how many times the stacks were (re)built

    def covers(self) -> tuple[bool, str]:
        """(True, "") if the batched path computes this model's adapters exactly as PEFT does, else why not."""
        return covers(self.model)

    @property
    def adapters(self) -> tuple[str, ...]:
        """Names the batched path knows: every LoRA adapter found in at least one layer (rebuilt if stale)."""
        self._ensure_built()
        return self._known

    def refresh(self) -> None:
        """Rebuild the stacks now (needed only after weights were overwritten behind autograd, e.g. hotswap)."""
        _raise_unless_covered(self.model)
        _, lora_layer = _lora_classes()
        self._stacks = [_stack_layer(m) for m in self.model.modules() if isinstance(m, lora_layer)]
        groups: dict[tuple, int] = {}
        self._groups = []
        for stack in self._stacks:
            key = (stack.names, stack.ranks, stack.a.device, stack.a.dtype)
            stack.group = groups.setdefault(key, len(groups))
            if stack.group == len(self._groups):
                self._groups.append(stack)
            stack.forward = _make_forward(self, stack)
        self._plan_cache = {}
        self._known = tuple(dict.fromkeys(n for s in self._stacks for n in s.names))
        self._config_key = self._model_key()
        self.builds += 1

    def _model_key(self) -> tuple:
        return tuple((name, id(config)) for name, config in self.model.peft_config.items())

    def _ensure_built(self) -> None:
        """Rebuild if the adapters changed; raise NotCovered if the model's state no longer fits the batched path."""
        if not self._stacks or self._model_key() != self._config_key or any(_stale(s) for s in self._stacks):
            self.refresh()
            return
        if self.model.training or any(s.layer.merged or s.layer.disable_adapters for s in self._stacks):
            _raise_unless_covered(self.model)  # says which layer and why

    @contextmanager
    def rows(self, adapter_names: Sequence[str]) -> Iterator[None]:
        """Inside the block, every forward gives row i the adapter `adapter_names[i]` ("__base__": no adapter)."""
        if self._active:
            raise RuntimeError(
                tr(
                    en="batched.rows() is already active; nested row contexts are not supported.",
                    ru="batched.rows() уже активен; вложенные контексты rows() не поддерживаются.",
                )
            )
        names = list(adapter_names)
        if not names:
            raise ValueError(
                tr(
                    en="adapter_names is empty: give one adapter name (or '__base__') per batch row.",
                    ru="adapter_names пуст: укажите по одному имени адаптера (или '__base__') на строку батча.",
                )
            )
        self._ensure_built()
        key = tuple(names)
        plans = self._plan_cache.get(key)
        if plans is None:
            if len(self._plan_cache) >= PLAN_CACHE:
                self._plan_cache.clear()
            plans = self._plan_cache[key] = self._make_plans(names)
        self._plans, self._batch = plans, len(names)
        saved = []
        self._active = True
        try:
            patched = [(stack.layer, stack.forward) for stack in self._stacks]
            patched += [(wrapper, _saved_forward(wrapper, names)) for wrapper in _saved_copies(self.model)]
            for module, forward in patched:
                attrs = module.__dict__  # an instance attribute shadows the class's forward
                saved.append((attrs, attrs.get("forward")))
                attrs["forward"] = forward
            yield
        finally:
            for attrs, previous in saved:
                if previous is None:
                    attrs.pop("forward", None)
                else:
                    attrs["forward"] = previous
            self._active = False
            self._plans = []

    def _make_plans(self, names: list[str]) -> list[_Plan]:
        import torch

        known = set(self._known)
        unknown = sorted({n for n in names if n != BASE and n not in known})
        if unknown:
            raise ValueError(
                tr(
                    en=f"Unknown adapter(s) {unknown}: loaded are {sorted(known)} (and '{BASE}' for the base).",
                    ru=f"Неизвестные адаптеры {unknown}: загружены {sorted(known)} (и '{BASE}' для базовой модели).",
                )
            )
        plans = []
        for first in self._groups:
            group_names, ranks, device, dtype = first.names, first.ranks, first.a.device, first.a.dtype
            slot_of = {n: k for k, n in enumerate(group_names, start=1)}
            slots = [slot_of.get(n, 0) for n in names]
            used = sorted({k for k in slots if k})
            if not used:
                plans.append(_Plan("base", None, 0, None, 0))
                continue
            r = max(ranks[k] for k in used)
            active = [i for i, k in enumerate(slots) if k]
            rows = None if len(active) == len(slots) else torch.tensor(active, device=device)
            if len(used) == 1:
                plans.append(_Plan("one", rows, used[0], None, r))
            else:
                r_max = max(ranks)
                slot_tensor = torch.tensor([slots[i] for i in active], device=device)
                cols = torch.tensor([k * r_max + j for k in used for j in range(r)], device=device)
                mask = torch.tensor(
                    [[[float(k == u) for u in used for _ in range(r)]] for k in slots], dtype=dtype, device=device
                )
                plans.append(_Plan("gather", rows, 0, slot_tensor, r, len(used), cols, mask))
        return plans


def _make_forward(batched: BatchedLora, stack: _Stack):
    """The replacement forward of one LoRA Linear layer while `batched.rows(...)` is active."""
    import torch

    layer = stack.layer

    def forward(x, *args, **kwargs):
        if "adapter_names" in kwargs:
            raise ValueError(
                tr(
                    en="Do not pass adapter_names= inside batched.rows(...): the rows already name the adapters.",
                    ru="Не передавайте adapter_names= внутри batched.rows(...): строки уже называют адаптеры.",
                )
            )
        result = layer.base_layer(x, *args, **kwargs)
        plan = batched._plans[stack.group]
        if plan.mode == "base":
            return result
        if x.shape[0] != batched._batch:
            raise ValueError(
                tr(
                    en=f"batched.rows() was given {batched._batch} adapter names but a forward got "
                    f"{x.shape[0]} rows (beam search or num_return_sequences expand the batch: "
                    "give one name per expanded row).",
                    ru=f"batched.rows() получил имён адаптеров: {batched._batch}, а в forward пришло строк: "
                    f"{x.shape[0]} (beam search или num_return_sequences расширяют батч: "
                    "укажите по одному имени на каждую расширенную строку).",
                )
            )
        a, b = stack.a, stack.b
        tokens = x[0].numel() // x.shape[-1]
        if plan.mode == "gather" and tokens * (plan.n_used - 1) <= MASKED_MAX:
            # Few tokens per row (decoding): gathering A and B per row would copy more than it computes, so
            # apply every used adapter to every row and zero the other adapters' rank columns with the mask.
            h = x.to(a.dtype).reshape(x.shape[0], -1, x.shape[-1]) @ stack.a_flat.index_select(1, plan.cols)
            delta = (h * plan.mask) @ b.reshape(-1, b.shape[-1]).index_select(0, plan.cols)
            delta = delta.reshape(result.shape).to(result.dtype)
            return result.add_(delta) if not torch.is_grad_enabled() else result + delta
        if plan.r < a.shape[2]:
            a, b = a[:, :, : plan.r], b[:, : plan.r, :]
        xs = x if plan.rows is None else x.index_select(0, plan.rows)
        xs = xs.to(a.dtype)
        if plan.mode == "one":
            delta = (xs @ a[plan.slot]) @ b[plan.slot]
        else:
            flat = xs.reshape(xs.shape[0], -1, xs.shape[-1])
            delta = torch.bmm(torch.bmm(flat, a.index_select(0, plan.slots)), b.index_select(0, plan.slots))
        delta = delta.reshape(xs.shape[:-1] + (b.shape[-1],)).to(result.dtype)
        if plan.rows is None:
            return result.add_(delta) if not torch.is_grad_enabled() else result + delta
        return (
            result.index_add_(0, plan.rows, delta)
            if not torch.is_grad_enabled()
            else result.index_add(0, plan.rows, delta)
        )

    return forward


def _saved_forward(wrapper, names: list[str]):
    """A modules_to_save wrapper's forward for these rows: a row's adapter's own copy where it saved one, else the
    original module (what that adapter alone computes), each row group computed once."""
    import torch

    groups = {
        adapter: [i for i, n in enumerate(names) if n == adapter]
        for adapter in dict.fromkeys(names)
        if adapter in wrapper.modules_to_save
    }
    plain = [i for i, n in enumerate(names) if n not in groups]

    def forward(x, *args, **kwargs):
        if x.shape[0] != len(names):
            raise ValueError(
                tr(
                    en=f"batched.rows() was given {len(names)} adapter names but a forward got {x.shape[0]} "
                    "rows: give one name per row.",
                    ru=f"batched.rows() получил имён адаптеров: {len(names)}, а в forward пришло строк: "
                    f"{x.shape[0]}; укажите по одному имени на строку.",
                )
            )
        if not groups:
            return wrapper.original_module(x, *args, **kwargs)
        parts = [(plain, wrapper.original_module)] if plain else []
        parts += [(rows, wrapper.modules_to_save[adapter]) for adapter, rows in groups.items()]
        out = None
        for rows, module in parts:
            index = torch.tensor(rows, device=x.device)
            part = module(x.index_select(0, index), *args, **kwargs)
            if out is None:
                out = part.new_empty((x.shape[0],) + part.shape[1:])
            out.index_copy_(0, index, part)
        return out

    return forward
