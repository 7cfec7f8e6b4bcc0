"""The Russian edition (issue 20): every lesson in both languages, kept in sync by construction.

Sources hold each English markdown cell followed by its `lang="ru"` counterpart; code is written once. These tests
prove that every markdown cell is translated, that the two editions differ only in text and the setup cell's
language line, that each Russian badge points at its own path, and that a Russian notebook executes.
"""
import json
import os
import re
from pathlib import Path

import pytest

from lessons_lib import scaffold
from lessons_lib.paths import REPO_DIR
from notebook_shape import assert_lesson_sections
from notebook_shape import load as _load
from notebook_shape import text as _text

SOURCES = scaffold.sources()
RU_DIR = REPO_DIR / "notebooks" / "ru"
SECTIONS_RU = ["## Цели урока", "## Итоги", "## Упражнения", "## Тест"]
EXECUTED = "02"  # the Russian notebook executed end to end (tiny profile)




def _fences(text: str) -> int:
    return len(re.findall(r"^\s*```", text, re.M))


def _spans(text: str) -> list[str]:
    """Inline code spans (identifiers, code, file names), outside code blocks, with line breaks as spaces."""
    text = re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.M | re.S)
    return re.findall(r"`[^`]+`", re.sub(r"\s*\n\s*", " ", text))


def _pair(src: Path) -> tuple[dict, dict]:
    return _load(REPO_DIR / scaffold.notebook_path(src.stem)), _load(REPO_DIR / scaffold.notebook_path(src.stem, "ru"))


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_every_markdown_cell_has_a_russian_counterpart(src):
    problems = scaffold.translation_problems(src.read_text(encoding="utf-8"))
    assert not problems, f"{src.relative_to(REPO_DIR)}: {len(problems)} cell(s) untranslated:\n" + "\n".join(problems)


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_russian_cells_are_russian_and_keep_the_markdown_shape(src):
    for cell in scaffold.source_cells(src.read_text(encoding="utf-8")):
        if cell.kind != "markdown" or cell.translation is None:
            continue
        where = f"{src.name} line {cell.line} ({scaffold.first_line(cell.text)!r})"
        assert re.search("[А-Яа-яЁё]", cell.translation), f"{where}: the ru cell has no Cyrillic"
        headings = lambda text: [m.group(1) for m in re.finditer(r"^(#+) ", text, re.M)]  # noqa: E731
        assert headings(cell.translation) == headings(cell.text), f"{where}: heading levels differ"
        assert _fences(cell.translation) == _fences(cell.text), f"{where}: code blocks differ in number"
        missing = set(_spans(cell.text)) - set(_spans(cell.translation))
        assert not missing, f"{where}: code spans missing in the ru cell: {sorted(missing)}"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_both_editions_have_the_same_cells_and_code(src):
    en, ru = _pair(src)
    assert [c["cell_type"] for c in en["cells"]] == [c["cell_type"] for c in ru["cells"]]
    assert [c["metadata"] for c in en["cells"]] == [c["metadata"] for c in ru["cells"]]
    assert en["metadata"] == ru["metadata"]
    code_en = [_text(c) for c in en["cells"] if c["cell_type"] == "code"]
    code_ru = [_text(c) for c in ru["cells"] if c["cell_type"] == "code"]
    assert code_en[1:] == code_ru[1:], "code cells are written once and never translated"
    assert code_en[0] == scaffold.setup_source() and code_ru[0] == scaffold.setup_source(lang="ru")
    # The setup cells differ only in the language line and where the notebook sits (notebooks/ or notebooks/ru/).
    extra = [ln for ln in code_ru[0].splitlines() if ln not in code_en[0].splitlines()]
    assert extra[0] == 'os.environ["LESSONS_LANG"] = "ru"  # the language of this edition: the quiz follows it'
    assert all("getcwd()" in ln for ln in extra[1:]) and len(extra) == 3, extra


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_russian_badge_points_at_its_own_path(src):
    _, ru = _pair(src)
    badge = _text(ru["cells"][0])
    own = scaffold.DEFAULT_REPOSITORY.colab_url(f"notebooks/ru/{src.stem}.ipynb")
    assert badge == f"[![Открыть в Colab]({scaffold.BADGE_IMAGE})]({own})"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_russian_notebook_has_the_russian_sections_in_order(src):
    _, ru = _pair(src)
    markdown = [_text(c) for c in ru["cells"] if c["cell_type"] == "markdown"]
    assert_lesson_sections(markdown, src.stem[:2], SECTIONS_RU, heading_end=r"\s*$")


