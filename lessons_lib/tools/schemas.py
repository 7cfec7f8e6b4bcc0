"""JSON schemas of the tools, generated from their signatures and docstrings by transformers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache

from .functions import LIMITS, RULE_PATTERN, TOOLS

# What a docstring cannot say: JSON Schema `pattern`s for string values (array items: "name[]"), and the
# tools' bounds (LIMITS: maximum, maxLength, minItems, maxItems), which `validate_call` and the grammar enforce.
PATTERNS = {("content_validator", "rules[]"): RULE_PATTERN}


def _entry(props: dict, arg: str) -> dict:
    """The schema entry of an argument, or of its array items for "name[]"."""
    spec = props[arg.removesuffix("[]")]
    return spec["items"] if arg.endswith("[]") else spec


def tool_schema(fn: Callable) -> dict:
    """The OpenAI-style function schema of one typed, Google-docstring function, plus its PATTERNS and LIMITS."""
    from transformers.utils import get_json_schema

    schema = get_json_schema(fn)
    name = schema["function"]["name"]
    props = schema["function"].get("parameters", {}).get("properties", {})
    for (tool, arg), pattern in PATTERNS.items():
        if tool == name:
            _entry(props, arg)["pattern"] = f"^{pattern}$"
    for arg, bounds in LIMITS.get(name, {}).items():
        if arg.removesuffix("[]") in props:
            _entry(props, arg).update(bounds)
    return schema


def tool_schemas(tools: dict[str, Callable] | Iterable[Callable] = TOOLS) -> list[dict]:
    """Schemas for several tools, in order (what `apply_chat_template(..., tools=...)` takes)."""
    fns = tools.values() if isinstance(tools, dict) else tools
    return [tool_schema(fn) for fn in fns]


def course_tool_names(schemas: Iterable[dict]) -> set[str]:
    """The names among `schemas` of the course's own tools, sent as the course writes them (name and parameters):
    the tools whose cross-argument rules (`functions.BELOW`, `WHOLE_TEXTS`) hold for a call."""
    own = course_parameters()
    return {
        s["function"]["name"]
        for s in schemas
        if s["function"]["name"] in own and s["function"].get("parameters") == own[s["function"]["name"]]
    }


@lru_cache(maxsize=1)
def course_parameters() -> dict[str, dict]:
    """Each course tool's parameters schema by name, built once (the server compares every forced request's tools)."""
    return {s["function"]["name"]: s["function"].get("parameters") for s in tool_schemas()}


def schemas_by_name(schemas: list[dict]) -> dict[str, dict]:
    """Index schemas by function name."""
    return {s["function"]["name"]: s for s in schemas}
