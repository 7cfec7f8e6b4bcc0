"""Build notebooks from percent-format sources, adding the Colab badge and setup cell from one template.

Sources live in `notebooks/src/NN_name.py` (`# %%` code cells, `# %% [markdown]` text cells,
`# %% tags=["parameters"]` for tagged cells). `python -m lessons_lib.scaffold build` writes
`notebooks/NN_name.ipynb` with outputs stripped and points the README's Colab badges at the same
repository; `check` fails when a notebook or the README is out of sync.

Russian edition: every English markdown cell is followed immediately by its Russian counterpart, marked
`# %% [markdown] lang="ru"` (with the English cell's tags, if any: `# %% [markdown] tags=[...] lang="ru"`).
Code cells are written once. `build` also writes `notebooks/ru/NN_name.ipynb`: the Russian cells in place of
the English ones, a Russian badge pointing at its own path and the same setup cell plus one language line
(`os.environ["LESSONS_LANG"] = "ru"`) and the path logic for `notebooks/ru/`. An English markdown cell without
a Russian counterpart keeps its English text in the Russian notebook, and `check` reports it.

The GitHub repository and branch live in one place, `[tool.lessons_lib]` in pyproject.toml. A fork runs
`python -m lessons_lib.scaffold build --repo owner/name --branch main` (`make notebooks REPO=owner/name`):
it records them there and regenerates every badge and the clone cell.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .cli import CourseArgumentParser
from .paths import REPO_DIR

CONFIG_TABLE = "tool.lessons_lib"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
SCAFFOLD_TAG = "scaffold"
CELL_MARK = re.compile(r'^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?(?: lang="(?P<lang>[a-z]+)")?\s*$')
LANGS = ("en", "ru")
TRANSLATED = "ru"  # the language whose cells follow the English ones in the sources
BADGE_ALT = {"en": "Open In Colab", "ru": "Открыть в Colab"}
REPO_NAME = re.compile(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$")
BRANCH_NAME = re.compile(r"^(?![-/])(?!.*(?:\.\.|//|@\{|\.lock$|/$|\.$))[A-Za-z0-9._/-]+$")
README_BADGE_URL = re.compile(r"https://colab\.research\.google\.com/github/[^/\s)]+/[^/\s)]+/blob/[^\s)]+?/notebooks/")

SETUP_TEMPLATE = """# Setup (generated from lessons_lib/scaffold.py: edit the template, not this cell).
# On Colab: clone the course and install only what Colab lacks (never torch or numpy).
# Locally: run from the repository (`make course`) or after `pip install -e .`.
import os, subprocess, sys
IN_COLAB = "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ
if IN_COLAB:
    REPO = "/content/lora-adapter-lab"
    if not os.path.isdir(REPO):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{branch}",
                        "{clone_url}", REPO], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", f"{{REPO}}/requirements-colab.txt",
                    "-e", REPO], check=True)
    sys.path.insert(0, REPO)
{local_path}
import lessons_lib
print("lessons_lib", lessons_lib.__version__)"""


@dataclass(frozen=True)
class Repository:
    """The GitHub repository (`owner/name`) and branch the badges and the clone cell point at."""

    name: str
    branch: str = "main"

    def __post_init__(self) -> None:
        if not REPO_NAME.match(self.name):
            raise ValueError(f"repository must look like owner/name, got {self.name!r}")
        if not BRANCH_NAME.match(self.branch):
            raise ValueError(f"not a usable branch name: {self.branch!r}")

    @property
    def clone_url(self) -> str:
        """The HTTPS URL `git clone` uses."""
        return f"https://github.com/{self.name}"

    def colab_url(self, notebook_path: str) -> str:
        """Colab's URL for a notebook of this repository and branch."""
        return f"https://colab.research.google.com/github/{self.name}/blob/{self.branch}/{notebook_path}"


def _config_table(text: str) -> re.Match:
    """The `[tool.lessons_lib]` table of a pyproject.toml text (header and body)."""
    match = re.search(rf"^\[{re.escape(CONFIG_TABLE)}\][^\n]*\n(?P<body>(?:(?!\[).*\n?)*)", text, re.M)
    if not match:
        raise ValueError(f"pyproject.toml has no [{CONFIG_TABLE}] table with github_repo and branch")
    return match


def _config_value(body: str, key: str) -> re.Match:
    """The `key = "value"` line of the config table."""
    match = re.search(rf'^{key}\s*=\s*"(?P<value>[^"]*)"', body, re.M)
    if not match:
        raise ValueError(f'[{CONFIG_TABLE}] in pyproject.toml lacks {key} = "..."')
    return match


def read_repository(pyproject: Path = REPO_DIR / "pyproject.toml") -> Repository:
    """The repository recorded in pyproject.toml's `[tool.lessons_lib]` table."""
    body = _config_table(pyproject.read_text(encoding="utf-8")).group("body")
    return Repository(_config_value(body, "github_repo").group("value"), _config_value(body, "branch").group("value"))


