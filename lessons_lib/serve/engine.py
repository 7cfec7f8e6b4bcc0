"""A batching engine: one worker thread owns the model and answers concurrent requests in mixed-adapter batches.

PEFT's active adapter is global state on the model, so two threads calling `set_adapter` + `generate` at the
same time can answer one request with another request's adapter. Here nothing but the worker thread ever
touches the model, and it never calls `set_adapter`: it collects the requests that arrive within a few
milliseconds and runs **one** decode loop for them all, where every row names its own adapter (`"__base__"` for
the bare base; PEFT's `adapter_names`, or the `batched_lora` object's `rows(names)` when one is given). Requests
for `auto` are routed inside the worker too, just before the batch (unless the server decided already: `Job.route`).

Weighted mixes (`model="mix"`) are built once and cached (`max_mixes`, least recently used evicted first); the
mixes one batch uses are never evicted while it runs, so a batch with more distinct mixes than `max_mixes` still
runs as one decode loop. A request the router cannot route fails alone, before its batch runs. If a whole batch
fails, each request is re-run alone (`stats["fallback_runs"]`), so one bad request fails only itself (a streamed
request that already sent text fails instead: its client cannot take the text back).

Generation is `lessons_lib.generation.decode_batch`: a request with `Sampling(n=3)` becomes three rows, every row
has its own temperature, top-p, seed, stop strings and logprobs, and streamed requests get `Delta`s as soon as
their text is final. A greedy row gives the same tokens whatever else shares its batch.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..generation import RowRequest, RowResult, check_sampling, decode_batch, row_seed
from ..i18n import tr
from ..mixing import create_weighted_adapter
from ..router.base import BASE_ADAPTER

BASE = "base"  # the public name of the bare base model
AUTO = "auto"  # the public name of "let the router choose"
PEFT_BASE = BASE_ADAPTER  # PEFT's name for "no adapter" in a mixed batch


@dataclass(frozen=True)
class Sampling:
    """Per-request decoding settings; every row of a mixed batch has its own."""

    temperature: float = 0.0  # 0 -> greedy argmax (the server maps OpenAI's default 1.0 itself)
    top_p: float = 1.0
    seed: int | None = None  # same seed + same request -> same answer, whatever else is in the batch
    n: int = 1  # choices; rows of one job differ (generator seeded from (seed, choice index))
    stop: tuple[str, ...] = ()  # the answer is cut before the first stop string; finish_reason "stop"
    logprobs: bool = False
    top_logprobs: int = 0  # 0..5

    def check(self) -> None:
        """Raise ValueError naming the setting to change."""
        if self.n < 1:
            raise ValueError(
                tr(en=f"n must be at least 1, got {self.n}.", ru=f"n должно быть не меньше 1, а получено {self.n}.")
            )
        check_sampling(self.temperature, self.top_p, self.top_logprobs, self.stop)
        if self.top_logprobs and not self.logprobs:
            raise ValueError(tr(en="top_logprobs needs logprobs=True.", ru="Для top_logprobs нужен logprobs=True."))


@dataclass(frozen=True)
class Delta:
    """A piece of one choice's text, handed to Job.on_delta on the worker thread as soon as it is final."""

    index: int  # choice index
    text: str  # new text; the concatenation of a choice's deltas == that choice's final text
    finish_reason: str | None = None  # set on the choice's last delta ("stop", "length")
    logprobs: list[dict] | None = None  # OpenAI entries {"token","logprob","bytes","top_logprobs"} for this delta


@dataclass(frozen=True)
class Choice:
    """One of a job's n answers."""

    index: int
    text: str
    finish_reason: str  # "stop", "length", or "cancelled" (the job was cancelled while it ran)
    completion_tokens: int
    logprobs: list[dict] | None = None


