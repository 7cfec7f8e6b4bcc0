"""The Russian edition (issue 20): every lesson in both languages, kept in sync by construction.

Sources hold each English markdown cell followed by its `lang="ru"` counterpart; code is written once. These tests
prove that every markdown cell is translated, that the two editions differ only in text and the setup cell's
language line and that each Russian badge points at its own path. The Russian notebooks execute end to end in the
GPU-path rehearsal (`make rehearse`, 7b-rehearsal; lessons_lib/rehearse.py).
"""

import re
from pathlib import Path

import pytest
from notebook_shape import assert_lesson_sections
from notebook_shape import load as _load
from notebook_shape import text as _text

from lessons_lib import scaffold
from lessons_lib.paths import REPO_DIR

SOURCES = scaffold.sources()
RU_DIR = REPO_DIR / "notebooks" / "ru"
SECTIONS_RU = ["## Цели урока", "## Итоги", "## Упражнения", "## Тест"]


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
    text = (
        '# %% [markdown]\n# # Title\n\n# %% [markdown] lang="ru"\n# # Заголовок\n\n'
        '# %% tags=["parameters"]\nPROFILE = None\n\n'
        '# %% [markdown] tags=["x"]\n# text\n\n# %% [markdown] tags=["x"] lang="ru"\n# текст\n\n'
        "# %% [markdown]\n# ## Only English\n"
    )
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


