"""Static rendering of a bank: Markdown and HTML, with collapsible answers, no answers, or an answer key."""

from __future__ import annotations

import html

from ..i18n import tr
from .bank import Bank, Question, pick
from .inline import md, to_html
from .labels import ui

ANSWERS_MODES = ("collapsible", "none", "key")


def letter(index: int) -> str:
    """A, B, C, … for choice indices."""
    return chr(65 + index)


def _correct_letters(q: Question) -> str:
    return ", ".join(letter(i) for i in sorted(q.correct_indices))


def _check_mode(answers: str) -> None:
    if answers not in ANSWERS_MODES:
        raise ValueError(
            tr(
                en=f"answers must be one of {ANSWERS_MODES}, got {answers!r}.",
                ru=f"answers должен быть одним из {ANSWERS_MODES}, а получено {answers!r}.",
            )
        )


def _md_explanations(q: Question, lang: str) -> list[str]:
    lines = []
    for i, c in enumerate(q.choices):
        mark = "✔" if c.correct else "✘"
        lines.append(f"- {mark} **{letter(i)}.** {md(pick(c.explain, lang))}")
    return lines


def question_markdown(q: Question, number: int, lang: str, answers: str = "collapsible", boxes: bool = False) -> str:
    """One question as Markdown."""
    _check_mode(answers)
    box = "☐ " if boxes else ""
    lines = [f"**{number}. {md(pick(q.prompt, lang))}** _({ui(q.kind, lang)})_", ""]
    lines += [f"- {box}{letter(i)}. {md(pick(c.text, lang))}" for i, c in enumerate(q.choices)]
    lines.append("")
    if answers == "collapsible":
        lines += [
            f"<details><summary>{ui('show_answer', lang)}</summary>",
            "",
            f"**{ui('answer', lang)}: {_correct_letters(q)}**",
            "",
            *_md_explanations(q, lang),
            "",
            "</details>",
            "",
        ]
    elif answers == "key":
        lines += [f"**{ui('answer', lang)}: {_correct_letters(q)}**", "", *_md_explanations(q, lang), ""]
    return "\n".join(lines)


def self_check_markdown(bank: Bank, lang: str, boxes: bool = True) -> str:
    """The "I can explain…" list as Markdown."""
    box = "☐ " if boxes else ""
    return "\n".join(
        [f"**{ui('self_check', lang)}**", "", *[f"- {box}{md(pick(item, lang))}" for item in bank.self_check], ""]
    )


def bank_markdown(
    bank: Bank,
    lang: str,
    answers: str = "collapsible",
    heading: str = "##",
    boxes: bool = False,
    name_line: bool = False,
    with_self_check: bool = True,
) -> str:
    """A whole bank as Markdown (the notebook fallback, a printable quiz, or an answer key)."""
    _check_mode(answers)
    suffix = f" — {ui('answer_key', lang)}" if answers == "key" else ""
    parts = [f"{heading} {ui('quiz', lang)} {bank.notebook}: {md(pick(bank.title, lang))}{suffix}", ""]
    if name_line:
        parts += [ui("name_line", lang), ""]
    if answers == "key":
        parts += [f"_{ui('partial_rule', lang)}_", ""]
    parts += [question_markdown(q, n, lang, answers, boxes) for n, q in enumerate(bank.questions, 1)]
    if with_self_check:
        parts.append(self_check_markdown(bank, lang))
    return "\n".join(parts)


def question_html(q: Question, number: int, lang: str, answers: str = "collapsible", boxes: bool = False) -> str:
    """One question as an HTML fragment."""
    _check_mode(answers)
    box = "☐ " if boxes else ""
    items = "".join(f"<li>{box}<b>{letter(i)}.</b> {to_html(pick(c.text, lang))}</li>" for i, c in enumerate(q.choices))
    out = [
        f"<div class='quiz-question'><p><b>{number}. {to_html(pick(q.prompt, lang))}</b> "
        f"<i>({ui(q.kind, lang)})</i></p>",
        f"<ul style='list-style: none'>{items}</ul>",
    ]
    if answers != "none":
        expl = "".join(
            f"<li>{'✔' if c.correct else '✘'} <b>{letter(i)}.</b> {to_html(pick(c.explain, lang))}</li>"
            for i, c in enumerate(q.choices)
        )
        body = f"<p><b>{ui('answer', lang)}: {_correct_letters(q)}</b></p><ul style='list-style: none'>{expl}</ul>"
        if answers == "collapsible":
            body = f"<details><summary>{ui('show_answer', lang)}</summary>{body}</details>"
        out.append(body)
    out.append("</div>")
    return "".join(out)


def self_check_html(bank: Bank, lang: str, boxes: bool = True) -> str:
    """The self-check list as an HTML fragment."""
    box = "☐ " if boxes else ""
    items = "".join(f"<li>{box}{to_html(pick(item, lang))}</li>" for item in bank.self_check)
    return (
        f"<div class='quiz-self-check'><p><b>{ui('self_check', lang)}</b></p>"
        f"<ul style='list-style: none'>{items}</ul></div>"
    )


def bank_html(
    bank: Bank,
    lang: str,
    answers: str = "collapsible",
    heading: str = "h2",
    boxes: bool = False,
    name_line: bool = False,
    with_self_check: bool = True,
) -> str:
    """A whole bank as an HTML fragment."""
    _check_mode(answers)
    suffix = f" — {ui('answer_key', lang)}" if answers == "key" else ""
    parts = [f"<{heading}>{ui('quiz', lang)} {bank.notebook}: {to_html(pick(bank.title, lang))}{suffix}</{heading}>"]
    if name_line:
        parts.append(f"<p>{html.escape(ui('name_line', lang))}</p>")
    if answers == "key":
        parts.append(f"<p><i>{html.escape(ui('partial_rule', lang))}</i></p>")
    parts += [question_html(q, n, lang, answers, boxes) for n, q in enumerate(bank.questions, 1)]
    if with_self_check:
        parts.append(self_check_html(bank, lang))
    return f"<div class='lessons-quiz' lang='{lang}'>{''.join(parts)}</div>"
