"""One decode loop for a left-padded batch where every row has its own adapter, sampling, stop strings and limit.

`model.generate` takes one set of decoding settings for the whole batch. Here the loop is written out: one prefill
forward over the padded prompts, then one token per step from the KV cache. Each row picks its next token its own
way (greedy argmax, or temperature + top-p with its own seeded `torch.Generator`), may be nudged towards some
tokens (`token_bias`) or restricted to allowed ones, never breaks a UTF-8 character (`whole_characters`), stops at
eos, at its own `max_tokens` or before its first stop string, and reports text as it becomes final through
`on_text`, so one batch serves streamed and plain requests
alike. Finished rows leave the batch (their KV cache rows are dropped), and the loop ends when every row is done.

Greedy rows equal `model.generate(..., do_sample=False)` token for token: same position ids (attention mask
cumsum - 1), same float32 argmax; they differ only where `generate` would have written a broken character.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .i18n import tr
from .whole_characters import character_guard

PEFT_BASE = "__base__"  # PEFT's row name for "no adapter" in a mixed batch
MAX_TOP_LOGPROBS = 5
OnText = Callable[[str, "str | None", "list[dict] | None"], None]


@dataclass
class RowRequest:
    """One row of a batch: its prompt and how to continue it."""

    prompt: str | Sequence[int]  # a rendered chat text (tokenized without special tokens) or token ids
    adapter: str | None = PEFT_BASE  # the PEFT adapter name for this row; "__base__" = the bare base; None = the
    # model as it is (its active adapter), for every row of the batch
    max_tokens: int = 16
    temperature: float = 0.0  # 0 = greedy argmax
    top_p: float = 1.0
    seed: int | None = None  # the row's generator seed (see `row_seed`); None = fresh entropy
    stop: Sequence[str] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    allowed_tokens: Callable[[list[int]], list[int] | None] | None = None  # ids so far -> allowed next ids
    token_bias: Callable[[list[int]], dict[int, float] | None] | None = None  # ids so far -> {id: logit added}
    on_text: OnText | None = None  # (new text, finish_reason or None, logprob entries or None), text is final
    cancelled: Callable[[], bool] | None = None  # polled each step; True drops the row ("cancelled")
    whole_characters: bool = True  # never pick a token that leaves U+FFFD in the text (see `whole_characters`); a
    # step where `allowed_tokens` restricts the row keeps to that constraint alone


@dataclass
class RowResult:
    """What one row produced."""

    text: str  # decode(ids, skip_special_tokens=True, no space clean-up), stripped, cut before the first stop
    finish_reason: str  # "stop" (eos or a stop string), "length" or "cancelled"
    token_ids: list[int]  # generated ids, eos included when it was generated
    prompt_tokens: int
    logprobs: list[dict] | None = None  # OpenAI entries, one per generated token (eos excluded)

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)


def row_seed(seed: int | None, index: int) -> int:
    """The generator seed of choice `index` of a request with `seed` (fresh entropy when seed is None)."""
    if seed is None:
        return secrets.randbits(63)
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:8], "little") >> 1


def check_sampling(temperature: float, top_p: float, top_logprobs: int, stop: Sequence[str]) -> None:
    """Raise ValueError for decoding settings the loop cannot honour, saying which value to change."""
    if temperature < 0:
        raise ValueError(
            tr(
                en=f"temperature must be >= 0 (0 = greedy), got {temperature}.",
                ru=f"temperature должна быть >= 0 (0 — жадное декодирование), а получено {temperature}.",
            )
        )
    if not 0 < top_p <= 1:
        raise ValueError(
            tr(en=f"top_p must be in (0, 1], got {top_p}.", ru=f"top_p должно лежать в (0, 1], а получено {top_p}.")
        )
    if not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
        raise ValueError(
            tr(
                en=f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}, got {top_logprobs}.",
                ru=f"top_logprobs должно быть от 0 до {MAX_TOP_LOGPROBS}, а получено {top_logprobs}.",
            )
        )
    if any(not isinstance(s, str) or not s for s in stop):
        raise ValueError(
            tr(en="stop strings must be non-empty strings.", ru="Стоп-строки (stop) должны быть непустыми строками.")
        )


def check_row(row: RowRequest) -> None:
    """Raise ValueError for a row the loop cannot honour, saying which value to change."""
    if row.max_tokens < 1:
        raise ValueError(
            tr(
                en=f"max_tokens must be at least 1, got {row.max_tokens}.",
                ru=f"max_tokens должно быть не меньше 1, а получено {row.max_tokens}.",
            )
        )
    check_sampling(row.temperature, row.top_p, row.top_logprobs, row.stop)


class _Row:
    """The loop's bookkeeping for one row."""

    def __init__(self, request: RowRequest, prompt_tokens: int, tokenizer, eos: set[int]):
        import torch

        self.request, self.prompt_tokens, self.tok, self.eos = request, prompt_tokens, tokenizer, eos
        self.ids: list[int] = []
        self.emitted = ""  # text already handed to on_text
        self.entries: list[dict] = []  # logprob entries of every generated token
        self.pending = 0  # entries not yet attached to a delta
        self.finish: str | None = None
        self.text: str | None = None
        self.generator = None
        if request.temperature > 0:
            self.generator = torch.Generator().manual_seed(
                request.seed if request.seed is not None else row_seed(None, 0)
            )
        self.watch_text = bool(request.on_text or request.stop)
        self.owed = 0  # continuation bytes the text still needs to finish its last character
        self.restricted = False  # this step's `allowed_tokens` gave a list (the guard then stays out)

    def visible(self) -> str:
        """The row's text so far: decoded without special tokens, leading whitespace stripped."""
        ids = [i for i in self.ids if i not in self.eos]
        return self.tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False).lstrip()

    def add(self, token: int, entry: dict | None) -> None:
        """Take one generated token; finish the row on eos, a stop string or its token limit."""
        self.ids.append(token)
        if entry is not None and token not in self.eos:
            self.entries.append(entry)
            self.pending += 1
        if token in self.eos:
            self._end("stop", self.visible().rstrip())
            return
        text = self.visible() if self.watch_text else ""
        cut = _first_stop(text, self.request.stop)
        if cut is not None:
            self._end("stop", text[:cut].rstrip())
        elif len(self.ids) >= self.request.max_tokens:
            text = text if self.watch_text else self.visible()
            self._end("length", (text.rstrip("\ufffd") if self.owed else text).rstrip())  # cut mid-character
        elif self.request.on_text:
            safe = _held_back(text, self.request.stop)
            if len(safe) > len(self.emitted) and safe.startswith(self.emitted):
                self._emit(safe[len(self.emitted) :], None)

    def cancel(self) -> None:
        self.finish, self.text = "cancelled", self.emitted

    def _end(self, reason: str, text: str) -> None:
        if not text.startswith(self.emitted):  # cannot happen with prefix-stable decoding; never take text back
            text = self.emitted + text[len(_common_prefix(self.emitted, text)) :]
        self.finish, self.text = reason, text
        if self.request.on_text:
            self._emit(text[len(self.emitted) :], reason)

    def _emit(self, delta: str, finish: str | None) -> None:
        entries = None
        if self.request.logprobs:
            entries = self.entries[len(self.entries) - self.pending :]
            self.pending = 0
        self.emitted += delta
        self.request.on_text(delta, finish, entries)

    def result(self) -> RowResult:
        return RowResult(
            text=self.text or "",
            finish_reason=self.finish or "length",
            token_ids=list(self.ids),
            prompt_tokens=self.prompt_tokens,
            logprobs=list(self.entries) if self.request.logprobs else None,
        )


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _held_back(text: str, stops: Sequence[str]) -> str:
    """The part of `text` that is final: no incomplete character, no possible start of a stop string, no
    trailing whitespace (the answer is stripped, so it only counts once more text follows)."""
    text = text.rstrip("\ufffd")
    for k in range(min(len(text), max((len(s) for s in stops), default=1) - 1), 0, -1):
        if any(s.startswith(text[-k:]) for s in stops):
            text = text[:-k]
            break
    return text.rstrip()


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


