"""`python -m lessons_lib.quiz teacher-kit --out build/teacher-kit [--lang en|ru] [--only 01 03]`
and `python -m lessons_lib.quiz show NN [--lang ru]` (prints the quiz as Markdown).

Bad input (an unknown notebook, a --t4-summary file that is missing or not a course summary, a --summary file that
is not one) ends with one `error:` line and exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path

from lessons_lib.cli import CourseArgumentParser, fail, until_interrupted
from lessons_lib.i18n import LANGS, plural_ru, tr
from lessons_lib.paths import BUILD_DIR

from .bank import NOTEBOOK_ID, BankError, available_notebooks, load_bank
from .labels import resolve_lang
from .static import bank_markdown
from .teacher_kit import SummaryError, read_summary, write_teacher_kit


def notebook_problem(notebook: str) -> str | None:
    """Why `show NOTEBOOK` names no notebook, in the CLI's words (None: it is a notebook number)."""
    if NOTEBOOK_ID.match(notebook.strip()):
        return None
    known = ", ".join(available_notebooks())
    return tr(
        en=f"{notebook!r} is not a notebook number; give one such as 01 (`python -m lessons_lib.quiz show 01`). "
        f"Notebooks with a quiz: {known}.",
        ru=f"{notebook!r} — не номер ноутбука; укажите номер, например 01 (`python -m lessons_lib.quiz show 01`). "
        f"Ноутбуки с тестом: {known}.",
    )


def lang_problem(lang: str | None) -> str | None:
    """Why `show --lang` names no language, in the CLI's words (None: en, ru, or not given)."""
    if lang is None or lang.strip().lower() in LANGS:
        return None
    return tr(
        en=f"Unknown language {lang!r} in --lang; use --lang en or --lang ru (or leave it out: $LESSONS_LANG, "
        "else English).",
        ru=f"Неизвестный язык {lang!r} в --lang; укажите --lang en или --lang ru (или уберите параметр: "
        "$LESSONS_LANG, иначе английский).",
    )


