"""A batching engine: one worker thread owns the model and answers concurrent requests in mixed-adapter batches.

PEFT's active adapter is global state on the model, so two threads calling `set_adapter` + `generate` at the
same time can answer one request with another request's adapter. Here nothing but the worker thread ever
touches the model, and it never calls `set_adapter`: it collects the requests that arrive within a few
milliseconds and runs **one** `generate(..., adapter_names=[...])`, where every row names its own adapter
(`"__base__"` for the bare base). Requests for `auto` are routed inside the worker too, just before the batch.

Weighted mixes (`model="mix"`) are built once and cached (`max_mixes`, least recently used evicted first); the
mixes one batch uses are never evicted while it runs, so a batch with more distinct mixes than `max_mixes` still
runs as one generate. A request the router cannot route fails alone, before its batch runs. If a whole batch
fails, each request is re-run alone (`stats["fallback_runs"]`), so one bad request fails only itself.
"""
from __future__ import annotations

import hashlib
import queue
import threading
import time
import warnings
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..mixing import create_weighted_adapter
from ..router.base import BASE_ADAPTER

BASE = "base"  # the public name of the bare base model
AUTO = "auto"  # the public name of "let the router choose"
PEFT_BASE = BASE_ADAPTER  # PEFT's name for "no adapter" in a mixed batch


@dataclass
class Job:
    """One chat request waiting for the worker."""

    prompt: str  # the chat-templated text, ready for the assistant turn
    route_text: str  # what the router reads (the last user message)
    model: str  # requested: an adapter name, "base", "auto" or "mix" (with `weights`)
    max_tokens: int
    weights: dict[str, float] | None = None
    future: Future = field(default_factory=Future)
    submitted: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class Answer:
    """What the worker hands back for one job."""

    text: str
    adapter: str  # which adapter answered: an adapter name, "base" or "mix:..."
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (eos reached) or "length"
    batch_size: int  # how many requests shared the generate call
    queue_ms: float
    generate_ms: float
    route: dict | None = None  # label, adapter, reason, scores for model="auto"


class GenerationError(RuntimeError):
    """Generation failed for this request; the engine keeps serving the others."""


def mix_name(weights: dict[str, float]) -> str:
    """A stable public name for a weighted combination, e.g. 'mix:json=0.5,support=0.5'."""
    return "mix:" + ",".join(f"{name}={weights[name]:g}" for name in sorted(weights))


