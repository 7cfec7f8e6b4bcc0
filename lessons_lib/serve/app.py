"""The HTTP API: OpenAI-compatible chat completions over one base and its LoRA adapters, plus a web page.

`model` is an adapter name, `base`, `auto` (the router picks) or `mix` with an `adapter_weights` object
(an extension: a weighted 'cat' combination of loaded adapters). Every answer says which adapter answered,
in `model` and in the extra field `adapter` (plus `route` for `auto`; a stream carries them from its first chunk on,
`auto` included). GET /v1/models lists them, GET /v1/models/{id} reads one. GET / is the web page (page.py), in the
server's language or the one `?lang=en|ru` asks for.

`auto` with tools in play (`tools` sent, tool_choice not "none") goes to the tools adapter (lesson 05's,
lessons_lib.tools.adapter.ADAPTER_NAME; route label "tools"): the router's labels are domains whose adapters never
learned to call. Where no tools adapter is served, such a request is a 400 (code no_tools_adapter) rather than a call
written by an adapter that cannot write one; /v1/models says which adapter it is (`tools_adapter` of the auto entry).

Chat Completions as OpenAI's clients use them (lessons_lib/serve/protocol.py lists every field and what it does
here): streaming (SSE `chat.completion.chunk`s, lessons_lib/serve/streaming.py), per-request sampling inside mixed
batches (`temperature`, `top_p`, `seed`, `n`, `stop`, `logprobs`), and tool calls (`tools`, `tool_choice`;
lessons_lib/serve/tooling.py). Absent `temperature` means greedy (0), not OpenAI's 1.0: the course's answers stay
reproducible; send a temperature to sample. No field is silently ignored: an unknown one is a 400 naming it.

Bounds, so that no single request stalls or degrades the server:
- request bodies over `max_body_bytes` (default DEFAULT_MAX_BODY_BYTES = 1 MB, `--max-body-bytes`) are refused
  with 413 from the Content-Length header or while the body streams in, before it is read in full; 1 MB of
  text is thousands of times the longest prompt any profile accepts;
- prompt checks (chat template, token count) run on a worker thread, so `/health` answers while a long prompt
  is checked;
- every error, routing (404 unknown path, 405 wrong method) and validation (400, not 422) included, is OpenAI's
  error object {"error": {message, type, param, code}} naming the field (`param`); `/health` counts the errors
  by status and code; its message is in the course language ($LESSONS_LANG, lessons_lib.i18n: English or Russian),
  while status, `type`, `code` and `param`, which clients match on, are the same in both;
- role markers typed into message content (`<|system|>`, `</s>`, `[INST]`, the tokenizer's special tokens) are
  neutralised, so a user cannot fake another turn;
- responses carry no absolute paths of the machine (adapters are listed by name);
- a client that disconnects cancels its request, streamed (streaming.py) or not (`until_answered`): the engine
  drops its rows (/health engine.cancelled).
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..chat_format import ROLE_MARKERS
from ..copying import CopyBias, RequestedNames, prompt_source
from ..i18n import plural_ru, tr
from ..mixing import MAX_WEIGHT, saved_modules, unmixable_message
from .engine import AUTO, BASE, Answer, BatchingEngine, GenerationError, Job, Sampling, mix_name
from .loading import ServedModel
from .protocol import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_TEMPERATURE,
    ApiError,
    ChatRequest,
    chat_messages,
    check_request,
    stop_strings,
    text_of,
    tool_mode,
    tool_results,
    tool_schemas,
)
from .streaming import Chunks, chunks, logprobs_field, open_stream, usage_of
from .tooling import ToolPlan, fewest_call_tokens, name_rule, needs_retry, plan_format, plan_tools, read_reply

__all__ = ["ApiError", "ChatRequest", "DEFAULT_TEMPERATURE", "Server", "create_app"]

MIX = "mix"
REQUEST_TIMEOUT_S = 600.0
DISCONNECT_POLL_S = 0.05  # how often a non-streamed request checks that its client is still there
# Role markers typed into content are neutralised whether the tokenizer knows them as special tokens or reads
# them as plain text (one list: chat_format.ROLE_MARKERS).
KNOWN_MARKERS = ROLE_MARKERS
MARKER_PATTERN = re.compile(r"<\|[^<>|\s]{1,40}\|>")  # <|system|>, <|user|>, <|eot_id|>, <|start_header_id|> ...
BREAK = "\u200b"  # a zero-width space inside a marker makes it plain text for the tokenizer
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.@+~-]+/)*[\w.@+~-]+")
LARGE_PROMPT_CHARS = 100_000  # after checking a prompt this long, free memory back to the OS (release_memory)
UNION_TAG = re.compile(
    r"^(str|int|float|bool|none|list\[.*\]|dict\[.*\]|function-.*|literal\[.*\]"
    r"|NamedToolChoice)$"
)
ROUTES = "GET /v1/models, GET /v1/models/{id}, POST /v1/chat/completions, GET /health, GET /"


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
        rendered = chat_text(
            tokenizer,
            [
                {"role": "system", "content": probe},
                {"role": "user", "content": probe},
                {"role": "assistant", "content": probe},
                {"role": "user", "content": probe},
            ],
        )
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
        return {
            "total": total,
            "client": client,
            "server": total - client,
            "by_status": dict(self.by_status),
            "by_code": dict(self.by_code),
        }


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
        self.loaded_at = int(time.time())  # /v1/models' `created`: when these models were loaded
        # adapters holding modules_to_save copies (the tools adapter's lm_head): a weighted mix would drop them
        self.saved = {a: m for a in served.adapters if (m := saved_modules(served.model, a))} if served.adapters else {}
        self.tools_name = tools_adapter_name()
        self.tools_adapter = self.tools_name if self.tools_name in served.adapters else None  # model="auto" + tools

    def close(self) -> None:
        """Stop the prompt-check thread and the engine."""
        self.checks.shutdown(wait=False, cancel_futures=True)
        self.engine.close()

    def model_names(self) -> list[str]:
        """Every `model` value a request may use."""
        names = [BASE, *self.served.adapters, *self.named_mixes()]
        if self.served.router is not None:
            names.append(AUTO)
        return names

    def named_mixes(self) -> dict[str, dict[str, float]]:
        """Mixes a composition file named (composition.py): model=NAME answers as model='mix' with their weights."""
        return getattr(self.served, "mixes", None) or {}

    def resolve(self, model: str, weights: dict[str, float] | None) -> tuple[str, dict[str, float] | None]:
        """Check the requested model (and weights); return (model, weights) or raise ApiError."""
        if any(sep in model for sep in ("/", "\\")) or ".." in model:
            raise ApiError(
                400,
                tr(
                    en=f"Refused model name {model!r}: it contains a path separator or '..'. A model here is "
                    f"the name of a loaded adapter, not a path. Available: {self.model_names()}.",
                    ru=f"Имя модели {model!r} отклонено: в нём есть разделитель пути или '..'. Модель здесь — это "
                    f"имя загруженного адаптера, а не путь. Доступны: {self.model_names()}.",
                ),
                code="invalid_model_name",
                param="model",
                available=self.model_names(),
            )
        if model == MIX:
            return MIX, self.check_weights(weights)
        if weights is not None:
            raise self.weights_without_mix(model)
        if model in self.named_mixes():
            return MIX, self.check_weights(self.named_mixes()[model])
        if model == AUTO and self.served.router is None:
            raise ApiError(
                503,
                tr(
                    en=f"model='auto' is unavailable: {self.served.router_error}. Name an adapter instead: "
                    f"{self.model_names()}.",
                    ru=f"model='auto' недоступна: {self.served.router_error}. Укажите вместо неё адаптер: "
                    f"{self.model_names()}.",
                ),
                kind="server_error",
                code="router_unavailable",
                param="model",
                available=self.model_names(),
            )
        if model not in self.model_names():
            raise ApiError(
                404,
                tr(
                    en=f"Unknown model {model!r}. Available models: {', '.join(self.model_names())} "
                    f"(GET /v1/models lists them).",
                    ru=f"Неизвестная модель {model!r}. Доступные модели: {', '.join(self.model_names())} "
                    f"(их перечисляет GET /v1/models).",
                ),
                code="model_not_found",
                param="model",
                available=self.model_names(),
            )
        return model, None

    def weights_without_mix(self, model: str) -> ApiError:
        """The 400 for adapter_weights next to a model that is not model='mix' (they would silently replace it)."""
        named = self.named_mixes().get(model)
        if named is not None:
            why = tr(
                en=f"{model!r} is a named mix with its own weights {named}",
                ru=f"{model!r} — именованная смесь со своими весами {named}",
            )
        else:
            why = tr(
                en=f"model={model!r} answers with that model alone",
                ru=f"model={model!r} отвечает только этой моделью",
            )
        return ApiError(
            400,
            tr(
                en=f"adapter_weights goes with model={MIX!r} only: {why}, and the weights would silently replace it. "
                f"Send model={MIX!r} with adapter_weights to mix adapters, or leave adapter_weights out.",
                ru=f"adapter_weights передаётся только с model={MIX!r}: {why}, и веса молча заменили бы её. "
                f"Чтобы смешать адаптеры, отправьте model={MIX!r} с adapter_weights, иначе уберите adapter_weights.",
            ),
            code="adapter_weights_without_mix",
            param="adapter_weights",
        )

    def check_weights(self, weights: dict[str, float] | None) -> dict[str, float]:
        """Weights for model='mix': known adapters without modules_to_save copies (a mix would drop them), finite
        weights in (0, MAX_WEIGHT] (the course's mix range)."""
        if not weights:
            raise ApiError(
                400,
                tr(
                    en='model=\'mix\' needs adapter_weights, e.g. {"json": 0.7, "support": 0.3}.',
                    ru='Для model=\'mix\' нужны adapter_weights, например {"json": 0.7, "support": 0.3}.',
                ),
                code="missing_adapter_weights",
                param="adapter_weights",
            )
        unknown = [name for name in weights if name not in self.served.adapters]
        if unknown:
            raise ApiError(
                404,
                tr(
                    en=f"adapter_weights names unknown adapters {unknown}. Loaded adapters: {self.served.adapters}.",
                    ru=f"В adapter_weights названы неизвестные адаптеры {unknown}. Загруженные адаптеры: "
                    f"{self.served.adapters}.",
                ),
                code="model_not_found",
                param=f"adapter_weights.{unknown[0]}",
                available=self.model_names(),
            )
        saved = {name: self.saved[name] for name in weights if name in self.saved}
        if saved:
            raise ApiError(
                400,
                unmixable_message(saved, [name for name in weights if name not in saved]),
                code="unmixable_adapter",
                param=f"adapter_weights.{next(iter(saved))}",
            )
        bad = {k: v for k, v in weights.items() if not 0 < v <= MAX_WEIGHT}  # NaN fails every comparison
        if bad:
            raise ApiError(
                400,
                tr(
                    en=f"adapter_weights must be numbers greater than 0 and at most {MAX_WEIGHT:g}; got {bad}.",
                    ru=f"Веса в adapter_weights должны быть числами больше 0 и не больше {MAX_WEIGHT:g}; "
                    f"получено {bad}.",
                ),
                code="invalid_adapter_weights",
                param=f"adapter_weights.{next(iter(bad))}",
            )
        return {k: float(v) for k, v in weights.items()}

    def check_limits(self, request: ChatRequest) -> int:
        """Refuse over-long answers; return max_tokens."""
        max_tokens = request.max_completion_tokens or request.max_tokens or self.max_tokens
        if max_tokens > self.max_tokens:
            param = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
            raise ApiError(
                400,
                tr(
                    en=f"{param}={max_tokens} is over this server's limit of {self.max_tokens} "
                    f"(profile {self.profile.name}). Ask for fewer tokens.",
                    ru=f"{param}={max_tokens} больше предела этого сервера: {self.max_tokens} "
                    f"{tokens_ru(self.max_tokens)} (профиль {self.profile.name}). Запросите меньше токенов.",
                ),
                code="max_tokens_too_large",
                param=param,
            )
        return max_tokens

    def route_text(self, model: str, messages: list[dict]) -> str:
        """What the router reads: the last user message (else the last message); a 400 naming it if auto gets blank."""
        users = [i for i, m in enumerate(messages) if m["role"] == "user"]
        index = users[-1] if users else len(messages) - 1
        text = messages[index]["content"]
        if model == AUTO and not text.strip():
            if users:
                which = tr(en="the last user message", ru="последнему сообщению пользователя")
            else:
                which = tr(
                    en="the last message (there is no user message)",
                    ru="последнему сообщению (сообщения пользователя нет)",
                )
            raise ApiError(
                400,
                tr(
                    en=f"model='auto' routes on {which}, but messages[{index}].content is empty. Put the "
                    "request in that message, or name an adapter in `model`.",
                    ru=f"model='auto' выбирает адаптер по {which}, но messages[{index}].content пуст. Напишите "
                    "запрос в этом сообщении или укажите адаптер в `model`.",
                ),
                code="empty_route_text",
                param=f"messages[{index}].content",
            )
        return text

    def safe(self, message: dict) -> dict:
        """A message with role markers neutralised in its content and in its calls' string arguments."""
        out = {**message, "content": neutralise(message["content"], self.markers)}
        if message.get("tool_calls"):
            out["tool_calls"] = [
                {**call, "function": {**call["function"], "arguments": self.safe_value(call["function"]["arguments"])}}
                for call in message["tool_calls"]
            ]
        return out

    def safe_value(self, value):
        """A JSON value with role markers neutralised in every string."""
        if isinstance(value, str):
            return neutralise(value, self.markers)
        if isinstance(value, list):
            return [self.safe_value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.safe_value(v) for k, v in value.items()}
        return value

    def render(self, messages: list[dict], tools: list[dict] | None = None) -> tuple[str, int]:
        """The chat-templated prompt (markers in content neutralised; the tools shown as the course's chat format
        shows them) and its token count; 400s name the field."""
        from ..models import chat_text

        try:
            prompt = chat_text(self.check_tokenizer, [self.safe(m) for m in messages], tools=tools or None)
        except Exception as err:  # noqa: BLE001 - the messages are the only input of the template
            raise ApiError(
                400,
                tr(
                    en=f"These messages cannot be rendered with this model's chat template "
                    f"({type(err).__name__}: {err}). Check the roles and their order.",
                    ru=f"Эти сообщения нельзя отрисовать шаблоном чата этой модели "
                    f"({type(err).__name__}: {err}). Проверьте роли и их порядок.",
                ),
                code="invalid_messages",
                param="messages",
            ) from err
        ids = self.check_tokenizer(prompt, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        return prompt, len(ids)

    @staticmethod
    def sampling(request: ChatRequest) -> Sampling:
        """The request's decoding settings (absent temperature: DEFAULT_TEMPERATURE, greedy)."""
        temperature = DEFAULT_TEMPERATURE if request.temperature is None else request.temperature
        return Sampling(
            temperature=temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            seed=request.seed,
            n=request.n or 1,
            stop=stop_strings(request.stop),
            logprobs=bool(request.logprobs),
            top_logprobs=request.top_logprobs or 0,
        )

    def build_job(self, request: ChatRequest) -> Prepared:
        """Validate a request and turn it into a Job for the engine (runs on the prompt-check thread)."""
        check_request(request)
        model, weights = self.resolve(request.model, request.adapter_weights)
        max_tokens = self.check_limits(request)
        messages = chat_messages(request.messages)
        if not any(m["content"].strip() or m.get("tool_calls") for m in messages):
            raise ApiError(
                400,
                tr(
                    en="Every message is empty: send at least one message with text.",
                    ru="Все сообщения пусты: отправьте хотя бы одно сообщение с текстом.",
                ),
                code="empty_messages",
                param="messages",
            )
        route_text = self.route_text(model, messages)
        mode, schemas = tool_mode(request), tool_schemas(request)
        prompt, n_tokens = self.render(messages, schemas if mode else None)
        if n_tokens > self.max_prompt_tokens:
            raise ApiError(
                400,
                tr(
                    en=f"The prompt is {n_tokens} tokens, over this server's limit of {self.max_prompt_tokens} "
                    f"(profile {self.profile.name} max_length). Shorten the messages or drop old turns.",
                    ru=f"Промпт занимает {n_tokens} {tokens_ru(n_tokens)}, больше предела этого сервера: "
                    f"{self.max_prompt_tokens} {tokens_ru(self.max_prompt_tokens)} (max_length профиля "
                    f"{self.profile.name}). Сократите сообщения или уберите старые реплики.",
                ),
                code="context_length_exceeded",
                param="messages",
                prompt_tokens=n_tokens,
                limit=self.max_prompt_tokens,
            )
        copies = request.copy_bias or request.requested_names or request.quote
        source = prompt_source(messages) if copies else ""  # the user messages, read once for every copying rule
        plan = plan_tools(schemas, mode, self.check_tokenizer, max_tokens, source if request.quote else None)
        self.check_call_room(request, mode, schemas, max_tokens)
        job = Job(
            prompt=prompt,
            route_text=route_text,
            model=model,
            max_tokens=max_tokens,
            weights=weights,
            route=self.tools_route(request) if model == AUTO and mode else None,
            sampling=self.sampling(request),
            allowed_tokens=(plan.allowed_tokens if plan else None)
            or plan_format(request.response_format, self.check_tokenizer, max_tokens)
            or self.name_rule(source, request.requested_names)
            or self.result_guard(messages, request.quote),
            token_bias=self.copy_nudge(source, request.copy_bias),
        )
        return Prepared(job, request, plan)

    def tools_route(self, request: ChatRequest) -> dict:
        """model="auto" with tools in play: the route to the tools adapter (the router's labels are domains, and their
        adapters never learned calls); a 400 when this server does not serve one."""
        if request.tool_choice is None or isinstance(request.tool_choice, str):
            choice = request.tool_choice or "auto"  # absent means "auto", as in tool_mode
        else:
            choice = tr(en="a named function", ru="именованная функция")
        if self.tools_adapter is None:
            raise ApiError(
                400,
                tr(
                    en=f"model='auto' sends requests with tools to the tools adapter (lesson 05's "
                    f"{self.tools_name!r}), and this server does not serve it, so no adapter here has learned to call "
                    f"tools. Name a model "
                    f'({", ".join(self.model_names())}), send tool_choice="none" to route the text as usual, or '
                    f"serve the tools adapter (assets/compositions/course.toml does).",
                    ru=f"model='auto' отправляет запросы с tools адаптеру инструментов ({self.tools_name!r} из урока "
                    f"05), а этот сервер его не обслуживает, так что вызывать инструменты здесь не обучен ни один "
                    f'адаптер. Укажите модель ({", ".join(self.model_names())}), отправьте tool_choice="none", '
                    f"чтобы маршрутизировать текст как обычно, или запустите сервер с адаптером инструментов (так "
                    f"делает assets/compositions/course.toml).",
                ),
                code="no_tools_adapter",
                param="tools",
            )
        return {
            "label": "tools",
            "adapter": self.tools_adapter,
            "reason": tr(
                en=f"the request carries tools (tool_choice {choice!r}): the tools adapter answers tool calls",
                ru=f"в запросе есть tools (tool_choice {choice!r}): на вызовы инструментов отвечает адаптер "
                "инструментов",
            ),
            "scores": {},
        }

    def check_call_room(self, request: ChatRequest, mode: str | None, schemas: list[dict], max_tokens: int) -> None:
        """A 400 when a forced call ("required", a named function) cannot write even its name in `max_tokens`."""
        if mode is None or mode == "auto":
            return
        names = [s["function"]["name"] for s in schemas if mode == "required" or s["function"]["name"] == mode[9:]]
        least = fewest_call_tokens(names, self.check_tokenizer)
        if max_tokens >= least:
            return
        param = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
        forced = mode.replace("function:", "")
        raise ApiError(
            400,
            tr(
                en=f"{param}={max_tokens} is too small for tool_choice={forced!r}: the reply is a "
                f"tool call, and writing even its name takes at least {least} tokens here, so the reply would be "
                f"empty. Send {param} of at least {least} (a whole call takes more; this server allows up to "
                f"{self.max_tokens}).",
                ru=f"{param}={max_tokens} слишком мало для tool_choice={forced!r}: ответ — вызов инструмента, и "
                f"даже его имя занимает здесь минимум {least} {tokens_ru(least)}, так что ответ был бы пустым. "
                f"Отправьте {param} не меньше {least} (целый вызов занимает больше; этот сервер разрешает до "
                f"{self.max_tokens}).",
            ),
            code="max_tokens_too_small",
            param=param,
            minimum=least,
        )

    def copy_nudge(self, source: str, bias: float | None):
        """The job's `token_bias` for a request's copy_bias (None when absent or 0), copying from `prompt_source`."""
        if not bias:
            return None
        return CopyBias.for_tokenizer(self.check_tokenizer).with_bias(bias).row(source)

    def name_rule(self, source: str, on: bool | None):
        """The job's `allowed_tokens` for requested_names=true (None otherwise): a `def` takes a name the user gives."""
        if not on:
            return None
        return RequestedNames.for_tokenizer(self.check_tokenizer).row(source)

    def result_guard(self, messages: list[dict], on: bool | None):
        """The job's `allowed_tokens` for quote=true after a tool result (None otherwise): an answer that starts
        repeating the result goes on repeating it exactly (lesson 05's faithful answers)."""
        results = tool_results(messages) if on else ""
        if not results:
            return None
        from ..tools.faithful import CopyGuard

        return CopyGuard.for_tokenizer(self.check_tokenizer).row(results)

    def checked_job(self, request: ChatRequest) -> Prepared:
        """`build_job`, then memory released if the prompt was large (runs on the prompt-check thread)."""
        try:
            return self.build_job(request)
        finally:
            if sum(len(text_of(m)) for m in request.messages) > LARGE_PROMPT_CHARS:
                release_memory()

    def health(self) -> dict:
        """What /health reports."""
        return {
            "status": "ok",
            "profile": self.profile.name,
            "base_model": public_id(self.served.base_id),
            "adapters": self.served.adapters,
            "models": self.model_names(),
            "not_served": [without_paths(reason) for reason in self.served.skipped],
            "router": self.served.router_kind or self.router_unavailable(),
            "max_prompt_tokens": self.max_prompt_tokens,
            "max_tokens": self.max_tokens,
            "max_body_bytes": self.max_body_bytes,
            "errors": self.errors.as_dict(),
            "engine": dict(self.engine.stats),
        }

    def router_unavailable(self) -> str:
        """/health's `router` when model='auto' is unavailable: why."""
        why = without_paths(str(self.served.router_error))
        return tr(en=f"unavailable: {why}", ru=f"недоступен: {why}")

    def models(self) -> dict:
        """What /v1/models reports: OpenAI shape, plus kind/parent like vLLM lists LoRA modules (no local paths)."""
        created = self.loaded_at
        data = [
            {
                "id": BASE,
                "object": "model",
                "created": created,
                "owned_by": "lora-adapter-lab",
                "kind": "base",
                "root": public_id(self.served.base_id),
                "parent": None,
            }
        ]
        data += [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "lora-adapter-lab",
                "kind": "adapter",
                "root": name,
                "parent": BASE,
                "mixable": name not in self.saved,  # an adapter with modules_to_save copies cannot go in a mix
            }
            for name in self.served.adapters
        ]
        data += [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "lora-adapter-lab",
                "kind": "mix",
                "root": mix_name(weights),
                "parent": BASE,
                "adapter_weights": weights,
            }
            for name, weights in self.named_mixes().items()
        ]
        if self.served.router is not None:
            data.append(
                {
                    "id": AUTO,
                    "object": "model",
                    "created": created,
                    "owned_by": "lora-adapter-lab",
                    "kind": "router",
                    "root": self.served.router_kind,
                    "parent": BASE,
                    "tools_adapter": self.tools_adapter,  # who answers a request with tools (None: a 400)
                }
            )
        return {"object": "list", "data": data}

    def model(self, model_id: str) -> dict:
        """One entry of /v1/models, or a 404 model_not_found listing the others."""
        for entry in self.models()["data"]:
            if entry["id"] == model_id:
                return entry
        raise ApiError(
            404,
            tr(
                en=f"The model {model_id!r} does not exist here. Available models: {', '.join(self.model_names())}.",
                ru=f"Модели {model_id!r} здесь нет. Доступные модели: {', '.join(self.model_names())}.",
            ),
            code="model_not_found",
            param="model",
            available=self.model_names(),
        )

    @staticmethod
    def completion(prepared: Prepared, answer, latency_ms: float) -> dict:
        """An OpenAI chat.completion body; `model` and `adapter` name the adapter that answered."""
        choices = []
        for choice in answer.choices:
            reading = read_reply(choice.text, choice.finish_reason, prepared.plan)
            message = {"role": "assistant", "content": reading.content, "refusal": None}
            if reading.tool_calls:
                message["tool_calls"] = reading.tool_calls
            choices.append(
                {
                    "index": choice.index,
                    "message": message,
                    "finish_reason": reading.finish_reason,
                    "logprobs": logprobs_field(choice.logprobs) if prepared.request.logprobs else None,
                }
            )
        return {
            "id": prepared.id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": answer.adapter,
            "adapter": answer.adapter,
            "requested_model": prepared.request.model,
            "route": answer.route,
            "system_fingerprint": None,
            "choices": choices,
            "usage": usage_of(answer),
            "timing": {
                "latency_ms": round(latency_ms, 1),
                "queue_ms": round(answer.queue_ms, 1),
                "generate_ms": round(answer.generate_ms, 1),
                "batch_size": answer.batch_size,
            },
        }

    async def prepare(self, request: ChatRequest) -> Prepared:
        """Check the request on the prompt-check thread."""
        return await asyncio.get_running_loop().run_in_executor(self.checks, self.checked_job, request)

    async def answer(self, request: ChatRequest, http: Request | None = None):
        """Check the request on the prompt-check thread, then wait for the engine's answer; a client that goes away
        meanwhile cancels its job (as a closed stream does)."""
        start = time.perf_counter()
        prepared = await self.prepare(request)
        job = prepared.job
        try:
            answer = await until_answered(self.answered(prepared), http, REQUEST_TIMEOUT_S)
        except GenerationError as err:
            raise failed(err) from err
        except asyncio.TimeoutError as err:
            job.cancelled.set()
            raise timed_out() from err
        except ClientGone:
            job.cancelled.set()
            return client_gone().response()  # nobody reads it; not counted as an error
        return self.completion(prepared, answer, (time.perf_counter() - start) * 1000)

    async def answered(self, prepared: Prepared) -> Answer:
        """The engine's answer to a prepared request, its broken "auto" calls decoded again (`settle`)."""
        return await self.settle(prepared, await asyncio.wrap_future(self.engine.submit(prepared.job)))

    async def settle(self, prepared: Prepared, answer: Answer, eligible: set[int] | None = None) -> Answer:
        """The answer with every choice (in `eligible`, default all) that began a call which does not validate under
        tool_choice "auto" decoded again under the tools' schemas, as "required" does (tooling.needs_retry), in what a
        client's max_tokens leaves after the first decode; the answer as it is when no call fits there or the decode
        fails."""
        redo = [
            c.index
            for c in answer.choices
            if needs_retry(c.text, c.finish_reason, prepared.plan) and (eligible is None or c.index in eligible)
        ]
        if not redo:
            return answer
        try:
            job = await asyncio.get_running_loop().run_in_executor(self.checks, self.retry_job, prepared, answer, redo)
            if job is None:
                return answer
            again = await asyncio.wrap_future(self.engine.submit(job))
        except GenerationError:
            return answer
        return retried(answer, dict(zip(redo, again.choices)), again.generate_ms)

    def retry_job(self, prepared: Prepared, answer: Answer, redo: list[int]) -> Job | None:
        """The job that decodes `redo`'s choices again under tool_choice "required" (runs on the prompt-check thread):
        the same prompt, adapter and settings, sharing the original's cancel flag; with the client's max_tokens, within
        what the first decode left of it (None when a call's name does not fit there). Tools whose schemas the grammar
        cannot express still get a call to one of them, its arguments as the model writes them (`name_rule`)."""
        job, asked = prepared.job, prepared.request.max_completion_tokens or prepared.request.max_tokens
        left = job.max_tokens - (max(c.completion_tokens for c in answer.choices if c.index in redo) if asked else 0)
        names = prepared.plan.names
        if left < fewest_call_tokens(names, self.check_tokenizer):
            return None
        try:
            allowed = plan_tools(prepared.plan.schemas, "required", self.check_tokenizer, left).allowed_tokens
        except ApiError:
            allowed = name_rule(names, self.check_tokenizer)
        return replace(
            job,
            max_tokens=left,
            allowed_tokens=allowed,
            sampling=replace(job.sampling, n=len(redo)),
            route=answer.route if job.model == AUTO else None,
            future=Future(),
            submitted=time.perf_counter(),
            on_delta=None,
            on_route=None,
            cancelled=job.cancelled,
        )

    async def stream(self, request: ChatRequest) -> StreamingResponse:
        """Check the request (errors are plain JSON answers), then stream its chunks as the engine writes them."""
        prepared = await self.prepare(request)
        try:
            events, future = open_stream(self.engine, prepared.job)
        except GenerationError as err:
            raise failed(err) from err
        options = prepared.request.stream_options
        writer = Chunks(
            prepared.id,
            prepared.known_adapter or request.model,
            prepared.known_adapter,
            include_usage=bool(options and options.include_usage),
            logprobs=bool(request.logprobs),
        )

        def failure(err: Exception) -> dict:
            error = failed(err) if isinstance(err, GenerationError) else timed_out()
            self.errors.record(error.status, error.code)
            return error.body()

        body = chunks(
            events,
            future,
            prepared.job,
            writer,
            prepared.job.sampling.n,
            prepared.plan,
            REQUEST_TIMEOUT_S,
            failure,
            settle=lambda answer, eligible: self.settle(prepared, answer, eligible),
        )
        return StreamingResponse(
            body, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )


