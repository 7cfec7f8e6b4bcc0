"""Question banks: load `assets/quizzes/NN.json`, validate it, and report errors naming the file and question.

Bank format (every text is {"en": ..., "ru": ...}):
    {"notebook": "01", "title": TEXT,
     "questions": [{"id": "01-unique-id", "kind": "single" | "multi", "prompt": TEXT,
                    "choices": [{"text": TEXT, "correct": true | false, "explain": TEXT}, ...]}, ...],
     "self_check": [TEXT, ...]}
single: exactly one correct choice; multi: at least one. Every choice explains why it is right or wrong.
In texts, `backticks` and identifiers like set_adapter or model.generate(...) are shown as code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..i18n import tr
from ..jsonl import json_problem

NOTEBOOK_ID = re.compile(r"\A(\d{1,2})(?!\d|\.\d)")  # "1", "01", "01_fine_tune", "01_fine_tune.ipynb"; not "1.5"

LANGS = ("en", "ru")
KINDS = ("single", "multi")
MIN_QUESTIONS = 6


class BankError(ValueError):
    """A quiz bank file is missing or malformed; the message names the file and the question."""


@dataclass(frozen=True)
class Choice:
    """One answer option: its text, whether it is correct, and why it is right or wrong."""

    text: dict[str, str]
    correct: bool
    explain: dict[str, str]


@dataclass(frozen=True)
class Question:
    """A single-choice (exactly one correct) or multi-choice (one or more correct) question."""

    id: str
    kind: str
    prompt: dict[str, str]
    choices: tuple[Choice, ...]

    @property
    def correct_indices(self) -> frozenset[int]:
        """Indices of the correct choices."""
        return frozenset(i for i, c in enumerate(self.choices) if c.correct)


@dataclass(frozen=True)
class Bank:
    """One notebook's quiz: title, questions and the "I can explain…" self-check list."""

    notebook: str
    title: dict[str, str]
    questions: tuple[Question, ...]
    self_check: tuple[dict[str, str], ...]
    path: Path


def normalize_notebook(notebook: str | int, quiz_dir: Path | None = None) -> str:
    """Turn 1, "1", "01" or "01_finetune" into "01"; anything else (1.5, [1], True, "x") is a BankError."""
    if isinstance(notebook, int) and not isinstance(notebook, bool) and 0 <= notebook <= 99:
        return f"{notebook:02d}"
    match = NOTEBOOK_ID.match(notebook.strip()) if isinstance(notebook, str) else None
    if match is None:
        known = ", ".join(available_notebooks(quiz_dir)) or "-"
        raise BankError(
            tr(
                en=f'Notebook id {notebook!r} is not a notebook number; use e.g. show_quiz("01") '
                f"(notebooks with a quiz: {known}).",
                ru=f"Идентификатор ноутбука {notebook!r} — не номер ноутбука; используйте, например, "
                f'show_quiz("01") (ноутбуки с тестом: {known}).',
            )
        )
    return match.group(1).zfill(2)


def pick(text: dict[str, str], lang: str) -> str:
    """The text in `lang`, falling back to English."""
    return text.get(lang) or text["en"]


def _where(path: Path, qid: str | None) -> str:
    return tr(en=f"{path}: question {qid!r}", ru=f"{path}: вопрос {qid!r}") if qid is not None else f"{path}"