def write_repository(repo: Repository, pyproject: Path = REPO_DIR / "pyproject.toml") -> bool:
    """Record the repository in pyproject.toml (only the two values change); True if the file changed."""
    text = pyproject.read_text(encoding="utf-8")
    table = _config_table(text)
    body = table.group("body")
    for key, value in (("github_repo", repo.name), ("branch", repo.branch)):
        found = _config_value(body, key)
        body = body[: found.start("value")] + value + body[found.end("value") :]
    new_text = text[: table.start("body")] + body + text[table.end("body") :]
    if new_text != text:
        pyproject.write_text(new_text, encoding="utf-8")
    return new_text != text


DEFAULT_REPOSITORY = read_repository()
GITHUB_REPO, BRANCH = DEFAULT_REPOSITORY.name, DEFAULT_REPOSITORY.branch


# Where a local notebook finds the repository: notebooks/ is one level below it, notebooks/ru/ two.
LOCAL_PATH = {
    "en": ('elif os.path.basename(os.getcwd()) == "notebooks":\n    sys.path.insert(0, os.path.dirname(os.getcwd()))'),
    "ru": (
        'elif os.getcwd().endswith(os.path.join("notebooks", "ru")):\n'
        "    sys.path.insert(0, os.path.dirname(os.path.dirname(os.getcwd())))"
    ),
}
LANG_LINE = 'os.environ["LESSONS_LANG"] = "{lang}"  # the language of this edition: the quiz follows it'
CODE_LINE = "import os, subprocess, sys"


def notebook_path(stem: str, lang: str = "en") -> str:
    """A notebook's path in the repository: notebooks/NN_name.ipynb, or notebooks/ru/NN_name.ipynb."""
    return f"notebooks/{stem}.ipynb" if lang == "en" else f"notebooks/{lang}/{stem}.ipynb"


def badge_markdown(notebook_path: str, repo: Repository | None = None, lang: str = "en") -> str:
    """The Open-in-Colab badge linking to this notebook's own path on GitHub (alt text in `lang`)."""
    return f"[![{BADGE_ALT[lang]}]({BADGE_IMAGE})]({(repo or DEFAULT_REPOSITORY).colab_url(notebook_path)})"


def setup_source(repo: Repository | None = None, lang: str = "en") -> str:
    """The install/setup cell every notebook starts with; other editions add LESSONS_LANG and their path logic."""
    repo = repo or DEFAULT_REPOSITORY
    text = SETUP_TEMPLATE.format(clone_url=repo.clone_url, branch=repo.branch, local_path=LOCAL_PATH[lang])
    if lang != "en":
        text = text.replace(CODE_LINE, CODE_LINE + "\n" + LANG_LINE.format(lang=lang), 1)
    return text


def readme_with_badges(text: str, repo: Repository) -> str:
    """README text whose Colab badge links point at `repo` (nothing else changes)."""
    return README_BADGE_URL.sub(repo.colab_url("notebooks/"), text)


def readme_files(root: Path) -> list[Path]:
    """The READMEs whose Colab badges follow the repository (README.md, README.ru.md)."""
    return [p for p in (root / "README.md", root / "README.ru.md") if p.exists()]


