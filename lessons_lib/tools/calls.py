"""Parse a model's tool call (`{"tool": NAME, "arguments": {...}}`) and validate it against the tool's schema.

The parser also reads Mistral's native reply, `[TOOL_CALLS] [{"name": NAME, "arguments": {...}, "id": ID}]`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list,
              "object": dict, "null": type(None)}
FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
TOOL_CALLS = "[TOOL_CALLS]"  # Mistral's marker before its list of calls
CALL_LIST = re.compile(r"^\[\s*\{")


class CallError(ValueError):
    """A tool call the executor cannot run; the message is what the model (and the learner) is told."""

    kind = "bad call"


class MalformedCall(CallError):
    """The text is not a JSON tool call."""

    kind = "malformed call"


class UnknownTool(CallError):
    """The call names a tool that does not exist."""

    kind = "unknown tool"


class BadArguments(CallError):
    """The arguments do not match the tool's schema."""

    kind = "bad arguments"


@dataclass(frozen=True)
class ToolCall:
    """One parsed call: the tool's name, its arguments and (if it has one) its call id."""

    name: str
    arguments: dict = field(default_factory=dict)
    id: str | None = field(default=None, compare=False)

    def as_message(self) -> dict:
        """The assistant message that carries this call (the chat template renders it as JSON)."""
        call = {"type": "function", "function": {"name": self.name, "arguments": self.arguments}}
        return {"role": "assistant", "content": "", "tool_calls": [{**call, "id": self.id} if self.id else call]}


def call_text(name: str, arguments: dict) -> str:
    """The exact text the chat template renders for a call (same as Jinja's `tojson`)."""
    return json.dumps({"tool": name, "arguments": arguments}, ensure_ascii=False)


def call_body(text: str) -> str:
    """The reply without code fences and without Mistral's `[TOOL_CALLS]` marker."""
    return FENCE.sub("", text.strip()).removeprefix(TOOL_CALLS).strip()


def looks_like_call(text: str) -> bool:
    """True when a reply is meant as a tool call (`{`, `[{` or `[TOOL_CALLS]`), false for a plain answer."""
    body = FENCE.sub("", text.strip())
    return body.startswith(("{", TOOL_CALLS)) or CALL_LIST.match(body) is not None


def _single_call(obj):
    """A one-call list (Mistral's format) unwrapped; several calls in one reply are refused."""
    if isinstance(obj, list) and obj and all(isinstance(item, dict) for item in obj):
        if len(obj) > 1:
            raise MalformedCall(f"The reply holds {len(obj)} calls; call one tool per reply.")
        return obj[0]
    return obj


def parse_call(text: str) -> ToolCall:
    """Read `{"tool": NAME, "arguments": {...}}` (or Mistral's call list) from a reply; else raise MalformedCall."""
    body = call_body(text)
    try:
        obj, end = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError as err:
        raise MalformedCall(f"The tool call is not valid JSON ({err.msg} at character {err.pos}). Reply with one "
                            'JSON object: {"tool": "<name>", "arguments": {...}}.') from None
    obj = _single_call(obj)
    if not isinstance(obj, dict):
        raise MalformedCall(f"The tool call must be a JSON object, got {type(obj).__name__}. "
                            'Reply with {"tool": "<name>", "arguments": {...}}.')
    if body[end:].strip():
        raise MalformedCall(f"Extra text after the JSON object: {body[end:].strip()[:40]!r}. Reply with the call only.")
    name = obj.get("tool", obj.get("name"))
    if not isinstance(name, str) or not name:
        raise MalformedCall(f'The call has no "tool" name (keys: {sorted(obj)}). Add "tool": "<name>".')
    arguments = obj.get("arguments", {})
    if isinstance(arguments, str):  # some models send the arguments JSON-encoded as a string
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            raise MalformedCall('"arguments" is a string that is not JSON; send an object: "arguments": {...}.') from None
    if not isinstance(arguments, dict):
        raise MalformedCall(f'"arguments" must be an object, got {type(arguments).__name__}.')
    call_id = obj.get("id")
    return ToolCall(name, arguments, call_id if isinstance(call_id, str) else None)


def _type_ok(value, expected: str | list) -> bool:
    kinds = expected if isinstance(expected, list) else [expected]
    for kind in kinds:
        py = JSON_TYPES.get(kind)
        if py is None:
            return True  # a type we do not check
        if isinstance(value, bool) and kind in ("integer", "number"):
            continue  # JSON true is not a number
        if isinstance(value, py):
            return True
    return False


def check_value(name: str, value, spec: dict) -> None:
    """Raise BadArguments when one argument does not match its schema entry."""
    if value is None and spec.get("nullable"):
        return
    if "type" in spec and not _type_ok(value, spec["type"]):
        raise BadArguments(f"Argument {name!r} must be of type {spec['type']}, got {json.dumps(value, ensure_ascii=False)}"
                           f" ({type(value).__name__}).")
    if "enum" in spec and value not in spec["enum"]:
        raise BadArguments(f"Argument {name!r} is {value!r}; choose one of: {', '.join(map(str, spec['enum']))}.")
    if "pattern" in spec and isinstance(value, str) and not re.search(spec["pattern"], value):
        raise BadArguments(f"Argument {name!r} is {value!r}, which does not match the pattern {spec['pattern']}.")
    if spec.get("type") == "array" and isinstance(value, list) and "items" in spec:
        for i, item in enumerate(value):
            check_value(f"{name}[{i}]", item, spec["items"])


def validate_call(call: ToolCall, schemas: dict[str, dict]) -> ToolCall:
    """Check a call against the schemas (tool exists, required present, no unknown names, types, enums)."""
    if call.name not in schemas:
        raise UnknownTool(f"There is no tool {call.name!r}; available tools: {', '.join(schemas)}.")
    params = schemas[call.name]["function"].get("parameters", {})
    props, required = params.get("properties", {}), params.get("required", [])
    missing = [p for p in required if p not in call.arguments]
    if missing:
        raise BadArguments(f"{call.name} needs the argument(s) {', '.join(missing)}; "
                           f"its arguments are: {', '.join(props)}.")
    unknown = [a for a in call.arguments if a not in props]
    if unknown:
        raise BadArguments(f"{call.name} has no argument(s) {', '.join(unknown)}; its arguments are: {', '.join(props)}.")
    for arg, value in call.arguments.items():
        check_value(arg, value, props[arg])
    return call


def parse_and_validate(text: str, schemas: dict[str, dict]) -> ToolCall:
    """Parse a reply into a call and validate it; raises a CallError subclass."""
    return validate_call(parse_call(text), schemas)