@dataclass
class Prepared:
    """A checked request: the engine's Job, the request, and how its replies are read (tools)."""

    job: Job
    request: ChatRequest
    plan: ToolPlan | None = None

    def __post_init__(self):
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"

    @property
    def prompt(self) -> str:
        return self.job.prompt

    @property
    def known_adapter(self) -> str | None:
        """Who answers, when it is known before generation (not for model='auto': the router picks in the worker)."""
        if self.job.model == AUTO:
            return None
        return mix_name(self.job.weights) if self.job.weights else self.job.model


def tools_adapter_name() -> str:
    """The name of lesson 05's tool-calling adapter, where model="auto" sends requests with tools."""
    from ..tools.adapter import ADAPTER_NAME

    return ADAPTER_NAME


def retried(answer: Answer, again: dict, generate_ms: float) -> Answer:
    """`answer` with choices replaced by their second decode ({index: Choice}); usage counts both decodes (together
    within a client's max_tokens: the second gets what the first left)."""
    choices = tuple(
        replace(
            c,
            text=again[c.index].text,
            finish_reason=again[c.index].finish_reason,
            completion_tokens=c.completion_tokens + again[c.index].completion_tokens,
            logprobs=again[c.index].logprobs,
        )
        if c.index in again
        else c
        for c in answer.choices
    )
    first = choices[0]
    return replace(
        answer,
        choices=choices,
        text=first.text,
        finish_reason=first.finish_reason,
        completion_tokens=first.completion_tokens,
        generate_ms=answer.generate_ms + generate_ms,
    )