@dataclass
class Job:
    """One chat request waiting for the worker."""

    prompt: str  # the chat-templated text, ready for the assistant turn
    route_text: str  # what the router reads (the last user message)
    model: str  # requested: an adapter name, "base", "auto" or "mix" (with `weights`)
    max_tokens: int
    weights: dict[str, float] | None = None
    # model="auto" decided before the worker ({label, adapter, reason, scores}; a request with tools goes to the
    # tools adapter): the router does not read this job
    route: dict | None = None
    future: Future = field(default_factory=Future)
    submitted: float = field(default_factory=time.perf_counter)
    sampling: Sampling = field(default_factory=Sampling)
    # one row's generated ids so far -> the allowed next ids (None = any); constrained tool calls use it
    allowed_tokens: Callable[[list[int]], list[int] | None] | None = None
    # one row's generated ids so far -> logits to add (None = none); the request's copy_bias uses it
    token_bias: Callable[[list[int]], dict[int, float] | None] | None = None
    on_delta: Callable[[Delta], None] | None = None  # streaming; called on the worker thread
    # streaming: called on the worker thread with (the public adapter name, the route) once the adapter that answers
    # is chosen (after routing, before the first delta), so a stream can say who answers in its first chunk
    on_route: Callable[[str, dict | None], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)  # set it to drop the job's rows
    streamed: bool = field(default=False, init=False)  # a delta went out: the job can no longer be re-run


@dataclass(frozen=True)
class Answer:
    """What the worker hands back for one job."""

    text: str  # choice 0's
    adapter: str  # which adapter answered: an adapter name, "base" or "mix:..."
    prompt_tokens: int
    completion_tokens: int  # choice 0's
    finish_reason: str  # choice 0's: "stop" (eos or a stop string), "length" or "cancelled"
    batch_size: int  # how many requests shared the generate call
    queue_ms: float
    generate_ms: float
    route: dict | None = None  # label, adapter, reason, scores for model="auto"
    choices: tuple[Choice, ...] = ()


class GenerationError(RuntimeError):
    """Generation failed for this request; the engine keeps serving the others."""


def mix_name(weights: dict[str, float]) -> str:
    """A stable public name for a weighted combination, e.g. 'mix:json=0.5,support=0.5'."""
    return "mix:" + ",".join(f"{name}={weights[name]:g}" for name in sorted(weights))