def test_parser_pairs_russian_cells_with_the_english_ones():
    text = ('# %% [markdown]\n# # Title\n\n# %% [markdown] lang="ru"\n# # Заголовок\n\n'
            '# %% tags=["parameters"]\nPROFILE = None\n\n'
            '# %% [markdown] tags=["x"]\n# text\n\n# %% [markdown] tags=["x"] lang="ru"\n# текст\n\n'
            '# %% [markdown]\n# ## Only English\n')
    en, ru = scaffold.parse_source(text), scaffold.parse_source(text, "ru")
    assert [c["source"] for c in en] == ["# Title", "PROFILE = None", "text", "## Only English"]
    assert [c["source"] for c in ru] == ["# Заголовок", "PROFILE = None", "текст", "## Only English"]
    assert [c["metadata"] for c in en] == [c["metadata"] for c in ru]
    assert scaffold.translation_problems(text) == ["line 16: no lang=\"ru\" cell after '## Only English'"]
    with pytest.raises(ValueError, match="must directly follow"):
        scaffold.parse_source('# %%\nx = 1\n\n# %% [markdown] lang="ru"\n# текст\n')


def test_check_reports_untranslated_cells(tmp_path, capsys):
    (tmp_path / "notebooks" / "src").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text((REPO_DIR / "pyproject.toml").read_text())
    (tmp_path / "notebooks" / "src" / "01_x.py").write_text("# %% [markdown]\n# # 01 — X\n\n# %%\nx = 1\n")
    assert scaffold.main(["build"], root=tmp_path) == 0
    ru = _load(tmp_path / "notebooks" / "ru" / "01_x.ipynb")
    assert _text(ru["cells"][2]) == "# 01 — X"  # the English text stands in until translated
    assert scaffold.main(["check"], root=tmp_path) == 1
    assert "notebooks/src/01_x.py: 1 markdown cell(s) without a Russian counterpart" in capsys.readouterr().out


def test_course_and_rehearsal_run_the_english_edition_only():
    from lessons_lib import course
    found = sorted(course.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert found and all(p.parent == REPO_DIR / "notebooks" for p in found)
    assert "/ru/" not in (REPO_DIR / "lessons_lib" / "rehearse.py").read_text()


def test_quiz_language_follows_lessons_lang(monkeypatch):
    from lessons_lib.quiz import resolve_lang
    monkeypatch.setenv("LESSONS_LANG", "ru")
    assert resolve_lang(None) == "ru" and resolve_lang("en") == "en"
    monkeypatch.delenv("LESSONS_LANG")
    assert resolve_lang(None) == "en"


@pytest.mark.slow
def test_a_russian_notebook_executes_on_the_tiny_profile(tmp_path, monkeypatch):
    """One Russian notebook end to end: the setup cell's path logic from notebooks/ru/, LESSONS_LANG, the quiz."""
    import nbformat
    from nbclient import NotebookClient

    from lessons_lib.quiz.labels import ui

    monkeypatch.setenv("LESSONS_PROFILE", "tiny")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LESSONS_LANG", raising=False)
    path = next(RU_DIR.glob(f"{EXECUTED}_*.ipynb"))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(RU_DIR)}}).execute()
    outputs = "".join(o.get("text", "") + json.dumps(o.get("data", {}), ensure_ascii=False)
                      for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "lessons_lib" in outputs
    assert not any(o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    quiz = "".join(o.get("text", "") + json.dumps(o.get("data", {}), ensure_ascii=False)
                   for o in [c for c in nb.cells if c.cell_type == "code"][-1].outputs)
    assert ui("quiz", "ru") in quiz and ui("quiz", "en") not in quiz, "the quiz speaks the notebook's language"
    assert os.environ.get("LESSONS_LANG") is None  # the kernel's setting stays in the kernel


def test_readme_ru_badges_point_at_the_russian_notebooks():
    text = (REPO_DIR / "README.ru.md").read_text(encoding="utf-8")
    for src in SOURCES:
        own = scaffold.DEFAULT_REPOSITORY.colab_url(f"notebooks/ru/{src.stem}.ipynb")
        assert f"[![Открыть в Colab]({scaffold.BADGE_IMAGE})]({own})" in text, src.stem
    assert "make course" in text and "make test" in text and "(README.md)" in text
    fork = scaffold.readme_with_badges(text, scaffold.Repository("someone/fork-lab", "dev"))
    assert fork.count("github/someone/fork-lab/blob/dev/notebooks/ru/") == len(SOURCES)
    assert scaffold.REPO_DIR / "README.ru.md" in scaffold.readme_files(REPO_DIR)  # `build` keeps them in sync