def t4_summary_problem(path: Path | None) -> str | None:
    """Why the --t4-summary file cannot replace the T4 estimates (None: not given, or it is a file)."""
    if path is None or path.is_file():
        return None
    return tr(
        en=f"--t4-summary {path}: no such file; give the course_summary.json of a real T4 run "
        "(`python -m lessons_lib.course run` on a T4 writes it), or leave the option out to use the estimates.",
        ru=f"--t4-summary {path}: файла нет; укажите course_summary.json настоящего прогона на T4 "
        "(его пишет `python -m lessons_lib.course run` на T4) или уберите параметр, чтобы взять оценки.",
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = CourseArgumentParser(prog="python -m lessons_lib.quiz")
    sub = parser.add_subparsers(dest="command", required=True)
    kit = sub.add_parser(
        "teacher-kit",
        help=tr(
            en="write printable quizzes, answer keys and a run-time table",
            ru="записать тесты для печати, ключи ответов и таблицу времени прогона",
        ),
    )
    kit.add_argument(
        "--out",
        type=Path,
        default=BUILD_DIR / "teacher-kit",
        help=tr(en="folder to write the kit into", ru="папка, куда записать набор"),
    )
    kit.add_argument(
        "--lang",
        choices=["en", "ru"],
        action="append",
        help=tr(en="repeatable; default: both", ru="можно повторять; по умолчанию: оба языка"),
    )
    kit.add_argument(
        "--only",
        nargs="+",
        help=tr(
            en="notebook numbers, e.g. 01 03 (default: every notebook with a quiz)",
            ru="номера ноутбуков, например 01 03 (по умолчанию: все ноутбуки с тестом)",
        ),
    )
    kit.add_argument(
        "--summary",
        type=Path,
        default=BUILD_DIR / "course_summary.json",
        help=tr(
            en="tiny-profile timings written by `python -m lessons_lib.course run` (a missing file: 'not measured')",
            ru="время прогона на профиле tiny, записанное `python -m lessons_lib.course run` (если файла нет, "
            "в таблице будет 'not measured')",
        ),
    )
    kit.add_argument(
        "--t4-summary",
        type=Path,
        default=None,
        help=tr(
            en="a course_summary.json from a real T4 run; replaces the T4 estimates (it must exist)",
            ru="course_summary.json настоящего прогона на T4; заменяет оценки для T4 (файл должен существовать)",
        ),
    )
    show = sub.add_parser(
        "show",
        help=tr(en="print one notebook's quiz as Markdown", ru="напечатать тест одного ноутбука в формате Markdown"),
    )
    show.add_argument("notebook", help=tr(en="notebook number, e.g. 01", ru="номер ноутбука, например 01"))
    show.add_argument(
        "--lang",
        default=None,
        help=tr(
            en="en | ru (default: $LESSONS_LANG, else English)",
            ru="en | ru (по умолчанию: $LESSONS_LANG, иначе английский)",
        ),
    )
    show.add_argument(
        "--answers",
        choices=["collapsible", "none", "key"],
        default="collapsible",
        help=tr(
            en="collapsible (default): answers folded under each question; none; key: answers shown",
            ru="collapsible (по умолчанию): ответы свёрнуты под каждым вопросом; none: без ответов; "
            "key: ответы показаны",
        ),
    )
    args = parser.parse_args(argv)
    if args.command == "show":
        problem = lang_problem(args.lang) or notebook_problem(args.notebook)
    else:
        problem = t4_summary_problem(args.t4_summary)
    if problem:
        return fail(problem)
    try:
        if args.command == "show":
            print(bank_markdown(load_bank(args.notebook), resolve_lang(args.lang), answers=args.answers))
            return 0
        langs = tuple(dict.fromkeys(args.lang or ["en", "ru"]))
        notebooks = args.only or available_notebooks()
        measured = len(read_summary(args.summary))  # a file that is not a course summary fails before writing
        read_summary(args.t4_summary)
        written = write_teacher_kit(args.out, langs, notebooks, args.summary, args.t4_summary)
    except (BankError, SummaryError, ValueError) as err:  # a bad bank, summary, notebook number or $LESSONS_LANG
        return fail(str(err))
    except OSError as err:  # e.g. --out in a read-only folder
        where = err.filename or args.__dict__.get("out")
        return fail(
            tr(
                en=f"cannot write {where} ({err.strerror or err}); pick a writable folder with --out.",
                ru=f"не удаётся записать {where} ({err.strerror or err}); укажите в --out папку, доступную для записи.",
            )
        )
    print(kit_summary(len(written), args.out, notebooks, langs, measured, args.summary))
    return 0


def kit_summary(files: int, out: Path, notebooks: list[str], langs: tuple[str, ...], measured: int, summary) -> str:
    """The three lines `teacher-kit` prints: what was written, how many run times were measured, what to open."""
    listed, in_langs, n = ", ".join(notebooks), ", ".join(langs), len(notebooks)
    missing = tr(
        en=f" ({summary} not found: run `python -m lessons_lib.course run` first)",
        ru=f" ({summary} не найден: сначала выполните `python -m lessons_lib.course run`)",
    )
    return tr(
        en=f"teacher kit: {files} files in {out} for notebooks {listed} ({in_langs})\n"
        f"tiny-profile run times: {measured} of {n} notebooks measured{'' if measured else missing}\n"
        f"open {out / 'index.html'}",
        ru=f"набор преподавателя: {files} {plural_ru(files, 'файл', 'файла', 'файлов')} в {out} для "
        f"{plural_ru(n, 'ноутбука', 'ноутбуков', 'ноутбуков')} {listed} ({in_langs})\n"
        f"время прогона на профиле tiny: измерено для {measured} из {n} "
        f"{plural_ru(n, 'ноутбука', 'ноутбуков', 'ноутбуков')}{'' if measured else missing}\n"
        f"откройте {out / 'index.html'}",
    )


if __name__ == "__main__":
    sys.exit(until_interrupted(main))
