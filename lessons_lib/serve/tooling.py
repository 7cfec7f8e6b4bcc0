"""Tool calls over the API: the decoding constraint for tool_choice "required" / a named function, and a reply
read back as OpenAI `tool_calls`.

The model writes the course's call format, `{"tool": NAME, "arguments": {...}}` (what the tools adapter was
trained on and the chat template renders for earlier calls). "auto" parses a call if the reply is one that
validates against the request's schemas, and otherwise answers with the text; "required" and a named function
decode under the course's schema grammar (lessons_lib/tools/constrained.py), so the reply is always a valid call
unless the token limit cuts it (a max_tokens too small to write even a call's name is a 400: `fewest_call_tokens`).
The course's own tools, sent as the course writes them, keep the rules no JSON Schema states (the formatter's indent
below its width: `functions.BELOW`, `WHOLE_TEXTS`); a client's own tools are bound by their schemas alone.

Under "auto", a reply that begins a call in the course's format (`{"tool": "`) but does not validate means the model
chose to call and wrote a broken one: the server decodes that choice again under the schemas, as "required" does
(`needs_retry`; app.Server.settle), so the client gets a valid call in tool_calls. Only such rows pay for a second
decode, within what a client's max_tokens leaves after the first. Where the grammar cannot express a tool's schema,
that decode still names one of the tools and leaves the arguments to the model (`name_rule`); the call is a
`tool_calls` entry with the name and the arguments as written, unvalidated, as OpenAI's non-strict mode returns one
(`loose_call`). A call to no tool of the request never goes out: with no room left to decode it again, the reply is
empty, finish "length".

A call the token limit cut never comes back as text (that would show the client the course's internal format): as
OpenAI returns a cut call, it is a `tool_calls` entry with the name and the partial arguments string, finish_reason
"length"; when not even the name was written, the reply is empty content, no tool_calls, finish_reason "length".
`stop` is refused wherever a reply may be a call (protocol.check_stop_with_constraint), so no stop string cuts one.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from ..i18n import tr
from .protocol import bad

# How a call in the course's format starts; the arguments object follows (what the grammar makes the model write).
CALL_HEAD = re.compile(r'\{"tool": "([A-Za-z0-9_-]{1,64})", "arguments": ')
CALL_START = '{"tool": "'  # the first characters of every call in the course's format
CALL_NAME = re.compile(r'\{"tool": "([A-Za-z0-9_-]{1,64})"')  # a call whose name is written in full


@dataclass(frozen=True)
class ToolPlan:
    """How one request's replies are decoded and read: its tools, the mode, and the constraint (if any)."""

    schemas: list[dict]
    mode: str  # "auto", "required" or "function:NAME"
    allowed_tokens: Callable[[list[int]], list[int] | None] | None = None

    @property
    def constrained(self) -> bool:
        return self.allowed_tokens is not None

    @property
    def names(self) -> list[str]:
        """The names of the request's tools, in order."""
        return [schema["function"]["name"] for schema in self.schemas]


def plan_tools(
    schemas: list[dict], mode: str | None, tokenizer, max_tokens: int | None = None, quote: str | None = None
) -> ToolPlan | None:
    """The plan for a request's tools (None when no tools are in play); a 400 when the grammar cannot express a
    schema that "required" or a named function needs. A constrained call closes its strings and lists in time to
    end within `max_tokens`; with `quote` (the user messages) its free text is whole phrases of it."""
    if mode is None:
        return None
    if mode == "auto":
        return ToolPlan(schemas, mode)
    from ..tools.constrained import CallGrammar, GrammarError
    from ..tools.functions import BELOW, WHOLE_TEXTS
    from ..tools.schemas import course_tool_names

    wanted = schemas if mode == "required" else [s for s in schemas if s["function"]["name"] == mode[9:]]
    own = course_tool_names(wanted)  # a client's own tools: their schemas bind, not the course's rules
    try:
        grammar = CallGrammar(
            wanted, quote, below=[r for r in BELOW if r.tool in own], whole=[w for w in WHOLE_TEXTS if w[0] in own]
        )
    except GrammarError as err:
        index = next((i for i, s in enumerate(schemas) if s["function"]["name"] in str(err)), 0)
        forced = mode.replace("function:", "")
        raise bad(
            f"tools[{index}].function.parameters",
            tr(
                en=f"tool_choice={forced!r} decodes under the tools' schemas, and this one cannot be expressed: {err}",
                ru=f"tool_choice={forced!r} декодирует по схемам tools, а эту схему выразить нельзя: {err}",
            ),
        ) from err
    return ToolPlan(schemas, mode, grammar_rule(grammar, tokenizer, max_tokens))