# ---------------------------------------------------------------- logprobs in OpenAI's shape


class TokenText:
    """Token id -> (text, utf-8 bytes) as OpenAI's logprobs report them, cached."""

    def __init__(self, tokenizer):
        self.tok, self.cache = tokenizer, {}

    def __call__(self, token: int) -> tuple[str, list[int]]:
        if token not in self.cache:
            text = self.tok.decode([token], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            if "\ufffd" not in text:
                self.cache[token] = (text, list(text.encode("utf-8")))
            else:  # part of a multi-byte character: report its raw bytes
                raw = self._raw(token)
                self.cache[token] = ("bytes:" + "".join(f"\\x{b:02x}" for b in raw), raw)
        return self.cache[token]

    def _raw(self, token: int) -> list[int]:
        from .tools.constrained import token_bytes_of  # the course's one table of token bytes, built once

        raw = token_bytes_of(self.tok)[token]
        return list(raw) if raw is not None else list(self.tok.convert_ids_to_tokens(token).encode("utf-8"))


def _entry(token_text: TokenText, token: int, logprobs_row, top: int) -> dict:
    """One OpenAI logprobs entry: the chosen token, its logprob, and the `top` most likely alternatives."""
    text, raw = token_text(token)
    entry = {"token": text, "logprob": float(logprobs_row[token]), "bytes": raw, "top_logprobs": []}
    if top:
        values, ids = logprobs_row.topk(top)
        for value, i in zip(values.tolist(), ids.tolist()):
            alt_text, alt_raw = token_text(i)
            entry["top_logprobs"].append({"token": alt_text, "logprob": float(value), "bytes": alt_raw})
    return entry


# ---------------------------------------------------------------- choosing the next token
def _pick(logits, rows: list[_Row]) -> list[int]:
    """Each row's next token from its (masked, float32) logits: argmax, or a top-p sample at its temperature.

    Sampled rows share the batched softmax/sort; each then inverts its own CDF with one uniform draw from its own
    generator, so a row's tokens depend on its seed and logits only, never on its neighbours."""
    import torch

    chosen = torch.argmax(logits, dim=-1).tolist()
    hot = [k for k, row in enumerate(rows) if row.generator is not None]
    if not hot:
        return chosen
    index = torch.tensor(hot, device=logits.device)
    temperature = torch.tensor([rows[k].request.temperature for k in hot], device=logits.device)[:, None]
    top_p = torch.tensor([rows[k].request.top_p for k in hot], device=logits.device)[:, None]
    probs = torch.softmax(logits[index] / temperature, dim=-1)
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)  # keep the smallest head whose mass reaches top_p
    cdf = torch.cumsum(sorted_probs, dim=-1).cpu()
    kept = (sorted_probs > 0).sum(dim=-1).tolist()
    order = order.cpu()
    for j, k in enumerate(hot):
        u = torch.rand((), generator=rows[k].generator, dtype=torch.float64).item() * float(cdf[j, -1])
        at = int(torch.searchsorted(cdf[j], torch.tensor([u], dtype=cdf.dtype), right=True))
        chosen[k] = int(order[j, min(at, kept[j] - 1)])  # never a token top-p removed, whatever the rounding
    return chosen


