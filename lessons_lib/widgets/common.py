"""Pieces the course widgets share (core ipywidgets only: 7.7 on Colab and 8.x)."""
from __future__ import annotations

import ipywidgets as widgets


def prompt_box(prompt: str = "") -> widgets.Textarea:
    """The prompt text area every playground widget starts with."""
    return widgets.Textarea(value=prompt, description="Prompt", placeholder="Ask something…",
                            layout=widgets.Layout(width="95%", height="80px"))
