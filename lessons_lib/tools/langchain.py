"""The same three tools as LangChain tools (the original course used `@tool`), when langchain_core is installed."""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..i18n import tr
from .functions import TOOLS, ToolError


def langchain_available() -> bool:
    """True when langchain_core can be imported."""
    try:
        import langchain_core.tools  # noqa: F401
    except ImportError:
        return False
    return True


def _validation_message(err) -> str:
    """LangChain's answer for arguments that fail the schema: pydantic's explanation, one line per problem."""
    problems = [f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in getattr(err, "errors", lambda: [])()]
    return "error: bad arguments: " + ("; ".join(problems) or str(err))


def as_langchain_tool(fn: Callable):
    """Wrap one tool as a StructuredTool: schema and descriptions from its signature and Google docstring.

    A ToolError becomes a ToolException, which LangChain hands back as the tool's answer
    (`handle_tool_error=True`, and bad arguments likewise) instead of raising, like the course's own loop.
    """
    try:
        from langchain_core.tools import StructuredTool, ToolException
    except ImportError as err:
        raise ImportError(
            tr(
                en="LangChain tools need langchain-core: `pip install langchain-core`.",
                ru="Для инструментов LangChain нужен langchain-core: `pip install langchain-core`.",
            )
        ) from err

    @functools.wraps(fn)
    def run(**kwargs):
        try:
            return fn(**kwargs)
        except ToolError as err:
            raise ToolException(f"error: {err}") from err

    return StructuredTool.from_function(
        run, name=fn.__name__, parse_docstring=True, handle_tool_error=True, handle_validation_error=_validation_message
    )


def langchain_tools(tools: dict[str, Callable] = TOOLS) -> list:
    """Every course tool as a LangChain tool."""
    return [as_langchain_tool(fn) for fn in tools.values()]