def _advance(current: list[_Row], logits, token_text: TokenText | None, pad: int, guard=None) -> list[int]:
    """One step for the active rows: drop cancelled ones, mask, pick, record logprobs; returns the tokens fed next."""
    import torch

    for row in current:
        if row.request.cancelled is not None and row.request.cancelled():
            row.cancel()
    raw = logits
    if any(r.request.token_bias is not None or r.request.allowed_tokens is not None for r in current):
        logits = logits.clone()
        _nudge(logits, current)
        _mask(logits, current)
    logprobs = torch.log_softmax(raw, dim=-1) if any(r.request.logprobs for r in current) else None
    chosen = _pick(logits, current)
    if guard is not None:
        _keep_characters_whole(chosen, logits, current, guard)
    for k, row in enumerate(current):
        if row.finish is not None:  # cancelled just now
            chosen[k] = pad
            continue
        entry = _entry(token_text, chosen[k], logprobs[k], row.request.top_logprobs) if row.request.logprobs else None
        if row.request.whole_characters and guard is not None:
            row.owed = guard.owed_after(chosen[k], row.owed)
        row.add(chosen[k], entry)
    return chosen


def _keep_characters_whole(chosen: list[int], logits, rows: list[_Row], guard) -> None:
    """Pick again, among the tokens that keep every character whole, in each guarded row whose pick breaks one.

    Picking first and again only on a banned token is the masked distribution exactly (p(t) + p(banned) p(t) /
    p(allowed) = p(t) / p(allowed)), and every row whose first pick was fine keeps it, sampled rows included."""
    redo = [
        k
        for k, row in enumerate(rows)
        if row.request.whole_characters and not row.restricted and not guard.allows(chosen[k], row.owed)
    ]
    if not redo:
        return
    bias = guard.bias(logits.shape[-1], logits.device, logits.dtype)
    masked = logits[redo] + bias[[rows[k].owed for k in redo]]
    for j, k in enumerate(redo):
        if bool(masked[j].isinf().all()):  # a vocabulary with no way to finish the character: keep the pick
            masked[j] = logits[k]
    for k, token in zip(redo, _pick(masked, [rows[k] for k in redo])):
        chosen[k] = token


