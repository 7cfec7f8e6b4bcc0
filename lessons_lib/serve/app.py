"""The HTTP API: OpenAI-compatible chat completions over one base and its LoRA adapters, plus a web page.

`model` is an adapter name, `base`, `auto` (the router picks) or `mix` with an `adapter_weights` object
(an extension: a weighted 'cat' combination of loaded adapters). Every answer says which adapter answered,
in `model` and in the extra field `adapter`.

Bounds, so that no single request stalls or degrades the server:
- request bodies over `max_body_bytes` (default DEFAULT_MAX_BODY_BYTES = 1 MB, `--max-body-bytes`) are refused
  with 413 from the Content-Length header or while the body streams in, before it is read in full; 1 MB of
  text is thousands of times the longest prompt any profile accepts;
- prompt checks (chat template, token count) run on a worker thread, so `/health` answers while a long prompt
  is checked;
- every bad request is a 4xx whose OpenAI-style error object names the field (`param`); `/health` counts the
  errors by status and code;
- role markers typed into message content (`<|system|>`, `</s>`, `[INST]`, the tokenizer's special tokens) are
  neutralised, so a user cannot fake another turn;
- responses carry no absolute paths of the machine (adapters are listed by name).
"""
from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, Strict

from ..mixing import MAX_WEIGHT
from .engine import AUTO, BASE, BatchingEngine, GenerationError, Job
from .loading import ServedModel

MIX = "mix"
REQUEST_TIMEOUT_S = 600.0
DEFAULT_MAX_BODY_BYTES = 1_000_000  # 1 MB: far above any profile's longest prompt (max_length tokens)
# Role markers of common chat formats (Zephyr/TinyLlama, Mistral/Llama-2, ChatML, Llama-3): neutralised in content
# whether the tokenizer knows them as special tokens or reads them as plain text.
KNOWN_MARKERS = ("<s>", "</s>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]",
                 "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "<|im_start|>", "<|im_end|>")
MARKER_PATTERN = re.compile(r"<\|[^<>|\s]{1,40}\|>")  # <|system|>, <|user|>, <|eot_id|>, <|start_header_id|> ...
BREAK = "\u200b"  # a zero-width space inside a marker makes it plain text for the tokenizer
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.@+~-]+/)*[\w.@+~-]+")
LARGE_PROMPT_CHARS = 100_000  # after checking a prompt this long, free memory back to the OS (release_memory)
UNION_TAG = re.compile(r"^(str|int|float|bool|none|list\[.*\]|dict\[.*\]|function-.*)$")


