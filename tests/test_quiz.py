"""Quiz banks, grading, static rendering, show_quiz's display choice, the CLI and the teacher kit."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest

from lessons_lib import quiz as quiz_pkg
from lessons_lib.paths import REPO_DIR
from lessons_lib.quiz import (
    BankError,
    available_notebooks,
    bank_html,
    bank_markdown,
    grade,
    load_bank,
    load_bank_file,
    show_quiz,
)
from lessons_lib.quiz.__main__ import main as quiz_cli
from lessons_lib.quiz.bank import LANGS, MIN_QUESTIONS
from lessons_lib.quiz.grading import CORRECT, EMPTY, PARTIAL, WRONG, ScoreBoard
from lessons_lib.quiz.inline import md, to_html
from lessons_lib.quiz.teacher_kit import estimate_t4_seconds, write_teacher_kit
from lessons_lib.scaffold import DEFAULT_REPOSITORY

NOTEBOOKS = ["01", "02", "03", "04", "05", "06"]
CYRILLIC = re.compile(r"[а-яА-ЯёЁ]")
# The original course's pitfalls each bank must keep asking about (issue 9).
PITFALLS = {
    "01": ["01-bf16-t4", "01-resume", "01-pad-eos", "01-completion-only"],
    "02": ["02-set-adapter-nothing", "02-in-place", "02-mixed-batch"],
    "03": ["03-lose-after-merge", "03-weighted-existing-name", "03-merge-4bit"],
    "04": ["04-keyword-fails", "04-threshold"],
    "05": ["05-loop-order", "05-malformed-call"],
    "06": ["06-cross-talk", "06-vllm-rank"],
}


def minimal_bank(**question_overrides) -> dict:
    """A valid one-question bank as decoded JSON; overrides change the question."""

    def choice(correct, en):
        return {
            "text": {"en": en, "ru": "ответ " + en},
            "correct": correct,
            "explain": {"en": f"why {en}", "ru": f"почему {en}"},
        }

    question = {
        "id": "q-one",
        "kind": "single",
        "prompt": {"en": "Pick A", "ru": "Выберите A"},
        "choices": [choice(True, "A"), choice(False, "B"), choice(False, "C")],
    }
    question.update(question_overrides)
    return {
        "notebook": "99",
        "title": {"en": "Test", "ru": "Тест"},
        "questions": [question],
        "self_check": [{"en": "I can test", "ru": "Я умею тестировать"}],
    }


def write_bank(tmp_path: Path, data, name: str = "99.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------- banks
def test_every_notebook_has_a_bank():
    assert available_notebooks() == NOTEBOOKS


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_bank_parses_and_is_complete(nb):
    bank = load_bank(nb)
    assert bank.notebook == nb
    assert len(bank.questions) >= MIN_QUESTIONS
    assert len(bank.self_check) >= 5
    kinds = {q.kind for q in bank.questions}
    assert kinds == {"single", "multi"}, f"bank {nb} should mix single- and multi-choice questions"
    for q in bank.questions:
        assert q.id.startswith(nb + "-")
        n_correct = len(q.correct_indices)
        assert n_correct == 1 if q.kind == "single" else n_correct >= 1, q.id
        assert len(q.choices) >= 3, q.id
        for c in q.choices:
            for lang in LANGS:
                assert c.text[lang] and c.explain[lang], (q.id, lang)
            assert CYRILLIC.search(c.explain["ru"]) and c.explain["ru"] != c.explain["en"], q.id
            assert (
                CYRILLIC.search(c.text["ru"]) or c.text["ru"] != c.text["en"] or not re.search("[a-z]{4}", c.text["en"])
            ), q.id
        assert CYRILLIC.search(q.prompt["ru"]) and q.prompt["ru"] != q.prompt["en"], q.id
    for item in bank.self_check:
        assert CYRILLIC.search(item["ru"]) and not CYRILLIC.search(item["en"])


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_bank_covers_the_course_pitfalls(nb):
    ids = {q.id for q in load_bank(nb).questions}
    assert set(PITFALLS[nb]) <= ids


def test_correct_answers_are_not_always_in_the_same_position():
    positions = {min(q.correct_indices) for nb in NOTEBOOKS for q in load_bank(nb).questions}
    assert len(positions) >= 3


@pytest.mark.parametrize("notebook", ["1", 1, "01", "01_finetune"])
def test_notebook_ids_are_normalised(notebook):
    assert load_bank(notebook).notebook == "01"


# ----------------------------------------------------------------------------------- malformed banks
@pytest.mark.parametrize(
    "override, message",
    [
        ({"kind": "essay"}, '"kind" must be one of'),
        ({"prompt": {"en": "only English"}}, "prompt has no 'ru' text"),
        ({"choices": []}, "at least 2 choices"),
    ],
)
def test_malformed_question_names_file_and_question(tmp_path, override, message):
    path = write_bank(tmp_path, minimal_bank(**override))
    with pytest.raises(BankError) as err:
        load_bank_file(path)
    assert str(path) in str(err.value) and "'q-one'" in str(err.value) and message in str(err.value)


def test_single_choice_with_two_correct_answers_is_rejected(tmp_path):
    data = minimal_bank()
    data["questions"][0]["choices"][1]["correct"] = True
    path = write_bank(tmp_path, data)
    with pytest.raises(
        BankError,
        match=r"99\.json: question 'q-one': a single-choice question needs exactly one correct choice, found 2",
    ):
        load_bank_file(path)


def test_multi_choice_without_correct_answer_is_rejected(tmp_path):
    data = minimal_bank(kind="multi")
    data["questions"][0]["choices"][0]["correct"] = False
    with pytest.raises(BankError, match="question 'q-one': a multi-choice question needs at least one correct"):
        load_bank_file(write_bank(tmp_path, data))


def test_choice_without_russian_explanation_names_the_choice(tmp_path):
    data = minimal_bank()
    del data["questions"][0]["choices"][2]["explain"]["ru"]
    with pytest.raises(BankError, match="question 'q-one': choice C explanation has no 'ru' text"):
        load_bank_file(write_bank(tmp_path, data))


def test_missing_correct_flag_and_duplicate_ids(tmp_path):
    data = minimal_bank()
    del data["questions"][0]["choices"][0]["correct"]
    with pytest.raises(BankError, match='choice A needs "correct": true or false'):
        load_bank_file(write_bank(tmp_path, data))
    data = minimal_bank()
    data["questions"].append(data["questions"][0])
    with pytest.raises(BankError, match="question 'q-one': the id is used twice"):
        load_bank_file(write_bank(tmp_path, data))


def test_invalid_json_names_file_and_line(tmp_path):
    path = write_bank(tmp_path, '{"notebook": "99",\n "questions": [,]}')
    with pytest.raises(BankError, match=r"99\.json: invalid JSON at line 2"):
        load_bank_file(path)


def test_missing_bank_says_where_banks_live(tmp_path):
    with pytest.raises(BankError, match="quiz bank not found"):
        load_bank("42", quiz_dir=tmp_path)


# ----------------------------------------------------------------------------------------------- grading
def _multi_question():
    from lessons_lib.quiz.bank import parse_bank

    data = minimal_bank(kind="multi")
    choices = data["questions"][0]["choices"]
    choices[1]["correct"] = True  # correct: A, B; wrong: C
    choices.append({**choices[2], "text": {"en": "D", "ru": "Г"}})  # D wrong
    choices.append({**choices[0], "text": {"en": "E", "ru": "Д"}})  # E correct
    return parse_bank(data, Path("mem.json")).questions[0]


def test_single_choice_grading():
    from lessons_lib.quiz.bank import parse_bank

    q = parse_bank(minimal_bank(), Path("mem.json")).questions[0]
    assert grade(q, 0).status == CORRECT and grade(q, 0).score == 1.0
    wrong = grade(q, [2])
    assert wrong.status == WRONG and wrong.score == 0.0 and wrong.missed == {0} and wrong.wrong_picks == {2}
    assert grade(q, []).status == EMPTY
    with pytest.raises(ValueError, match="single-choice"):
        grade(q, [0, 1])
    with pytest.raises(ValueError, match="choices 0..2"):
        grade(q, [7])


@pytest.mark.parametrize(
    "picked, status, score",
    [
        ({0, 1, 4}, CORRECT, 1.0),
        ({0, 1}, PARTIAL, 0.67),  # 2 of 3 right, nothing wrong
        ({0}, PARTIAL, 0.33),
        ({0, 1, 2}, PARTIAL, 0.33),  # 2 right - 1 wrong = 1 of 3
        ({0, 2}, WRONG, 0.0),  # 1 right - 1 wrong = 0
        ({0, 1, 2, 3, 4}, PARTIAL, 0.33),  # ticking every box: 3 right - 2 wrong
        ({2, 3}, WRONG, 0.0),
    ],
)
def test_multi_choice_partial_credit(picked, status, score):
    result = grade(_multi_question(), picked)
    assert (result.status, result.score) == (status, score)


def test_scoreboard_counts_first_attempts_and_ignores_empty():
    from lessons_lib.quiz.bank import parse_bank

    q = parse_bank(minimal_bank(), Path("mem.json")).questions[0]
    board = ScoreBoard.for_questions(3)
    board.record(q.id, grade(q, []))
    assert board.answered == 0
    board.record(q.id, grade(q, 1))
    board.record(q.id, grade(q, 0))
    assert (board.score, board.answered, board.solved) == (0.0, 1, 1)


# ------------------------------------------------------------------------------------- static fallback
@pytest.mark.parametrize("nb", NOTEBOOKS)
@pytest.mark.parametrize("lang", LANGS)
def test_static_fallback_renders_every_question_with_collapsible_answers(nb, lang):
    bank = load_bank(nb)
    text, page = bank_markdown(bank, lang), bank_html(bank, lang)
    for n, q in enumerate(bank.questions, 1):
        assert f"**{n}. {md(q.prompt[lang])}**" in text
        for c in q.choices:
            assert md(c.text[lang]) in text and md(c.explain[lang]) in text
            assert to_html(c.text[lang]) in page and to_html(c.explain[lang]) in page
    assert text.count("<details>") == len(bank.questions) == page.count("<details>")
    assert page.count("class='quiz-question'") == len(bank.questions)
    assert all(md(item[lang]) in text for item in bank.self_check)


def test_printable_quiz_has_no_answers_and_key_has_all():
    bank = load_bank("03")
    quiz_md = bank_markdown(bank, "en", answers="none", boxes=True)
    key_md = bank_markdown(bank, "en", answers="key")
    assert "<details>" not in quiz_md and "✔" not in quiz_md and "☐ A." in quiz_md
    for q in bank.questions:
        assert all(md(c.explain["en"]) not in quiz_md and md(c.explain["en"]) in key_md for c in q.choices)
    assert key_md.count("**Answer: ") == len(bank.questions)


# -------------------------------------------------------------------------- show_quiz display choice
class FakeShell:
    kernel = object()


@pytest.fixture
def captured(monkeypatch):
    """Pretend we run in a Jupyter kernel and capture what show_quiz displays."""
    shown = []
    monkeypatch.setattr(quiz_pkg, "_kernel_shell", lambda: FakeShell())
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append((obj, kw)))
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delenv("LESSONS_QUIZ_MODE", raising=False)
    monkeypatch.delenv("LESSONS_LANG", raising=False)
    return shown


def test_without_kernel_show_quiz_prints_the_markdown_quiz(capsys, monkeypatch):
    monkeypatch.setattr(quiz_pkg, "_kernel_shell", lambda: None)
    result = show_quiz("02", lang="ru")
    out = capsys.readouterr().out
    assert "## Тест 02" in out and out.count("<details>") == len(load_bank("02").questions)
    assert result.shown_as == "printed Markdown" and result.widget is None


@pytest.mark.widgets
def test_in_a_kernel_one_output_carries_widget_and_static_fallback(captured):
    result = show_quiz("01")
    ((bundle, kw),) = captured
    assert kw == {"raw": True}
    assert bundle[quiz_pkg.WIDGET_MIME]["model_id"] == result.widget.model_id
    assert "Quiz 01" in bundle["text/html"] and bundle["text/markdown"].count("<details>") == len(result.bank.questions)
    assert result.shown_as == "widget with static fallback"


@pytest.mark.widgets
def test_modes_and_language_from_the_environment(captured, monkeypatch):
    monkeypatch.setenv("LESSONS_QUIZ_MODE", "static")
    monkeypatch.setenv("LESSONS_LANG", "ru")
    result = show_quiz("04")
    bundle = captured[-1][0]
    assert quiz_pkg.WIDGET_MIME not in bundle and "Тест 04" in bundle["text/html"] and result.widget is None
    result = show_quiz("04", mode="widget", lang="en")
    assert captured[-1][0] is result.widget and result.widget.lang == "en"
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_2026")
    monkeypatch.delenv("LESSONS_QUIZ_MODE")
    result = show_quiz("04")
    assert captured[-1][0] is result.widget and result.shown_as == "widget"


def test_without_ipywidgets_the_static_quiz_is_shown(captured, monkeypatch):
    monkeypatch.setitem(sys.modules, "lessons_lib.quiz.widget", types.ModuleType("broken"))  # import fails
    result = show_quiz("05")
    assert quiz_pkg.WIDGET_MIME not in captured[-1][0] and result.shown_as == "static Markdown/HTML"
    assert "ImportError" in result.widget_error and "Quiz 05" in captured[-1][0]["text/html"]


@pytest.mark.parametrize(
    "text, markdown, html",
    [
        ('"__base__" is the base', '"`__base__`" is the base', "&quot;<code>__base__</code>&quot; is the base"),
        ("call merge_and_unload() now", "call `merge_and_unload()` now", "call <code>merge_and_unload()</code> now"),
        (
            "use `with model.disable_adapter():`",
            "use `with model.disable_adapter():`",
            "use <code>with model.disable_adapter():</code>",
        ),
        ("pad is <|pad|>, a*b", "pad is \\<|pad|>, a\\*b", "pad is &lt;|pad|&gt;, a*b"),
        ("Name: ____ Date", "Name: \\_\\_\\_\\_ Date", "Name: ____ Date"),
    ],
)
def test_inline_formatting_keeps_identifiers_literal(text, markdown, html):
    assert md(text) == markdown and to_html(text) == html


def test_bad_language_or_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="use 'en' or 'ru'"):
        show_quiz("01", lang="de")
    with pytest.raises(ValueError, match="Unknown quiz mode"):
        show_quiz("01", mode="fancy")


def test_return_value_does_not_display_the_quiz_twice():
    bank = load_bank("06")
    result = quiz_pkg.QuizDisplay(bank, "en", "widget")
    assert result._ipython_display_() is None and f"06: {len(bank.questions)} questions" in repr(result)


# ---------------------------------------------------------------------------------- teacher kit + CLI
def test_teacher_kit_writes_quizzes_keys_and_run_times(tmp_path):
    summary = tmp_path / "course_summary.json"
    summary.write_text(
        json.dumps(
            {
                "notebooks": [
                    {"notebook": "01_finetune.ipynb", "seconds": 151.2, "asserts": 5, "status": "ok"},
                    {
                        "notebook": "03_merge_and_mix.ipynb",
                        "seconds": 88.0,
                        "asserts": 4,
                        "status": "FAILED: AssertionError",
                    },
                ],
                "total_seconds": 239.2,
            }
        )
    )
    out = tmp_path / "kit"
    written = write_teacher_kit(out, tiny_summary=summary)
    names = {p.name for p in written}
    for nb in NOTEBOOKS:
        for lang in LANGS:
            for kind in ("quiz", "answers"):
                assert {f"{kind}-{nb}.{lang}.md", f"{kind}-{nb}.{lang}.html"} <= names
    assert {"index.md", "index.html", "run-times.md", "run-times.html"} <= names
    quiz_ru = (out / "quiz-02.ru.md").read_text(encoding="utf-8")
    key_ru = (out / "answers-02.ru.md").read_text(encoding="utf-8")
    assert "Имя:" in quiz_ru and "Ответ:" not in quiz_ru and key_ru.count("**Ответ: ") == len(load_bank("02").questions)
    index_md, index_html = (
        (out / "index.md").read_text(encoding="utf-8"),
        (out / "index.html").read_text(encoding="utf-8"),
    )
    for nb in NOTEBOOKS:  # the index links both editions of every notebook
        stem = next(p.stem for p in (REPO_DIR / "notebooks" / "src").glob(f"{nb}_*.py"))
        for path in (f"notebooks/{stem}.ipynb", f"notebooks/ru/{stem}.ipynb"):
            url = DEFAULT_REPOSITORY.colab_url(path)
            assert f"]({url})" in index_md and f"href='{url}'" in index_html, (nb, path)
    assert (out / "answers-01.en.html").read_text().startswith("<!DOCTYPE html>")
    table = (out / "run-times.md").read_text()
    assert "| 01 | Fine-tune a LoRA adapter | 2.5 min |" in table
    assert "| 02 |" in table and "not measured" in table.split("| 02 |")[1].split("\n")[0]
    assert "failed" in table.split("| 03 |")[1].split("\n")[0]
    assert f"≈ {estimate_t4_seconds('01') / 60:.1f} min" in table and "assumptions for a T4" in table


def test_teacher_kit_cli_single_language_and_missing_summary(tmp_path, capsys):
    code = quiz_cli(
        [
            "teacher-kit",
            "--out",
            str(tmp_path / "kit"),
            "--lang",
            "ru",
            "--only",
            "01",
            "04",
            "--summary",
            str(tmp_path / "absent.json"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "teacher kit: 12 files" in out and "0 of 2 notebooks measured" in out
    assert sorted(p.name for p in (tmp_path / "kit").glob("*-0*.md")) == [
        "answers-01.ru.md",
        "answers-04.ru.md",
        "quiz-01.ru.md",
        "quiz-04.ru.md",
    ]
    assert "| 01 | Fine-tune a LoRA adapter | not measured |" in (tmp_path / "kit" / "run-times.md").read_text()


def test_cli_reports_a_bad_bank_without_traceback(tmp_path, capsys, monkeypatch):
    bad = minimal_bank(kind="essay")
    bad["notebook"] = "07"
    (tmp_path / "07.json").write_text(json.dumps(bad))
    monkeypatch.setattr("lessons_lib.paths.QUIZ_DIR", tmp_path)
    assert quiz_cli(["teacher-kit", "--out", str(tmp_path / "kit"), "--only", "07"]) == 2
    assert "07.json: question 'q-one'" in capsys.readouterr().err


def test_cli_show_prints_one_quiz(capsys):
    assert quiz_cli(["show", "05", "--lang", "ru", "--answers", "none"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## Тест 05") and "<details>" not in out


# ---------------------------------------------------------------------------------- real kernel run
@pytest.mark.slow
def test_quiz_cell_runs_in_a_real_kernel_without_a_frontend(tmp_path):
    """nbclient = a kernel with no frontend: the cell must pass and leave a readable static quiz."""
    import nbformat
    from nbclient import NotebookClient

    repo = Path(__file__).resolve().parents[1]
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(repo)!r})"),
        nbformat.v4.new_code_cell('from lessons_lib.quiz import show_quiz\nshow_quiz("03")'),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    (output,) = nb.cells[1].outputs
    assert output.output_type == "display_data"
    assert "Quiz 03" in output.data["text/html"] and "application/vnd.jupyter.widget-view+json" in output.data


# ----------------------------------------------------------------------- answers of the wrong type (issue 15)
def _single_question():
    from lessons_lib.quiz.bank import parse_bank

    return parse_bank(minimal_bank(), Path("mem.json")).questions[0]  # choices A..C, A correct


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (True, "a yes/no value"),
        (False, "a yes/no value"),
        ([True], "a yes/no value"),
        ({0, True}, "a yes/no value"),
        (-1, "got -1. Negative indices .* use 2 for that choice"),
        ([-3], "use 0 for that choice"),
        (-4, "got -4"),
        (3, r"choices 0\.\.2 .*got 3"),
        ([0, 99], "got 99"),
        (1.0, r"got 1\.0 \(float\)"),
        ([0.5], r"\(float\)"),
        ("1", "not str '1'"),
        ("B", "not str 'B'"),
        (b"\x01", "not bytes"),
        ({0: True}, "not dict"),
        ([[0]], r"got \[0\] \(list\)"),
        ([1.5, "a"], r"got 1\.5"),
        (object(), r"\(object\)"),
    ],
    ids=lambda value: repr(value)[:20],
)
def test_bad_answers_are_refused_with_what_to_pass(answer, fragment):
    from lessons_lib.quiz.grading import AnswerError

    with pytest.raises(AnswerError, match=fragment) as err:
        grade(_single_question(), answer)
    assert isinstance(err.value, ValueError) and "q-one" in str(err.value)


def test_numpy_integers_count_as_indices_and_numpy_bools_do_not():
    np = pytest.importorskip("numpy")
    from lessons_lib.quiz.grading import AnswerError

    q = _single_question()
    for answer in (np.int64(0), np.uint8(0), [np.int32(0)], np.array([0]), np.argmax([3.0, 1.0, 2.0])):
        result = grade(q, answer)
        assert result.status == CORRECT and all(type(i) is int for i in result.picked), answer
    assert grade(_multi_question(), np.array([0, 1])).score == 0.67
    for answer in (np.bool_(True), [np.bool_(False)], np.array([True])):
        with pytest.raises(AnswerError, match="yes/no"):
            grade(q, answer)
    with pytest.raises(AnswerError, match="choices 0..2"):
        grade(q, np.int64(-1))


def test_widget_select_refuses_the_same_bad_answers():
    pytest.importorskip("ipywidgets")
    from lessons_lib.quiz import build_quiz
    from lessons_lib.quiz.grading import AnswerError

    quiz = build_quiz("02", lang="en")
    for card in (
        next(c for c in quiz.cards if c.question.kind == "single"),
        next(c for c in quiz.cards if c.question.kind == "multi"),
    ):
        n = len(card.question.choices)
        for bad in ([True], [-1], [n], ["0"]):
            with pytest.raises(AnswerError):
                card.select(bad)
        assert card.selection() == frozenset(), "a refused selection changes nothing"
        card.select([0])
        assert card.selection() == {0}