def _nudge(logits, rows: list[_Row]) -> None:
    """Add each row's `token_bias` to its logits (in place)."""
    import torch

    for i, row in enumerate(rows):
        if row.request.token_bias is None:
            continue
        bias = row.request.token_bias(list(row.ids))
        if not bias:
            continue
        index = torch.tensor(list(bias), device=logits.device)
        logits[i, index] += torch.tensor(list(bias.values()), dtype=logits.dtype, device=logits.device)


def _mask(logits, rows: list[_Row]) -> None:
    """Restrict rows with `allowed_tokens` to the ids it returns (in place)."""
    import numpy
    import torch

    for i, row in enumerate(rows):
        row.restricted = False
        if row.request.allowed_tokens is None:
            continue
        allowed = row.request.allowed_tokens(list(row.ids))
        if allowed is None:
            continue
        row.restricted = True
        if not allowed:
            raise ValueError(
                tr(
                    en="allowed_tokens returned no token at all; return None to allow any token.",
                    ru="allowed_tokens не вернул ни одного токена; верните None, чтобы разрешить любой токен.",
                )
            )
        keep = torch.full_like(logits[i], float("-inf"))
        # numpy reads a list of ints 7x faster than torch.tensor: 1 ms, not 7, for a 30k-token free-text step
        index = torch.from_numpy(numpy.fromiter(allowed, dtype=numpy.int64)).to(logits.device)
        keep[index] = logits[i, index]
        logits[i] = keep


# ---------------------------------------------------------------- the loop
@contextlib.contextmanager
def peft_row_hooks(model, names: list[str]):
    """PEFT's per-row adapter hooks (`_enable_peft_forward_hooks`), removed however the block ends: PEFT's own
    context leaves them on every LoRA layer when the block raises (a crashing constraint, a kernel interrupt), and
    every later forward of another batch size then fails with "Length of `adapter_names` should be the same..."
    (huggingface/peft#3475, open)."""
    modules = list(model.modules())
    before = [set(module._forward_pre_hooks) for module in modules]
    try:
        with model._enable_peft_forward_hooks(adapter_names=names):
            yield
    except BaseException:
        for module, known in zip(modules, before):
            for key in set(module._forward_pre_hooks) - known:  # what RemovableHandle.remove() deletes
                module._forward_pre_hooks.pop(key, None)
                module._forward_pre_hooks_with_kwargs.pop(key, None)
        raise


def adapter_rows(model, names: list[str], batched_lora=None):
    """The context in which forwards of this batch give each row its adapter, plus extra forward kwargs.

    PEFT's `adapter_names=` registers a hook on every LoRA layer at each forward (a quarter of a decode step on
    the tiny model), so the loop enters PEFT's own hook context once per set of rows instead, as
    `PeftModel.generate` does. When every row names the model's active adapter, there is nothing to split: the
    plain forward gives the same tokens without PEFT's per-row gathers.
    """
    if any(name is None for name in names):
        if not all(name is None for name in names):
            raise ValueError(
                tr(
                    en="some rows name an adapter and some don't (None); name one for every row, "
                    f'"{PEFT_BASE}" for the bare base.',
                    ru="у одних строк батча указан адаптер, у других нет (None); укажите адаптер для каждой строки, "
                    f'"{PEFT_BASE}" — для базовой модели без адаптера.',
                )
            )
        return contextlib.nullcontext(), {}  # the model as it is: its active adapter, as model.generate uses it
    if batched_lora is not None:
        return batched_lora.rows(list(names)), {}
    if hasattr(model, "peft_config"):
        if set(names) == {getattr(model, "active_adapter", None)}:
            return contextlib.nullcontext(), {}
        if hasattr(model, "_enable_peft_forward_hooks"):
            return peft_row_hooks(model, list(names)), {}
        return contextlib.nullcontext(), {"adapter_names": list(names)}
    if any(name != PEFT_BASE for name in names):
        raise ValueError(
            tr(
                en=f"adapters {sorted(set(names) - {PEFT_BASE})} were requested from a model without "
                "adapters; load them with PeftModel first.",
                ru=f"адаптеры {sorted(set(names) - {PEFT_BASE})} запрошены у модели без адаптеров; "
                "сначала загрузите их через PeftModel.",
            )
        )
    return contextlib.nullcontext(), {}