class Message(BaseModel):
    """One chat message (OpenAI shape); `content` may be a string or a list of text parts."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The body of POST /v1/chat/completions (unknown OpenAI fields are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    stream: bool = False
    adapter_weights: dict[str, Annotated[float, Strict()]] | None = None  # numbers only: "0.5" is refused


class ApiError(Exception):
    """An error answered as {"error": {message, type, param, code}} with an HTTP status, like the OpenAI API."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param, self.extra = (status, message, kind, code,
                                                                                   param, extra)

    def body(self) -> dict:
        """The JSON body, with absolute paths of this machine cut to their last two parts."""
        return {"error": {"message": without_paths(self.message), "type": self.kind, "param": self.param,
                          "code": self.code, **self.extra}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def without_paths(text: str) -> str:
    """`text` with every absolute path of this machine cut to its last two parts (/a/b/adapters/json ->
    adapters/json); URL paths such as /v1/models stay (their first folder does not exist here)."""
    def short(match: re.Match) -> str:
        parts = PurePosixPath(match.group(0)).parts
        return "/".join(parts[-2:]) if len(parts) > 1 and os.path.isdir("/" + parts[1]) else match.group(0)

    return ABSOLUTE_PATH.sub(short, text)


def public_id(name: str) -> str:
    """A base model id fit for a response: a Hub id as is, a local folder by its last part."""
    return PurePosixPath(name).name if name.startswith("/") else name


def text_of(message: Message) -> str:
    """A message's content as plain text (text parts joined)."""
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "".join(str(part.get("text", "")) for part in message.content if part.get("type", "text") == "text")


def release_memory() -> None:
    """Give freed heap memory back to the OS (glibc keeps it otherwise: +140 MB after checking a 1 MB prompt)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        pass


# ---------------------------------------------------------------- role markers in content
def role_markers(tokenizer) -> tuple[str, ...]:
    """Strings that mean structure to this tokenizer: its special tokens, the markers its chat template writes,
    and KNOWN_MARKERS; longest first."""
    from ..models import chat_text

    found = set(KNOWN_MARKERS) | set(tokenizer.all_special_tokens)
    found |= {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special}
    probe = "\x00probe\x00"
    try:
        rendered = chat_text(tokenizer, [{"role": "system", "content": probe}, {"role": "user", "content": probe},
                                         {"role": "assistant", "content": probe}, {"role": "user", "content": probe}])
    except Exception:  # noqa: BLE001 - a template that refuses the probe: the other sources still apply
        rendered = ""
    for part in rendered.split(probe):
        found |= set(MARKER_PATTERN.findall(part)) | {m for m in KNOWN_MARKERS if m in part}
    # a special token that is a plain word (some tokenizers have them) is left alone: markers carry <, [ or |
    return tuple(sorted((m for m in found if m and set(m) & set("<>[]|")), key=len, reverse=True))


def marker_regex(markers: tuple[str, ...]) -> re.Pattern:
    """One pattern for the markers (longest first) and any `<|word|>`."""
    return re.compile("|".join([re.escape(m) for m in markers] + [MARKER_PATTERN.pattern]))


def neutralise(text: str, markers: re.Pattern) -> str:
    """`text` with every role marker broken by a zero-width space, so the tokenizer reads it as plain text."""
    return markers.sub(lambda m: m.group(0)[0] + BREAK + m.group(0)[1:], text)


# ---------------------------------------------------------------- error bookkeeping
class ErrorCounts:
    """Failed requests by HTTP status and error code (what /health reports)."""

    def __init__(self):
        self.by_status: Counter[str] = Counter()
        self.by_code: Counter[str] = Counter()

    def record(self, status: int, code: str | None) -> None:
        self.by_status[str(status)] += 1
        self.by_code[code or "unknown"] += 1

    def as_dict(self) -> dict:
        total = sum(self.by_status.values())
        client = sum(n for s, n in self.by_status.items() if s.startswith("4"))
        return {"total": total, "client": client, "server": total - client, "by_status": dict(self.by_status),
                "by_code": dict(self.by_code)}


def loc_param(loc: tuple) -> str:
    """A pydantic error location as an OpenAI `param`: ('body', 'messages', 0, 'content') -> 'messages[0].content'."""
    param = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            param += f"[{part}]"
        elif not UNION_TAG.match(str(part)):
            param += f".{part}" if param else str(part)
    return "body" + param if not param or param.startswith("[") else param


# ---------------------------------------------------------------- the server
class Server:
    """Request checks and the mapping from `model` to an adapter; generation goes through the engine."""

    def __init__(self, served: ServedModel, engine: BatchingEngine, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        from ..models import load_tokenizer

        self.served, self.engine, self.profile = served, engine, served.profile
        # The worker thread owns the engine's tokenizer; request checks use their own copy on their own thread.
        self.check_tokenizer = load_tokenizer(served.profile)
        self.checks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prompt-check")
        self.markers = marker_regex(role_markers(self.check_tokenizer))
        self.max_prompt_tokens = self.profile.max_length
        self.max_tokens = self.profile.max_new_tokens
        self.max_body_bytes = max_body_bytes
        self.errors = ErrorCounts()

    def close(self) -> None:
        """Stop the prompt-check thread and the engine."""
        self.checks.shutdown(wait=False, cancel_futures=True)
        self.engine.close()

    def model_names(self) -> list[str]:
        """Every `model` value a request may use."""
        names = [BASE, *self.served.adapters]
        if self.served.router is not None:
            names.append(AUTO)
        return names

    def resolve(self, model: str, weights: dict[str, float] | None) -> tuple[str, dict[str, float] | None]:
        """Check the requested model (and weights); return (model, weights) or raise ApiError."""
        if any(sep in model for sep in ("/", "\\")) or ".." in model:
            raise ApiError(400, f"Refused model name {model!r}: it contains a path separator or '..'. A model here is "
                                f"the name of a loaded adapter, not a path. Available: {self.model_names()}.",
                           code="invalid_model_name", param="model", available=self.model_names())
        if weights is not None or model == MIX:
            return MIX, self.check_weights(weights)
        if model == AUTO and self.served.router is None:
            raise ApiError(503, f"model='auto' is unavailable: {self.served.router_error}. Name an adapter instead: "
                                f"{self.model_names()}.", kind="server_error", code="router_unavailable",
                           param="model", available=self.model_names())
        if model not in self.model_names():
            raise ApiError(404, f"Unknown model {model!r}. Available models: {', '.join(self.model_names())} "
                                f"(GET /v1/models lists them).", code="model_not_found", param="model",
                           available=self.model_names())
        return model, None

    def check_weights(self, weights: dict[str, float] | None) -> dict[str, float]:
        """Weights for model='mix': known adapters, finite weights in (0, MAX_WEIGHT] (the course's mix range)."""
        if not weights:
            raise ApiError(400, "model='mix' needs adapter_weights, e.g. {\"json\": 0.7, \"support\": 0.3}.",
                           code="missing_adapter_weights", param="adapter_weights")
        unknown = [name for name in weights if name not in self.served.adapters]
        if unknown:
            raise ApiError(404, f"adapter_weights names unknown adapters {unknown}. Loaded adapters: "
                                f"{self.served.adapters}.", code="model_not_found", param=f"adapter_weights.{unknown[0]}",
                           available=self.model_names())
        bad = {k: v for k, v in weights.items() if not 0 < v <= MAX_WEIGHT}  # NaN fails every comparison
        if bad:
            raise ApiError(400, f"adapter_weights must be numbers greater than 0 and at most {MAX_WEIGHT:g}; got "
                                f"{bad}.", code="invalid_adapter_weights", param=f"adapter_weights.{next(iter(bad))}")
        return {k: float(v) for k, v in weights.items()}

    def check_limits(self, request: ChatRequest) -> int:
        """Refuse streaming and over-long answers; return max_tokens."""
        if request.stream:
            raise ApiError(400, "stream=true is not supported by this teaching server; send stream=false.",
                           code="stream_unsupported", param="stream")
        max_tokens = request.max_completion_tokens or request.max_tokens or self.max_tokens
        if max_tokens > self.max_tokens:
            param = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
            raise ApiError(400, f"{param}={max_tokens} is over this server's limit of {self.max_tokens} "
                                f"(profile {self.profile.name}). Ask for fewer tokens.", code="max_tokens_too_large",
                           param=param)
        return max_tokens

    def route_text(self, model: str, messages: list[dict]) -> str:
        """What the router reads: the last user message (else the last message); a 400 naming it if auto gets blank."""
        users = [i for i, m in enumerate(messages) if m["role"] == "user"]
        index = users[-1] if users else len(messages) - 1
        text = messages[index]["content"]
        if model == AUTO and not text.strip():
            which = "the last user message" if users else "the last message (there is no user message)"
            raise ApiError(400, f"model='auto' routes on {which}, but messages[{index}].content is empty. Put the "
                                "request in that message, or name an adapter in `model`.",
                           code="empty_route_text", param=f"messages[{index}].content")
        return text

    def render(self, messages: list[dict]) -> tuple[str, int]:
        """The chat-templated prompt (markers in content neutralised) and its token count; 400s name the field."""
        from ..models import chat_text

        safe = [{"role": m["role"], "content": neutralise(m["content"], self.markers)} for m in messages]
        try:
            prompt = chat_text(self.check_tokenizer, safe)
        except Exception as err:  # noqa: BLE001 - the messages are the only input of the template
            raise ApiError(400, f"These messages cannot be rendered with this model's chat template "
                                f"({type(err).__name__}: {err}). Check the roles and their order.",
                           code="invalid_messages", param="messages") from err
        ids = self.check_tokenizer(prompt, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        return prompt, len(ids)

    def build_job(self, request: ChatRequest) -> Job:
        """Validate a request and turn it into a Job for the engine (runs on the prompt-check thread)."""
        model, weights = self.resolve(request.model, request.adapter_weights)
        max_tokens = self.check_limits(request)
        messages = [{"role": m.role, "content": text_of(m)} for m in request.messages]
        if not any(m["content"].strip() for m in messages):
            raise ApiError(422, "Every message is empty: send at least one message with text.", code="empty_messages",
                           param="messages")
        route_text = self.route_text(model, messages)
        prompt, n_tokens = self.render(messages)
        if n_tokens > self.max_prompt_tokens:
            raise ApiError(400, f"The prompt is {n_tokens} tokens, over this server's limit of {self.max_prompt_tokens} "
                                f"(profile {self.profile.name} max_length). Shorten the messages or drop old turns.",
                           code="context_length_exceeded", param="messages", prompt_tokens=n_tokens,
                           limit=self.max_prompt_tokens)
        return Job(prompt=prompt, route_text=route_text, model=model, max_tokens=max_tokens, weights=weights)

    def checked_job(self, request: ChatRequest) -> Job:
        """`build_job`, then memory released if the prompt was large (runs on the prompt-check thread)."""
        try:
            return self.build_job(request)
        finally:
            if sum(len(text_of(m)) for m in request.messages) > LARGE_PROMPT_CHARS:
                release_memory()

    def health(self) -> dict:
        """What /health reports."""
        return {"status": "ok", "profile": self.profile.name, "base_model": public_id(self.served.base_id),
                "adapters": self.served.adapters, "models": self.model_names(),
                "not_served": [without_paths(reason) for reason in self.served.skipped],
                "router": self.served.router_kind or f"unavailable: {without_paths(str(self.served.router_error))}",
                "max_prompt_tokens": self.max_prompt_tokens, "max_tokens": self.max_tokens,
                "max_body_bytes": self.max_body_bytes, "errors": self.errors.as_dict(),
                "engine": dict(self.engine.stats)}

    def models(self) -> dict:
        """What /v1/models reports: OpenAI shape, plus kind/parent like vLLM lists LoRA modules (no local paths)."""
        created = int(time.time())
        data = [{"id": BASE, "object": "model", "created": created, "owned_by": "lora-adapter-lab", "kind": "base",
                 "root": public_id(self.served.base_id), "parent": None}]
        data += [{"id": name, "object": "model", "created": created, "owned_by": "lora-adapter-lab",
                  "kind": "adapter", "root": name, "parent": BASE}
                 for name in self.served.adapters]
        if self.served.router is not None:
            data.append({"id": AUTO, "object": "model", "created": created, "owned_by": "lora-adapter-lab",
                         "kind": "router", "root": self.served.router_kind, "parent": BASE})
        return {"object": "list", "data": data}

    @staticmethod
    def completion(request: ChatRequest, answer, latency_ms: float) -> dict:
        """An OpenAI chat.completion body; `model` and `adapter` name the adapter that answered."""
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
                "model": answer.adapter, "adapter": answer.adapter, "requested_model": request.model,
                "route": answer.route,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                             "finish_reason": answer.finish_reason}],
                "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                          "total_tokens": answer.prompt_tokens + answer.completion_tokens},
                "timing": {"latency_ms": round(latency_ms, 1), "queue_ms": round(answer.queue_ms, 1),
                           "generate_ms": round(answer.generate_ms, 1), "batch_size": answer.batch_size}}

    async def answer(self, request: ChatRequest) -> dict:
        """Check the request on the prompt-check thread, then wait for the engine's answer."""
        start = time.perf_counter()
        job = await asyncio.get_running_loop().run_in_executor(self.checks, self.checked_job, request)
        try:
            answer = await asyncio.wait_for(asyncio.wrap_future(self.engine.submit(job)), REQUEST_TIMEOUT_S)
        except GenerationError as err:
            raise ApiError(500, f"{err}. Only this request failed; the server keeps serving.", kind="server_error",
                           code="generation_failed") from err
        except asyncio.TimeoutError as err:
            raise ApiError(504, f"No answer within {REQUEST_TIMEOUT_S:.0f} s; the server is overloaded, retry later.",
                           kind="server_error", code="timeout") from err
        return self.completion(request, answer, (time.perf_counter() - start) * 1000)


