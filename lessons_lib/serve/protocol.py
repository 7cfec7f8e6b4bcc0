"""The OpenAI Chat Completions request as this server reads it: the body's models, and the checks across fields.

Every field of OpenAI's request is either honoured, refused with a 400 naming it (`param`), or on the allow-list
below of fields that change nothing on this server. Nothing is silently ignored. Error messages are in the course
language (lessons_lib.i18n); `param` and `code` are the same in English and Russian.

Honoured: model, messages (roles system, developer = system, user, assistant with tool_calls, tool with
tool_call_id; text content or text parts, an image or audio part refused by name; text that is not Unicode, a lone
surrogate escape, refused naming where; a call's arguments may be any string, as OpenAI takes them: a JSON object is
rendered as the call's arguments, anything else, such as the partial arguments of a call the token limit cut, as the
model wrote it), stream, stream_options.include_usage, temperature (0..2; absent = 0, greedy — see
DEFAULT_TEMPERATURE), top_p, seed, n (1..8), stop (a string or up to 4), max_completion_tokens / max_tokens,
logprobs, top_logprobs (0..5), response_format {"type": "text"} or {"type": "json_schema", ...} (the answer is
decoded under the schema, as a forced call's arguments are: tools/constrained.py), tools, tool_choice ("none" shows
the model no tools; a tool's parameters must be an object schema), parallel_tool_calls (with tools; true or false:
each choice carries at most one call, which satisfies both), and the course's extensions adapter_weights
(model="mix"), copy_bias (0..20: copy-aware decoding, a prompt word the answer began is nudged to come out exact;
`lessons_lib.copying`, 6 is the course's value) and requested_names (true: a function the answer defines,
`def NAME(`, takes a name the request gives; `copying.RequestedNames`; not with a tool_choice that forces a call,
whose every token the schemas already fix) and quote (true; lesson 05's `evaluate --quote`: with tool_choice
"required" or a named function, the call's free-text arguments are whole phrases of the user messages and its
numbers theirs where the schema allows, `tools.constrained.CallGrammar`; after a tool result, the last message role
"tool", an answer that starts repeating the result goes on repeating it exactly, `tools.faithful.CopyGuard`; not
with requested_names or a json_schema).

Allow-listed (accepted, no effect here): user, safety_identifier, metadata, store, service_tier,
prompt_cache_key, frequency_penalty and presence_penalty when 0, logit_bias when empty, a message's `name` and
`annotations` (and `refusal`, `audio`, `function_call` when null, as an assistant message comes back),
a tool's `strict` (every returned call is validated against its schema anyway) and `return` (the return type
transformers' `get_json_schema` writes; the model is not shown it).

Refused with a 400: any other field (code unknown_parameter), a number or boolean sent as a string (strict types:
"0.5", "3", "false" are refused, as OpenAI refuses them) or NaN/Infinity, `stop` next to response_format json_schema
or tools not turned off by tool_choice "none" (a stop string would cut the JSON; check_stop_with_constraint),
response_format json_object (send a json_schema),
a json_schema the grammar cannot express, a max_tokens too small for a forced call ("required", a named function) to
write even its name (the error names the minimum; app.Server.check_call_room), model "auto" with tools when no tools
adapter is served, the other allow-listed fields with values that would matter, functions /
function_call (the old API: use tools / tool_choice), non-text content parts. Streaming with tools holds text back
while it may still become a call, and sends a call as one `tool_calls` delta (see streaming.py).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict

from ..generation import MAX_TOP_LOGPROBS  # what the decode loop reports
from ..i18n import plural_ru, tr

DEFAULT_MAX_BODY_BYTES = 1_000_000  # 1 MB: far above any profile's longest prompt (max_length tokens)

# The course's server is deterministic unless asked otherwise: absent `temperature` means greedy decoding (OpenAI's
# API defaults to 1.0). Lessons, tests and the web page then reproduce their answers; send temperature to sample.
DEFAULT_TEMPERATURE = 0.0
MAX_N = 8
MAX_STOP = 4
MAX_TOOLS = 128
TOOL_NAME = r"^[A-Za-z0-9_-]{1,64}$"
ALLOWED_IGNORED = (
    "user",
    "safety_identifier",
    "metadata",
    "store",
    "service_tier",
    "prompt_cache_key",
    "frequency_penalty (0)",
    "presence_penalty (0)",
    "logit_bias ({})",
    "messages[].name",
    "messages[].annotations",
    "tools[].function.strict",
    "tools[].function.return",
)


class ApiError(Exception):
    """An error answered as {"error": {message, type, param, code}} with an HTTP status, like the OpenAI API."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        **extra,
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param, self.extra = (
            status,
            message,
            kind,
            code,
            param,
            extra,
        )

    def body(self) -> dict:
        """The JSON body, with absolute paths of this machine cut to their last two parts."""
        from .app import without_paths

        return {
            "error": {
                "message": without_paths(self.message),
                "type": self.kind,
                "param": self.param,
                "code": self.code,
                **self.extra,
            }
        }

    def response(self):
        from fastapi.responses import JSONResponse

        return JSONResponse(self.body(), status_code=self.status)