class ClientGone(Exception):
    """The client of a non-streamed request disconnected before its answer."""


async def until_answered(work, http: Request | None, timeout_s: float):
    """Await `work` (a coroutine); ClientGone as soon as `http`'s client disconnects, TimeoutError after `timeout_s`."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(disconnected(http)) if http is not None else None
    waiting = {task} if watch is None else {task, watch}
    try:
        done, _ = await asyncio.wait(waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in waiting:
            if not pending.done():
                pending.cancel()
    if task in done:
        return task.result()
    if watch is not None and watch in done:
        raise ClientGone()
    raise asyncio.TimeoutError()


async def disconnected(http: Request) -> None:
    """Return once `http`'s client has disconnected (polled every DISCONNECT_POLL_S)."""
    while not await http.is_disconnected():
        await asyncio.sleep(DISCONNECT_POLL_S)


def tokens_ru(n: int) -> str:
    """The Russian word for tokens that goes with `n` (1 токен, 3 токена, 5 токенов)."""
    return plural_ru(n, "токен", "токена", "токенов")


def bytes_ru(n: int) -> str:
    """The Russian word for bytes that goes with `n` (1 байт, 3 байта, 5 байт)."""
    return plural_ru(n, "байт", "байта", "байт")


def client_gone() -> ApiError:
    return ApiError(
        499,
        tr(
            en="The client closed the connection before the answer was ready; its generation was cancelled.",
            ru="Клиент закрыл соединение до того, как ответ был готов; его генерация отменена.",
        ),
        code="client_closed_request",
    )


