"""The exceptions of generation, training, the quiz, the tool loop and the evaluation helpers in the Russian edition:
under LESSONS_LANG=ru each mistake below is said in Russian, with the same names and values; in English each message
is exactly what it was. Also: the static scan that keeps every such message behind tr(en=..., ru=...), and proof that
the scan flags these modules as they were before their Russian messages.
"""

from __future__ import annotations

import subprocess

import pytest
from test_quiz import minimal_bank, write_bank
from test_serve_russian import CYRILLIC, ENGLISH_PROSE, untranslated

from lessons_lib import checks, copying, natural_eval, recipes, train, varied_data
from lessons_lib.chat_format import CHAT_TEMPLATES, CHAT_TEMPLATES_DIR, chat_template_text
from lessons_lib.data import sft_rows
from lessons_lib.generation import RowRequest, check_sampling, decode_batch
from lessons_lib.models import generate_texts
from lessons_lib.paths import REPO_DIR
from lessons_lib.quiz import MODE_ENV_VAR, MODES, resolve_mode
from lessons_lib.quiz.bank import BankError, load_bank_file, parse_bank
from lessons_lib.quiz.grading import AnswerError, grade
from lessons_lib.tools.faithful import faithful_generate
from lessons_lib.tools.loop import run_tool_loop

ENGLISH_ONLY_COMMIT = "1fdc42c3c1e2f3d02180aac774b5e6df5244e67d"  # these modules before their Russian messages


def refusal(call, error: type[Exception], lang: str | None) -> str:
    """The message of the `error` that `call()` raises, with $LESSONS_LANG set to `lang` (None: unset)."""
    with pytest.MonkeyPatch.context() as patch:
        if lang is None:
            patch.delenv("LESSONS_LANG", raising=False)
        else:
            patch.setenv("LESSONS_LANG", lang)
        with pytest.raises(error) as caught:
            call()
    return str(caught.value.args[0]) if isinstance(caught.value, KeyError) else str(caught.value)


def assert_russian(ru: str, phrases: tuple[str, ...], ignore: tuple[str, ...] = ()) -> None:
    """Russian words, each expected phrase, and no English sentence (outside `ignore`: values shown as they are)."""
    assert all(phrase in ru for phrase in phrases), ru
    words = ru
    for text in ignore:
        words = words.replace(text, "")
    assert CYRILLIC.search(words) and not ENGLISH_PROSE.search(words), ru


