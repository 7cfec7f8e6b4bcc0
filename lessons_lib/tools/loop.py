"""The tool-calling loop: model reply -> parse + validate -> execute -> `tool` message -> ... -> final answer.

Nothing the model writes can crash the loop: malformed or deeply nested JSON, unknown tools, arguments
outside the schemas' types and bounds, and tool errors become `tool` messages starting with "error:" (and
events the learner sees); `max_steps` stops endless calling.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..chat_format import call_id, is_call_id
from ..i18n import plural_ru, tr
from ..models import generate_texts
from .calls import CallError, ToolCall, looks_like_call, parse_and_validate
from .constrained import check_quote, check_tool_choice, constrained_generate, reply_budgets
from .faithful import faithful_generate
from .functions import TOOLS, ToolError
from .schemas import schemas_by_name, tool_schemas

ERROR_PREFIX = "error: "


@dataclass(frozen=True)
class Event:
    """One thing that happened in the loop, for the learner to read."""

    step: int
    kind: str  # "call", "result", "error", "answer", "step_limit"
    detail: str

    def __str__(self) -> str:
        return f"[{self.step}] {self.kind:10s} {self.detail}"


@dataclass
class LoopResult:
    """How a request ended: the final answer (None if the step limit hit first), events and the chat."""

    answer: str | None
    events: list[Event] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    results: list = field(default_factory=list)

    def transcript(self) -> str:
        """The events, one per line."""
        return "\n".join(map(str, self.events))


def result_text(result) -> str:
    """A tool's return value as the content of a `tool` message."""
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)


def execute(call: ToolCall, tools: dict[str, Callable]):
    """Run a validated call; ToolError and any other exception become an error string, never a crash."""
    try:
        return True, tools[call.name](**call.arguments)
    except ToolError as err:
        return False, f"{ERROR_PREFIX}{err}"
    except Exception as err:  # noqa: BLE001 - a tool bug must not stop the loop; the model hears about it
        return False, f"{ERROR_PREFIX}the tool {call.name} failed with {type(err).__name__}: {err}"


def handle_reply(
    messages: list[dict],
    reply: str,
    step: int,
    tools: dict[str, Callable],
    schemas: dict[str, dict],
    result: LoopResult,
) -> bool:
    """Apply one model reply to the conversation; returns True when it was the final answer."""
    if not looks_like_call(reply):
        messages.append({"role": "assistant", "content": reply})
        result.answer = reply
        result.events.append(Event(step, "answer", reply))
        return True
    try:
        call = parse_and_validate(reply, schemas)
    except CallError as err:
        messages.append({"role": "assistant", "content": reply})
        messages.append({"role": "tool", "content": f"{ERROR_PREFIX}{err}"})
        result.events.append(Event(step, "error", f"{err.kind}: {err}"))
        return False
    result.events.append(Event(step, "call", f"{call.name}({json.dumps(call.arguments, ensure_ascii=False)})"))
    if not is_call_id(call.id):  # strict templates (Mistral) render only calls and results with such ids
        call = replace(call, id=call_id(call.name, call.arguments, step))
    ok, value = execute(call, tools)
    result.calls.append(call)
    result.results.append(value)
    messages.append(call.as_message())
    messages.append({"role": "tool", "content": result_text(value), "tool_call_id": call.id})
    result.events.append(Event(step, "result" if ok else "error", result_text(value)))
    return False


def run_tool_loop(
    chat: Callable[[list[dict]], str],
    request: str | list[dict],
    tools: dict[str, Callable] = TOOLS,
    schemas: list[dict] | None = None,
    max_steps: int = 4,
) -> LoopResult:
    """Let `chat(messages) -> reply` call tools until it answers in plain text or `max_steps` replies pass."""
    if max_steps < 1:
        raise ValueError(
            tr(
                en=f"max_steps must be at least 1, got {max_steps}.",
                ru=f"max_steps должно быть не меньше 1, а получено {max_steps}.",
            )
        )
    by_name = schemas_by_name(schemas if schemas is not None else tool_schemas(tools))
    messages = [{"role": "user", "content": request}] if isinstance(request, str) else list(request)
    result = LoopResult(None, messages=messages)
    for step in range(1, max_steps + 1):
        reply = chat(list(messages))
        if not isinstance(reply, str):
            raise TypeError(
                tr(
                    en=f"chat(messages) must return the model's reply as a string, got {type(reply).__name__}; "
                    "fix the chat function.",
                    ru=f"chat(messages) должна возвращать ответ модели строкой, а вернула {type(reply).__name__}; "
                    "исправьте функцию chat.",
                )
            )
        if handle_reply(messages, reply, step, tools, by_name, result):
            return result
    result.events.append(
        Event(
            max_steps,
            "step_limit",
            tr(
                en=f"no final answer after {max_steps} model replies; stopped the loop",
                ru=f"нет окончательного ответа после {max_steps} "
                f"{plural_ru(max_steps, 'ответа', 'ответов', 'ответов')} модели; цикл остановлен",
            ),
        )
    )
    return result


def complete(
    model,
    tokenizer,
    texts: Sequence[str],
    max_new_tokens: int | Sequence[int] | None = None,
    adapter_names: Sequence[str] | None = None,
    batch_size: int = 32,
) -> list[str]:
    """Greedy continuations of already-rendered chat texts (batched, left-padded; per-row PEFT adapters; one budget,
    or one per text)."""
    return generate_texts(model, tokenizer, texts, max_new_tokens, adapter_names, batch_size)


class ModelChat:
    """`chat(messages) -> reply` for a local model: renders the chat and its tools (see `chat_format`) and generates.

    `tool_choice="required"` answers every user message with a schema-constrained call (see `constrained`);
    replies after a tool result stay free, so the model can write its final answer. `quote=True` (with "required")
    also makes the call's free text quote the request, and the answer's repeats of the tool's result exact
    (see `faithful`). `max_new_tokens=None`: room for what a reply may copy, the request in a call and the tool's
    result in an answer (see `constrained.reply_budgets`).
    """

    def __init__(
        self,
        model,
        tokenizer,
        schemas: list[dict] | None = None,
        adapter: str | None = None,
        max_new_tokens: int | None = None,
        system: str | None = None,
        tool_choice: str = "auto",
        quote: bool = False,
    ):
        check_quote(quote, tool_choice)
        self.model, self.tokenizer, self.adapter = model, tokenizer, adapter
        self.schemas = schemas if schemas is not None else tool_schemas()
        self.max_new_tokens, self.system, self.tool_choice = max_new_tokens, system, check_tool_choice(tool_choice)
        self.quote = quote

    def render(self, messages: list[dict]) -> str:
        """The prompt text the model sees."""
        from ..models import chat_text

        return chat_text(self.tokenizer, messages, system=self.system, tools=self.schemas)

    def __call__(self, messages: list[dict]) -> str:
        names = [self.adapter] if self.adapter else None
        last = messages[-1]
        budget = reply_budgets(self.tokenizer, [last.get("content")], self.max_new_tokens)[0]
        if self.tool_choice == "required" and last["role"] == "user":
            return constrained_generate(
                self.model,
                self.tokenizer,
                [self.render(messages)],
                self.schemas,
                quotes=[last["content"]] if self.quote else None,
                max_new_tokens=budget,
                adapter_names=names,
            )[0].strip()
        if self.quote and last["role"] == "tool":
            return faithful_generate(
                self.model, self.tokenizer, [self.render(messages)], [last["content"]], budget, names
            )[0].strip()
        return complete(self.model, self.tokenizer, [self.render(messages)], budget, names)[0].strip()