def failed(err: GenerationError) -> ApiError:
    return ApiError(
        500,
        tr(
            en=f"{err}. Only this request failed; the server keeps serving.",
            ru=f"{err}. Не удался только этот запрос; сервер продолжает работу.",
        ),
        kind="server_error",
        code="generation_failed",
    )


def timed_out() -> ApiError:
    return ApiError(
        504,
        tr(
            en=f"No answer within {REQUEST_TIMEOUT_S:.0f} s; the server is overloaded, retry later.",
            ru=f"Нет ответа за {REQUEST_TIMEOUT_S:.0f} с; сервер перегружен, повторите запрос позже.",
        ),
        kind="server_error",
        code="timeout",
    )


# ---------------------------------------------------------------- the request size limit
def too_large(limit: int, size: int | None) -> ApiError:
    """The 413 for a body over the limit."""
    if size is not None:
        got = tr(en=f"is {size} bytes, over", ru=f"занимает {size} {bytes_ru(size)}, больше предела")
    else:
        got = tr(en="grew past", ru="превысило предел")
    return ApiError(
        413,
        tr(
            en=f"The request body {got} this server's limit of {limit} bytes. Send a shorter prompt (or "
            "start the server with a larger --max-body-bytes).",
            ru=f"Тело запроса {got} этого сервера: {limit} {bytes_ru(limit)}. Отправьте промпт короче (или "
            "запустите сервер с большим --max-body-bytes).",
        ),
        code="request_too_large",
        param="body",
        limit=limit,
    )


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


