"""The HTTP API: OpenAI-compatible chat completions over one base and its LoRA adapters, plus a web page.

`model` is an adapter name, `base`, `auto` (the router picks) or `mix` with an `adapter_weights` object
(an extension: a weighted 'cat' combination of loaded adapters). Every answer says which adapter answered,
in `model` and in the extra field `adapter`.
"""
from __future__ import annotations

import asyncio
import math
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from .engine import AUTO, BASE, BatchingEngine, GenerationError, Job
from .loading import ServedModel

MIX = "mix"
REQUEST_TIMEOUT_S = 600.0


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
    adapter_weights: dict[str, float] | None = None


class ApiError(Exception):
    """An error answered as {"error": {...}} with an HTTP status, like the OpenAI API does."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
                 **extra):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.extra = status, message, kind, code, extra

    def response(self) -> JSONResponse:
        body = {"message": self.message, "type": self.kind, "code": self.code, **self.extra}
        return JSONResponse({"error": body}, status_code=self.status)


def text_of(message: Message) -> str:
    """A message's content as plain text (text parts joined)."""
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "".join(str(part.get("text", "")) for part in message.content if part.get("type", "text") == "text")


class Server:
    """Request checks and the mapping from `model` to an adapter; generation goes through the engine."""

    def __init__(self, served: ServedModel, engine: BatchingEngine):
        from ..models import load_tokenizer

        self.served, self.engine, self.profile = served, engine, served.profile
        # The worker thread owns the engine's tokenizer; request checks use their own copy on the event loop.
        self.check_tokenizer = load_tokenizer(served.profile)
        self.max_prompt_tokens = self.profile.max_length
        self.max_tokens = self.profile.max_new_tokens

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
                           code="invalid_model_name", available=self.model_names())
        if weights is not None or model == MIX:
            return MIX, self.check_weights(weights)
        if model == AUTO and self.served.router is None:
            raise ApiError(503, f"model='auto' is unavailable: {self.served.router_error}. Name an adapter instead: "
                                f"{self.model_names()}.", kind="server_error", code="router_unavailable",
                           available=self.model_names())
        if model not in self.model_names():
            raise ApiError(404, f"Unknown model {model!r}. Available models: {', '.join(self.model_names())} "
                                f"(GET /v1/models lists them).", code="model_not_found", available=self.model_names())
        return model, None

    def check_weights(self, weights: dict[str, float] | None) -> dict[str, float]:
        """Weights for model='mix': known adapters, finite weights in (0, 4]."""
        if not weights:
            raise ApiError(400, "model='mix' needs adapter_weights, e.g. {\"json\": 0.7, \"support\": 0.3}.",
                           code="missing_adapter_weights")
        unknown = [name for name in weights if name not in self.served.adapters]
        if unknown:
            raise ApiError(404, f"adapter_weights names unknown adapters {unknown}. Loaded adapters: "
                                f"{self.served.adapters}.", code="model_not_found", available=self.model_names())
        bad = {k: v for k, v in weights.items() if not (math.isfinite(v) and 0 < v <= 4)}
        if bad:
            raise ApiError(400, f"adapter_weights must be numbers in (0, 4]; got {bad}.", code="invalid_adapter_weights")
        return {k: float(v) for k, v in weights.items()}

    def build_job(self, request: ChatRequest) -> Job:
        """Validate a request and turn it into a Job for the engine."""
        from ..models import chat_text

        if request.stream:
            raise ApiError(400, "stream=true is not supported by this teaching server; send stream=false.",
                           code="stream_unsupported")
        model, weights = self.resolve(request.model, request.adapter_weights)
        max_tokens = request.max_completion_tokens or request.max_tokens or self.max_tokens
        if max_tokens > self.max_tokens:
            raise ApiError(400, f"max_tokens={max_tokens} is over this server's limit of {self.max_tokens} "
                                f"(profile {self.profile.name}). Ask for fewer tokens.", code="max_tokens_too_large")
        messages = [{"role": m.role, "content": text_of(m)} for m in request.messages]
        if not any(m["content"].strip() for m in messages):
            raise ApiError(422, "Every message is empty: send at least one message with text.", code="empty_messages")
        prompt = chat_text(self.check_tokenizer, messages)
        n_tokens = len(self.check_tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if n_tokens > self.max_prompt_tokens:
            raise ApiError(400, f"The prompt is {n_tokens} tokens, over this server's limit of {self.max_prompt_tokens} "
                                f"(profile {self.profile.name} max_length). Shorten the messages or drop old turns.",
                           code="context_length_exceeded", prompt_tokens=n_tokens, limit=self.max_prompt_tokens)
        user_turns = [m["content"] for m in messages if m["role"] == "user"]
        return Job(prompt=prompt, route_text=user_turns[-1] if user_turns else messages[-1]["content"],
                   model=model, max_tokens=max_tokens, weights=weights)

    def health(self) -> dict:
        """What /health reports."""
        return {"status": "ok", "profile": self.profile.name, "base_model": self.served.base_id,
                "adapters": self.served.adapters, "models": self.model_names(),
                "router": self.served.router_kind or f"unavailable: {self.served.router_error}",
                "max_prompt_tokens": self.max_prompt_tokens, "max_tokens": self.max_tokens,
                "engine": dict(self.engine.stats)}

    def models(self) -> dict:
        """What /v1/models reports: OpenAI shape, plus kind/parent like vLLM lists LoRA modules."""
        created = int(time.time())
        data = [{"id": BASE, "object": "model", "created": created, "owned_by": "lora-adapter-lab", "kind": "base",
                 "root": self.served.base_id, "parent": None}]
        data += [{"id": name, "object": "model", "created": created, "owned_by": "lora-adapter-lab",
                  "kind": "adapter", "root": str(self.served.folders[name]), "parent": BASE}
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


def create_app(served: ServedModel, window_ms: float = 10.0, max_batch: int = 32, fault=None) -> FastAPI:
    """The FastAPI app; the engine's worker thread starts now and stops on shutdown."""
    from .page import PAGE_HTML

    engine = BatchingEngine(served.model, served.tokenizer, served.adapters, router=served.router,
                            window_ms=window_ms, max_batch=max_batch, fault=fault)
    server = Server(served, engine)
    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        engine.close()

    app = FastAPI(title="LoRA Adapter Lab server", version="1.0", lifespan=lifespan)
    app.state.server = server

    @app.exception_handler(ApiError)
    async def api_error(_: Request, err: ApiError):
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, err: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in err.errors())
        return JSONResponse({"error": {"message": f"Invalid request: {problems}", "type": "invalid_request_error",
                                       "code": "validation_error"}}, status_code=422)

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
        start = time.perf_counter()
        job = server.build_job(request)
        try:
            answer = await asyncio.wait_for(asyncio.wrap_future(engine.submit(job)), REQUEST_TIMEOUT_S)
        except GenerationError as err:
            raise ApiError(500, f"{err}. Only this request failed; the server keeps serving.", kind="server_error",
                           code="generation_failed") from err
        except asyncio.TimeoutError as err:
            raise ApiError(504, f"No answer within {REQUEST_TIMEOUT_S:.0f} s; the server is overloaded, retry later.",
                           kind="server_error", code="timeout") from err
        return server.completion(request, answer, (time.perf_counter() - start) * 1000)

    return app