# ---------------------------------------------------------------- the request size limit
def too_large(limit: int, size: int | None) -> ApiError:
    """The 413 for a body over the limit."""
    got = f"is {size} bytes, over" if size is not None else "grew past"
    return ApiError(413, f"The request body {got} this server's limit of {limit} bytes. Send a shorter prompt (or "
                         "start the server with a larger --max-body-bytes).",
                    code="request_too_large", param="body", limit=limit)


def declared_length(scope: dict) -> int | None:
    """The Content-Length header as an int (None when absent or not a number; the HTTP layer rejects those)."""
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimit:
    """ASGI middleware: a body over `server.max_body_bytes` gets 413 before it is read in full."""

    def __init__(self, app, server: Server):
        self.app, self.server = app, server

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.server.max_body_bytes
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            return await self.refuse(scope, receive, send, too_large(limit, declared))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return await self.refuse(scope, receive, send, too_large(limit, None))
            if not message.get("more_body", False):
                break
        return await self.app(scope, replay(b"".join(chunks), receive), send)

    async def refuse(self, scope, receive, send, error: ApiError) -> None:
        self.server.errors.record(error.status, error.code)
        await error.response()(scope, receive, send)


def replay(body: bytes, receive):
    """A `receive` that hands the app the buffered body once, then waits on the real connection."""
    sent = False

    async def again():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


