"""Teacher kit: a printable quiz and a separate answer key per notebook (Markdown + HTML, EN/RU), and a
table of each notebook's measured run time on the tiny profile next to an estimated Colab T4 time."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

from ..i18n import tr
from .bank import Bank, available_notebooks, load_bank, pick
from .labels import LANG_ENV_VAR, ui
from .static import bank_html, bank_markdown

# --- T4 estimate. No T4 was available to measure, so the estimate is a workload model, stated in full.
# Workloads: 02 and 06 read from notebooks/src (their t4-profile branches); 01, 03, 04, 05 from issues #3, #5-#7.
# time = SETUP_S + train_steps * T4_TRAIN_STEP_S + cls_steps * T4_CLS_STEP_S + generations * T4_GEN_S + extra_s
SETUP_S = 90.0  # Colab: install trl + bitsandbytes (~40 s), download TinyLlama-1.1B (2.2 GB) and load it in 4-bit
T4_TRAIN_STEP_S = (
    2.5  # QLoRA SFT step of the t4 profile: 4 x 4 accumulation = 16 sequences <= 512 tokens, checkpointing
)
T4_CLS_STEP_S = 0.6  # sequence-classification step (short prompts, no generation)
T4_GEN_S = 0.5  # one generated answer (<= 160 new tokens) in batches of 8 on a 4-bit 1.1B model
WORKLOAD: dict[str, dict] = {
    "01": dict(
        train_steps=3 * 200,
        cls_steps=0,
        generations=3 * 40 * 2,
        extra_s=0,
        what="trains json, coding, support (200 steps each); base vs adapter on 40 held-out prompts per domain",
    ),
    "02": dict(
        train_steps=0,
        cls_steps=0,
        generations=4 * 20 + 50,
        extra_s=40,
        what="base + 3 adapters on 20 prompts each, mixed batches, switch-cost timings with one base reload",
    ),
    "03": dict(
        train_steps=0,
        cls_steps=0,
        generations=8 * 3 * 10 + 3 * 3 * 40,
        extra_s=60,
        what="fp16 reload + merge + save (~60 s), 8 combination types x 3 domains x 10 prompts, side by side",
    ),
    "04": dict(
        train_steps=0,
        cls_steps=200,
        generations=20,
        extra_s=10,
        what="LoRA SEQ_CLS router (200 steps), routing 60+ held-out prompts, a few generations",
    ),
    "05": dict(
        train_steps=200,
        cls_steps=0,
        generations=40 * 2 * 2,
        extra_s=0,
        what="tool-use adapter (200 steps); base vs adapter on 40 requests, up to 2 loop steps each",
    ),
    "06": dict(
        train_steps=0,
        cls_steps=0,
        generations=16 * 2 + 12,
        extra_s=60,
        what="server start with model load (~60 s), 16 sequential + 16 concurrent requests, a few calls",
    ),
}
ESTIMATE_BASIS = (
    f"T4 estimate = {SETUP_S:.0f} s Colab setup + SFT steps x {T4_TRAIN_STEP_S} s "
    f"+ classifier steps x {T4_CLS_STEP_S} s + generated answers x {T4_GEN_S} s + fixed extras, "
    "with the workload each notebook runs on the t4 profile "
    "(TinyLlama-1.1B in 4-bit, fp16 compute, 200 steps of 16 sequences, 40 evaluation prompts per domain). "
    "The per-step and per-answer rates are assumptions for a T4, not measurements (no T4 was available); "
    "the tiny-profile time is not used, because a 2M-parameter model on 2 CPUs says nothing about a 1.1B model "
    "on a GPU. Pass --t4-summary with a course_summary.json from a real T4 run to replace the estimates."
)

PAGE_CSS = """
body { font-family: system-ui, sans-serif; max-width: 50em; margin: 2em auto; line-height: 1.45; }
.quiz-question { margin-bottom: 1.2em; break-inside: avoid; page-break-inside: avoid; }
.quiz-question ul { margin: 0.3em 0; }
table { border-collapse: collapse; } td, th { border: 1px solid #999; padding: 0.3em 0.6em; }
@media print { body { margin: 0; max-width: none; } a { color: black; text-decoration: none; } }
"""


@dataclass(frozen=True)
class RunTime:
    """One notebook's row of the run-time table."""

    notebook: str
    title: str
    tiny: str
    t4: str
    t4_basis: str


def html_page(title: str, body: str, lang: str = "en") -> str:
    """A standalone printable HTML page."""
    return (
        f"<!DOCTYPE html>\n<html lang='{lang}'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{PAGE_CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


def estimate_t4_seconds(notebook: str) -> float | None:
    """The modelled T4 time for a notebook, or None when its workload is unknown."""
    w = WORKLOAD.get(notebook)
    if w is None:
        return None
    return (
        SETUP_S
        + w["train_steps"] * T4_TRAIN_STEP_S
        + w["cls_steps"] * T4_CLS_STEP_S
        + w["generations"] * T4_GEN_S
        + w["extra_s"]
    )


class SummaryError(ValueError):
    """A course_summary.json that exists but cannot be used (not JSON, or not the shape `course run` writes)."""


def summary_problem(data: object) -> str | None:
    """What is wrong with a parsed course_summary.json, or None when it is the shape `course run` writes."""
    rows = data.get("notebooks") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        return tr(en='the top level needs a "notebooks" list', ru='на верхнем уровне нужен список "notebooks"')
    for index, row in enumerate(rows, 1):
        seconds = row.get("seconds") if isinstance(row, dict) else None
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("notebook"), str)
            or not isinstance(seconds, int | float)
        ):
            return tr(
                en=f'row {index} of "notebooks" needs "notebook" (a file name) and "seconds" (a number)',
                ru=f'строке {index} списка "notebooks" нужны "notebook" (имя файла) и "seconds" (число)',
            )
    return None