def bad(param: str, message: str, code: str = "invalid_value") -> ApiError:
    """A 400 invalid_request_error naming `param`."""
    return ApiError(400, message, code=code, param=param)


# ---------------------------------------------------------------- the body
class Strictly(BaseModel):
    """A part of the body where an unknown field is a 400 naming it."""

    model_config = ConfigDict(extra="forbid")


class TextPart(Strictly):
    type: Literal["text"]
    text: str


class FunctionCall(Strictly):
    name: str = Field(pattern=TOOL_NAME)
    arguments: str | dict[str, Any]  # OpenAI sends a JSON string; an object is accepted too


class ToolCallIn(Strictly):
    id: str = Field(min_length=1, max_length=200)
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(Strictly):
    """One chat message (OpenAI shape); `content` may be a string or a list of text parts."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None  # allow-listed: a participant's name changes nothing here
    tool_calls: list[ToolCallIn] | None = None  # assistant messages only
    tool_call_id: str | None = None  # tool messages only (required there)
    refusal: None = None  # an assistant message sent back as the server returned it carries these empty fields
    audio: None = None
    function_call: None = None
    annotations: list[Any] | None = None  # allow-listed: citations (web search) mean nothing here


class FunctionDef(Strictly):
    name: str = Field(pattern=TOOL_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None  # allow-listed: every returned call is validated against `parameters` anyway
    returns: dict[str, Any] | None = Field(default=None, alias="return")  # allow-listed: transformers' schemas


class ToolDef(Strictly):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(Strictly):
    name: str


class NamedToolChoice(Strictly):
    type: Literal["function"]
    function: NamedFunction


# Numbers and booleans are taken only as JSON numbers and booleans, as OpenAI takes them: "0.5", "3", "false" or 0
# for a boolean are a 400 naming the field and the type (pydantic's lax mode would convert them silently).
Flag = Annotated[bool, Strict()]
Whole = Annotated[int, Strict()]
Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]  # NaN and Infinity are refused as not finite


class StreamOptions(Strictly):
    include_usage: Flag = False


class ResponseFormat(Strictly):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


Number = Annotated[float, Strict()]
MAX_COPY_BIAS = 20.0  # beyond this a nudge is a mask in all but name (the course uses copying.COPY_BIAS = 6)


class ChatRequest(Strictly):
    """The body of POST /v1/chat/completions (see the module docstring for what each field does here)."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: Flag = False
    stream_options: StreamOptions | None = None
    temperature: Finite | None = Field(default=None, ge=0, le=2)
    top_p: Finite | None = Field(default=None, gt=0, le=1)
    seed: Whole | None = Field(default=None, ge=-(2**63), lt=2**63)
    n: Whole | None = Field(default=None, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    max_tokens: Whole | None = Field(default=None, ge=1)
    max_completion_tokens: Whole | None = Field(default=None, ge=1)
    logprobs: Flag | None = None
    top_logprobs: Whole | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: ResponseFormat | None = None
    tools: list[ToolDef] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: Flag | None = None
    adapter_weights: dict[str, Number] | None = None  # the course's extension; numbers only: "0.5" is refused
    # the course's extension: copy-aware decoding (lessons_lib.copying), 0 = off; numbers only
    copy_bias: Finite | None = Field(default=None, ge=0, le=MAX_COPY_BIAS)
    # the course's extension: a `def` the answer writes takes a name the request gives (copying.RequestedNames)
    requested_names: Flag | None = None  # true or false only: "true" is refused
    # the course's extension: a forced call's free text quotes the user messages, an answer to a tool result repeats
    # it exactly (check_quote)
    quote: Flag | None = None
    # allow-listed: they change nothing on this server
    user: str | None = None
    safety_identifier: str | None = None
    metadata: dict[str, str] | None = None
    store: Flag | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    frequency_penalty: Finite | None = None
    presence_penalty: Finite | None = None
    logit_bias: dict[str, float] | None = None


# ---------------------------------------------------------------- checks across fields
def not_unicode(value, where: str = "") -> str | None:
    """The path of the first string in `value` (keys included) that UTF-8 cannot encode: a lone surrogate that JSON's
    \\uXXXX escapes let through (None when every string is text)."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return where or "body"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not_unicode(key) is not None:  # the key itself: name the object (the key would not print)
                return where or "body"
            found = not_unicode(item, f"{where}.{key}" if where else str(key))
            if found is not None:
                return found
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = not_unicode(item, f"{where}[{i}]")
            if found is not None:
                return found
    return None


def check_request(request: ChatRequest) -> None:
    """Refuse what the schema alone cannot: text that is not Unicode, values that would matter for fields this server
    does not implement, and combinations OpenAI refuses too."""
    where = not_unicode(request.model_dump(by_alias=True, exclude_none=True))
    if where is not None:
        raise bad(
            where,
            tr(
                en=f"{where} holds an unpaired surrogate (a lone \\ud800-\\udfff escape), which is not Unicode text; "
                "send valid text (a JSON encoder writes such escapes only in pairs, for one character).",
                ru=f"В {where} непарный суррогат (одиночный \\ud800-\\udfff), это не текст Unicode; отправьте "
                "корректный текст (JSON-кодировщик пишет такие escape-последовательности только парами, для одного "
                "символа).",
            ),
        )
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(request, name) not in (None, 0):
            raise bad(
                name,
                tr(
                    en=f"{name}={getattr(request, name)} is not supported by this server (it has no "
                    f"repetition penalties); leave {name} out or send 0.",
                    ru=f"{name}={getattr(request, name)} этот сервер не поддерживает (у него нет штрафов за "
                    f"повторы); уберите {name} или отправьте 0.",
                ),
                "unsupported_parameter",
            )
    if request.logit_bias:
        raise bad(
            "logit_bias",
            tr(
                en="logit_bias is not supported by this server; leave it out (or send {}).",
                ru="logit_bias этот сервер не поддерживает; уберите его (или отправьте {}).",
            ),
            "unsupported_parameter",
        )
    check_response_format(request)
    if request.stream_options is not None and not request.stream:
        raise bad(
            "stream_options",
            tr(
                en="stream_options is only allowed with stream=true.",
                ru="stream_options допускается только вместе со stream=true.",
            ),
        )
    if request.top_logprobs is not None and not request.logprobs:
        raise bad(
            "top_logprobs", tr(en="top_logprobs needs logprobs=true.", ru="Для top_logprobs нужен logprobs=true.")
        )
    if (
        request.max_tokens is not None
        and request.max_completion_tokens is not None
        and request.max_tokens != request.max_completion_tokens
    ):
        raise bad(
            "max_tokens",
            tr(
                en="Send max_completion_tokens or max_tokens (the older name), not both with different values.",
                ru="Отправьте max_completion_tokens или max_tokens (прежнее название), но не оба с разными значениями.",
            ),
        )
    check_stop(request.stop)
    check_tools(request)
    check_stop_with_constraint(request)
    if request.requested_names and tool_mode(request) not in (None, "auto"):
        raise bad(
            "requested_names",
            tr(
                en="requested_names shapes the function an answer defines, and this tool_choice makes the reply a tool "
                'call whose every token the tools\' schemas fix; send tool_choice="auto" or leave requested_names out.',
                ru="requested_names задаёт имя функции, которую определяет ответ, а с этим tool_choice ответ — вызов "
                'инструмента, каждый токен которого задают схемы tools; отправьте tool_choice="auto" или уберите '
                "requested_names.",
            ),
            "unsupported_value",
        )
    if request.quote:
        check_quote(request)
    check_messages(request.messages)


def check_stop(stop: str | list[str] | None) -> None:
    """A stop string, or a list of 1 to MAX_STOP non-empty ones."""
    if stop is None:
        return
    items = [stop] if isinstance(stop, str) else stop
    if len(items) > MAX_STOP:
        raise bad(
            "stop",
            tr(
                en=f"stop takes at most {MAX_STOP} strings, got {len(items)}.",
                ru=f"В stop можно передать максимум {MAX_STOP} {plural_ru(MAX_STOP, 'строку', 'строки', 'строк')}, "
                f"получено {len(items)}.",
            ),
        )
    for i, item in enumerate(items):
        if not item:
            raise bad(
                "stop" if isinstance(stop, str) else f"stop[{i}]",
                tr(en="A stop string must not be empty.", ru="Строка stop не должна быть пустой."),
            )


def check_stop_with_constraint(request: ChatRequest) -> None:
    """Refuse `stop` wherever the reply may be JSON the client parses: a stop string would cut it.

    The rule: `stop` goes with plain-text replies only. response_format json_schema and a tool_choice that forces
    a call ("required", a named function) make the whole reply JSON; under tool_choice "auto" (or absent) with tools
    the reply may be a call, and a call cut by a stop string cannot be returned as a call (its arguments are not
    JSON) nor as text (that would leak the course's internal call format). tool_choice "none" shows no tools, so
    stop applies there as usual.
    """
    if not request.stop:
        return
    if decodes_json_schema(request):
        raise bad(
            "stop",
            tr(
                en="stop does not go with response_format json_schema: the answer is one JSON object decoded under "
                "the schema, and a stop string would cut it into invalid JSON. Drop stop (limit the length with "
                "max_tokens).",
                ru="stop нельзя сочетать с response_format json_schema: ответ — один JSON-объект, декодируемый по "
                "схеме, и строка stop обрезала бы его до некорректного JSON. Уберите stop (длину ограничивает "
                "max_tokens).",
            ),
            "unsupported_value",
        )
    mode = tool_mode(request)
    if mode is None:
        return
    if mode != "auto":
        forced = mode.replace("function:", "")
        why = tr(
            en=f"tool_choice={forced!r} makes the reply a tool call",
            ru=f"при tool_choice={forced!r} ответ — вызов инструмента",
        )
    else:
        why = tr(
            en='with tools and tool_choice "auto" the reply may be a tool call',
            ru='с tools и tool_choice "auto" ответ может оказаться вызовом инструмента',
        )
    raise bad(
        "stop",
        tr(
            en=f"stop does not go with tools here: {why}, and a stop string would cut the call's JSON. Drop stop, or "
            'send tool_choice="none" (no call) if you want stop on a text answer.',
            ru=f"stop здесь нельзя сочетать с tools: {why}, и строка stop обрезала бы JSON вызова. Уберите stop или "
            'отправьте tool_choice="none" (без вызова), если stop нужен для текстового ответа.',
        ),
        "unsupported_value",
    )


def stop_strings(stop: str | list[str] | None) -> tuple[str, ...]:
    """`stop` as a tuple of strings."""
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


JSON_SCHEMA_FIELDS = {"name", "schema", "strict", "description"}  # OpenAI's response_format.json_schema


def check_response_format(request: ChatRequest) -> None:
    """json_schema needs a name and an object schema, and no tools or requested_names beside it (each would
    constrain the same answer); json_object is refused (this server constrains to a schema, not to any JSON)."""
    form = request.response_format
    if form is None or form.type == "text":
        if form is not None and form.json_schema is not None:
            raise bad(
                "response_format.json_schema",
                tr(
                    en='json_schema goes with type "json_schema"; leave it out.',
                    ru='json_schema передаётся только с type "json_schema"; уберите его.',
                ),
            )
        return
    if form.type == "json_object":
        raise bad(
            "response_format",
            tr(
                en="response_format type 'json_object' is not supported by this server: it constrains answers to a "
                'schema, not to any JSON. Send {"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}, '
                'or {"type": "text"} (or leave it out).',
                ru="response_format с type 'json_object' этот сервер не поддерживает: он ограничивает ответы схемой, "
                'а не любым JSON. Отправьте {"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}} '
                'или {"type": "text"} (либо уберите response_format).',
            ),
            "unsupported_value",
        )
    spec = form.json_schema
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(spec.get("schema"), dict):
        raise bad(
            "response_format.json_schema",
            tr(
                en='response_format json_schema needs {"name": "...", "schema": {"type": "object", '
                '"properties": {...}}}.',
                ru='Для response_format json_schema нужен {"name": "...", "schema": {"type": "object", '
                '"properties": {...}}}.',
            ),
        )
    unknown = sorted(set(spec) - JSON_SCHEMA_FIELDS)
    if unknown:
        raise bad(
            f"response_format.json_schema.{unknown[0]}",
            tr(
                en=f"response_format.json_schema takes {', '.join(sorted(JSON_SCHEMA_FIELDS))}; "
                f"not {', '.join(unknown)}.",
                ru=f"response_format.json_schema принимает поля {', '.join(sorted(JSON_SCHEMA_FIELDS))}, но не "
                f"{', '.join(unknown)}.",
            ),
            "unknown_parameter",
        )
    if request.tools and request.tool_choice != "none":
        raise bad(
            "response_format",
            tr(
                en="response_format json_schema constrains the answer, and tools may make it a call: send one of them "
                '(or tool_choice="none").',
                ru="response_format json_schema ограничивает ответ, а tools могут сделать его вызовом: отправьте "
                'что-то одно (или tool_choice="none").',
            ),
        )
    if request.requested_names:
        raise bad(
            "requested_names",
            tr(
                en="requested_names does not go with response_format json_schema: send one.",
                ru="requested_names нельзя сочетать с response_format json_schema: отправьте что-то одно.",
            ),
        )


def check_tools(request: ChatRequest) -> None:
    """tool_choice and parallel_tool_calls need tools; a named function must be one of them; names are unique;
    parameters are an object schema."""
    names = [t.function.name for t in request.tools or []]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise bad(
                f"tools[{i}].function.name",
                tr(
                    en=f"Two tools are named {name!r}; tool names must be unique.",
                    ru=f"Два инструмента названы {name!r}; имена инструментов должны быть уникальными.",
                ),
            )
    for i, tool in enumerate(request.tools or []):
        parameters = tool.function.parameters
        if parameters and parameters.get("type", "object") != "object":
            raise bad(
                f"tools[{i}].function.parameters",
                tr(
                    en=f'{tool.function.name}\'s parameters must be an object schema ({{"type": "object", '
                    f'"properties": {{...}}}}), not type {parameters.get("type")!r}: a call\'s arguments are one JSON '
                    "object. Put a single value in a property, or leave parameters out for a tool without arguments.",
                    ru=f'parameters у {tool.function.name} должны быть схемой объекта ({{"type": "object", '
                    f'"properties": {{...}}}}), а не типа {parameters.get("type")!r}: аргументы вызова — один '
                    "JSON-объект. Положите единственное значение в свойство или не передавайте parameters, если у "
                    "инструмента нет аргументов.",
                ),
            )
    if request.tools == []:
        raise bad(
            "tools",
            tr(
                en="tools is empty: send at least one tool, or leave tools out.",
                ru="Список tools пуст: отправьте хотя бы один инструмент или уберите tools.",
            ),
        )
    if request.parallel_tool_calls is not None and not request.tools:
        raise bad(
            "parallel_tool_calls",
            tr(
                en="parallel_tool_calls is only allowed when tools are given (as OpenAI refuses it); leave it out.",
                ru="parallel_tool_calls допускается, только если переданы tools (так же отказывает OpenAI); "
                "уберите его.",
            ),
        )
    choice = request.tool_choice
    if choice is not None and not request.tools:
        raise bad(
            "tool_choice",
            tr(
                en="tool_choice is only allowed when tools are given.",
                ru="tool_choice допускается, только если переданы tools.",
            ),
        )
    if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
        raise bad(
            "tool_choice.function.name",
            tr(
                en=f"tool_choice names {choice.function.name!r}, which is not in tools ({', '.join(names)}).",
                ru=f"tool_choice называет {choice.function.name!r}, но такого инструмента нет в tools "
                f"({', '.join(names)}).",
            ),
        )


def check_messages(messages: list[Message]) -> None:
    """tool_calls only on assistant messages, tool_call_id only (and always) on tool messages, answering a call."""
    calls: set[str] = set()
    for i, message in enumerate(messages):
        if message.tool_calls and message.role != "assistant":
            raise bad(
                f"messages[{i}].tool_calls",
                tr(
                    en=f"Only assistant messages carry tool_calls (this one is {message.role!r}).",
                    ru=f"tool_calls бывают только в сообщениях assistant (у этого роль {message.role!r}).",
                ),
            )
        if message.role == "tool":
            if not message.tool_call_id:
                raise bad(
                    f"messages[{i}].tool_call_id",
                    tr(
                        en="A tool message needs tool_call_id: the id of the call it "
                        "answers (from the assistant's tool_calls).",
                        ru="Сообщению tool нужен tool_call_id: id вызова, на который оно отвечает (из tool_calls "
                        "ассистента).",
                    ),
                )
            if message.tool_call_id not in calls:
                raise bad(
                    f"messages[{i}].tool_call_id",
                    tr(
                        en=f"tool_call_id {message.tool_call_id!r} answers no earlier "
                        "assistant tool call; send the assistant message with that "
                        "call first.",
                        ru=f"tool_call_id {message.tool_call_id!r} не отвечает ни на один более ранний вызов "
                        "инструмента ассистентом; сначала отправьте сообщение ассистента с этим вызовом.",
                    ),
                )
        elif message.tool_call_id is not None:
            raise bad(
                f"messages[{i}].tool_call_id",
                tr(en="Only tool messages carry tool_call_id.", ru="tool_call_id бывает только в сообщениях tool."),
            )
        calls.update(call.id for call in message.tool_calls or [])


def arguments_of(call: ToolCallIn) -> dict | str:
    """A call's arguments as an object (OpenAI sends them JSON-encoded), or the string as sent when it is not a JSON
    object: a call the token limit cut carries its partial arguments, and OpenAI takes any arguments string back."""
    arguments = call.function.arguments
    if not isinstance(arguments, str):
        return arguments
    if not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments)
    except (ValueError, RecursionError):
        return arguments
    return parsed if isinstance(parsed, dict) else arguments


def written_call(name: str, arguments: str) -> str:
    """A call whose arguments are not a JSON object, as the model wrote it in the course's format: a cut call is
    exactly the reply the model gave (`{"tool": NAME, "arguments": ` and the partial arguments, unclosed)."""
    return '{"tool": ' + json.dumps(name) + ', "arguments": ' + arguments


def text_of(message: Message) -> str:
    """A message's content as plain text (text parts joined)."""
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "".join(part.text for part in message.content)


def chat_messages(messages: list[Message]) -> list[dict]:
    """The conversation as the chat template takes it: developer -> system, call arguments as objects; a call whose
    arguments are no JSON object (a cut call sent back) goes into the content as the model wrote it."""
    out = []
    for message in messages:
        entry: dict = {"role": "system" if message.role == "developer" else message.role, "content": text_of(message)}
        calls = [(call, arguments_of(call)) for call in message.tool_calls or []]
        entry["content"] += "".join(written_call(c.function.name, a) for c, a in calls if isinstance(a, str))
        if any(isinstance(a, dict) for _, a in calls):
            entry["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": arguments}}
                for call, arguments in calls
                if isinstance(arguments, dict)
            ]
        if message.role == "tool":
            entry["tool_call_id"] = message.tool_call_id
        out.append(entry)
    return out


