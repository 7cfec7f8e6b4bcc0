"""Tools for notebook 05: three validated functions, their schemas, a tool-calling loop and a tool-use adapter."""

from .calls import BadArguments, CallError, MalformedCall, ToolCall, UnknownTool, parse_and_validate, parse_call
from .constrained import CallConstraint, CallGrammar, constrained_generate
from .functions import TOOLS, ToolError, content_validator, template_generator, text_formatter
from .loop import Event, LoopResult, ModelChat, run_tool_loop
from .schemas import tool_schemas

__all__ = [
    "TOOLS",
    "BadArguments",
    "CallConstraint",
    "CallError",
    "CallGrammar",
    "Event",
    "LoopResult",
    "MalformedCall",
    "ModelChat",
    "ToolCall",
    "ToolError",
    "UnknownTool",
    "constrained_generate",
    "content_validator",
    "parse_and_validate",
    "parse_call",
    "run_tool_loop",
    "template_generator",
    "text_formatter",
    "tool_schemas",
]