# ---------------------------------------------------------------- errors outside the request checks
def validation_error(errors: list[dict], content_type: str | None = "application/json") -> ApiError:
    """pydantic's complaints about a body as one 400 naming the most specific field (the deepest location: for a
    union such as `content`, the branch that got furthest); an unknown field is unknown_parameter, a body that is
    not JSON (or not sent as JSON) says how to send it."""
    first = max(
        errors, key=lambda e: len(loc_param(e["loc"]).replace("[", ".[").split(".")), default={"loc": (), "type": ""}
    )
    if first["type"] == "json_invalid":
        return not_json(first)
    if tuple(first["loc"]) == ("body",):
        unread = isinstance(first.get("input"), (bytes, str)) or not is_json_type(content_type)
        return not_sent_as_json(content_type) if unread else not_an_object(first)
    media = next((e for e in errors if is_media_part(e)), None)
    if media is not None:
        where = loc_param(media["loc"])
        return ApiError(
            400,
            tr(
                en=f"{where} is {media['input']!r}, and this server reads text only (a small language model, no vision "
                'or audio); send the content as a string or as {"type": "text", "text": ...} parts.',
                ru=f"{where} равно {media['input']!r}, а этот сервер читает только текст (небольшая языковая модель, "
                'без зрения и звука); отправьте content строкой или частями {"type": "text", "text": ...}.',
            ),
            code="validation_error",
            param=where,
        )
    if first["type"] == "extra_forbidden":
        name = loc_param(first["loc"])
        return ApiError(
            400,
            tr(
                en=f"Unrecognized request argument supplied: {name}. This server refuses fields it does "
                "not implement rather than ignore them; remove it (lessons_lib/serve/protocol.py lists "
                "what each field does here).",
                ru=f"Неизвестный параметр запроса: {name}. Этот сервер отклоняет поля, которых не реализует, а не "
                "игнорирует их; уберите его (lessons_lib/serve/protocol.py перечисляет, что здесь делает каждое "
                "поле).",
            ),
            code="unknown_parameter",
            param=name,
        )
    problems = "; ".join(f"{loc_param(e['loc'])}: {problem(e)}" for e in errors)
    return ApiError(
        400,
        tr(en=f"Invalid request: {problems}", ru=f"Некорректный запрос: {problems}"),
        code="validation_error",
        param=loc_param(first["loc"]),
    )