def test_the_course_runs_the_english_edition_and_the_7b_rehearsal_the_russian_one():
    from lessons_lib import course, rehearse

    found = sorted(course.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert found and all(p.parent == REPO_DIR / "notebooks" for p in found)
    assert [p.parent for p in rehearse.lessons("t4-rehearsal")] == [REPO_DIR / "notebooks"] * len(found)
    assert [p.name for p in rehearse.lessons("7b-rehearsal")] == [p.name for p in found]
    assert {p.parent for p in rehearse.lessons("7b-rehearsal")} == {RU_DIR}


def test_quiz_language_follows_lessons_lang(monkeypatch):
    from lessons_lib.quiz import resolve_lang

    monkeypatch.setenv("LESSONS_LANG", "ru")
    assert resolve_lang(None) == "ru" and resolve_lang("en") == "en"
    monkeypatch.delenv("LESSONS_LANG")
    assert resolve_lang(None) == "en"


CYRILLIC = re.compile("[А-Яа-яЁё]")


def _english_words(text: str, allowed: set[str] = frozenset()) -> list[str]:
    """Latin words of 3+ letters that are not identifiers (adapter names, API names, units) or in `allowed`;
    HTML tags are markup, not words."""
    text = re.sub(r"<[^>]+>", " ", text)
    words = re.findall(r"(?<![\w.'/$`-])[A-Za-z]{3,}(?![\w'(/`-])", text)
    known = {
        "json",
        "coding",
        "support",
        "general",
        "base",
        "LoRA",
        "GPU",
        "CPU",
        "CUDA",
        "Hub",
        "Hugging",
        "Face",
        "Google",
        "Colab",
        "generate",
        "cat",
        "linear",
        "svd",
        "ties",
        "tiny",
        "HUB",
        "NAMESPACE",
    }
    return [w for w in words if w not in known | set(allowed)]


def _russian(text: str, allowed: set[str] = frozenset()) -> None:
    assert CYRILLIC.search(text), f"no Cyrillic in {text!r}"
    assert not _english_words(text, allowed), f"English words {_english_words(text, allowed)} left in {text!r}"


def test_a_bad_lessons_lang_is_a_clear_error(monkeypatch):
    from lessons_lib import i18n
    from lessons_lib.quiz import show_quiz

    monkeypatch.setenv("LESSONS_LANG", "de")
    for call in (i18n.current, lambda: i18n.tr(en="a", ru="б"), lambda: show_quiz("02")):
        with pytest.raises(ValueError, match=r"Unknown language 'de' in \$LESSONS_LANG; use 'en' or 'ru'"):
            call()
    with pytest.raises(ValueError, match="Unknown language 'fr' in the argument lang=...; use 'en' or 'ru'"):
        i18n.resolve_lang("fr")
    monkeypatch.setenv("LESSONS_LANG", " RU ")
    assert i18n.current() == "ru"  # case and spaces are forgiven


def test_the_language_is_read_when_text_is_shown(monkeypatch):
    from lessons_lib.i18n import column, tr

    monkeypatch.delenv("LESSONS_LANG", raising=False)
    assert tr(en="Generate", ru="Сгенерировать") == "Generate" and column("valid") == "valid"
    monkeypatch.setenv("LESSONS_LANG", "ru")
    assert tr(en="Generate", ru="Сгенерировать") == "Сгенерировать" and column("valid") == "валидно"
    assert tr(en="Generate", ru="Сгенерировать", lang="en") == "Generate"
    assert column("json") == "json"  # a column without a translation is an identifier


def _widget_texts(widget) -> list[str]:
    """Every description, placeholder, button label and option label of a widget tree."""
    out, stack = [], [widget]
    while stack:
        w = stack.pop()
        stack += list(getattr(w, "children", ()))
        for attr in ("description", "placeholder"):
            if getattr(w, attr, ""):
                out.append(getattr(w, attr))
        out += [str(label) for label in getattr(w, "_options_labels", ())]
    return out


@pytest.mark.widgets
def test_the_widgets_speak_russian(monkeypatch, course_model, tokenizer):
    from lessons_lib.router import KeywordRouter
    from lessons_lib.tools.playground import DESIGNER, StyleToggle
    from lessons_lib.tools.prompts import system_prompt
    from lessons_lib.widgets.mixer import WeightMixer
    from lessons_lib.widgets.router_playground import RouterPlayground
    from lessons_lib.widgets.switcher import AdapterSwitcher

    monkeypatch.setenv("LESSONS_LANG", "ru")
    fake = lambda *args, **kwargs: "ответ"  # noqa: E731
    switcher = AdapterSwitcher(course_model, tokenizer, generate_fn=fake)
    labels = _widget_texts(switcher)
    assert {"Адаптер", "Промпт", "Сгенерировать", "base (базовая модель)"} <= set(labels), labels
    switcher.button.click()
    _russian(switcher.status.value)  # the empty prompt
    switcher.dropdown.value, switcher.prompt.value = "base", "Привет"
    switcher.button.click()
    assert (
        switcher.status.value.startswith("активен: base (адаптеры отключены) · ")
        and " мс · 5 символов" in switcher.status.value
    )

    mixer = WeightMixer(course_model, tokenizer, weights={"json": 1.0, "support": 0.5}, generate_fn=fake)
    assert {"Смешать", "Сгенерировать", "масштабирование на лету"} <= set(_widget_texts(mixer))
    assert mixer.status.value == (
        "следующая смесь: масштабирование на лету: json×1 + support×0.5 (нажмите «Сгенерировать»)"
    )
    mixer.combination.value = "cat"  # the values stay identifiers
    mixer.prompt.value = "Привет"
    mixer.button.click()
    assert mixer.status.value.startswith("активная смесь: cat: json×1 + support×0.5 · ")
    assert mixer.status.value.endswith(" мс")
    for name in mixer.sliders:
        mixer.sliders[name].value = 0.0
    mixer.button.click()
    assert "без адаптеров (base)" in mixer.status.value

    playground = RouterPlayground(
        KeywordRouter(), model=object(), tokenizer=object(), generate_fn=lambda *a, **k: ["ответ"]
    )
    assert playground.button.description == "Выбрать адаптер и ответить"
    playground.button.click()
    _russian(playground.choice.value)
    playground.prompt.value = "Please give me this as JSON"
    playground.button.click()
    assert re.fullmatch(r"→ json \(адаптер json, маршрутизация за [0-9.]+ мс\)", playground.choice.value)
    assert playground.reason.value.startswith("найдено 'json' для 'json'")
    playground.prompt.value = "Как приготовить борщ?"
    playground.button.click()
    _russian(playground.reason.value)

    toggle = StyleToggle(lambda question, system: system or "обычный ответ", question="Что такое LoRA?")
    assert {"Системный промпт", "Вопрос", "Спросить", "Рядом", "обычный", "когнитивный дизайнер"} <= set(
        _widget_texts(toggle)
    )
    toggle.style_choice.value = DESIGNER
    toggle.ask_button.click()
    assert toggle.last[DESIGNER] == system_prompt("ru") == system_prompt()  # the prompt follows the notebook too
    _russian(toggle.status.value)
    toggle.compare_button.click()
    _russian(toggle.status.value)


@pytest.mark.widgets
def test_the_quiz_widget_follows_the_notebook_language(monkeypatch):
    from lessons_lib.quiz import build_quiz

    monkeypatch.setenv("LESSONS_LANG", "ru")
    quiz = build_quiz("02")
    assert quiz.lang == "ru" and quiz.title.value.startswith("<h3>Тест 02")
    card = quiz.cards[0]
    assert card.button.description == "Проверить"
    card.check()
    _russian(card.feedback.value)
    _russian(quiz.score_label.value)


def test_the_quiz_prints_in_the_notebook_language_by_default(monkeypatch, capsys):
    from lessons_lib.quiz import show_quiz
    from lessons_lib.quiz.labels import ui

    monkeypatch.setenv("LESSONS_LANG", "ru")
    shown = show_quiz("02")  # no kernel here: it prints the Markdown quiz
    out = capsys.readouterr().out
    assert shown.lang == "ru" and ui("quiz", "ru") in out and ui("self_check", "ru") in out


def test_lesson_tables_and_messages_print_russian(monkeypatch, tmp_path):
    from lessons_lib.adapters import where_searched
    from lessons_lib.budget import memory_plan
    from lessons_lib.evaluate import format_table
    from lessons_lib.lesson import Lesson
    from lessons_lib.mixing import describe_mix
    from lessons_lib.profiles import PROFILES
    from lessons_lib.router import KeywordRouter
    from lessons_lib.router.metrics import evaluate_router, side_by_side

    rows = [{"model": "json", "domain": "json", "n": 3, "valid": 1.0, "correct": 0.667}]
    lesson = Lesson(
        "02",
        PROFILES["tiny"],
        "no CUDA GPU: the offline tiny model runs on CPU",
        "cpu",
        "float32",
        False,
        tmp_path,
        None,
        None,
    )
    report = evaluate_router(KeywordRouter(), [{"text": "Give me JSON", "label": "json"}], name="keywords")
    english = (
        lesson.summary(),
        memory_plan(PROFILES["t4"], "02"),
        format_table(rows),
        report.table(),
        side_by_side([report]),
        describe_mix({"json": 0}, "runtime scaling"),
    )
    assert english[0].splitlines()[1] == "profile      tiny (no CUDA GPU: the offline tiny model runs on CPU)"
    assert english[1].splitlines()[-1] == "peak                                       1.5 GB -> fits a T4 (15 GB)"
    assert english[2].splitlines()[0].split() == ["model", "domain", "n", "valid", "correct"]
    assert english[5] == "runtime scaling: no adapter (base)"

    monkeypatch.setenv("LESSONS_LANG", "ru")
    summary = lesson.summary()
    assert re.fullmatch(
        r"профиль +tiny \(нет GPU с CUDA: офлайн-модель tiny работает на CPU\)", summary.splitlines()[1]
    )
    _russian(summary, {"dtype", "max_length", "colab", "cpu", "float", "False", "tmp", "pytest", "test"})
    plan = memory_plan(PROFILES["t4"], "02")
    assert plan.splitlines()[-1].endswith("1.5 ГБ -> помещается в T4 (15 ГБ)")
    _russian(plan, {"bit"})
    _russian(memory_plan(PROFILES["tiny"], "02"))
    table = format_table(rows)
    assert table.splitlines()[0].split() == ["модель", "домен", "n", "валидно", "верно"]
    assert table.splitlines()[2].split() == english[2].splitlines()[2].split()  # the rows are data, not text
    ways = format_table([{"way": "mixed batch", "ms": 1.5}, {"way": "switch per sub-batch", "ms": 3}])
    assert [line.split("  ")[0].strip() for line in ways.splitlines()[2:]] == [
        "смешанный батч",
        "переключение по подбатчам",
    ]
    _russian(report.table(), {"precision", "recall"})  # terms of art kept (GLOSSARY.md)
    _russian(side_by_side([report]), {"keywords"})
    assert describe_mix({"json": 0}, "runtime scaling") == "масштабирование на лету: без адаптеров (base)"
    _russian(KeywordRouter().route("Как приготовить борщ?").reason)
    searched = where_searched("json", PROFILES["tiny"], tmp_path, None)
    assert searched.startswith("поставляемый ") and "HUB_NAMESPACE не задан" in searched
    _russian(searched, {"tiny", "adapters", "tmp", "pytest", "work", "lessons_lib", "main", "assets"})


def test_readme_ru_badges_point_at_the_russian_notebooks():
    text = (REPO_DIR / "README.ru.md").read_text(encoding="utf-8")
    for src in SOURCES:
        own = scaffold.DEFAULT_REPOSITORY.colab_url(f"notebooks/ru/{src.stem}.ipynb")
        assert f"[![Открыть в Colab]({scaffold.BADGE_IMAGE})]({own})" in text, src.stem
    assert "make course" in text and "make test" in text and "(README.md)" in text
    fork = scaffold.readme_with_badges(text, scaffold.Repository("someone/fork-lab", "dev"))
    assert fork.count("github/someone/fork-lab/blob/dev/notebooks/ru/") == len(SOURCES)
    assert scaffold.REPO_DIR / "README.ru.md" in scaffold.readme_files(REPO_DIR)  # `build` keeps them in sync


@pytest.mark.parametrize(
    "n, word",
    [(0, "шагов"), (1, "шаг"), (3, "шага"), (5, "шагов"), (11, "шагов"), (12, "шагов"), (21, "шаг"), (24, "шага")],
)
def test_russian_plural_agrees_with_the_number(n, word):
    from lessons_lib.i18n import plural_ru

    assert plural_ru(n, "шаг", "шага", "шагов") == word