def _cell(kind: str, source: str, tags: list[str] | None = None) -> dict:
    cell = {"cell_type": kind, "metadata": {"tags": tags} if tags else {}, "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


@dataclass
class SourceCell:
    """One cell of a source: kind, tags, text, first line number, and a markdown cell's Russian counterpart."""

    kind: str
    tags: list[str] | None
    text: str
    line: int
    translation: str | None = None
    translation_tags: list[str] | None = None


def source_cells(text: str) -> list[SourceCell]:
    """Split a percent-format script into cells, attaching each `lang="ru"` cell to the English one before it."""
    raw: list[tuple[str, list[str] | None, str | None, str, int]] = []
    kind, tags, lang, lines, start = None, None, None, [], 0

    def flush() -> None:
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(re.sub(r"^# ?", "", ln) for ln in body.splitlines())
        if body.strip():
            raw.append((kind, tags, lang, body, start))

    for number, line in enumerate(text.splitlines(), 1):
        match = CELL_MARK.match(line)
        if match:
            flush()
            kind = "markdown" if match.group("md") else "code"
            tags = json.loads(match.group("tags")) if match.group("tags") else None
            lang, lines, start = match.group("lang"), [], number
            if lang is not None and (kind != "markdown" or lang != TRANSLATED):
                raise ValueError(f'line {number}: only markdown cells take lang="{TRANSLATED}": {line!r}')
        else:
            lines.append(line)
    flush()
    cells: list[SourceCell] = []
    for kind, tags, lang, body, start in raw:
        if lang is None:
            cells.append(SourceCell(kind, tags, body, start))
            continue
        previous = cells[-1] if cells else None
        if previous is None or previous.kind != "markdown" or previous.translation is not None:
            raise ValueError(f'line {start}: a lang="{lang}" cell must directly follow its English markdown cell')
        previous.translation, previous.translation_tags = body, tags
    return cells


def parse_source(text: str, lang: str = "en") -> list[dict]:
    """Split a percent-format script into the notebook cells of one edition (untranslated cells stay English)."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; use one of {LANGS}")
    return [
        _cell(c.kind, c.translation if lang != "en" and c.translation is not None else c.text, c.tags)
        for c in source_cells(text)
    ]


def first_line(text: str) -> str:
    """A markdown cell's first heading line, else its first line: how reports name a cell."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return next((ln for ln in lines if ln.startswith("#")), lines[0] if lines else "")[:90]


def translation_problems(text: str) -> list[str]:
    """English markdown cells with no Russian counterpart (or one with other tags), by line and first heading."""
    problems = []
    for cell in source_cells(text):
        if cell.kind != "markdown":
            continue
        if cell.translation is None:
            problems.append(f'line {cell.line}: no lang="{TRANSLATED}" cell after {first_line(cell.text)!r}')
        elif cell.translation_tags != cell.tags:
            problems.append(
                f"line {cell.line}: the {TRANSLATED} cell's tags {cell.translation_tags} differ "
                f"from {cell.tags} ({first_line(cell.text)!r})"
            )
    return problems


def untranslated(root: Path = REPO_DIR) -> dict[str, list[str]]:
    """Every source with untranslated markdown cells: its path and the problems."""
    report = {}
    for src in sources(root):
        problems = translation_problems(src.read_text(encoding="utf-8"))
        if problems:
            report[str(src.relative_to(root))] = problems
    return report


def notebook_for(source_path: Path, repo: Repository | None = None, lang: str = "en") -> dict:
    """The full notebook for a source file in one language: badge, setup cell, then the lesson's own cells."""
    rel = notebook_path(source_path.stem, lang)
    cells = [
        _cell("markdown", badge_markdown(rel, repo, lang), [SCAFFOLD_TAG]),
        _cell("code", setup_source(repo, lang), [SCAFFOLD_TAG]),
    ]
    cells += parse_source(source_path.read_text(encoding="utf-8"), lang)
    for i, cell in enumerate(cells):
        cell["id"] = f"c{i:03d}"
    return {
        "cells": cells,
        "metadata": {
            "accelerator": "GPU",
            "colab": {"provenance": []},
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def render(nb: dict) -> str:
    """Serialise a notebook the same way every time."""
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def sources(root: Path = REPO_DIR) -> list[Path]:
    """Every notebook source, in lesson order."""
    return sorted((root / "notebooks" / "src").glob("[0-9][0-9]_*.py"))


def _sync(target: Path, text: str, root: Path, check: bool) -> list[str]:
    """Write `text` to `target` unless it is already there (or only compare, with check=True)."""
    if target.exists() and target.read_text(encoding="utf-8") == text:
        return []
    if not check:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return [str(target.relative_to(root))]


def build(check: bool = False, root: Path = REPO_DIR) -> list[str]:
    """Write (or, with check=True, compare) every notebook of both editions and the READMEs' badges.

    Returns the out-of-sync paths (untranslated cells are reported by `untranslated`, not here)."""
    repo = read_repository(root / "pyproject.toml")
    stale = []
    for src in sources(root):
        for lang in LANGS:
            stale += _sync(root / notebook_path(src.stem, lang), render(notebook_for(src, repo, lang)), root, check)
    for readme in readme_files(root):
        stale += _sync(readme, readme_with_badges(readme.read_text(encoding="utf-8"), repo), root, check)
    return stale


def main(argv: list[str] | None = None, root: Path = REPO_DIR) -> int:
    """CLI: `build` writes notebooks and README badges (`--repo/--branch` record a fork first); `check` compares."""
    parser = CourseArgumentParser(
        prog="python -m lessons_lib.scaffold", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["build", "check"])
    parser.add_argument("--repo", help="GitHub owner/name to point badges and the clone cell at (build only)")
    parser.add_argument("--branch", help="branch of that repository (build only; default: the recorded one)")
    args = parser.parse_args(argv)
    if args.command == "check" and (args.repo or args.branch):
        parser.error("--repo/--branch only apply to build")
    if args.repo or args.branch:
        current = read_repository(root / "pyproject.toml")
        try:
            fork = Repository(args.repo or current.name, args.branch or current.branch)
        except ValueError as err:
            parser.error(str(err))
        if write_repository(fork, root / "pyproject.toml"):
            print(f"pyproject.toml: [{CONFIG_TABLE}] now {fork.name} @ {fork.branch}")
    stale = build(check=args.command == "check", root=root)
    verb = "out of sync (run `python -m lessons_lib.scaffold build`)" if args.command == "check" else "written"
    for path in stale:
        print(f"{path}: {verb}")
    missing = untranslated(root) if args.command == "check" else {}
    for path, problems in missing.items():
        print(f"{path}: {len(problems)} markdown cell(s) without a Russian counterpart")
        for problem in problems:
            print(f"  {problem}")
    return 1 if (stale or missing) and args.command == "check" else 0


if __name__ == "__main__":
    sys.exit(main())