def _forward_keywords(model) -> tuple[str, bool]:
    """The KV cache keyword of this transformers version ("cache" since 5.2x, before "past_key_values") and
    whether the forward takes `logits_to_keep`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    return ("cache" if "cache" in params else "past_key_values"), "logits_to_keep" in params


def decode_batch(
    model, tokenizer, requests: Sequence[RowRequest], batched_lora=None, on_step: Callable[[int], None] | None = None
) -> list[RowResult]:
    """Run every row to its end in one shared KV-cached loop; returns one RowResult per request, in order.

    `batched_lora` (anything with `.rows(adapter_names)` -> context manager) replaces PEFT's `adapter_names=`.
    `on_step(active_rows)` is called before each forward (a test and statistics aid).
    """
    import torch

    for request in requests:
        check_row(request)
    if not requests:
        return []
    eos_ids = tokenizer.eos_token_id
    eos = set(eos_ids if isinstance(eos_ids, list) else [eos_ids])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(eos))
    prompts = [
        list(r.prompt) if not isinstance(r.prompt, str) else tokenizer(r.prompt, add_special_tokens=False)["input_ids"]
        for r in requests
    ]
    if any(not ids for ids in prompts):
        raise ValueError(
            tr(
                en="a prompt is empty after tokenization; send at least one token.",
                ru="промпт пуст после токенизации; передайте хотя бы один токен.",
            )
        )
    rows = [_Row(r, len(ids), tokenizer, eos) for r, ids in zip(requests, prompts)]
    token_text = TokenText(tokenizer) if any(r.logprobs for r in requests) else None
    guard = character_guard(tokenizer) if any(r.whole_characters for r in requests) else None
    device = next(model.parameters()).device
    width = max(len(ids) for ids in prompts)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=device)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    padded = bool((mask == 0).any())  # like generate: no mask at all when no row is padded
    cache_key, keep_logits = _forward_keywords(model)
    active = list(range(len(rows)))
    cache = None
    step_ids, step_pos = input_ids, positions
    extra = None
    with contextlib.ExitStack() as adapters:
        while active:
            if extra is None:  # first step, or rows left: (re)enter the adapter context for the rows that remain
                adapters.close()
                context, extra = adapter_rows(model, [requests[i].adapter for i in active], batched_lora)
                adapters.enter_context(context)
            if on_step is not None:
                on_step(len(active))
            kwargs = dict(input_ids=step_ids, position_ids=step_pos, use_cache=True, **extra)
            if padded:
                kwargs["attention_mask"] = mask
            if cache is not None:
                kwargs[cache_key] = cache
            if keep_logits:
                kwargs["logits_to_keep"] = 1
            with torch.no_grad():
                out = model(**kwargs)
            cache = getattr(out, "cache", None)
            if cache is None:  # transformers before the `cache` rename
                cache = out.past_key_values
            current = [rows[i] for i in active]
            chosen = _advance(current, out.logits[:, -1, :].to(dtype=torch.float32), token_text, pad, guard)
            still = [k for k, row in enumerate(current) if row.finish is None]
            if not still:
                break
            if len(still) < len(current):
                keep = torch.tensor(still, device=device)
                if not hasattr(cache, "batch_select_indices"):
                    raise TypeError(
                        tr(
                            en=f"{type(cache).__name__} cannot drop finished rows; use a DynamicCache.",
                            ru=f"{type(cache).__name__} не умеет убирать завершённые строки; используйте DynamicCache.",
                        )
                    )
                cache.batch_select_indices(keep)
                mask, positions = mask[keep], positions[keep]
                active = [active[k] for k in still]
                extra = None
            chosen_t = torch.tensor([chosen[k] for k in still], device=device)
            step_ids = chosen_t[:, None]
            step_pos = positions[:, -1:] + 1
            positions = torch.cat([positions, step_pos], dim=-1)
            mask = torch.cat([mask, torch.ones_like(step_ids)], dim=-1)
    return [row.result() for row in rows]
