"""How a conversation becomes text for a given chat template: probe what the template renders, adapt the rest.

Real templates differ. TinyLlama-1.1B-Chat's (Zephyr-style) renders only system/user/assistant turns: it ignores
`tools=`, drops `tool` messages and assistant `tool_calls`. Mistral-7B-Instruct-v0.3's renders tools, calls and
results, but raises unless every call and result carries a 9-character alphanumeric id and user/assistant turns
alternate, and keeps a system message only when the conversation ends with a user turn. `prepare` rewrites a
conversation so the template shows all of it; where the template renders everything itself (the tiny course
model's), it changes nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from dataclasses import dataclass

from .i18n import tr
from .paths import CHAT_TEMPLATES_DIR

# Role markers of the course's models (tiny, TinyLlama/Zephyr, Mistral) and other common families: typed
# into content they become real turn boundaries, so a row would teach the model to fake turns.
ROLE_MARKERS = (
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|tool|>",
    "<|end|>",
    "<|pad|>",
    "<s>",
    "</s>",
    "[INST]",
    "[/INST]",
    "<<SYS>>",
    "<</SYS>>",
    "[TOOL_CALLS]",
    "[AVAILABLE_TOOLS]",
    "[/AVAILABLE_TOOLS]",
    "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<start_of_turn>",
    "<end_of_turn>",
)

CHAT_TEMPLATES = ("zephyr", "mistral-v0.3")  # TinyLlama-1.1B-Chat-v1.0's and Mistral-7B-Instruct-v0.3's
# The real models' context lengths, which a rehearsal tokenizer declares with their template: prompts with
# tools run past the tiny model's 512 positions there (fine for RoPE; only the code path is rehearsed).
CONTEXT_LENGTHS = {"zephyr": 2048, "mistral-v0.3": 32768}
CALL_FORMAT = '{"tool": "<name>", "arguments": {...}}'
CALL_ID = re.compile(r"[A-Za-z0-9]{9}")
PROBE_ID = "zqprobe01"
PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "zqprobetool",
        "description": "A probe.",
        "parameters": {
            "type": "object",
            "properties": {"zqarg": {"type": "string", "description": "A probe."}},
            "required": ["zqarg"],
        },
    },
}


@functools.cache
def chat_template_text(name: str) -> str:
    """The shipped copy of a real model's chat template: "zephyr" or "mistral-v0.3"."""
    if name not in CHAT_TEMPLATES:
        raise ValueError(
            tr(
                en=f"Unknown chat template {name!r}; choose one of: {', '.join(CHAT_TEMPLATES)} "
                f"(files in {CHAT_TEMPLATES_DIR}).",
                ru=f"Неизвестный шаблон чата {name!r}; выберите один из: {', '.join(CHAT_TEMPLATES)} "
                f"(файлы в {CHAT_TEMPLATES_DIR}).",
            )
        )
    return (CHAT_TEMPLATES_DIR / f"{name}.jinja").read_text(encoding="utf-8")


def wear_template(tokenizer, name: str):
    """Give a tokenizer a real model's chat template and context length (what a rehearsal profile does).

    Tool prompts then run past the tiny model's 512 positions (fine for RoPE, and a rehearsal claims no
    quality), so transformers' notice about generating past `max_position_embeddings` is dropped too.
    """
    tokenizer.chat_template = chat_template_text(name)
    tokenizer.model_max_length = CONTEXT_LENGTHS[name]
    logger = logging.getLogger("transformers.generation.stopping_criteria")
    if not any(isinstance(f, _PastPositions) for f in logger.filters):
        logger.addFilter(_PastPositions())
    return tokenizer