# ---------------------------------------------------------------- the app
def create_app(served: ServedModel, window_ms: float = 10.0, max_batch: int = 32, fault=None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """The FastAPI app; the engine's worker thread starts now and stops on shutdown."""
    from .page import PAGE_HTML

    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes}.")
    engine = BatchingEngine(served.model, served.tokenizer, served.adapters, router=served.router,
                            window_ms=window_ms, max_batch=max_batch, fault=fault)
    server = Server(served, engine, max_body_bytes)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        server.close()

    app = FastAPI(title="LoRA Adapter Lab server", version="1.0", lifespan=lifespan)
    app.state.server = server
    app.add_middleware(BodyLimit, server=server)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, err: ApiError):
        server.errors.record(err.status, err.code)
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, err: RequestValidationError):
        problems = "; ".join(f"{loc_param(e['loc'])}: {e['msg']}" for e in err.errors())
        first = err.errors()[0]["loc"] if err.errors() else ()
        return await api_error(_, ApiError(422, f"Invalid request: {problems}", code="validation_error",
                                           param=loc_param(first)))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, err: Exception):
        return await api_error(_, ApiError(500, f"Internal error ({type(err).__name__}: {err}); the server keeps "
                                                "serving.", kind="server_error", code="internal_error"))

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE_HTML

    @app.get("/health")
    async def health() -> dict:
        return server.health()

    @app.get("/v1/models")
    async def models() -> dict:
        return server.models()

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest):
        return await server.answer(request)

    return app