def read_summary(path: Path | None) -> dict[str, dict]:
    """Rows of a course_summary.json keyed by notebook number; {} when no path is given or the file is absent.

    A file that exists but is not JSON, or not the shape `python -m lessons_lib.course run` writes, is a
    SummaryError naming the file (it used to read as "not found")."""
    if path is None or not Path(path).is_file():
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        problem = str(err)
    else:
        problem = summary_problem(data)
    if problem:
        raise SummaryError(
            tr(
                en=f"{path} is not a course summary ({problem}); give the course_summary.json that "
                "`python -m lessons_lib.course run` writes, or run that command again.",
                ru=f"{path} — не сводка курса ({problem}); укажите course_summary.json, который пишет "
                "`python -m lessons_lib.course run`, или выполните эту команду снова.",
            )
        )
    return {row["notebook"][:2]: row for row in data["notebooks"]}


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _measured(row: dict | None) -> str:
    if row is None:
        return "not measured"
    status = str(row.get("status", "ok"))
    text = _fmt_seconds(float(row["seconds"]))
    return text if status == "ok" else f"{text} (failed: {status.removeprefix('FAILED: ')[:60]})"


def run_times(banks: list[Bank], tiny_summary: Path | None, t4_summary: Path | None = None) -> list[RunTime]:
    """Measured tiny-profile times and measured-or-estimated T4 times, one row per notebook."""
    tiny, t4 = read_summary(tiny_summary), read_summary(t4_summary)
    rows = []
    for bank in banks:
        nb = bank.notebook
        if nb in t4:
            t4_text, basis = _measured(t4[nb]), "measured on a T4"
        else:
            est = estimate_t4_seconds(nb)
            t4_text = f"≈ {_fmt_seconds(est)}" if est is not None else "no estimate"
            basis = f"estimate: {WORKLOAD[nb]['what']}" if est is not None else "no workload model"
        rows.append(RunTime(nb, pick(bank.title, "en"), _measured(tiny.get(nb)), t4_text, basis))
    return rows


def run_time_markdown(rows: list[RunTime], tiny_summary: Path | None) -> str:
    """The run-time table as Markdown, with where the figures come from."""
    source = f"`{tiny_summary}`" if tiny_summary else "no summary file"
    lines = [
        "## Run times",
        "",
        f"Tiny profile (2 CPUs, no GPU): measured by `python -m lessons_lib.course run`, read from {source}.",
        "",
        "| notebook | title | tiny profile (measured) | Colab T4, t4 profile | basis |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r.notebook} | {r.title} | {r.tiny} | {r.t4} | {r.t4_basis} |" for r in rows]
    lines += ["", f"_{ESTIMATE_BASIS}_", ""]
    return "\n".join(lines)


def run_time_html(rows: list[RunTime], tiny_summary: Path | None) -> str:
    """The run-time table as an HTML fragment."""
    source = html.escape(str(tiny_summary)) if tiny_summary else "no summary file"
    head = "".join(
        f"<th>{h}</th>" for h in ("notebook", "title", "tiny profile (measured)", "Colab T4, t4 profile", "basis")
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(v)}</td>" for v in (r.notebook, r.title, r.tiny, r.t4, r.t4_basis))
        + "</tr>"
        for r in rows
    )
    return (
        "<h2>Run times</h2><p>Tiny profile (2 CPUs, no GPU): measured by "
        f"<code>python -m lessons_lib.course run</code>, read from <code>{source}</code>.</p>"
        f"<table><tr>{head}</tr>{body}</table><p><i>{html.escape(ESTIMATE_BASIS)}</i></p>"
    )


EDITION_NAMES = {"en": "English", "ru": "Русский"}