class _PastPositions(logging.Filter):
    """Drops only the notice that generation went past the model's predefined maximum length."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "exceeded the model's predefined maximum length" not in record.getMessage()


@dataclass(frozen=True)
class TemplateCaps:
    """What a chat template renders by itself, found by rendering probe conversations."""

    tools: bool  # the `tools=` definitions appear
    tool_calls: bool  # an assistant message's `tool_calls` appear
    tool_results: bool  # a `tool` message's content appears
    call_ids: bool  # calls and results must carry 9-character alphanumeric ids
    alternation: bool  # user and assistant turns must alternate (two user turns in a row raise)
    system: bool  # a system message appears whichever turn ends the conversation

    @property
    def native(self) -> bool:
        """Renders everything as the course writes it: `prepare` leaves conversations alone."""
        return (
            self.tools
            and self.tool_calls
            and self.tool_results
            and self.system
            and not self.call_ids
            and not self.alternation
        )


def _render(tokenizer, messages: list[dict], tools: list | None = None, generation: bool = True) -> str | None:
    """The template's text for `messages`, or None when the template refuses them."""
    try:
        return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=generation)
    except Exception:  # noqa: BLE001 - a probe: any failure means "not supported"
        return None


def _shows(text: str | None, marker: str) -> bool:
    return text is not None and marker in text


def _probe_call(with_id: bool) -> dict:
    call = {"type": "function", "function": {"name": "zqprobetool", "arguments": {"zqarg": "zqvalue"}}}
    return {"role": "assistant", "content": "", "tool_calls": [{**call, "id": PROBE_ID} if with_id else call]}


def probe(tokenizer) -> TemplateCaps:
    """Render a few tiny conversations and see what survives (use `capabilities`, which caches this)."""
    user, system = {"role": "user", "content": "zquser"}, {"role": "system", "content": "zqsystem"}
    answer = {"role": "assistant", "content": "zqanswer"}
    without_id = _render(tokenizer, [user, _probe_call(False)], generation=False)
    with_id = _render(tokenizer, [user, _probe_call(True)], generation=False)
    call_ids = without_id is None and with_id is not None
    result = {"role": "tool", "content": "zqresult", **({"tool_call_id": PROBE_ID} if call_ids else {})}
    return TemplateCaps(
        tools=_shows(_render(tokenizer, [user], [PROBE_TOOL]), "zqprobetool"),
        tool_calls=_shows(with_id if call_ids else without_id, "zqvalue"),
        tool_results=_shows(_render(tokenizer, [user, _probe_call(call_ids), result]), "zqresult"),
        call_ids=call_ids,
        alternation=_render(tokenizer, [user, user]) is None
        or _render(tokenizer, [user, answer, answer], generation=False) is None,
        system=_shows(_render(tokenizer, [system, user]), "zqsystem")
        and _shows(_render(tokenizer, [system, user, answer], generation=False), "zqsystem"),
    )


_CAPS: dict[str, TemplateCaps] = {}


def capabilities(tokenizer) -> TemplateCaps:
    """`probe(tokenizer)`, computed once per chat template text."""
    key = str(tokenizer.chat_template)
    if key not in _CAPS:
        _CAPS[key] = probe(tokenizer)
    return _CAPS[key]


def call_id(name: str, arguments: dict, position: int, index: int = 0) -> str:
    """A deterministic 9-character alphanumeric id for the `index`-th call of the `position`-th assistant turn."""
    args = json.dumps(arguments, ensure_ascii=False, sort_keys=True)
    return hashlib.sha1(f"{position}|{index}|{name}|{args}".encode()).hexdigest()[:9]


def is_call_id(value) -> bool:
    """Is `value` an id strict templates accept (9 letters or digits)?"""
    return isinstance(value, str) and CALL_ID.fullmatch(value) is not None


def _function(call: dict) -> tuple[str, dict]:
    """A `tool_calls` entry's name and arguments (arguments sent as a JSON string are decoded)."""
    fn = call.get("function", call)
    arguments = fn.get("arguments") or {}
    return fn["name"], json.loads(arguments) if isinstance(arguments, str) else arguments


