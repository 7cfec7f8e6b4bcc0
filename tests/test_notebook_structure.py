"""Every notebook follows the course shape and its scaffolding stays in sync with the one template."""

import re

import pytest
from notebook_shape import assert_lesson_sections
from notebook_shape import load as _load
from notebook_shape import text as _text

from lessons_lib import scaffold
from lessons_lib.paths import REPO_DIR

LESSONS = ["01", "02", "03", "04", "05", "06"]
NOTEBOOKS = sorted((REPO_DIR / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SECTIONS = ["## Learning objectives", "## Recap", "## Exercises", "## Quiz"]


def test_all_six_lessons_exist_with_sources():
    assert [p.name[:2] for p in NOTEBOOKS] == LESSONS
    assert [p.stem for p in scaffold.sources()] == [p.stem for p in NOTEBOOKS]


def test_notebooks_are_in_sync_with_sources_and_template():
    assert scaffold.build(check=True) == [], "run `python -m lessons_lib.scaffold build`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_badge_points_at_its_own_path(path):
    first = _text(_load(path)["cells"][0])
    own = (
        f"https://colab.research.google.com/github/{scaffold.GITHUB_REPO}/blob/{scaffold.BRANCH}/notebooks/{path.name}"
    )
    assert scaffold.BADGE_IMAGE in first and f"({own})" in first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_is_the_template_and_outputs_are_stripped(path):
    cells = _load(path)["cells"]
    assert _text(cells[1]) == scaffold.setup_source()
    for cell in cells:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_shape(path):
    cells = _load(path)["cells"]
    markdown = [_text(c) for c in cells if c["cell_type"] == "markdown"]
    code = [_text(c) for c in cells if c["cell_type"] == "code"]
    assert_lesson_sections(markdown, path.name[:2], SECTIONS)
    params = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1 and _text(params[0]).startswith("PROFILE = None")
    assert any(f'setup_lesson("{path.name[:2]}", profile=PROFILE' in c for c in code)
    assert sum(len(re.findall(r"^\s*assert ", c, re.M)) for c in code) >= 3, "at least three self-check asserts"
    assert f'show_quiz("{path.name[:2]}")' in code[-1], "the last code cell is the lesson's quiz"


def test_colab_install_skips_what_colab_has():
    wanted = [
        line.split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for line in (REPO_DIR / "requirements-colab.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert wanted and not {"torch", "numpy", "ipywidgets"} & set(wanted)
    assert "requirements-colab.txt" in scaffold.setup_source()


def test_parser_reads_tags_and_markdown():
    cells = scaffold.parse_source('# %% [markdown]\n# # Title\n# text\n\n# %% tags=["parameters"]\nPROFILE = None\n')
    assert cells[0]["cell_type"] == "markdown" and cells[0]["source"] == "# Title\ntext"
    assert cells[1]["metadata"] == {"tags": ["parameters"]} and cells[1]["source"] == "PROFILE = None"