def tool_schemas(request: ChatRequest) -> list[dict]:
    """The request's tools as plain OpenAI function schemas (what the chat template and the grammar read)."""
    return [
        {"type": "function", "function": tool.function.model_dump(exclude_none=True, exclude={"strict", "returns"})}
        for tool in request.tools or []
    ]


def check_quote(request: ChatRequest) -> None:
    """quote=true needs something to quote for: a forced call, or an answer to a tool result; and no other rule on
    the reply's tokens beside it (requested_names, a json_schema), which would leave one of them unapplied."""
    if request.requested_names or decodes_json_schema(request):
        other = "requested_names" if request.requested_names else "response_format json_schema"
        raise bad(
            "quote",
            tr(
                en=f"quote does not go with {other}: each decides which tokens the reply may take; send one.",
                ru=f"quote нельзя сочетать с {other}: каждый из них решает, какие токены может взять ответ; "
                "отправьте что-то одно.",
            ),
            "unsupported_value",
        )
    if tool_mode(request) in (None, "auto") and request.messages[-1].role != "tool":
        raise bad(
            "quote",
            tr(
                en='quote applies to a forced call (tools with tool_choice="required" or a named function: its free '
                "text quotes the user messages) or to the answer after a tool result (the last message has role "
                '"tool": the answer repeats the result exactly); this request has neither, so send one of those or '
                "leave quote out.",
                ru='quote действует на вынужденный вызов (tools с tool_choice="required" или именованной функцией: '
                "его текст цитирует сообщения пользователя) или на ответ после результата инструмента (последнее "
                'сообщение с ролью "tool": ответ повторяет результат точно); здесь нет ни того, ни другого — '
                "отправьте одно из них или уберите quote.",
            ),
            "unsupported_value",
        )


def decodes_json_schema(request: ChatRequest) -> bool:
    """Is the answer decoded under a response_format json_schema?"""
    return request.response_format is not None and request.response_format.type == "json_schema"


def tool_results(messages: list[dict]) -> str:
    """The tool results the conversation ends with (one per line): what an answer to them may repeat."""
    tail = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        tail.append(message["content"])
    return "\n".join(reversed(tail))


def tool_mode(request: ChatRequest) -> str | None:
    """None (no tools in play), "auto", "required" or the one function's name; "none" renders no tools."""
    if not request.tools:
        return None
    choice = request.tool_choice or "auto"
    if isinstance(choice, NamedToolChoice):
        return "function:" + choice.function.name
    return None if choice == "none" else choice