def _parsed_call(message: dict):
    """The call an assistant wrote as text, or None when its content is not one."""
    from .tools.calls import CallError, parse_call

    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        return None
    try:
        return parse_call(content)
    except CallError:
        return None


def _call_names(message: dict) -> list[str]:
    """The tools an assistant message calls, in `tool_calls` or written as a call in its text."""
    if message.get("tool_calls"):
        return [_function(c)[0] for c in message["tool_calls"]]
    call = _parsed_call(message) if message["role"] == "assistant" else None
    return [call.name] if call else []


def _as_call_message(message: dict, position: int) -> dict:
    """An assistant reply that is a call's text as a `tool_calls` message (as the loop records it)."""
    call = _parsed_call(message)
    if call is None:
        return message
    entry = {
        "type": "function",
        "id": call_id(call.name, call.arguments, position),
        "function": {"name": call.name, "arguments": call.arguments},
    }
    return {"role": "assistant", "content": "", "tool_calls": [entry]}


def with_call_ids(messages: list[dict]) -> list[dict]:
    """Every call gets a valid id and its result the matching `tool_call_id`.

    A reply written as a call's text and answered by a `tool` message becomes a `tool_calls` message, as the
    loop records valid calls; a result that answers no call keeps no id (`results_as_user` rewrites it).
    """
    out, pending, renamed, position = [], [], {}, 0
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            position += 1
            answered = i + 1 < len(messages) and messages[i + 1]["role"] == "tool"
            if answered and not message.get("tool_calls"):
                message = _as_call_message(message, position)
            calls = []
            for k, call in enumerate(message.get("tool_calls") or []):
                new = call.get("id") if is_call_id(call.get("id")) else call_id(*_function(call), position, k)
                if call.get("id") is not None:
                    renamed[call["id"]] = new
                calls.append({**call, "id": new})
            pending = [c["id"] for c in calls]
            if calls:
                message = {**message, "tool_calls": calls}
        elif message["role"] == "tool":
            wanted = renamed.get(message.get("tool_call_id"), message.get("tool_call_id"))
            if wanted not in pending:
                wanted = pending[0] if pending else None
            if wanted is not None:
                pending.remove(wanted)
                message = {**message, "tool_call_id": wanted}
        out.append(message)
    return out


def calls_as_text(messages: list[dict]) -> list[dict]:
    """Assistant `tool_calls` written out as the course's call text (what the tiny template renders)."""
    from .tools.calls import call_text

    out = []
    for message in messages:
        if message["role"] == "assistant" and message.get("tool_calls"):
            texts = [call_text(*_function(c)) for c in message["tool_calls"]]
            content = "\n".join(([message["content"]] if message.get("content") else []) + texts)
            message = {"role": "assistant", "content": content}
        out.append(message)
    return out


def result_note(name: str | None, content) -> str:
    """A tool result as a user turn says it."""
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    return f"Tool result ({name}): {text}" if name else f"Tool result: {text}"


def results_as_user(messages: list[dict], caps: TemplateCaps) -> list[dict]:
    """`tool` messages the template would drop (or refuse: no call id) become user turns naming the tool."""
    out, names = [], []
    for message in messages:
        if message["role"] == "assistant":
            names = _call_names(message)
        elif message["role"] == "tool":
            name = names.pop(0) if names else None
            if not caps.tool_results or (caps.call_ids and not is_call_id(message.get("tool_call_id"))):
                message = {"role": "user", "content": result_note(name, message.get("content"))}
        out.append(message)
    return out


JSON_TYPE_NAMES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
    "null": "None",
}


def type_text(spec: dict) -> str:
    """A schema type as Python-like text: an enum as its choices, an array as list[item type]."""
    if "enum" in spec:
        return "|".join(json.dumps(value, ensure_ascii=False) for value in spec["enum"])
    kind = spec.get("type")
    if kind == "array":
        return f"list[{type_text(spec.get('items') or {})}]"
    kinds = kind if isinstance(kind, list) else [kind]
    return "|".join(JSON_TYPE_NAMES.get(k, "any") for k in kinds)


