"""Pieces the course widgets share (core ipywidgets only: 7.7 on Colab and 8.x)."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import ipywidgets as widgets

from ..i18n import tr


def prompt_box(prompt: str = "") -> widgets.Textarea:
    """The prompt text area every playground widget starts with."""
    return widgets.Textarea(
        value=prompt,
        description=tr(en="Prompt", ru="Промпт"),
        placeholder=tr(en="Ask something…", ru="Спросите что-нибудь…"),
        layout=widgets.Layout(width="95%", height="80px"),
    )


def error_text(message: str) -> str:
    """How a callback's error reads in a Label ("Error: ..." / "Ошибка: ...")."""
    return f"{tr(en='Error', ru='Ошибка')}: {message}"


def labelled(values: Sequence[str], label: Callable[[str], str]) -> list:
    """Dropdown options: the values themselves, or (label, value) pairs where a label differs (the value stays
    the identifier code sets and reads)."""
    pairs = [(label(v), v) for v in values]
    return list(values) if all(text == v for text, v in pairs) else pairs


def run_showing_errors(action: Callable[[], object], shown_in, render: Callable[[str], str] = error_text) -> None:
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
