"""Held-out tool-use metrics: right tool, valid arguments, exact arguments, final answer correct."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .calls import CallError, ToolCall, parse_call, validate_call
from .constrained import check_quote, check_tool_choice, constrained_generate, reply_budgets
from .data import ToolExample, answer_prompt, final_answer, tool_examples
from .faithful import faithful_generate
from .functions import TOOLS, same_arguments
from .loop import ERROR_PREFIX, complete, execute, result_text
from .schemas import schemas_by_name, tool_schemas


@dataclass(frozen=True)
class CallScore:
    """The verdict on one request's run."""

    correct_tool: bool
    valid_args: bool
    exact_args: bool
    final_correct: bool
    reason: str = ""
    uses_result: bool = False  # the final answer delivers the result of the call that ran, right or wrong


def score_call(ex: ToolExample, reply: str, schemas: dict[str, dict]) -> tuple[CallScore, ToolCall | None, object]:
    """Score turn 1 (the call); returns the score so far, the call that ran and its result (None, None if none ran)."""
    try:
        call = parse_call(reply)
    except CallError as err:
        return CallScore(False, False, False, False, f"{err.kind}: {err}"), None, None
    right = call.name == ex.tool
    try:
        validate_call(call, schemas)
    except CallError as err:
        return CallScore(right, False, False, False, f"{err.kind}: {err}"), None, None
    ok, value = execute(call, TOOLS)
    if not ok:
        return CallScore(right, False, False, False, value), None, None
    return CallScore(right, True, is_expected_call(ex, call), False, "ok"), call, value


def is_expected_call(ex: ToolExample, call: ToolCall | None) -> bool:
    """Is `call` the one `ex` expects: its tool, asking for the same thing (see `functions.same_arguments`)?"""
    return call is not None and call.name == ex.tool and same_arguments(ex.tool, call.arguments, ex.arguments)


def base_never_saw_tools(profile) -> bool:
    """True for the tiny course weights, which never saw a tool call; chat models (Mistral v0.3 was trained for
    tool calling) may call tools without an adapter, so claims about the bare base hold only here."""
    from ..paths import TINY_MODEL_DIR

    return profile.model_id == str(TINY_MODEL_DIR)


def parsed_call(reply: str, schemas: dict[str, dict]) -> tuple[ToolCall | None, bool]:
    """The call in a reply (None when it does not parse) and whether it passes the schema."""
    try:
        call = parse_call(reply)
    except CallError:
        return None, False
    try:
        validate_call(call, schemas)
    except CallError:
        return call, False
    return call, True


def score_problems(items: Sequence[dict], examples: Sequence[ToolExample]) -> list[str]:
    """Where a raw reply contradicts its score or its request (a bug in the evaluation, not in the model)."""
    schemas, problems = schemas_by_name(tool_schemas()), []
    if len(items) != len(examples):
        return [f"{len(items)} scored replies for {len(examples)} requests"]
    for i, (item, ex) in enumerate(zip(items, examples)):
        score = item["score"]
        call, valid = parsed_call(item["call"], schemas)
        if item["request"] != ex.request:
            problems.append(f"{i}: the reply belongs to another request")
        if score.correct_tool != (call is not None and call.name == ex.tool):
            problems.append(f"{i}: correct_tool={score.correct_tool} for {item['call'][:60]!r}")
        if score.valid_args and not valid:
            problems.append(f"{i}: valid_args for a call that does not validate")
        if score.final_correct and not item["final"]:
            problems.append(f"{i}: final answer counted correct but none was generated")
    return problems


def final_correct(ex: ToolExample, answer: str) -> bool:
    """Does the final answer deliver the gold result? Text tools: it contains it; the validator: the verdict."""
    return delivers(ex.lang, ex.tool, ex.result, answer)


def delivers(lang: str, tool: str, result, answer: str) -> bool:
    """Does `answer` deliver `result` of `tool`? Text tools: it contains it; the validator: the verdict in `lang` (its
    rules in any order)."""
    if tool == "content_validator":
        return isinstance(result, dict) and unordered_verdict(answer) == unordered_verdict(
            final_answer(lang, tool, result)
        )
    return isinstance(result, str) and result.strip() in answer


def unordered_verdict(text: str) -> str:
    """A validator verdict ("Failed checks: b, a.") with its rule names sorted (the order rules ran in is no part)."""
    head, sep, names = text.strip().partition(": ")
    if not sep or not names.endswith("."):
        return text.strip()
    return f"{head}: {', '.join(sorted(names[:-1].split(', ')))}."


@dataclass(frozen=True)
class ToolReport:
    """Rates over held-out requests for one model or adapter."""

    label: str
    n: int
    correct_tool: float
    valid_args: float
    exact_args: float
    final_correct: float
    uses_result: float = 0.0  # answers that deliver the result of the call that ran (a wrong call's too)

    def row(self) -> dict:
        """The report as a table row."""
        return {
            "model": self.label,
            "n": self.n,
            "correct tool": round(self.correct_tool, 3),
            "valid args": round(self.valid_args, 3),
            "exact args": round(self.exact_args, 3),
            "final answer": round(self.final_correct, 3),
            "uses result": round(self.uses_result, 3),
        }