def _text(value, path: Path, qid: str | None, field: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise BankError(
            tr(
                en=f'{_where(path, qid)}: {field} must be an object {{"en": ..., "ru": ...}}, got '
                f"{type(value).__name__}.",
                ru=f'{_where(path, qid)}: {field}: нужен объект {{"en": ..., "ru": ...}}, а получен '
                f"{type(value).__name__}.",
            )
        )
    for lang in LANGS:
        if not isinstance(value.get(lang), str) or not value[lang].strip():
            raise BankError(
                tr(
                    en=f"{_where(path, qid)}: {field} has no {lang!r} text; every text needs both "
                    f"{' and '.join(LANGS)}.",
                    ru=f"{_where(path, qid)}: {field}: нет текста {lang!r}; у каждого текста должны быть оба языка, "
                    f"{' и '.join(LANGS)}.",
                )
            )
    return {lang: value[lang].strip() for lang in LANGS}


def _question(raw, path: Path, index: int) -> Question:
    if not isinstance(raw, dict):
        raise BankError(
            tr(
                en=f"{path}: question #{index + 1} must be an object, got {type(raw).__name__}.",
                ru=f"{path}: вопрос №{index + 1} должен быть объектом, а получен {type(raw).__name__}.",
            )
        )
    qid = raw.get("id")
    if not isinstance(qid, str) or not qid.strip():
        raise BankError(
            tr(
                en=f'{path}: question #{index + 1} has no "id" (a short unique string).',
                ru=f'{path}: у вопроса №{index + 1} нет "id" (короткой уникальной строки).',
            )
        )
    kind = raw.get("kind")
    if kind not in KINDS:
        raise BankError(
            tr(
                en=f'{_where(path, qid)}: "kind" must be one of {KINDS}, got {kind!r}.',
                ru=f'{_where(path, qid)}: "kind" должен быть одним из {KINDS}, а получено {kind!r}.',
            )
        )
    prompt = _text(raw.get("prompt"), path, qid, "prompt")
    raw_choices = raw.get("choices")
    if not isinstance(raw_choices, list) or len(raw_choices) < 2:
        raise BankError(
            tr(
                en=f'{_where(path, qid)}: needs a "choices" list with at least 2 choices.',
                ru=f'{_where(path, qid)}: нужен список "choices" хотя бы из 2 вариантов.',
            )
        )
    choices = []
    for j, rc in enumerate(raw_choices):
        letter = chr(65 + j)
        if not isinstance(rc, dict):
            raise BankError(
                tr(
                    en=f"{_where(path, qid)}: choice {letter} must be an object.",
                    ru=f"{_where(path, qid)}: вариант {letter} должен быть объектом.",
                )
            )
        if not isinstance(rc.get("correct"), bool):
            raise BankError(
                tr(
                    en=f'{_where(path, qid)}: choice {letter} needs "correct": true or false.',
                    ru=f'{_where(path, qid)}: у варианта {letter} нужен "correct": true или false.',
                )
            )
        choices.append(
            Choice(
                _text(rc.get("text"), path, qid, tr(en=f"choice {letter} text", ru=f"вариант {letter}, text")),
                rc["correct"],
                _text(
                    rc.get("explain"), path, qid, tr(en=f"choice {letter} explanation", ru=f"вариант {letter}, explain")
                ),
            )
        )
    n_correct = sum(c.correct for c in choices)
    if kind == "single" and n_correct != 1:
        raise BankError(
            tr(
                en=f"{_where(path, qid)}: a single-choice question needs exactly one correct choice, "
                f'found {n_correct} (make it "multi" or fix the "correct" flags).',
                ru=f"{_where(path, qid)}: в вопросе с одним ответом нужен ровно один верный вариант, а найдено "
                f'{n_correct} (сделайте вопрос "multi" или исправьте флаги "correct").',
            )
        )
    if kind == "multi" and n_correct < 1:
        raise BankError(
            tr(
                en=f"{_where(path, qid)}: a multi-choice question needs at least one correct choice, found 0.",
                ru=f"{_where(path, qid)}: в вопросе с несколькими ответами нужен хотя бы один верный вариант, "
                "а найдено 0.",
            )
        )
    return Question(qid.strip(), kind, prompt, tuple(choices))


def parse_bank(data, path: Path) -> Bank:
    """Validate the decoded JSON of a bank file and build a Bank."""
    if not isinstance(data, dict):
        raise BankError(
            tr(
                en=f"{path}: the top level must be an object with notebook, title, questions, self_check.",
                ru=f"{path}: верхний уровень должен быть объектом с notebook, title, questions, self_check.",
            )
        )
    notebook = data.get("notebook")
    if not isinstance(notebook, str) or not notebook.strip():
        raise BankError(
            tr(en=f'{path}: missing "notebook" (e.g. "01").', ru=f'{path}: нет "notebook" (например, "01").')
        )
    title = _text(data.get("title"), path, None, "title")
    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        raise BankError(
            tr(
                en=f'{path}: "questions" must be a non-empty list.',
                ru=f'{path}: "questions" должен быть непустым списком.',
            )
        )
    questions = [_question(raw, path, i) for i, raw in enumerate(raw_questions)]
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise BankError(
                tr(
                    en=f"{_where(path, q.id)}: the id is used twice; ids must be unique within a bank.",
                    ru=f"{_where(path, q.id)}: этот id встречается дважды; id в банке должны быть уникальными.",
                )
            )
        seen.add(q.id)
    raw_check = data.get("self_check")
    if not isinstance(raw_check, list) or not raw_check:
        raise BankError(
            tr(
                en=f'{path}: "self_check" must be a non-empty list of {{"en", "ru"}} items.',
                ru=f'{path}: "self_check" должен быть непустым списком элементов {{"en", "ru"}}.',
            )
        )
    self_check = tuple(
        _text(item, path, None, tr(en=f"self_check item {k + 1}", ru=f"self_check, пункт {k + 1}"))
        for k, item in enumerate(raw_check)
    )
    return Bank(notebook.strip(), title, tuple(questions), self_check, Path(path))


def load_bank_file(path: str | Path) -> Bank:
    """Read and validate one bank file."""
    path = Path(path)
    if not path.is_file():
        raise BankError(
            tr(
                en=f"{path}: quiz bank not found (banks live in assets/quizzes/NN.json).",
                ru=f"{path}: банк вопросов теста не найден (банки лежат в assets/quizzes/NN.json).",
            )
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark, as some Windows editors write, is fine
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1
        raise BankError(
            tr(
                en=f"{path}: line {line} is not UTF-8 (byte {err.object[err.start : err.start + 1]!r}). Save the "
                "bank as UTF-8 (in an editor: 'Save with encoding: UTF-8').",
                ru=f"{path}: строка {line} не в UTF-8 (байт {err.object[err.start : err.start + 1]!r}). Сохраните "
                "банк в UTF-8 (в редакторе: «Сохранить в кодировке UTF-8»).",
            )
        ) from None
    except OSError as err:
        raise BankError(
            tr(
                en=f"{path}: cannot read the quiz bank ({err.strerror or err}).",
                ru=f"{path}: не удаётся прочитать банк вопросов теста ({err.strerror or err}).",
            )
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise BankError(
            tr(
                en=f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {json_problem(err)}.",
                ru=f"{path}: некорректный JSON в строке {err.lineno}, столбце {err.colno}: {json_problem(err)}.",
            )
        ) from None
    except RecursionError:
        raise BankError(
            tr(
                en=f"{path}: the JSON nests too deeply to read; fix the file.",
                ru=f"{path}: JSON вложен слишком глубоко, чтобы его прочитать; исправьте файл.",
            )
        ) from None
    return parse_bank(data, path)


def bank_path(notebook: str | int, quiz_dir: Path | None = None) -> Path:
    """Where notebook NN's bank lives."""
    from lessons_lib.paths import QUIZ_DIR

    return Path(quiz_dir or QUIZ_DIR) / f"{normalize_notebook(notebook, quiz_dir)}.json"


def load_bank(notebook: str | int, quiz_dir: Path | None = None) -> Bank:
    """Load notebook NN's bank from assets/quizzes (or `quiz_dir`); an unknown number says which ones exist."""
    path = bank_path(notebook, quiz_dir)
    if not path.is_file():
        known = ", ".join(available_notebooks(quiz_dir)) or "-"
        raise BankError(
            tr(
                en=f"{path}: quiz bank not found (banks live in assets/quizzes/NN.json). "
                f"Notebooks with a quiz: {known}.",
                ru=f"{path}: банк вопросов теста не найден (банки лежат в assets/quizzes/NN.json). "
                f"Ноутбуки с тестом: {known}.",
            )
        )
    return load_bank_file(path)


def available_notebooks(quiz_dir: Path | None = None) -> list[str]:
    """Numbers of the notebooks that have a bank, sorted."""
    from lessons_lib.paths import QUIZ_DIR

    return sorted(p.stem for p in Path(quiz_dir or QUIZ_DIR).glob("[0-9][0-9].json"))
