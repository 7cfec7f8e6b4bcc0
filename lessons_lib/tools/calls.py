"""Parse a model's tool call (`{"tool": NAME, "arguments": {...}}`) and validate it against the tool's schema.

The parser also reads Mistral's native reply, `[TOOL_CALLS] [{"name": NAME, "arguments": {...}, "id": ID}]`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

from ..jsonl import json_problem, nesting_depth
from .functions import shown_number

JSON_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}
FENCE_OPEN = re.compile(r"```[a-zA-Z]*\s*")
TOOL_CALLS = "[TOOL_CALLS]"  # Mistral's marker before its list of calls
CALL_LIST = re.compile(r"^\[\s*\{")
MAX_DEPTH = 32  # a call nests 3 levels ({"arguments": {"rules": [...]}}), Mistral's list 4
SHOWN_CHARS = 60  # values quoted back in error messages are cut to this length


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


def unfenced(text: str) -> str:
    """The reply without a Markdown code fence around it (linear time, whatever the reply holds)."""
    body = text.strip()
    if body.startswith("```"):
        body = body[FENCE_OPEN.match(body).end() :]
    if body.endswith("```"):
        body = body[:-3].rstrip()
    return body


def call_body(text: str) -> str:
    """The reply without code fences and without Mistral's `[TOOL_CALLS]` marker."""
    return unfenced(text).removeprefix(TOOL_CALLS).strip()


def looks_like_call(text: str) -> bool:
    """True when a reply is meant as a tool call (`{`, `[{` or `[TOOL_CALLS]`), false for a plain answer."""
    body = unfenced(text)
    return body.startswith(("{", TOOL_CALLS)) or CALL_LIST.match(body) is not None