class BatchingEngine:
    """Owns model + tokenizer on one worker thread; `submit()` is safe to call from any thread."""

    def __init__(
        self,
        model,
        tokenizer,
        adapters: Sequence[str],
        router=None,
        window_ms: float = 10.0,
        max_batch: int = 32,
        fault: Callable | None = None,
        max_mixes: int = 4,
        batched_lora=None,
    ):
        self.model, self.tokenizer = model, tokenizer
        self.adapters = list(adapters)
        self.router = router  # anything with .route(text) / .route_batch(texts) -> decisions with .label
        self.window_s, self.max_batch = window_ms / 1000.0, max_batch
        self.fault = fault  # called with the batch's jobs before generate; a test aid to exercise the 500 path
        self.max_mixes = max_mixes
        self.batched_lora = batched_lora  # .rows(adapter_names) -> context manager; None = PEFT's adapter_names
        self._mixes: dict[str, str] = {}  # public mix name -> PEFT adapter name, oldest first
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="lora-batching-engine", daemon=True)
        self.stats = {
            "requests": 0,
            "batches": 0,
            "max_batch_seen": 0,
            "errors": 0,
            "failed_batches": 0,
            "fallback_runs": 0,
            "mixes_built": 0,
            "mixes_evicted": 0,
            "tokens_generated": 0,
            "cancelled": 0,
            "lora_path": "batched" if batched_lora is not None else "peft",
        }
        self._thread.start()

    # ------------------------------------------------------------ public API
    def submit(self, job: Job) -> Future:
        """Queue a job; its future resolves to an Answer or raises GenerationError."""
        if not self._thread.is_alive():
            raise GenerationError(
                tr(
                    en="The generation worker has stopped; restart the server.",
                    ru="Поток генерации остановился; перезапустите сервер.",
                )
            )
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
        """The fallback after a failed batch: each job that is still waiting runs alone (a streamed one fails)."""
        for job in batch:
            if job.future.done():
                continue
            if job.streamed:
                why = tr(
                    en="its batch failed after part of the answer was streamed",
                    ru="батч этого запроса не удался, когда часть ответа уже ушла потоком",
                )
                self._fail(job, RuntimeError(why))
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
            failed = tr(en="generation failed", ru="генерация не удалась")
            job.future.set_exception(GenerationError(f"{failed}: {type(err).__name__}: {err}"))

    def _answer(self, batch: list[Job]) -> list[tuple[Job, Answer]]:
        """Route, pick each row's PEFT adapter name, run one decode loop for all rows of all jobs, split the rows.

        Jobs the router cannot route, or with settings the loop refuses, fail here, alone; cancelled jobs are
        answered without running; the others are answered as (job, answer) pairs.
        """
        if self.fault is not None:
            self.fault(batch)
        routes = self._route([job for job in batch if job.model == AUTO and job.route is None])
        routes.update({id(job): job.route for job in batch if job.model == AUTO and job.route is not None})
        answered = []
        for job in batch:
            err = routes.get(id(job)) if isinstance(routes.get(id(job)), Exception) else self._invalid(job)
            if err is not None:
                self._fail(job, err)
            elif job.cancelled.is_set():
                answered.append((job, self._cancelled_answer(job, routes.get(id(job)))))
        batch = [job for job in batch if not job.future.done() and not job.cancelled.is_set()]
        if not batch:
            return answered
        public = [self._choose(job, routes.get(id(job))) for job in batch]
        for job, adapter in zip(batch, public):
            self._announce(job, adapter, routes.get(id(job)))
        self._trim_mixes(keep={name for name in public if name in self._mixes})
        names = [PEFT_BASE if chosen == BASE else self._mixes.get(chosen, chosen) for chosen in public]
        requests, owners = [], []
        for job, name in zip(batch, names):
            for index in range(job.sampling.n):
                requests.append(self._row(job, name, index))
                owners.append(job)
        start = time.perf_counter()
        results = self._generate(requests, batch)
        generate_ms = (time.perf_counter() - start) * 1000
        self.stats["batches"] += 1
        self.stats["max_batch_seen"] = max(self.stats["max_batch_seen"], len(batch))
        self.stats["tokens_generated"] += sum(r.completion_tokens for r in results)
        for job, adapter in zip(batch, public):
            mine = [r for r, owner in zip(results, owners) if owner is job]
            choices = tuple(
                Choice(
                    index=i,
                    text=r.text,
                    finish_reason=r.finish_reason,
                    completion_tokens=r.completion_tokens,
                    logprobs=r.logprobs,
                )
                for i, r in enumerate(mine)
            )
            if any(c.finish_reason == "cancelled" for c in choices):
                self.stats["cancelled"] += 1
            answered.append(
                (
                    job,
                    Answer(
                        text=choices[0].text,
                        adapter=adapter,
                        prompt_tokens=mine[0].prompt_tokens,
                        completion_tokens=choices[0].completion_tokens,
                        finish_reason=choices[0].finish_reason,
                        batch_size=len(batch),
                        queue_ms=(start - job.submitted) * 1000,
                        generate_ms=generate_ms,
                        route=routes.get(id(job)),
                        choices=choices,
                    ),
                )
            )
        return answered

    @staticmethod
    def _announce(job: Job, adapter: str, route: dict | None) -> None:
        """Tell a streamed job who answers it, before generation starts."""
        if job.on_route is None:
            return
        try:
            job.on_route(adapter, route)
        except Exception:  # noqa: BLE001 - a broken consumer (e.g. a closed stream) cancels its own job
            job.cancelled.set()

    def _invalid(self, job: Job) -> Exception | None:
        """The reason a job cannot run (its settings), or None."""
        try:
            job.sampling.check()
            if job.max_tokens < 1:
                raise ValueError(
                    tr(
                        en=f"max_tokens must be at least 1, got {job.max_tokens}.",
                        ru=f"max_tokens должно быть не меньше 1, а получено {job.max_tokens}.",
                    )
                )
        except ValueError as err:
            return err
        return None

    def _cancelled_answer(self, job: Job, route: dict | None) -> Answer:
        self.stats["cancelled"] += 1
        choices = tuple(
            Choice(index=i, text="", finish_reason="cancelled", completion_tokens=0) for i in range(job.sampling.n)
        )
        return Answer(
            text="",
            adapter=job.model,
            prompt_tokens=0,
            completion_tokens=0,
            finish_reason="cancelled",
            batch_size=0,
            queue_ms=(time.perf_counter() - job.submitted) * 1000,
            generate_ms=0.0,
            route=route,
            choices=choices,
        )

    def _row(self, job: Job, adapter: str, index: int) -> RowRequest:
        """Choice `index` of `job` as one row of the decode loop."""
        sampling = job.sampling
        on_text = None
        if job.on_delta is not None:

            def on_text(text, finish, entries, job=job, index=index):
                job.streamed = True
                try:
                    job.on_delta(Delta(index=index, text=text, finish_reason=finish, logprobs=entries))
                except Exception:  # noqa: BLE001 - a broken consumer (e.g. a closed stream) cancels its own job
                    job.cancelled.set()

        return RowRequest(
            prompt=job.prompt,
            adapter=adapter,
            max_tokens=job.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=row_seed(sampling.seed, index) if sampling.temperature > 0 else None,
            stop=tuple(sampling.stop),
            logprobs=sampling.logprobs,
            top_logprobs=sampling.top_logprobs,
            allowed_tokens=job.allowed_tokens,
            token_bias=job.token_bias,
            on_text=on_text,
            cancelled=job.cancelled.is_set,
        )

    def _choose(self, job: Job, route: dict | None) -> str:
        """The public name of the adapter that answers `job`: routed, a (built) mix, or the requested one."""
        if job.model == AUTO:
            return route["adapter"]
        if job.weights:
            return self._mix_adapter(job.weights)
        return job.model

    def _generate(self, requests: list[RowRequest], batch: list[Job]) -> list[RowResult]:
        """One decode loop for every row; if the batched LoRA path fails before any text went out, PEFT's
        `adapter_names` path takes over for good (stats["lora_path"] says why)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.batched_lora is None:
                return decode_batch(self.model, self.tokenizer, requests)
            try:
                return decode_batch(self.model, self.tokenizer, requests, batched_lora=self.batched_lora)
            except Exception as err:  # noqa: BLE001 - retried below with PEFT; re-raised if that fails too
                if any(job.streamed for job in batch):
                    raise
                results = decode_batch(self.model, self.tokenizer, requests)
                self.batched_lora = None
                why = f"{type(err).__name__}: {err}"
                failed = tr(en=f"batched LoRA failed: {why}", ru=f"путь batched LoRA не сработал: {why}")
                self.stats["lora_path"] = f"peft ({failed})"
                return results

    # ------------------------------------------------------------ routing and weighted mixes
    def _route(self, jobs: list[Job]) -> dict[int, dict | Exception]:
        """Route the `auto` jobs in one call: {id(job): {label, adapter, reason, scores}}, or the exception for a
        job the router refused (then the others are routed one by one)."""
        if not jobs:
            return {}
        if self.router is None:
            err = RuntimeError(
                tr(
                    en="this server has no router, so model='auto' cannot be answered",
                    ru="у этого сервера нет маршрутизатора, поэтому на model='auto' ответить нельзя",
                )
            )
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