def plan_format(response_format, tokenizer, max_tokens: int | None = None) -> Callable[[list[int]], list[int]] | None:
    """The decoding constraint for response_format json_schema (None for text): the answer is a JSON object that
    follows the schema, closing in time to end within `max_tokens`; a 400 when the grammar cannot express it."""
    if response_format is None or response_format.type != "json_schema":
        return None
    from ..tools.constrained import GrammarError, object_grammar

    spec = response_format.json_schema
    try:
        grammar = object_grammar(spec["schema"], spec["name"])
    except GrammarError as err:
        raise bad(
            "response_format.json_schema.schema",
            tr(
                en="response_format json_schema decodes the answer under its schema, and this one cannot be "
                f"expressed: {err}",
                ru=f"response_format json_schema декодирует ответ по своей схеме, а эту схему выразить нельзя: {err}",
            ),
        ) from err
    return grammar_rule(grammar, tokenizer, max_tokens)


def grammar_rule(grammar, tokenizer, max_tokens: int | None) -> Callable[[list[int]], list[int]]:
    """The engine's `allowed_tokens(generated_ids)` for one reply under `grammar` (a one-row CallConstraint, prompt
    length 0), closing in time to end within `max_tokens`."""
    import torch

    from ..tools.constrained import vocabulary_constraint

    rows = vocabulary_constraint(tokenizer).for_rows([grammar], 0, max_tokens)

    def allowed(generated: list[int]) -> list[int]:
        return rows(0, torch.tensor(generated, dtype=torch.long))

    return allowed


def name_rule(names: list[str], tokenizer) -> Callable[[list[int]], list[int] | None]:
    """The engine's `allowed_tokens` for a call to one of `names` whose arguments the grammar cannot constrain: the
    head `{"tool": NAME, "arguments": ` is written as one of them, the arguments are left to the model (as OpenAI's
    non-strict mode: the name is always one of the tools, the arguments may not validate)."""
    from ..tools.constrained import call_head, vocabulary_constraint

    heads = [call_head(name) for name in names]
    vocabulary = vocabulary_constraint(tokenizer)

    def allowed(generated: list[int]) -> list[int] | None:
        text = b"".join(vocabulary.pieces[i] or b"" for i in generated)
        if any(text.startswith(head) for head in heads):
            return None
        ahead = [head for head in heads if head.startswith(text) or text.startswith(head)]
        return vocabulary.trie.accepted(
            lambda piece: any(head.startswith(text + piece) or (text + piece).startswith(head) for head in ahead)
        )

    return allowed


def call_id() -> str:
    """A fresh OpenAI-style call id."""
    return "call_" + uuid.uuid4().hex[:24]


@dataclass(frozen=True)
class Reading:
    """A finished choice as the API answers it: text content, or one tool call."""

    content: str | None
    tool_calls: list[dict] | None
    finish_reason: str


def read_reply(text: str, finish_reason: str, plan: ToolPlan | None) -> Reading:
    """A choice's text as content or as a validated tool call (finish_reason "tool_calls")."""
    if plan is None or finish_reason == "cancelled":
        return Reading(text, None, finish_reason)
    from ..tools.calls import CallError, looks_like_call, parse_and_validate
    from ..tools.schemas import schemas_by_name

    if not looks_like_call(text):
        return Reading(text, None, finish_reason)
    try:
        call = parse_and_validate(text, schemas_by_name(plan.schemas))
    except CallError:
        if finish_reason == "length":
            return cut_call(text, plan) or Reading(text, None, finish_reason)
        return loose_call(text, plan) if starts_call(text) else Reading(text, None, finish_reason)
    arguments = raw_arguments(text) or json.dumps(call.arguments, ensure_ascii=False)
    entry = {"id": call_id(), "type": "function", "function": {"name": call.name, "arguments": arguments}}
    return Reading(None, [entry], "tool_calls")


def starts_call(text: str) -> bool:
    """Whether a reply begins a call in the course's format (code fences and Mistral's marker aside)."""
    from ..tools.calls import call_body

    return call_body(text).startswith(CALL_START)


def is_valid_call(text: str, plan: ToolPlan) -> bool:
    """Whether `text` is a call that validates against the plan's schemas."""
    from ..tools.calls import CallError, parse_and_validate
    from ..tools.schemas import schemas_by_name

    try:
        parse_and_validate(text, schemas_by_name(plan.schemas))
    except CallError:
        return False
    return True


def needs_retry(text: str, finish_reason: str, plan: ToolPlan | None) -> bool:
    """Whether a tool_choice "auto" reply began a call that does not validate (and was not cut by the token limit):
    the model chose to call, so that choice is decoded again under the schemas."""
    return (
        plan is not None
        and plan.mode == "auto"
        and finish_reason == "stop"
        and starts_call(text)
        and not is_valid_call(text, plan)
    )


