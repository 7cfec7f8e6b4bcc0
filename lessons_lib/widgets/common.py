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


def default_prompt_limit() -> int:
    """The active profile's `max_length`: the prompt limit in tokens the course server also enforces."""
    from ..profiles import choose_profile

    return choose_profile(None)[0].max_length


def prompt_length(tokenizer, text: str) -> int:
    """How many tokens the chat-templated prompt is, counted as the course server counts it."""
    from ..models import chat_text

    return len(tokenizer(chat_text(tokenizer, text), add_special_tokens=False)["input_ids"])


def too_long_text(tokenizer, text: str, limit: int) -> str | None:
    """The message for a prompt over `limit` tokens (the model would answer with garbage), or None when it fits."""
    n_tokens = prompt_length(tokenizer, text)
    if n_tokens <= limit:
        return None
    return tr(
        en=f"The prompt is {n_tokens} tokens, over this profile's limit of {limit} (max_length); shorten it, "
        "then press Generate.",
        ru=f"Промпт занимает {n_tokens} токенов, больше предела профиля {limit} (max_length); сократите его, "
        "затем нажмите «Сгенерировать».",
    )


def empty_prompt_text() -> str:
    """The message for a Generate with no prompt."""
    return tr(
        en="Type a prompt first, then press Generate.",
        ru="Сначала введите промпт, затем нажмите «Сгенерировать».",
    )
