"""Build notebooks from percent-format sources, adding the Colab badge and setup cell from one template.

Sources live in `notebooks/src/NN_name.py` (`# %%` code cells, `# %% [markdown]` text cells,
`# %% tags=["parameters"]` for tagged cells). `python -m lessons_lib.scaffold build` writes
`notebooks/NN_name.ipynb` with outputs stripped; `check` fails when a notebook is out of sync.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .paths import REPO_DIR

GITHUB_REPO = "lora-adapter-lab/lora-adapter-lab"
BRANCH = "main"
NOTEBOOKS_DIR = REPO_DIR / "notebooks"
SOURCES_DIR = NOTEBOOKS_DIR / "src"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
SCAFFOLD_TAG = "scaffold"
CELL_MARK = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")

SETUP_TEMPLATE = '''# Setup (generated from lessons_lib/scaffold.py: edit the template, not this cell).
# On Colab: clone the course and install only what Colab lacks (never torch or numpy).
# Locally: run from the repository (`make course`) or after `pip install -e .`.
import os, subprocess, sys
IN_COLAB = "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ
if IN_COLAB:
    REPO = "/content/lora-adapter-lab"
    if not os.path.isdir(REPO):
        subprocess.run(["git", "clone", "--depth", "1", "https://github.com/{repo}", REPO], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", f"{{REPO}}/requirements-colab.txt",
                    "-e", REPO], check=True)
    sys.path.insert(0, REPO)
elif os.path.basename(os.getcwd()) == "notebooks":
    sys.path.insert(0, os.path.dirname(os.getcwd()))
import lessons_lib
print("lessons_lib", lessons_lib.__version__)'''


def badge_markdown(notebook_path: str) -> str:
    """The Open-in-Colab badge linking to this notebook's own path on GitHub."""
    url = f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{BRANCH}/{notebook_path}"
    return f"[![Open In Colab]({BADGE_IMAGE})]({url})"


def setup_source() -> str:
    """The install/setup cell every notebook starts with."""
    return SETUP_TEMPLATE.format(repo=GITHUB_REPO)


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


def notebook_for(source_path: Path) -> dict:
    """The full notebook for a source file: badge, setup cell, then the lesson's own cells."""
    rel = f"notebooks/{source_path.stem}.ipynb"
    cells = [_cell("markdown", badge_markdown(rel), [SCAFFOLD_TAG]),
             _cell("code", setup_source(), [SCAFFOLD_TAG])]
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


def sources() -> list[Path]:
    """Every notebook source, in lesson order."""
    return sorted(SOURCES_DIR.glob("[0-9][0-9]_*.py"))


def build(check: bool = False) -> list[str]:
    """Write (or, with check=True, compare) every notebook; returns the out-of-sync paths."""
    stale = []
    for src in sources():
        target = NOTEBOOKS_DIR / f"{src.stem}.ipynb"
        text = render(notebook_for(src))
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            stale.append(str(target.relative_to(REPO_DIR)))
            if not check:
                target.write_text(text, encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    """CLI: `build` writes notebooks from sources, `check` exits 1 if any is out of sync."""
    parser = argparse.ArgumentParser(prog="python -m lessons_lib.scaffold", description=__doc__)
    parser.add_argument("command", choices=["build", "check"])
    args = parser.parse_args(argv)
    stale = build(check=args.command == "check")
    verb = "out of sync (run `python -m lessons_lib.scaffold build`)" if args.command == "check" else "written"
    for path in stale:
        print(f"{path}: {verb}")
    return 1 if stale and args.command == "check" else 0


if __name__ == "__main__":
    sys.exit(main())
