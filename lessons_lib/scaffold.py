"""Build notebooks from percent-format sources, adding the Colab badge and setup cell from one template.

Sources live in `notebooks/src/NN_name.py` (`# %%` code cells, `# %% [markdown]` text cells,
`# %% tags=["parameters"]` for tagged cells). `python -m lessons_lib.scaffold build` writes
`notebooks/NN_name.ipynb` with outputs stripped and points the README's Colab badges at the same
repository; `check` fails when a notebook or the README is out of sync.

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

from .paths import REPO_DIR

CONFIG_TABLE = "tool.lessons_lib"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
SCAFFOLD_TAG = "scaffold"
CELL_MARK = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")
REPO_NAME = re.compile(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$")
BRANCH_NAME = re.compile(r"^(?![-/])(?!.*(?:\.\.|//|@\{|\.lock$|/$|\.$))[A-Za-z0-9._/-]+$")
README_BADGE_URL = re.compile(r"https://colab\.research\.google\.com/github/[^/\s)]+/[^/\s)]+/blob/[^\s)]+?/notebooks/")

SETUP_TEMPLATE = '''# Setup (generated from lessons_lib/scaffold.py: edit the template, not this cell).
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
elif os.path.basename(os.getcwd()) == "notebooks":
    sys.path.insert(0, os.path.dirname(os.getcwd()))
import lessons_lib
print("lessons_lib", lessons_lib.__version__)'''


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
        raise ValueError(f"[{CONFIG_TABLE}] in pyproject.toml lacks {key} = \"...\"")
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
        body = body[:found.start("value")] + value + body[found.end("value"):]
    new_text = text[:table.start("body")] + body + text[table.end("body"):]
    if new_text != text:
        pyproject.write_text(new_text, encoding="utf-8")
    return new_text != text


DEFAULT_REPOSITORY = read_repository()
GITHUB_REPO, BRANCH = DEFAULT_REPOSITORY.name, DEFAULT_REPOSITORY.branch


def badge_markdown(notebook_path: str, repo: Repository | None = None) -> str:
    """The Open-in-Colab badge linking to this notebook's own path on GitHub."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({(repo or DEFAULT_REPOSITORY).colab_url(notebook_path)})"


def setup_source(repo: Repository | None = None) -> str:
    """The install/setup cell every notebook starts with."""
    repo = repo or DEFAULT_REPOSITORY
    return SETUP_TEMPLATE.format(clone_url=repo.clone_url, branch=repo.branch)


def readme_with_badges(text: str, repo: Repository) -> str:
    """README text whose Colab badge links point at `repo` (nothing else changes)."""
    return README_BADGE_URL.sub(repo.colab_url("notebooks/"), text)


def _cell(kind: str, source: str, tags: list[str] | None = None) -> dict:
    cell = {"cell_type": kind, "metadata": {"tags": tags} if tags else {}, "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def parse_source(text: str) -> list[dict]:
    """Split a percent-format script into notebook cells."""
    cells: list[dict] = []
    kind, tags, lines = None, None, []

    def flush() -> None:
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(re.sub(r"^# ?", "", ln) for ln in body.splitlines())
        if body.strip():
            cells.append(_cell(kind, body, tags))

    for line in text.splitlines():
        match = CELL_MARK.match(line)
        if match:
            flush()
            kind = "markdown" if match.group("md") else "code"
            tags = json.loads(match.group("tags")) if match.group("tags") else None
            lines = []
        else:
            lines.append(line)
    flush()
    return cells


def notebook_for(source_path: Path, repo: Repository | None = None) -> dict:
    """The full notebook for a source file: badge, setup cell, then the lesson's own cells."""
    rel = f"notebooks/{source_path.stem}.ipynb"
    cells = [_cell("markdown", badge_markdown(rel, repo), [SCAFFOLD_TAG]),
             _cell("code", setup_source(repo), [SCAFFOLD_TAG])]
    cells += parse_source(source_path.read_text(encoding="utf-8"))
    for i, cell in enumerate(cells):
        cell["id"] = f"c{i:03d}"
    return {"cells": cells, "metadata": {
        "accelerator": "GPU", "colab": {"provenance": []},
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}


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
        target.write_text(text, encoding="utf-8")
    return [str(target.relative_to(root))]


def build(check: bool = False, root: Path = REPO_DIR) -> list[str]:
    """Write (or, with check=True, compare) every notebook and the README's badges; returns the out-of-sync paths."""
    repo = read_repository(root / "pyproject.toml")
    stale = []
    for src in sources(root):
        stale += _sync(root / "notebooks" / f"{src.stem}.ipynb", render(notebook_for(src, repo)), root, check)
    readme = root / "README.md"
    if readme.exists():
        stale += _sync(readme, readme_with_badges(readme.read_text(encoding="utf-8"), repo), root, check)
    return stale


def main(argv: list[str] | None = None, root: Path = REPO_DIR) -> int:
    """CLI: `build` writes notebooks and README badges (`--repo/--branch` record a fork first); `check` compares."""
    parser = argparse.ArgumentParser(prog="python -m lessons_lib.scaffold", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    return 1 if stale and args.command == "check" else 0


if __name__ == "__main__":
    sys.exit(main())