def notebook_links(notebook: str) -> dict[str, str]:
    """{lang: Colab URL} of notebook NN in every edition (notebooks/ and notebooks/ru/); empty if it has no source."""
    from ..scaffold import DEFAULT_REPOSITORY, LANGS, notebook_path, sources

    stems = [src.stem for src in sources() if src.stem[:2] == notebook]
    return {lang: DEFAULT_REPOSITORY.colab_url(notebook_path(stems[0], lang)) for lang in LANGS} if stems else {}


def write_teacher_kit(
    out_dir: Path,
    langs: tuple[str, ...] = ("en", "ru"),
    notebooks: list[str] | None = None,
    tiny_summary: Path | None = None,
    t4_summary: Path | None = None,
    quiz_dir: Path | None = None,
) -> list[Path]:
    """Write quiz-NN.LANG.{md,html}, answers-NN.LANG.{md,html}, run-times.{md,html} and index.{md,html}."""
    out_dir = Path(out_dir)
    banks = [load_bank(nb, quiz_dir) for nb in (notebooks or available_notebooks(quiz_dir))]  # a bad one: no folder
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(name: str, text: str) -> None:
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)

    index_md = [
        "# Teacher kit — LoRA Adapter Lab",
        "",
        "Printable quizzes (no answers) and separate answer keys, one pair per notebook and language, next to "
        "both editions of each notebook (English in notebooks/, Russian in notebooks/ru/).",
        "",
        "| notebook | editions | " + " | ".join(f"quiz ({lang})" + f" | answer key ({lang})" for lang in langs) + " |",
        "|---|---|" + "---|---|" * len(langs),
    ]
    for bank in banks:
        nb, cells = bank.notebook, []
        for lang in langs:
            quiz_title = f"{ui('quiz', lang)} {nb}: {pick(bank.title, lang)}"
            save(
                f"quiz-{nb}.{lang}.md",
                bank_markdown(bank, lang, answers="none", heading="#", boxes=True, name_line=True),
            )
            save(
                f"quiz-{nb}.{lang}.html",
                html_page(
                    quiz_title, bank_html(bank, lang, answers="none", heading="h1", boxes=True, name_line=True), lang
                ),
            )
            save(
                f"answers-{nb}.{lang}.md", bank_markdown(bank, lang, answers="key", heading="#", with_self_check=False)
            )
            save(
                f"answers-{nb}.{lang}.html",
                html_page(
                    f"{quiz_title} — {ui('answer_key', lang)}",
                    bank_html(bank, lang, answers="key", heading="h1", with_self_check=False),
                    lang,
                ),
            )
            cells += [
                f"[md](quiz-{nb}.{lang}.md) · [html](quiz-{nb}.{lang}.html)",
                f"[md](answers-{nb}.{lang}.md) · [html](answers-{nb}.{lang}.html)",
            ]
        editions = " · ".join(f"[{EDITION_NAMES[lang]}]({url})" for lang, url in notebook_links(nb).items()) or "-"
        index_md.append(
            f"| {nb} {pick(bank.title, 'en')} ({len(bank.questions)} questions) | {editions} | "
            + " | ".join(cells)
            + " |"
        )
    rows = run_times(banks, tiny_summary, t4_summary)
    save("run-times.md", run_time_markdown(rows, tiny_summary))
    save("run-times.html", html_page("Run times", run_time_html(rows, tiny_summary)))
    index_md += [
        "",
        f"Scoring: {ui('partial_rule', 'en')}",
        "",
        "The Russian notebooks set `LESSONS_LANG=ru` in their setup cell, so their quiz, widgets and "
        'printed tables are Russian; in any notebook, `show_quiz("NN", lang="ru")` or '
        f"`${LANG_ENV_VAR}=ru` chooses the quiz language.",
        "",
        run_time_markdown(rows, tiny_summary),
    ]
    save("index.md", "\n".join(index_md))
    links = "".join(
        f"<li>{html.escape(b.notebook + ' ' + pick(b.title, 'en'))}: "
        + "".join(
            f"<a href='{html.escape(url)}'>{EDITION_NAMES[lang]}</a> · "
            for lang, url in notebook_links(b.notebook).items()
        )
        + " · ".join(
            f"<a href='quiz-{b.notebook}.{lang}.html'>quiz {lang}</a> · "
            f"<a href='answers-{b.notebook}.{lang}.html'>answer key {lang}</a>"
            for lang in langs
        )
        + "</li>"
        for b in banks
    )
    save(
        "index.html",
        html_page(
            "Teacher kit",
            f"<h1>Teacher kit — LoRA Adapter Lab</h1><ul>{links}</ul>"
            f"<p>{html.escape(ui('partial_rule', 'en'))}</p>{run_time_html(rows, tiny_summary)}",
        ),
    )
    return written