def is_media_part(error: dict) -> bool:
    """Is this pydantic error a message's content part of another type than text (an image, audio, a file)?"""
    loc = error["loc"]
    return (
        error["type"] == "literal_error"
        and loc[-1:] == ("type",)
        and "content" in loc
        and isinstance(error.get("input"), str)
    )


# pydantic's strict type errors: what the field takes (in English, in Russian), and an example of it
EXPECTED = {
    "float_type": ("a number", "число", "0.5"),
    "int_type": ("a whole number", "целое число", "3"),
    "bool_type": ("a boolean", "логическое значение", "false"),
}


def problem(error: dict) -> str:
    """One pydantic error in words that say what to send: a strict type names the type expected and what came."""
    kind = error["type"]
    if kind == "finite_number":
        return tr(
            en=f"must be a finite number, got {error['input']!r} (NaN and Infinity are not accepted)",
            ru=f"должно быть конечным числом, получено {error['input']!r} (NaN и Infinity не принимаются)",
        )
    if kind in EXPECTED:
        what_en, what_ru, example = EXPECTED[kind]
        got = error["input"]
        example = unquoted(got, kind) or example
        return tr(
            en=f"expected {what_en}, got {json_kind(got)} {json_text(got)}; send a JSON value like {example}, "
            "no quotes",
            ru=f"нужно {what_ru}, а пришло: {json_kind(got)} {json_text(got)}; отправьте JSON-значение без кавычек, "
            f"например {example}",
        )
    return error["msg"]  # pydantic's own words


