"""`python -m lessons_lib.quiz teacher-kit --out build/teacher-kit [--lang en|ru] [--only 01 03]`
and `python -m lessons_lib.quiz show NN [--lang ru]` (prints the quiz as Markdown)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lessons_lib.i18n import plural_ru, tr
from lessons_lib.paths import BUILD_DIR

from .bank import BankError, available_notebooks, load_bank
from .labels import resolve_lang
from .static import bank_markdown
from .teacher_kit import read_summary, write_teacher_kit


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m lessons_lib.quiz")
    sub = parser.add_subparsers(dest="command", required=True)
    kit = sub.add_parser("teacher-kit", help="write printable quizzes, answer keys and a run-time table")
    kit.add_argument("--out", type=Path, default=BUILD_DIR / "teacher-kit")
    kit.add_argument("--lang", choices=["en", "ru"], action="append", help="repeatable; default: both")
    kit.add_argument("--only", nargs="*", help="notebook numbers, e.g. 01 03")
    kit.add_argument(
        "--summary",
        type=Path,
        default=BUILD_DIR / "course_summary.json",
        help="tiny-profile timings written by `python -m lessons_lib.course run`",
    )
    kit.add_argument("--t4-summary", type=Path, default=None, help="a course_summary.json from a real T4 run")
    show = sub.add_parser("show", help="print one notebook's quiz as Markdown")
    show.add_argument("notebook")
    show.add_argument("--lang", default=None)
    show.add_argument("--answers", choices=["collapsible", "none", "key"], default="collapsible")
    args = parser.parse_args(argv)
    try:
        if args.command == "show":
            print(bank_markdown(load_bank(args.notebook), resolve_lang(args.lang), answers=args.answers))
            return 0
        langs = tuple(dict.fromkeys(args.lang or ["en", "ru"]))
        notebooks = args.only or available_notebooks()
        written = write_teacher_kit(args.out, langs, notebooks, args.summary, args.t4_summary)
    except (BankError, ValueError) as err:  # a bad bank, notebook number or --lang
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. --out in a read-only folder
        where = err.filename or args.__dict__.get("out")
        print(
            tr(
                en=f"error: cannot write {where} ({err.strerror or err}); pick a writable folder with --out.",
                ru=f"error: не удаётся записать {where} ({err.strerror or err}); укажите в --out папку, "
                "доступную для записи.",
            ),
            file=sys.stderr,
        )
        return 2
    print(kit_summary(len(written), args.out, notebooks, langs, len(read_summary(args.summary)), args.summary))
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
    sys.exit(main())