def summarize(label: str, scores: Sequence[CallScore]) -> ToolReport:
    """Aggregate per-request scores."""
    n = max(len(scores), 1)
    return ToolReport(
        label,
        len(scores),
        sum(s.correct_tool for s in scores) / n,
        sum(s.valid_args for s in scores) / n,
        sum(s.exact_args for s in scores) / n,
        sum(s.final_correct for s in scores) / n,
        sum(s.uses_result for s in scores) / n,
    )


def evaluate_tools(
    model,
    tokenizer,
    adapters: Sequence[str | None] = (None,),
    n: int = 40,
    seed: int = 0,
    max_new_tokens: int | None = None,
    examples: Sequence[ToolExample] | None = None,
    system: str | None = None,
    turns: int = 2,
    tool_choice: str = "auto",
    quote: bool = False,
) -> tuple[list[ToolReport], dict]:
    """Run every held-out request through each adapter ("__base__" = base, None = the model as is).

    Turn 1 asks for a call; valid calls are executed and turn 2 asks for the final answer, all in
    mixed-adapter batches (`turns=1` skips the final answers; their rate is then 0). `tool_choice="required"`
    constrains turn 1 to calls that match the schemas (see `constrained`); `quote=True` also makes their free-text
    arguments phrases of the request, and the final answers' repeats of the tool's result exact (see `faithful`).
    `max_new_tokens=None`: each reply gets room for what it may copy (its request, then its call's result; see
    `constrained.reply_budgets`). Returns one report per adapter and the raw replies keyed by adapter.
    """
    from ..models import chat_text

    check_tool_choice(tool_choice)
    check_quote(quote, tool_choice)
    items = list(examples) if examples is not None else tool_examples(n, "heldout", seed)
    schema_list = tool_schemas()
    schemas = schemas_by_name(schema_list)
    render = lambda msgs: chat_text(tokenizer, msgs, system=system, tools=schema_list)  # noqa: E731
    names = [a for a in adapters for _ in items]
    mixed = None if all(a is None for a in adapters) else names
    prompts = [render([{"role": "user", "content": ex.request}]) for ex in items] * len(adapters)
    call_budgets = reply_budgets(tokenizer, [ex.request for ex in items], max_new_tokens) * len(adapters)
    calls = (
        constrained_generate(
            model,
            tokenizer,
            prompts,
            schema_list,
            quotes=[ex.request for ex in items] * len(adapters) if quote else None,
            max_new_tokens=call_budgets,
            adapter_names=mixed,
        )
        if tool_choice == "required"
        else complete(model, tokenizer, prompts, call_budgets, mixed)
    )
    firsts = [score_call(items[i % len(items)], reply, schemas) for i, reply in enumerate(calls)]
    second = [i for i, (_, ran, _) in enumerate(firsts) if ran is not None] if turns >= 2 else []
    answer_texts = [render(answer_prompt(items[i % len(items)], calls[i], firsts[i][2])) for i in second]
    answer_adapters = None if mixed is None else [names[i] for i in second]
    sources = [result_text(firsts[i][2]) for i in second]
    answer_budgets = reply_budgets(tokenizer, sources, max_new_tokens)
    if not second:
        finals = []
    elif quote:
        finals = faithful_generate(model, tokenizer, answer_texts, sources, answer_budgets, answer_adapters)
    else:
        finals = complete(model, tokenizer, answer_texts, answer_budgets, answer_adapters)
    final_of = dict(zip(second, finals))
    scores = []
    for i, (first, ran, result) in enumerate(firsts):
        ex, answer = items[i % len(items)], final_of.get(i)
        answered = answer is not None and not answer.startswith(ERROR_PREFIX)
        ok = answered and final_correct(ex, answer)
        used = answered and delivers(ex.lang, ran.name, result, answer)
        scores.append(CallScore(first.correct_tool, first.valid_args, first.exact_args, ok, first.reason, used))
    reports, raw = [], {}
    for k, adapter in enumerate(adapters):
        part = slice(k * len(items), (k + 1) * len(items))
        label = ("base" if adapter == "__base__" else adapter or "model") + (
            (" · schema-constrained" if tool_choice == "required" else "") + (" · quoting" if quote else "")
        )
        reports.append(summarize(label, scores[part]))
        raw[label] = [
            {"request": ex.request, "call": c, "final": final_of.get(k * len(items) + j), "score": s}
            for j, (ex, c, s) in enumerate(zip(items, calls[part], scores[part]))
        ]
    return reports, raw


def required_answer_metrics(report: ToolReport, prefix: str = "handwritten_required") -> dict:
    """The manifest keys a schema-constrained report adds: exact arguments, final answers with the gold result, and
    final answers that deliver the result of the call that ran."""
    return {
        f"{prefix}_exact_args": report.exact_args,
        f"{prefix}_final_correct": report.final_correct,
        f"{prefix}_uses_result": report.uses_result,
    }