def unquoted(value, kind: str) -> str | None:
    """A string that holds the right JSON value ("0.5" for a number), without its quotes; else None."""
    import json

    try:
        parsed = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return None
    wanted = {"float_type": (int, float), "int_type": int, "bool_type": bool}[kind]
    fits = isinstance(parsed, wanted) and (kind == "bool_type") == isinstance(parsed, bool)
    return value.strip() if fits and math.isfinite(parsed) else None  # "NaN" parses, and is refused unquoted too


def json_kind(value) -> str:
    """The JSON type of a parsed value, as the error names it."""
    if isinstance(value, bool):
        return tr(en="a boolean", ru="логическое значение")
    if isinstance(value, (int, float)):
        return tr(en="a number", ru="число")
    if isinstance(value, str):
        return tr(en="a string", ru="строка")
    if isinstance(value, list):
        return tr(en="an array", ru="массив")
    return "null" if value is None else tr(en="an object", ru="объект")


def json_text(value) -> str:
    """A parsed value as JSON, cut to 40 characters."""
    import json

    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:40] + "…"


def is_json_type(content_type: str | None) -> bool:
    """Whether a Content-Type header makes FastAPI read the body as JSON (an absent one does not)."""
    if not content_type:
        return False
    kind = content_type.split(";")[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def not_json(error: dict) -> ApiError:
    """The 400 for a body that is not valid JSON, at the position where parsing stopped."""
    position = error["loc"][-1] if error["loc"] and isinstance(error["loc"][-1], int) else None
    reason = (error.get("ctx") or {}).get("error", tr(en="JSON decode error", ru="ошибка разбора JSON"))
    where = ""
    if position is not None:
        where = tr(
            en=f" at position {position} (character {position + 1})",
            ru=f" в позиции {position} (символ {position + 1})",
        )
    return ApiError(
        400,
        tr(
            en=f"The request body is not valid JSON: {reason}{where}. Send one JSON object with the header "
            "Content-Type: application/json (check quotes, commas and brackets there).",
            ru=f"Тело запроса не является корректным JSON: {reason}{where}. Отправьте один JSON-объект с заголовком "
            "Content-Type: application/json (проверьте в нём кавычки, запятые и скобки).",
        ),
        code="validation_error",
        param=loc_param(tuple(error["loc"])),
    )


def not_an_object(error: dict) -> ApiError:
    """The 400 for a JSON body that is not an object."""
    return ApiError(
        400,
        tr(
            en=f"The request body must be one JSON object, got {json_kind(error.get('input'))}. Send "
            '{"model": ..., "messages": [...]} with the header Content-Type: application/json.',
            ru=f"Тело запроса должно быть одним JSON-объектом, а пришло: {json_kind(error.get('input'))}. Отправьте "
            '{"model": ..., "messages": [...]} с заголовком Content-Type: application/json.',
        ),
        code="validation_error",
        param="body",
    )


def not_sent_as_json(content_type: str | None) -> ApiError:
    """The 400 for a body sent without Content-Type: application/json (FastAPI does not parse it then)."""
    if content_type:
        sent_as = tr(en=f"as Content-Type: {content_type}", ru=f"с Content-Type: {content_type}")
    else:
        sent_as = tr(en="without a Content-Type header", ru="без заголовка Content-Type")
    return ApiError(
        400,
        tr(
            en=f"The request body was sent {sent_as}, so it was not read as JSON. Set the header "
            "Content-Type: application/json and send the request as a JSON object.",
            ru=f"Тело запроса отправлено {sent_as}, поэтому оно не прочитано как JSON. Укажите заголовок "
            "Content-Type: application/json и отправьте запрос как JSON-объект.",
        ),
        code="invalid_content_type",
        param="body",
    )


def http_error(request: Request, err: StarletteHTTPException) -> ApiError:
    """A routing error (unknown path, wrong method) as an OpenAI error object."""
    where = f"{request.method} {request.url.path}"
    if err.status_code == 404:
        return ApiError(
            404,
            tr(
                en=f"Invalid URL ({where}). This server answers {ROUTES}.",
                ru=f"Неверный URL ({where}). Этот сервер отвечает на {ROUTES}.",
            ),
            code="unknown_url",
        )
    if err.status_code == 405:
        return ApiError(
            405,
            tr(
                en=f"Method not allowed ({where}). This server answers {ROUTES}.",
                ru=f"Метод не разрешён ({where}). Этот сервер отвечает на {ROUTES}.",
            ),
            code="method_not_allowed",
        )
    return ApiError(err.status_code, f"{where}: {err.detail}", code=f"http_{err.status_code}")


# ---------------------------------------------------------------- the app
def batched_lora_for(model):
    """(BatchedLora, "") when the batched LoRA path covers `model`'s adapters, else (None, the reason)."""
    from ..batched_lora import BatchedLora

    batched = BatchedLora(model)
    ok, reason = batched.covers()
    return (batched, "") if ok else (None, reason)


def create_app(
    served: ServedModel,
    window_ms: float = 10.0,
    max_batch: int = 32,
    fault=None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    batched_lora: bool = True,
) -> FastAPI:
    """The FastAPI app; the engine's worker thread starts now and stops on shutdown.

    Mixed-adapter batches run on the batched LoRA path (lessons_lib.batched_lora) when it covers the model's
    adapters, else on PEFT's `adapter_names`; /health's engine.lora_path says which and why: "batched", or "peft (WHY)"
    with WHY in the course language (the first word, which a client may test, is the same in both)."""
    from .page import page_html, page_language

    if max_body_bytes < 1:
        raise ValueError(
            tr(
                en=f"max_body_bytes must be at least 1, got {max_body_bytes}.",
                ru=f"max_body_bytes должно быть не меньше 1, а получено {max_body_bytes}.",
            )
        )
    off = tr(en="turned off (--lora-path peft)", ru="отключён (--lora-path peft)")
    batched, why_not = batched_lora_for(served.model) if batched_lora else (None, off)
    engine = BatchingEngine(
        served.model,
        served.tokenizer,
        served.adapters,
        router=served.router,
        window_ms=window_ms,
        max_batch=max_batch,
        fault=fault,
        batched_lora=batched,
    )
    if batched is None:
        engine.stats["lora_path"] = f"peft ({why_not})"
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
    async def invalid_body(request: Request, err: RequestValidationError):
        return await api_error(request, validation_error(err.errors(), request.headers.get("content-type")))

    @app.exception_handler(StarletteHTTPException)
    async def routing_error(request: Request, err: StarletteHTTPException):
        return await api_error(request, http_error(request, err))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, err: Exception):
        return await api_error(
            _,
            ApiError(
                500,
                tr(
                    en=f"Internal error ({type(err).__name__}: {err}); the server keeps serving.",
                    ru=f"Внутренняя ошибка ({type(err).__name__}: {err}); сервер продолжает работу.",
                ),
                kind="server_error",
                code="internal_error",
            ),
        )

    @app.get("/", response_class=HTMLResponse)
    async def page(lang: str | None = None) -> HTMLResponse:
        chosen = page_language(lang)  # ?lang=en|ru, else the server's language; another value is a 400
        return HTMLResponse(page_html(chosen), headers={"Content-Language": chosen})

    @app.get("/health")
    async def health() -> dict:
        return server.health()

    @app.get("/v1/models")
    async def models() -> dict:
        return server.models()

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str) -> dict:
        return server.model(model_id)

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest, http: Request):
        if request.stream:
            return await server.stream(request)
        return await server.answer(request, http)

    return app