def loose_call(text: str, plan: ToolPlan) -> Reading:
    """A finished call in the course's format that does not validate, as OpenAI's non-strict mode returns one: a
    `tool_calls` entry with the name and the arguments as written. A call to no tool of the request (the decode again
    under the schemas found no room within max_tokens) is never sent: empty content, finish "length", as a call cut
    before its name."""
    from ..tools.calls import call_body

    body = call_body(text)
    named = CALL_NAME.match(body)
    if named is None or named.group(1) not in plan.names:
        return Reading("", None, "length")
    head = CALL_HEAD.match(body)
    arguments = (raw_arguments(text) or body[head.end() :].rstrip().removesuffix("}")) if head else "{}"
    entry = {"id": call_id(), "type": "function", "function": {"name": named.group(1), "arguments": arguments}}
    return Reading(None, [entry], "tool_calls")


def fewest_call_tokens(names: list[str], tokenizer) -> int:
    """The fewest tokens any reply needs to write a call's name in full (`{"tool": "NAME"`) for one of `names`: below
    this a forced call is always cut before its name, and the reply is empty."""
    return min(fewest_tokens('{"tool": ' + json.dumps(name), tokenizer) for name in names)


def fewest_tokens(text: str, tokenizer) -> int:
    """The fewest tokens whose text begins with `text`, over every way to split it (a constrained reply may take
    any), the last token may run past its end."""
    pieces, prefixes, longest = piece_sets(tokenizer)
    data = text.encode()
    best = [0] + [len(data) + 1] * len(data)  # best[i]: fewest tokens that write data[:i] exactly
    fewest = len(data) + 1
    for i in range(len(data)):
        if data[i:] in prefixes:
            fewest = min(fewest, best[i] + 1)
        for j in range(i + 1, min(len(data), i + longest) + 1):
            if data[i:j] in pieces:
                best[j] = min(best[j], best[i] + 1)
    return fewest


@lru_cache(maxsize=4)
def piece_sets(tokenizer) -> tuple[frozenset[bytes], frozenset[bytes], int]:
    """The tokens' texts, every prefix of them, and the longest one's length (built once per tokenizer)."""
    from ..tools.constrained import token_bytes_of

    pieces = frozenset(p for p in token_bytes_of(tokenizer) if p)
    prefixes = frozenset(p[:k] for p in pieces for k in range(1, len(p) + 1))
    return pieces, prefixes, max(len(p) for p in pieces)


def is_cut_call(text: str, plan: ToolPlan) -> bool:
    """Whether `text` is the start of a call in the course's format (any text is, under a constrained plan)."""
    from ..tools.calls import call_body

    body = call_body(text)
    return plan.constrained or bool(body) and (body.startswith(CALL_START) or CALL_START.startswith(body))


def cut_call(text: str, plan: ToolPlan) -> Reading | None:
    """A call the token limit cut, as OpenAI returns one (None when `text` is not the start of a call): the name
    (if written in full, and one of the tools) with the partial arguments, else empty content; finish "length"."""
    from ..tools.calls import call_body

    if not is_cut_call(text, plan):
        return None
    body = call_body(text)
    named = CALL_NAME.match(body)
    if named is None or named.group(1) not in plan.names:
        return Reading("", None, "length")
    head = CALL_HEAD.match(body)
    arguments = body[head.end() :] if head else ""
    entry = {"id": call_id(), "type": "function", "function": {"name": named.group(1), "arguments": arguments}}
    return Reading(None, [entry], "length")


def raw_arguments(text: str) -> str | None:
    """The arguments object exactly as the model wrote it in the course's call format (what a stream sends as it
    is generated), or None for another format."""
    from ..tools.calls import call_body

    body = call_body(text)
    head = CALL_HEAD.match(body)
    if head is None:
        return None
    try:
        _, end = json.JSONDecoder().raw_decode(body, head.end())
    except ValueError:
        return None
    return body[head.end() : end]


def may_become_call(held: str, plan: ToolPlan) -> bool:
    """While streaming: can text that starts like `held` still be a call (so it is held back, not sent)?"""
    if plan.constrained:
        return True
    from ..tools.calls import TOOL_CALLS, looks_like_call

    body = held.strip()
    if body.startswith("```"):  # a fenced call: look past the fence's first line
        first, newline, rest = body.partition("\n")
        body = rest.strip() if newline else ""
    return (
        not body
        or looks_like_call(body)
        or TOOL_CALLS.startswith(body)
        or "```".startswith(body)
        or body.rstrip() == "["
    )
