"""Self-check quizzes: banks in assets/quizzes/NN.json, an ipywidgets quiz, and a static Markdown fallback.

`show_quiz("01")` at the end of every notebook:
- in a Jupyter kernel it displays ONE output whose MIME bundle holds the widget view *and* an HTML /
  Markdown rendering with collapsible answers. A frontend with a widget manager (JupyterLab, Notebook,
  VS Code) renders the widget; anything without one (nbclient/nbval runs, nbconvert HTML, GitHub,
  nbviewer) shows the static quiz. A kernel cannot ask whether a frontend is attached, so the choice
  is left to whoever renders the output — which always knows.
- on Colab (core widgets work there on ipywidgets 7.7.1) it displays the widget alone;
- in plain Python or terminal IPython (no kernel) it prints the Markdown quiz.
Force a rendering with `mode="widget" | "static" | "auto"` or `$LESSONS_QUIZ_MODE`.
"""

from __future__ import annotations

import os
import sys

from ..i18n import tr
from .bank import Bank, BankError, Choice, Question, available_notebooks, load_bank, load_bank_file
from .grading import Grade, ScoreBoard, grade
from .labels import resolve_lang
from .static import bank_html, bank_markdown

__all__ = [
    "show_quiz",
    "build_quiz",
    "quiz_mimebundle",
    "QuizDisplay",
    "load_bank",
    "load_bank_file",
    "available_notebooks",
    "grade",
    "Grade",
    "ScoreBoard",
    "Bank",
    "Question",
    "Choice",
    "BankError",
    "bank_markdown",
    "bank_html",
]

MODE_ENV_VAR = "LESSONS_QUIZ_MODE"
MODES = ("auto", "widget", "static")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _kernel_shell():
    """The IPython shell if we run inside a Jupyter kernel, else None (plain Python, terminal IPython)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    shell = ipython.get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


def _on_colab() -> bool:
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def resolve_mode(mode: str | None = None) -> str:
    """The rendering mode: the argument, else $LESSONS_QUIZ_MODE, else auto."""
    value = (mode or os.environ.get(MODE_ENV_VAR) or "auto").strip().lower()
    if value not in MODES:
        raise ValueError(
            tr(
                en=f"Unknown quiz mode {value!r}; use one of {MODES} (argument mode=... or ${MODE_ENV_VAR}).",
                ru=f"Неизвестный режим теста {value!r}; используйте один из {MODES} (аргумент mode=... или "
                f"${MODE_ENV_VAR}).",
            )
        )
    return value


def build_quiz(notebook: str | int, lang: str | None = None):
    """The QuizWidget for notebook NN (imports ipywidgets)."""
    from .widget import QuizWidget

    return QuizWidget(load_bank(notebook), resolve_lang(lang))


def quiz_mimebundle(bank: Bank, lang: str, widget=None) -> dict:
    """One display bundle: the widget view (if any) plus HTML, Markdown and plain-text renderings."""
    markdown = bank_markdown(bank, lang, answers="collapsible")
    data = {
        "text/plain": markdown,
        "text/markdown": markdown,
        "text/html": bank_html(bank, lang, answers="collapsible"),
    }
    if widget is not None:
        data[WIDGET_MIME] = {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}
    return data


class QuizDisplay:
    """What show_quiz returns: the bank, the widget (if one was built) and how it was shown."""

    def __init__(self, bank: Bank, lang: str, shown_as: str, widget=None, widget_error: str | None = None):
        self.bank, self.lang, self.shown_as, self.widget = bank, lang, shown_as, widget
        self.widget_error = widget_error  # why no widget could be built, when that happened

    def __repr__(self) -> str:
        return (
            f"<quiz {self.bank.notebook}: {len(self.bank.questions)} questions, {self.lang}, shown as {self.shown_as}>"
        )

    def _ipython_display_(self) -> None:
        """Already displayed by show_quiz; showing it again as the cell's value would duplicate the quiz."""


def show_quiz(notebook: str | int, lang: str | None = None, mode: str | None = None) -> QuizDisplay:
    """Display notebook NN's quiz; lang: argument, $LESSONS_LANG or "en"; mode: argument, $LESSONS_QUIZ_MODE or auto."""
    bank = load_bank(notebook)
    lang, mode = resolve_lang(lang), resolve_mode(mode)
    shell = _kernel_shell()
    if shell is None:
        print(bank_markdown(bank, lang, answers="collapsible"))
        return QuizDisplay(bank, lang, "printed Markdown")
    from IPython.display import display

    widget, error = None, None
    if mode != "static":
        try:
            from .widget import QuizWidget

            widget = QuizWidget(bank, lang)
        except Exception as err:  # noqa: BLE001 - no ipywidgets or no comm: the static quiz still works, the cell must not fail
            error = f"{type(err).__name__}: {err}"
    if widget is not None and (mode == "widget" or _on_colab()):
        display(widget)
        return QuizDisplay(bank, lang, "widget", widget)
    display(quiz_mimebundle(bank, lang, widget), raw=True)
    shown = "widget with static fallback" if widget is not None else "static Markdown/HTML"
    return QuizDisplay(bank, lang, shown, widget, error)