def shown(value) -> str:
    """A value as an error message quotes it: JSON for short scalars, a cut string, a size for containers."""
    if isinstance(value, str):
        cut = value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "…"
        return json.dumps(cut, ensure_ascii=False) + ("" if cut is value else f" ({len(value)} characters)")
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return shown_number(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return f"an object with {len(value)} keys"
    return f"a {type(value).__name__}"


def _names(keys) -> str:
    """Up to 8 key names for a message, each cut to SHOWN_CHARS."""
    keys = [k if isinstance(k, str) else repr(k) for k in keys]
    cut = [k if len(k) <= SHOWN_CHARS else k[:SHOWN_CHARS] + "…" for k in keys[:8]]
    return ", ".join(cut) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")


def refuse_deep(text: str, what: str) -> None:
    """Raise MalformedCall when `text` nests deeper than MAX_DEPTH (measured without recursion)."""
    if nesting_depth(text) > MAX_DEPTH:
        raise MalformedCall(
            f"{what} nests deeper than {MAX_DEPTH} levels of [ ] or {{ }}; a tool call needs 3. "
            'Reply with one flat JSON object: {"tool": "<name>", "arguments": {...}}.'
        )


def decode_json(text: str, what: str) -> tuple[object, int]:
    """The JSON value at the start of `text` and where it ends; MalformedCall for bad JSON or deep nesting."""
    refuse_deep(text, what)
    try:
        return json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as err:
        raise MalformedCall(
            f"{what} is not valid JSON ({json_problem(err, f'character {err.pos}')}). Reply with one "
            'JSON object: {"tool": "<name>", "arguments": {...}}.'
        ) from None
    except (ValueError, RecursionError) as err:  # e.g. a number with more than 4300 digits
        raise MalformedCall(
            f"{what} cannot be read as JSON ({str(err)[:80]}). Reply with one JSON object: "
            '{"tool": "<name>", "arguments": {...}} with short values.'
        ) from None


def _single_call(obj):
    """A one-call list (Mistral's format) unwrapped; several calls in one reply are refused."""
    if isinstance(obj, list) and obj and all(isinstance(item, dict) for item in obj):
        if len(obj) > 1:
            raise MalformedCall(f"The reply holds {len(obj)} calls; call one tool per reply.")
        return obj[0]
    return obj


def parse_call(text: str) -> ToolCall:
    """Read `{"tool": NAME, "arguments": {...}}` (or Mistral's call list) from a reply; else raise MalformedCall."""
    if not isinstance(text, str):
        raise MalformedCall(f"The reply must be text, got {type(text).__name__}.")
    body = call_body(text)
    obj, end = decode_json(body, "The tool call")
    obj = _single_call(obj)
    if not isinstance(obj, dict):
        raise MalformedCall(
            f"The tool call must be a JSON object, got {type(obj).__name__}. "
            'Reply with {"tool": "<name>", "arguments": {...}}.'
        )
    if body[end:].strip():
        raise MalformedCall(f"Extra text after the JSON object: {body[end:].strip()[:40]!r}. Reply with the call only.")
    name = obj.get("tool", obj.get("name"))
    if not isinstance(name, str) or not name:
        raise MalformedCall(f'The call has no "tool" name (keys: {_names(sorted(obj))}). Add "tool": "<name>".')
    arguments = obj.get("arguments", {})
    if isinstance(arguments, str):  # some models send the arguments JSON-encoded as a string
        arguments = _string_arguments(arguments)
    if not isinstance(arguments, dict):
        raise MalformedCall(f'"arguments" must be an object, got {type(arguments).__name__}.')
    call_id = obj.get("id")
    return ToolCall(name, arguments, call_id if isinstance(call_id, str) else None)


def _string_arguments(text: str):
    """Arguments sent JSON-encoded as a string, decoded; MalformedCall when the string is not one JSON value."""
    refuse_deep(text, '"arguments"')
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise MalformedCall('"arguments" is a string that is not JSON; send an object: "arguments": {...}.') from None


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
    """Raise BadArguments when one argument does not match its schema entry (type, enum, pattern, bounds)."""
    if value is None and spec.get("nullable"):
        return
    if "type" in spec and not _type_ok(value, spec["type"]):
        raise BadArguments(
            f"Argument {name!r} must be of type {spec['type']}, got {shown(value)} ({type(value).__name__})."
        )
    if "enum" in spec and value not in spec["enum"]:
        raise BadArguments(
            f"Argument {name!r} is {_short_repr(value)}; choose one of: {', '.join(map(str, spec['enum']))}."
        )
    for key in ("anyOf", "oneOf"):
        if isinstance(spec.get(key), list):
            matched = sum(_matches(name, value, alternative) for alternative in spec[key])
            if matched == 0 or (key == "oneOf" and matched > 1):
                raise BadArguments(
                    f"Argument {name!r} is {_short_repr(value)}; it must match "
                    f"{'exactly one' if key == 'oneOf' else 'one'} of the {len(spec[key])} schemas its {key} lists."
                )
    if "const" in spec and json.dumps(value) != json.dumps(spec["const"]):
        raise BadArguments(f"Argument {name!r} is {_short_repr(value)}; it must be {_short_repr(spec['const'])}.")
    check_bounds(name, value, spec)
    if "pattern" in spec and isinstance(value, str) and not pattern_ok(spec["pattern"], value):
        raise BadArguments(
            f"Argument {name!r} is {_short_repr(value)}, which does not match the pattern {spec['pattern']}."
        )
    if spec.get("type") == "array" and isinstance(value, list) and "items" in spec:
        for i, item in enumerate(value):
            check_value(f"{name}[{i}]", item, spec["items"])
    if spec.get("uniqueItems") is True and isinstance(value, list):
        written = [json.dumps(item, sort_keys=True) for item in value]
        if len(set(written)) < len(written):
            twice = next(item for i, item in enumerate(value) if written[i] in written[:i])
            raise BadArguments(f"Argument {name!r} lists {_short_repr(twice)} twice; its items must differ.")


def _matches(name: str, value, spec) -> bool:
    """Does `value` pass `spec` (a schema dict)?"""
    try:
        check_value(name, value, spec if isinstance(spec, dict) else {})
    except BadArguments:
        return False
    return True


def _short_repr(value) -> str:
    """repr() of a short string (as the messages always showed it), else `shown`."""
    return repr(value) if isinstance(value, str) and len(value) <= SHOWN_CHARS else shown(value)


def pattern_ok(pattern: str, value: str) -> bool:
    """JSON Schema's `pattern`: a search, where a final `$` means the end of the text (not before a last newline)."""
    match = re.search(pattern, value)
    return match is not None and (not pattern.endswith("$") or pattern.endswith("\\$") or match.end() == len(value))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_bounds(name: str, value, spec: dict) -> None:
    """Raise BadArguments when a number, string or array is outside the schema's minimum/maximum/length/items."""
    if _is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise BadArguments(f"Argument {name!r} is {shown(value)}; pass a finite number.")
        low, high = spec.get("minimum"), spec.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            raise BadArguments(f"Argument {name!r} is {shown(value)}; it must be {_range(low, high)}.")
        above, below = exclusive_bounds(spec)
        if (above is not None and value <= above) or (below is not None and value >= below):
            words = " and ".join(
                f"{side} {shown(bound)}" for side, bound in (("above", above), ("below", below)) if bound is not None
            )
            raise BadArguments(f"Argument {name!r} is {shown(value)}; it must be {words}.")
        step = spec.get("multipleOf")
        if _is_number(step) and step > 0 and Fraction(str(value)) % Fraction(str(step)) != 0:
            raise BadArguments(f"Argument {name!r} is {shown(value)}; it must be a multiple of {shown(step)}.")
    sized = {str: ("minLength", "maxLength", "characters"), list: ("minItems", "maxItems", "items")}
    for kind, (low_key, high_key, unit) in sized.items():
        if isinstance(value, kind):
            low, high = spec.get(low_key), spec.get(high_key)
            if (low is not None and len(value) < low) or (high is not None and len(value) > high):
                raise BadArguments(f"Argument {name!r} has {len(value)} {unit}; it may have {_range(low, high)}.")


def exclusive_bounds(spec: dict) -> tuple:
    """The values a number must stay above and below (None: no such bound): `exclusiveMinimum`/`exclusiveMaximum` as
    numbers, or draft 4's `true` beside minimum/maximum."""
    bounds = []
    for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        flag = spec.get(exclusive)
        bounds.append(spec.get(inclusive) if flag is True else flag if _is_number(flag) else None)
    return tuple(bounds)


def _range(low, high) -> str:
    """The allowed range in words: 'from 1 to 10', 'at least 1' or 'at most 10'."""
    if low is not None and high is not None:
        return f"from {low} to {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def validate_call(call: ToolCall, schemas: dict[str, dict]) -> ToolCall:
    """Check a call against the schemas (tool exists, required present, no unknown names, types, enums)."""
    if call.name not in schemas:
        raise UnknownTool(f"There is no tool {_short_repr(call.name)}; available tools: {', '.join(schemas)}.")
    params = schemas[call.name]["function"].get("parameters", {})
    props, required = params.get("properties", {}), params.get("required", [])
    missing = [p for p in required if p not in call.arguments]
    if missing:
        raise BadArguments(
            f"{call.name} needs the argument(s) {', '.join(missing)}; its arguments are: {', '.join(props)}."
        )
    unknown = [a for a in call.arguments if a not in props]
    if unknown:
        raise BadArguments(f"{call.name} has no argument(s) {_names(unknown)}; its arguments are: {', '.join(props)}.")
    for arg, value in call.arguments.items():
        check_value(arg, value, props[arg])
    return call


def parse_and_validate(text: str, schemas: dict[str, dict]) -> ToolCall:
    """Parse a reply into a call and validate it; raises a CallError subclass."""
    return validate_call(parse_call(text), schemas)