class BatchingEngine:
    """Owns model + tokenizer on one worker thread; `submit()` is safe to call from any thread."""

    def __init__(self, model, tokenizer, adapters: Sequence[str], router=None, window_ms: float = 10.0,
                 max_batch: int = 32, fault: Callable | None = None, max_mixes: int = 4):
        self.model, self.tokenizer = model, tokenizer
        self.adapters = list(adapters)
        self.router = router  # anything with .route(text) / .route_batch(texts) -> decisions with .label
        self.window_s, self.max_batch = window_ms / 1000.0, max_batch
        self.fault = fault  # called with the batch's jobs before generate; a test aid to exercise the 500 path
        self.max_mixes = max_mixes
        self._mixes: dict[str, str] = {}  # public mix name -> PEFT adapter name, oldest first
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="lora-batching-engine", daemon=True)
        self.stats = {"requests": 0, "batches": 0, "max_batch_seen": 0, "errors": 0, "failed_batches": 0,
                      "fallback_runs": 0, "mixes_built": 0, "mixes_evicted": 0}
        self._thread.start()

    # ------------------------------------------------------------ public API
    def submit(self, job: Job) -> Future:
        """Queue a job; its future resolves to an Answer or raises GenerationError."""
        if not self._thread.is_alive():
            raise GenerationError("The generation worker has stopped; restart the server.")
        self._queue.put(job)
        return job.future

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker after the jobs already queued."""
        self._queue.put(None)
        self._thread.join(timeout)

    # ------------------------------------------------------------ worker thread
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.perf_counter() + self.window_s
            stop = False
            while len(batch) < self.max_batch:
                remaining = deadline - time.perf_counter()
                try:
                    job = self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            self._serve(batch)
            if stop:
                return

    def _serve(self, batch: list[Job]) -> None:
        """Answer a batch; if the batch fails, retry each job alone so one bad request fails only itself."""
        try:
            answered = self._answer(batch)
        except Exception as err:  # noqa: BLE001 - any failure must reach the waiting requests
            self.stats["failed_batches"] += 1
            if len(batch) == 1:
                self._fail(batch[0], err)
                return
            self._one_by_one(batch)
            return
        for job, answer in answered:
            self._deliver(job, answer)

    def _one_by_one(self, batch: list[Job]) -> None:
        """The fallback after a failed batch: each job that is still waiting runs alone."""
        for job in batch:
            if job.future.done():
                continue
            self.stats["fallback_runs"] += 1
            try:
                for done, answer in self._answer([job]):
                    self._deliver(done, answer)
            except Exception as single_err:  # noqa: BLE001
                self._fail(job, single_err)

    def _deliver(self, job: Job, answer: Answer) -> None:
        self.stats["requests"] += 1
        if not job.future.done():
            job.future.set_result(answer)

    def _fail(self, job: Job, err: Exception) -> None:
        self.stats["errors"] += 1
        if not job.future.done():
            job.future.set_exception(GenerationError(f"generation failed: {type(err).__name__}: {err}"))

    def _answer(self, batch: list[Job]) -> list[tuple[Job, Answer]]:
        """Route, pick each row's PEFT adapter name, run one mixed-adapter generate, split the rows.

        Jobs the router cannot route fail here, alone; the others are answered as (job, answer) pairs.
        """
        if self.fault is not None:
            self.fault(batch)
        routes = self._route([job for job in batch if job.model == AUTO])
        for job in batch:
            if isinstance(routes.get(id(job)), Exception):
                self._fail(job, routes[id(job)])
        batch = [job for job in batch if not isinstance(routes.get(id(job)), Exception)]
        if not batch:
            return []
        public = [self._choose(job, routes.get(id(job))) for job in batch]
        self._trim_mixes(keep={name for name in public if name in self._mixes})
        names = [PEFT_BASE if chosen == BASE else self._mixes.get(chosen, chosen) for chosen in public]
        start = time.perf_counter()
        rows, prompt_lengths = self._generate([job.prompt for job in batch], names, max(j.max_tokens for j in batch))
        generate_ms = (time.perf_counter() - start) * 1000
        self.stats["batches"] += 1
        self.stats["max_batch_seen"] = max(self.stats["max_batch_seen"], len(batch))
        answered = []
        for job, ids, n_prompt, adapter in zip(batch, rows, prompt_lengths, public):
            text, used, finish = self._decode(ids, job.max_tokens)
            answered.append((job, Answer(text=text, adapter=adapter, prompt_tokens=n_prompt, completion_tokens=used,
                                         finish_reason=finish, batch_size=len(batch),
                                         queue_ms=(start - job.submitted) * 1000, generate_ms=generate_ms,
                                         route=routes.get(id(job)))))
        return answered

    def _choose(self, job: Job, route: dict | None) -> str:
        """The public name of the adapter that answers `job`: routed, a (built) mix, or the requested one."""
        if job.model == AUTO:
            return route["adapter"]
        if job.weights:
            return self._mix_adapter(job.weights)
        return job.model

    def _generate(self, prompts: list[str], adapter_names: list[str], max_new_tokens: int):
        """One left-padded greedy generate for the whole batch; returns the new token ids per row."""
        import torch

        tok = self.tokenizer
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        device = next(self.model.parameters()).device
        enc = enc.to(device)
        kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id)
        if hasattr(self.model, "peft_config"):
            kwargs["adapter_names"] = adapter_names
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        return new, [int(n) for n in enc["attention_mask"].sum(dim=1).tolist()]

    def _decode(self, ids: list[int], max_tokens: int) -> tuple[str, int, str]:
        """Cut a row at eos or at its own max_tokens (greedy rows do not depend on longer neighbours)."""
        tok = self.tokenizer
        ids = ids[:max_tokens]
        finish = "length"
        if tok.eos_token_id in ids:
            ids = ids[:ids.index(tok.eos_token_id) + 1]
            finish = "stop"
        ids = [i for i in ids if i != tok.pad_token_id]
        return tok.decode(ids, skip_special_tokens=True).strip(), len(ids), finish

    # ------------------------------------------------------------ routing and weighted mixes
    def _route(self, jobs: list[Job]) -> dict[int, dict | Exception]:
        """Route the `auto` jobs in one call: {id(job): {label, adapter, reason, scores}}, or the exception for a
        job the router refused (then the others are routed one by one)."""
        if not jobs:
            return {}
        if self.router is None:
            err = RuntimeError("this server has no router, so model='auto' cannot be answered")
            return {id(job): err for job in jobs}
        try:
            decisions = list(self.router.route_batch([job.route_text for job in jobs]))
        except Exception as err:  # noqa: BLE001 - find the job that failed; the others still go
            if len(jobs) == 1:
                return {id(jobs[0]): err}
            return {key: value for job in jobs for key, value in self._route([job]).items()}
        return {id(job): self._route_info(decision) for job, decision in zip(jobs, decisions)}

    def _route_info(self, decision) -> dict:
        """A router decision as the answer's `route`; "general" and unknown labels go to the base."""
        adapter = decision.adapter if decision.adapter in self.adapters else BASE
        scores = {str(k): round(float(v), 4) for k, v in decision.scores.items()}
        return {"label": decision.label, "adapter": adapter, "reason": decision.reason, "scores": scores}

    def _mix_adapter(self, weights: dict[str, float]) -> str:
        """Create (once) a 'cat' weighted combination of loaded adapters; returns its public name (see mix_name)."""
        public = mix_name(weights)
        if public in self._mixes:
            self._mixes[public] = self._mixes.pop(public)  # most recently used goes last
            return public
        peft_name = "mix_" + hashlib.sha1(public.encode()).hexdigest()[:10]
        names = sorted(weights)
        # "cat" stacks the LoRA matrices, so the result equals running the adapters together, scaled. The helper
        # also puts the new layers in eval mode (PEFT injects them in train mode, with live dropout).
        create_weighted_adapter(self.model, names, [weights[n] for n in names], peft_name, "cat")
        self._mixes[public] = peft_name
        self.stats["mixes_built"] += 1
        return public

    def _trim_mixes(self, keep: set[str]) -> None:
        """Evict the least recently used mixes beyond `max_mixes`, never one in `keep` (the running batch's)."""
        for public in [name for name in self._mixes if name not in keep]:
            if len(self._mixes) <= self.max_mixes:
                return
            self.model.delete_adapter(self._mixes.pop(public))
            self.stats["mixes_evicted"] += 1
