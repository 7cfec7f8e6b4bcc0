"""Pieces the course widgets share (core ipywidgets only: 7.7 on Colab and 8.x)."""
from __future__ import annotations

import html
from typing import Callable

import ipywidgets as widgets


def prompt_box(prompt: str = "") -> widgets.Textarea:
    """The prompt text area every playground widget starts with."""
    return widgets.Textarea(value=prompt, description="Prompt", placeholder="Ask something…",
                            layout=widgets.Layout(width="95%", height="80px"))


def run_showing_errors(action: Callable[[], object], shown_in,
                       render: Callable[[str], str] = lambda message: f"Error: {message}") -> None:
    """Run a button's action; an exception is written into `shown_in.value` and re-raised.

    A callback's traceback is invisible in Colab (ipywidgets only logs it), so the widget shows it too.
    """
    try:
        action()
    except Exception as err:
        shown_in.value = render(f"{type(err).__name__}: {err}")
        raise


def answer_html(text: str) -> str:
    """An answer shown as preformatted, wrapped, escaped text."""
    return f"<pre style='white-space: pre-wrap'>{html.escape(text)}</pre>"