def signature_text(function: dict) -> str:
    """One tool as its docstring would read: `name(arg: type, ...): description`, then one line per argument."""
    params = function.get("parameters") or {}
    props, required = params.get("properties") or {}, set(params.get("required") or [])
    args = ", ".join(
        f"{name}: {type_text(spec)}" + ("" if name in required else " (optional)") for name, spec in props.items()
    )
    head = f"{function['name']}({args})"
    lines = [f"{head}: {function['description']}" if function.get("description") else head]
    return "\n".join(
        lines + [f"    {name}: {spec['description']}" for name, spec in props.items() if spec.get("description")]
    )


def tools_prompt(tools: list) -> str:
    """The tool definitions and the call format, as text for templates that ignore `tools=`.

    Written as signatures with their argument docs, not as JSON schemas: the same facts in about half the
    tokens (TinyLlama's rows then fit the t4 profile's max_length), in a form a model pretrained on code reads.
    """
    from transformers.utils import get_json_schema

    schemas = [get_json_schema(t) if callable(t) else t for t in tools]
    lines = [f"You can call these tools. To call one, reply with only this JSON: {CALL_FORMAT}", "Tools:"]
    return "\n".join(lines + [signature_text(s.get("function", s)) for s in schemas])


def with_system_text(messages: list[dict], text: str) -> list[dict]:
    """`text` appended to the leading system message (one is added when there is none)."""
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{text}"}] + messages[1:]
    return [{"role": "system", "content": text}] + messages


def fold_system(messages: list[dict]) -> list[dict]:
    """System messages moved to the front of the first user turn (for templates that drop or refuse them)."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    if not system:
        return messages
    first = next((i for i, m in enumerate(rest) if m["role"] == "user"), None)
    if first is None:
        return [{"role": "user", "content": "\n\n".join(system)}] + rest
    rest[first] = {**rest[first], "content": "\n\n".join(system + [rest[first]["content"]])}
    return rest


def _plain_turn(message: dict) -> bool:
    return message["role"] in ("user", "assistant") and not message.get("tool_calls")


def merge_turns(messages: list[dict]) -> list[dict]:
    """Consecutive user (or plain assistant) turns joined into one, for templates that demand alternation."""
    out = []
    for message in messages:
        prev = out[-1] if out else None
        if prev is not None and _plain_turn(prev) and _plain_turn(message) and prev["role"] == message["role"]:
            out[-1] = {**prev, "content": f"{prev['content']}\n\n{message['content']}"}
        else:
            out.append(message)
    return out


def _alternates(messages: list[dict]) -> bool:
    """Plain user/assistant turns, starting with the user and alternating."""
    return all(
        m.get("role") == ("user", "assistant")[i % 2] and not m.get("tool_calls") for i, m in enumerate(messages)
    )


def prepare(tokenizer, messages: list[dict], tools: list | None = None) -> tuple[list[dict], list | None]:
    """Rewrite a conversation (and its tools) so `tokenizer`'s chat template renders all of it faithfully.

    Returns the messages and the tools to pass as `tools=` (None when they went into the text). Where the
    template already renders everything, both come back unchanged.
    """
    messages = list(messages)
    if (not tools and _alternates(messages)) or getattr(tokenizer, "chat_template", None) is None:
        return messages, tools
    caps = capabilities(tokenizer)
    if caps.call_ids:
        messages = with_call_ids(messages)
    messages = results_as_user(messages, caps)
    if not caps.tool_calls:
        messages = calls_as_text(messages)
    if tools and not caps.tools:
        messages, tools = with_system_text(messages, tools_prompt(tools)), None
    if not caps.system:
        messages = fold_system(messages)
    if caps.alternation:
        messages = merge_turns(messages)
    return messages, tools