# ---------------------------------------------------------------- sampling, generation, training
ROWS = sft_rows("json", 2)
HUMAN_ROW = {"prompt": [{"role": "human", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Yo"}]}

# (id, call, error, the exact English, phrases of the Russian message, values both messages keep)
CASES = [
    (
        "temperature",
        lambda: check_sampling(-0.5, 1.0, 0, ()),
        ValueError,
        "temperature must be >= 0 (0 = greedy), got -0.5.",
        ("temperature должна быть >= 0", "жадное декодирование"),
        ("-0.5",),
    ),
    (
        "top-p",
        lambda: check_sampling(0.7, 0.0, 0, ()),
        ValueError,
        "top_p must be in (0, 1], got 0.0.",
        ("top_p должно лежать в (0, 1]",),
        ("0.0",),
    ),
    (
        "top-logprobs",
        lambda: check_sampling(0.0, 1.0, 9, ()),
        ValueError,
        "top_logprobs must be between 0 and 5, got 9.",
        ("top_logprobs должно быть от 0 до 5", "получено 9"),
        (),
    ),
    (
        "stop",
        lambda: check_sampling(0.0, 1.0, 0, ["", "\n"]),
        ValueError,
        "stop strings must be non-empty strings.",
        ("непустыми строками",),
        (),
    ),
    (
        "decode-max-tokens",  # the public decode loop checks every row before it touches the model
        lambda: decode_batch(None, None, [RowRequest("p", max_tokens=0)]),
        ValueError,
        "max_tokens must be at least 1, got 0.",
        ("max_tokens должно быть не меньше 1, а получено 0.",),
        (),
    ),
    (
        "decode-top-p",
        lambda: decode_batch(None, None, [RowRequest("p", temperature=0.7, top_p=1.5)]),
        ValueError,
        "top_p must be in (0, 1], got 1.5.",
        ("top_p должно лежать в",),
        ("1.5",),
    ),
    (
        "adapter-names",
        lambda: generate_texts(None, None, ["a", "b"], 4, adapter_names=["json"]),
        ValueError,
        "adapter_names has 1 names for 2 texts; give one per text.",
        ("имён: 1", "текстов: 2"),
        ("adapter_names",),
    ),
    (
        "faithful-sources",
        lambda: faithful_generate(None, None, ["a", "b"], [None]),
        ValueError,
        "Got 2 texts but 1 sources; pass one source (or None) per text.",
        ("Текстов 2, а источников 1",),
        (),
    ),
    (
        "train-empty",
        lambda: train.train_adapter(None, None, [], "tiny", "unused"),
        train.DataError,
        "The training set is empty: give at least one prompt/completion row.",
        ("Обучающий набор пуст",),
        ("prompt/completion",),
    ),
    (
        "train-profile",
        lambda: train.train_adapter(None, None, ROWS, 42, "unused"),
        TypeError,
        "profile must be a Profile (e.g. lessons_lib.profiles.PROFILES['tiny']) or a profile name, not int 42.",
        ("profile должен быть Profile", "именем профиля"),
        ("PROFILES['tiny']", "int 42"),
    ),
    (
        "train-max-steps",
        lambda: train.train_adapter(None, None, ROWS, "tiny", "unused", max_steps=0),
        ValueError,
        "max_steps must be at least 1 (a whole number of optimizer steps), not 0; pass None for the profile's default.",
        ("max_steps должно быть не меньше 1", "шагов оптимизатора", "None"),
        (),
    ),
    (  # before: accepted (0 kept no checkpoint to resume from, -1 kept every one)
        "train-keep-checkpoints",
        lambda: train.train_adapter(None, None, ROWS, "tiny", "unused", keep_checkpoints=0),
        ValueError,
        "keep_checkpoints must be at least 1 (a whole number of checkpoints kept on disk), not 0; pass None for the "
        "profile's default.",
        ("keep_checkpoints должно быть не меньше 1", "хранимых контрольных точек"),
        (),
    ),
    (
        "train-packing",
        lambda: train.packing_kwargs("zip"),
        ValueError,
        "Unknown packing_strategy 'zip': use None (pad each batch) or one of bfd, bfd-requeue, wrapped (TRL's "
        "SFTConfig choices).",
        ("Неизвестная packing_strategy",),
        ("'zip'", "bfd, bfd-requeue, wrapped"),
    ),
    (
        "train-disconnect",
        lambda: train.disconnect_after(0),
        ValueError,
        "step must be >= 1",
        ("step должен быть >= 1",),
        (),
    ),
    (
        "loop-max-steps",
        lambda: run_tool_loop(lambda messages: "hi", "Wrap this.", max_steps=0),
        ValueError,
        "max_steps must be at least 1, got 0.",
        ("max_steps должно быть не меньше 1, а получено 0.",),
        (),
    ),
    (
        "loop-reply",
        lambda: run_tool_loop(lambda messages: 5, "Wrap this."),
        TypeError,
        "chat(messages) must return the model's reply as a string, got int; fix the chat function.",
        ("должна возвращать ответ модели строкой", "исправьте функцию chat"),
        ("chat(messages)", "int"),
    ),
    (
        "natural-domain",
        lambda: natural_eval.load("poetry"),
        ValueError,
        "Unknown domain 'poetry'; the natural sets are json, coding, support.",
        ("Неизвестный домен", "своими словами"),
        ("'poetry'", "json, coding, support"),
    ),
    (
        "natural-lengths",
        lambda: natural_eval.score(natural_eval.load("json")[:2], ["{}"]),
        ValueError,
        "2 items but 1 outputs",
        ("Примеров 2, а ответов 1",),
        (),
    ),
    (
        "chat-template",
        lambda: chat_template_text("llama"),
        ValueError,
        f"Unknown chat template 'llama'; choose one of: {', '.join(CHAT_TEMPLATES)} (files in {CHAT_TEMPLATES_DIR}).",
        ("Неизвестный шаблон чата", "выберите один из"),
        ("'llama'", ", ".join(CHAT_TEMPLATES), str(CHAT_TEMPLATES_DIR)),
    ),
    (
        "quiz-mode",
        lambda: resolve_mode("slides"),
        ValueError,
        f"Unknown quiz mode 'slides'; use one of {MODES} (argument mode=... or ${MODE_ENV_VAR}).",
        ("Неизвестный режим теста",),
        ("'slides'", str(MODES), f"${MODE_ENV_VAR}"),
    ),
    (
        "copy-bias",
        lambda: copying.checked_bias(-1.0),
        ValueError,
        f"copy bias must be >= 0 (0 turns it off; copying.COPY_BIAS = {copying.COPY_BIAS}), got -1.0.",
        ("смещение копирования", "отключает"),
        ("-1.0", f"copying.COPY_BIAS = {copying.COPY_BIAS}"),
    ),
    (
        "varied-domain",
        lambda: varied_data.varied_rows("poetry", 1),
        ValueError,
        f"No varied rows for 'poetry'; there are: {', '.join(varied_data.VARIED)}.",
        ("Разнообразных строк",),
        ("'poetry'", ", ".join(varied_data.VARIED)),
    ),
    (
        "agreement",
        lambda: checks.agreement(["a"], []),
        ValueError,
        "Compare answers one to one: got 1 and 0.",
        ("Сравнивайте ответы один к одному",),
        (),
    ),
    (
        "recipe-types",
        lambda: recipes.recipe_differences(1, "x"),
        TypeError,
        "compare two configs of one dataclass type, got int and str.",
        ("одного типа dataclass",),
        ("int и str",),
    ),
]


@pytest.mark.parametrize(("case_id", "call", "error", "english", "russian", "kept"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_setting_is_russian_under_ru_and_unchanged_in_english(case_id, call, error, english, russian, kept):
    assert refusal(call, error, None) == english
    ru = refusal(call, error, "ru")
    assert_russian(ru, russian, kept)
    for value in kept:
        assert value in ru, (value, ru)


def test_a_bad_training_row_is_russian_with_the_row_shown_as_it_is():
    shown = train._show(HUMAN_ROW)
    call = lambda: train.check_rows([HUMAN_ROW])  # noqa: E731
    assert refusal(call, train.DataError, None) == (
        "Row 0 prompt message 0 has role 'human'; use one of system, user, assistant, tool (map others first, e.g. "
        f"'human' -> 'user', 'gpt' -> 'assistant'). The row: {shown}"
    )
    ru = refusal(call, train.DataError, "ru")
    assert ru.startswith("Строка 0: сообщение 0 промпта (prompt): роль 'human'; ") and ru.endswith(shown), ru
    assert_russian(ru, ("используйте одну из system, user, assistant, tool",), (shown,))


def test_a_row_with_a_messages_chat_and_one_without_an_answer_are_russian():
    for row, phrase in (
        ({"messages": [{"role": "user", "content": "Hi"}]}, "это чат 'messages'"),
        ({"prompt": [{"role": "user", "content": "Hi"}], "completion": []}, "нет реплики ассистента"),
    ):
        call = lambda row=row: train.check_rows([row])  # noqa: E731
        assert refusal(call, train.DataError, None).startswith("Row 0 ")
        ru = refusal(call, train.DataError, "ru")
        assert_russian(ru, (f"Строка 0: {phrase}",), (train._show(row), train.ROW_SHAPE_RU.split("например")[1]))


# ---------------------------------------------------------------- a teacher's broken quiz bank
def bank_with(**overrides) -> dict:
    return minimal_bank(**overrides)


def without_ru_prompt() -> dict:
    return minimal_bank(prompt={"en": "Pick A"})


def twice() -> dict:
    bank = minimal_bank()
    bank["questions"].append(dict(bank["questions"][0]))
    return bank


# (id, the file's text or data, the English after "<path>: ", phrases of the Russian message, values both keep)
BANKS = [
    (
        "two-correct",
        bank_with(kind="single", choices=minimal_bank()["questions"][0]["choices"][:1] * 2),
        "question 'q-one': a single-choice question needs exactly one correct choice, found 2 (make it \"multi\" or "
        'fix the "correct" flags).',
        ("вопрос 'q-one'", "ровно один верный вариант", "найдено 2"),
        ('"multi"', '"correct"'),
    ),
    (
        "kind",
        bank_with(kind="essay"),
        "question 'q-one': \"kind\" must be one of ('single', 'multi'), got 'essay'.",
        ("должен быть одним из",),
        ("'essay'", '"kind"'),
    ),
    (
        "choice-not-object",
        bank_with(choices=["A", "B"]),
        "question 'q-one': choice A must be an object.",
        ("вариант A должен быть объектом",),
        (),
    ),
    (
        "no-ru-text",
        without_ru_prompt(),
        "question 'q-one': prompt has no 'ru' text; every text needs both en and ru.",
        ("prompt: нет текста 'ru'", "en и ru"),
        (),
    ),
    (
        "duplicate-id",
        twice(),
        "question 'q-one': the id is used twice; ids must be unique within a bank.",
        ("встречается дважды",),
        (),
    ),
    (
        "no-notebook",
        {k: v for k, v in minimal_bank().items() if k != "notebook"},
        'missing "notebook" (e.g. "01").',
        ('нет "notebook"',),
        ('"01"',),
    ),
    (
        "invalid-json",
        '{"notebook": "99",\n  "title": }',
        "invalid JSON at line 2, column 12: Expecting value.",
        ("некорректный JSON в строке 2, столбце 12",),
        ("Expecting value",),  # json's own words stay English
    ),
]


@pytest.mark.parametrize(("case_id", "data", "english", "russian", "kept"), BANKS, ids=[b[0] for b in BANKS])
def test_a_broken_quiz_bank_is_russian_under_ru(tmp_path, case_id, data, english, russian, kept):
    path = write_bank(tmp_path, data)
    call = lambda: load_bank_file(path)  # noqa: E731
    assert refusal(call, BankError, None) == f"{path}: {english}"
    ru = refusal(call, BankError, "ru")
    assert ru.startswith(f"{path}: "), ru
    assert_russian(ru, russian, (str(path), *kept))
    for value in kept:
        assert value in ru, (value, ru)


# ---------------------------------------------------------------- a learner's bad quiz answer
QUESTION = parse_bank(minimal_bank(), REPO_DIR / "99.json").questions[0]
ANSWERS = [
    (
        True,
        "Question 'q-one' has choices 0..2 (A=0, B=1, ...); got True, a yes/no value, not a choice. Pass the index "
        "of the choice.",
        ("У вопроса 'q-one' варианты 0..2", "Передайте номер варианта"),
    ),
    (7, "Question 'q-one' has choices 0..2 (A=0, B=1, ...); got 7.", ("получено 7",)),
    (-1, None, ("Отрицательные номера", "используйте 2")),
    ("A", None, ("ответ — это номер варианта",)),
    ([0, 1], "Question 'q-one' is single-choice; pick one choice, got [0, 1].", ("один верный ответ", "[0, 1]")),
]


@pytest.mark.parametrize(("answer", "english", "russian"), ANSWERS, ids=["bool", "range", "negative", "str", "two"])
def test_a_bad_quiz_answer_is_russian_under_ru(answer, english, russian):
    call = lambda: grade(QUESTION, answer)  # noqa: E731
    en = refusal(call, AnswerError, None)
    if english is not None:
        assert en == english
    ru = refusal(call, AnswerError, "ru")
    assert_russian(ru, russian, ("(A=0, B=1, ...)",))


# ---------------------------------------------------------------- every message goes through tr
# The modules whose exceptions learners (or teachers, for quiz banks) read.
MODULES = (
    "generation.py",
    "train.py",
    "models.py",
    "quiz/__init__.py",
    "quiz/bank.py",
    "quiz/grading.py",
    "quiz/widget.py",
    "quiz/static.py",
    "tools/loop.py",
    "tools/langchain.py",
    "tools/faithful.py",
    "natural_eval.py",
    "chat_format.py",
    "checks.py",
    "evaluate.py",
    "copying.py",
    "varied_data.py",
    "recipes.py",
)
# Every exception these modules raise with a message: its name -> the position of the message.
RAISED = {
    name: 0
    for name in (
        "ValueError",
        "TypeError",
        "KeyError",
        "RuntimeError",
        "OSError",
        "PermissionError",
        "FileNotFoundError",
        "IsADirectoryError",
        "NotADirectoryError",
        "FileExistsError",
        "ImportError",
        "NotImplementedError",
        "DataError",
        "ResumeError",
        "SimulatedDisconnect",
        "BankError",
        "AnswerError",
        "SummaryError",
        "ToolException",
    )
}
# Messages no learner reads as course text, left English on purpose: (module, exception) -> why.
INTERNAL = {
    # LangChain hands "error: <the tool's message>" back to the model as the tool's answer: it is part of the
    # tool-call protocol the adapter was trained on (like tools/functions.py's messages), not text for a learner.
    ("tools/langchain.py", "ToolException"): "the tool's answer the model reads",
}


def raised_names(source: str) -> set[str]:
    """The names of the exceptions a module raises by calling them (`raise X(...)`)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            func = node.exc.func
            names.add(getattr(func, "id", None) or getattr(func, "attr", None) or ast.unparse(func))
    return names


def scan(module: str, source: str) -> tuple[int, list[str]]:
    messages = {name: at for name, at in RAISED.items() if (module, name) not in INTERNAL}
    return untranslated(source, messages)


@pytest.mark.parametrize("module", MODULES)
def test_every_exception_message_goes_through_tr(module):
    source = (REPO_DIR / "lessons_lib" / module).read_text(encoding="utf-8")
    # `raise (PermissionError if ... else OSError)(message)` (train.check_writable) is read as its source text
    unknown = {n for n in raised_names(source) if n not in RAISED and " if " not in n}
    assert unknown == set(), f"{module} raises {unknown}: add them to RAISED so the scan reads their messages"
    calls, found = scan(module, source)
    assert calls > 0, module
    assert found == [], f"{module}: English messages without tr(en=..., ru=...): {found}"


# English the scan must find in the modules as they were (one or more texts a learner met in English under ru)
ENGLISH_LEFT = {
    "generation.py": ("temperature must be >= 0", "stop strings must be non-empty strings."),
    "train.py": (
        "The training set is empty",
        "has no assistant turn to learn from. ",  # row_problem's, through check_rows' `problem`
        " must be at least 1 (a whole number of optimizer steps), not ",
        "Cannot resume from ",
    ),
    "models.py": ("batched_lora needs adapter_names",),
    "quiz/bank.py": ("the id is used twice", "a single-choice question needs exactly one correct choice, "),
    "quiz/grading.py": (" is single-choice; pick one choice, got ", "Negative indices count from the end"),
    "tools/loop.py": ("max_steps must be at least 1, got ",),
    "natural_eval.py": ("; the natural sets are ",),
    "chat_format.py": ("; choose one of: ",),
    "quiz/widget.py": (" is single-choice; select one index.",),
}


@pytest.mark.parametrize("module", sorted(ENGLISH_LEFT))
def test_the_scan_flags_the_english_only_modules(module):
    """The scan above can fail: on the modules as they were before the Russian edition it finds the English."""
    old = subprocess.run(
        ["git", "show", f"{ENGLISH_ONLY_COMMIT}:lessons_lib/{module}"], cwd=REPO_DIR, capture_output=True, text=True
    )
    if old.returncode != 0:
        pytest.skip(f"this checkout has no git history with {ENGLISH_ONLY_COMMIT[:7]}: {old.stderr.strip()}")
    _, found = scan(module, old.stdout)
    texts = " | ".join(found)
    missing = [english for english in ENGLISH_LEFT[module] if english not in texts]
    assert missing == [], f"{module}: the scan missed {missing}; it found {found}"


@pytest.mark.parametrize(
    "lang, steps, expected",
    [
        ("en", 3, "no final answer after 3 model replies; stopped the loop"),
        ("ru", 1, "нет окончательного ответа после 1 ответа модели; цикл остановлен"),
        ("ru", 3, "нет окончательного ответа после 3 ответов модели; цикл остановлен"),
    ],
)
def test_the_loops_step_limit_event_in_both_languages(monkeypatch, lang, steps, expected):
    from test_tools_loop import FakeModel

    from lessons_lib.tools.calls import call_text

    monkeypatch.setenv("LESSONS_LANG", lang)
    model = FakeModel(*[call_text("text_formatter", {"text": "a", "width": 3})] * 5)
    result = run_tool_loop(model, "loop forever", max_steps=steps)
    assert result.events[-1].kind == "step_limit" and result.events[-1].detail == expected


@pytest.mark.parametrize(
    "lang, expected",
    [
        ("en", "The tiny course model not found at {path}. Clone the whole course repository"),
        ("ru", "Модель курса tiny: не найдено по пути {path}. Клонируйте репозиторий курса целиком"),
    ],
)
def test_a_missing_tiny_model_says_how_to_get_it_in_both_languages(monkeypatch, tmp_path, lang, expected):
    from lessons_lib import models
    from lessons_lib.profiles import PROFILES

    monkeypatch.setenv("LESSONS_LANG", lang)
    monkeypatch.setattr(models, "TINY_MODEL_DIR", tmp_path / "missing")
    with pytest.raises(FileNotFoundError) as caught:
        models.model_source(PROFILES["tiny"])
    assert str(caught.value).startswith(expected.format(path=tmp_path / "missing"))
    if lang == "ru":
        assert not ENGLISH_PROSE.search(str(caught.value).replace("python -m lessons_lib.tiny build", ""))
