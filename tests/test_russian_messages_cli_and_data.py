"""Messages that were still English in the Russian edition: the router CLI and router errors, mix errors, the
teacher-kit summary, the data-file reader, the tool adapter's training line and the adapter-folder check.

Each Russian message is asserted with LESSONS_LANG=ru; the English ones the other tests pin stay as they were.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from lessons_lib.paths import REPO_DIR, TINY_ADAPTERS_DIR

CYRILLIC = re.compile("[а-яё]{4,}", re.IGNORECASE)


def assert_russian(message: str, english: str) -> None:
    """The message is Russian prose and holds no sentence of its English twin."""
    assert CYRILLIC.search(message) and english not in message, message


def run_cli(main, argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a course CLI run in-process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def labeled_file(tmp_path: Path, rows: list[tuple[str, str]]) -> Path:
    """A JSONL file of {"text", "label"} rows."""
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": lbl}) + "\n" for t, lbl in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- 1. the router CLI and router errors
def test_router_cli_evaluate_prints_russian(ru, tmp_path):
    from lessons_lib.router.__main__ import main

    data = labeled_file(tmp_path, [("Give me JSON", "json")])
    code, out, _ = run_cli(main, ["evaluate", "--router", "keyword", "--data", str(data)])
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith("маршрутизатор: keyword   промптов: 1   мс/промпт: ")
    assert lines[-1] == "точность=1.0000"


def test_router_cli_evaluate_english_is_unchanged(en, tmp_path):
    from lessons_lib.router.__main__ import main

    data = labeled_file(tmp_path, [("Give me JSON", "json")])
    code, out, _ = run_cli(main, ["evaluate", "--router", "keyword", "--data", str(data)])
    lines = out.strip().splitlines()
    assert code == 0 and re.fullmatch(r"router: keyword   prompts: 1   ms/prompt: [0-9.]+", lines[0])
    assert lines[-1] == "accuracy=1.0000"


def test_router_cli_errors_are_russian(ru, tmp_path):
    from lessons_lib.router.__main__ import main

    data = labeled_file(tmp_path, [("Напиши стихи", "poetry")])
    code, _, err = run_cli(main, ["evaluate", "--router", "keyword", "--data", str(data)])
    assert code == 2 and err.startswith(f"ошибка: {data}:1: метка 'poetry' неизвестна; известные метки: ")
    code, _, err = run_cli(main, ["evaluate", "--router", "keyword", "--data", str(tmp_path / "нет.jsonl")])
    assert code == 2 and "Нет файла данных" in err and "No data file" not in err


def test_router_cli_train_ngram_prints_russian(ru, tmp_path, monkeypatch):
    from lessons_lib.router import ngram
    from lessons_lib.router.__main__ import main

    rows = [{"text": "json please", "label": lbl} for lbl in ngram.course_labels()]
    router = ngram.NgramRouter.train(rows, ngram.NgramConfig(buckets=2**10, steps=2))
    tried = [{"max_n": 4, "l2": 1e-4, "dev_accuracy": 0.5}]
    monkeypatch.setattr(ngram, "tune", lambda train, dev: ngram.Tuned(router, 0.5, tried))
    code, out, _ = run_cli(main, ["train-ngram", "--out", str(tmp_path / "ngram")])
    lines = out.strip().splitlines()
    assert code == 0 and lines[0] == "max_n=4 l2=0.0001: точность на dev 0.500"
    assert lines[1] == "выбрано: max_n=4 l2=0.0001 порог=0.00"
    assert re.fullmatch(r"точность на dev 0\.500; на отложенной выборке \(один раз\) [0-9.]+", lines[2])
    assert lines[3] == f"сохранено в {tmp_path / 'ngram'}"


def test_router_cli_train_prints_russian(ru, tmp_path, monkeypatch):
    from lessons_lib.router import learned
    from lessons_lib.router.__main__ import main

    def fake_train(profile, folder, steps, seed, learning_rate=None, heldout=None):
        Path(folder).mkdir(parents=True, exist_ok=True)  # the CLI has made it already, checking it is writable
        (Path(folder) / learned.ROUTER_FILE).write_text(json.dumps({"heldout_accuracy": 0.9, "threshold": 0.4}))
        return Path(folder)

    monkeypatch.setattr(learned, "train_and_save", fake_train)
    monkeypatch.setattr("torch.set_num_threads", lambda n: None)
    code, out, _ = run_cli(main, ["train", "--out", str(tmp_path / "router")])
    assert code == 0 and out.splitlines() == [
        "точность на отложенной выборке 0.900 (порог 0.40, выбран на dev)",
        f"сохранено в {tmp_path / 'router'}",
    ]


def _router_errors(tmp_path: Path) -> list[tuple]:
    """(call, exception type, a piece of the English message) for router errors a learner can meet."""
    from lessons_lib.router import KeywordRouter, LearnedRouter, NgramRouter, learned
    from lessons_lib.router.data import read_jsonl, split_rows, training_rows
    from lessons_lib.router.ngram import NgramConfig, tune

    bad_label = labeled_file(tmp_path, [("x", "poetry")])
    model = SimpleNamespace(config=SimpleNamespace(num_labels=3))
    return [
        (lambda: KeywordRouter({}), ValueError, "needs at least one rule"),
        (lambda: KeywordRouter({"json": "json"}), ValueError, "must be a list of keywords"),
        (lambda: KeywordRouter({"json": [" "]}), ValueError, "has no keywords"),
        (lambda: KeywordRouter({"json": ["json"]}, fallback=""), ValueError, "must be a label name"),
        (lambda: NgramConfig(min_n=3, max_n=2), ValueError, "Need 1 <= min_n"),
        (lambda: NgramConfig(buckets=2), ValueError, "must be at least 16"),
        (lambda: NgramConfig(steps=0), ValueError, "Need l2 >= 0"),
        (lambda: NgramRouter.train([]), ValueError, "needs labeled rows"),
        (lambda: NgramRouter.train([{"text": "x", "label": "json"}]), ValueError, "No training rows for labels"),
        (lambda: NgramRouter.load(tmp_path / "none"), FileNotFoundError, "not found: an n-gram router"),
        (lambda: tune([], []), ValueError, "needs non-empty train and dev"),
        (lambda: read_jsonl(bad_label, ["json"]), ValueError, "known labels"),
        (lambda: split_rows([], dev_share=2), ValueError, "is a fraction"),
        (lambda: training_rows(2), ValueError, "must be at least 4"),
        (lambda: LearnedRouter(model, None, threshold=2), ValueError, "must be between 0 and 1"),
        (lambda: LearnedRouter(model, None, ("a", "b")), ValueError, "must be one of the labels"),
        (lambda: LearnedRouter(model, None, ("a", "general")), ValueError, "outputs but"),
        (lambda: learned.fit(None, None, []), ValueError, "No training rows"),
        (lambda: LearnedRouter.load(tmp_path / "none", None), FileNotFoundError, "No router adapter"),
    ]


def test_router_errors_are_russian(ru, tmp_path):
    for call, error, english in _router_errors(tmp_path):
        with pytest.raises(error) as err:
            call()
        assert_russian(str(err.value), english)


def test_router_errors_english_is_unchanged(en, tmp_path):
    for call, error, english in _router_errors(tmp_path):
        with pytest.raises(error, match=re.escape(english)):
            call()


def test_learned_router_counts_outputs_in_russian(ru):
    from lessons_lib.router import LearnedRouter

    model = SimpleNamespace(config=SimpleNamespace(num_labels=2))
    with pytest.raises(ValueError, match=r"^У модели 2 выхода, а меток передано 3\.$"):
        LearnedRouter(model, None, ("a", "b", "general"))


# ---------------------------------------------------------------- 2. mix errors
def _mix_errors() -> list[tuple]:
    """(call, a piece of the English message) for MixError messages, on a stand-in with two loaded adapters."""
    from lessons_lib import mixing

    model = SimpleNamespace(peft_config={"json": None, "support": None})
    request = mixing.check_weighted_request
    return [
        (lambda: mixing.check_weight("json", "1"), "pass a number (e.g. 0.5)"),
        (lambda: mixing.check_weight("json", 9), "pass a finite number from -4 to 4"),
        (lambda: mixing.check_weights(["json"], "1"), "one number per adapter"),
        (lambda: mixing.check_weights(["json", "support"], [1.0]), "2 adapters but 1 weights"),
        (lambda: request(model, ["json"], [1.0], "mix", "nope"), "Unknown combination_type"),
        (lambda: request(model, [], [], "mix", "cat"), "Give at least one adapter to combine."),
        (lambda: request(model, ["coding"], [1.0], "mix", "cat"), "are not loaded"),
        (lambda: mixing.check_runtime_weights(model, [1.0]), "Runtime weights are a dict"),
        (lambda: mixing.check_runtime_weights(model, {"coding": 1.0}), "are not loaded"),
        (lambda: mixing.check_runtime_weights(model, {}), "Give at least one adapter weight."),
        (lambda: mixing.check_runtime_weights(model, {"json": -1.0}), "must be >= 0"),
    ]


def test_mix_errors_are_russian(ru):
    from lessons_lib.mixing import MixError

    for call, english in _mix_errors():
        with pytest.raises(MixError) as err:
            call()
        assert_russian(str(err.value), english)


def test_mix_errors_english_is_unchanged(en):
    from lessons_lib.mixing import MixError

    for call, english in _mix_errors():
        with pytest.raises(MixError, match=re.escape(english)):
            call()


def test_mix_error_wording_in_russian(ru):
    from lessons_lib import mixing

    with pytest.raises(mixing.MixError, match=r"^2 адаптера и 1 вес; задайте по одному весу на адаптер\.$"):
        mixing.check_weights(["json", "support"], [1.0])
    model = SimpleNamespace(peft_config={"json": None})
    with pytest.raises(mixing.MixError) as err:
        mixing.check_weighted_request(model, ["coding"], [1.0], "mix", "cat")
    assert str(err.value) == (
        "Адаптеры ['coding'] не загружены (загружены: ['json']); сначала загрузите их через "
        "model.load_adapter(folder, adapter_name=...)."
    )


def test_checkpoint_merge_refusal_is_russian(ru, tmp_path):
    from lessons_lib import mixing
    from lessons_lib.profiles import PROFILES

    folder = tmp_path / "dora"
    shutil.copytree(TINY_ADAPTERS_DIR / "json", folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(mixing.MixError) as err:
        mixing.lora_updates(folder)
    assert_russian(str(err.value), "handles plain LoRA only")
    with pytest.raises(ValueError, match="Укажите хотя бы одну папку адаптера"):
        mixing.merge_for_deployment(PROFILES["tiny"], {}, tmp_path / "out")


# ---------------------------------------------------------------- 3. the teacher-kit summary
def test_teacher_kit_summary_is_russian(ru, tmp_path):
    from lessons_lib.quiz.__main__ import kit_summary

    text = kit_summary(12, tmp_path / "kit", ["01", "04"], ("ru",), 0, tmp_path / "absent.json")
    assert text.splitlines() == [
        f"набор преподавателя: 12 файлов в {tmp_path / 'kit'} для ноутбуков 01, 04 (ru)",
        f"время прогона на профиле tiny: измерено для 0 из 2 ноутбуков ({tmp_path / 'absent.json'} не найден: "
        "сначала выполните `python -m lessons_lib.course run`)",
        f"откройте {tmp_path / 'kit' / 'index.html'}",
    ]
    one = kit_summary(1, tmp_path, ["01"], ("en", "ru"), 1, None).splitlines()
    assert one[0].startswith("набор преподавателя: 1 файл в ") and one[0].endswith("для ноутбука 01 (en, ru)")
    assert one[1] == "время прогона на профиле tiny: измерено для 1 из 1 ноутбука"


def test_teacher_kit_summary_english_is_unchanged(en, tmp_path):
    from lessons_lib.quiz.__main__ import kit_summary

    text = kit_summary(12, tmp_path / "kit", ["01", "04"], ("en", "ru"), 2, tmp_path / "s.json")
    assert text.splitlines() == [
        f"teacher kit: 12 files in {tmp_path / 'kit'} for notebooks 01, 04 (en, ru)",
        "tiny-profile run times: 2 of 2 notebooks measured",
        f"open {tmp_path / 'kit' / 'index.html'}",
    ]


def test_teacher_kit_cli_prints_the_russian_summary(ru, tmp_path):
    from lessons_lib.quiz.__main__ import main

    argv = ["teacher-kit", "--out", str(tmp_path / "kit"), "--lang", "ru", "--only", "01"]
    code, out, _ = run_cli(main, [*argv, "--summary", str(tmp_path / "absent.json")])
    assert code == 0 and out.startswith("набор преподавателя: 8 файлов в ") and "teacher kit" not in out


# ---------------------------------------------------------------- 4. the data-file reader
@pytest.mark.parametrize(
    "content, english",
    [
        (b'{"a": 1}\n[1]\n', "must be a row object"),
        (b"\n\n", "has no rows"),
        (b'{"a": "caf\xe9"}\n', "is not UTF-8"),
        (b"[" * 70 + b"]" * 70 + b"\n", "nests deeper than"),
        (b'{"a": \n', "is not valid JSON"),
        (b'{"a": "\\ud800"}\n', "unpaired UTF-16 surrogate"),
    ],
    ids=["not-object", "no-rows", "not-utf8", "too-deep", "bad-json", "surrogate"],
)
def test_data_file_errors_are_russian(ru, tmp_path, content, english):
    from lessons_lib.jsonl import DataFileError, read_objects

    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataFileError) as err:
        read_objects(path, "row")
    assert_russian(str(err.value), english)
    assert str(path) in str(err.value)


def test_missing_data_file_is_russian(ru, tmp_path):
    from lessons_lib.jsonl import read_objects

    with pytest.raises(FileNotFoundError) as err:
        read_objects(tmp_path / "missing.jsonl", "row")
    assert str(err.value) == (
        f"Нет файла данных {tmp_path / 'missing.jsonl'}. Укажите файл JSONL, в каждой строке которого один объект row."
    )


# ---------------------------------------------------------------- 5. the tool adapter's training line
@pytest.mark.parametrize(
    "steps, seconds, lang, expected",
    [
        (200, 31.4, "en", "200 steps in 31s"),
        (1, 0.4, "en", "1 step in 0s"),
        (200, 31.4, "ru", "200 шагов за 31 с"),
        (1, 0.2, "ru", "1 шаг за 0 с"),
        (3, 2.0, "ru", "3 шага за 2 с"),
    ],
)
def test_tool_training_steps_line(monkeypatch, steps, seconds, lang, expected):
    from lessons_lib.tools.adapter import steps_in

    monkeypatch.setenv("LESSONS_LANG", lang)
    assert steps_in(steps, seconds) == expected


def test_tool_adapter_build_logs_russian_steps(ru, tmp_path, monkeypatch):
    from lessons_lib.tools import adapter

    def fake_train(profile, scratch, **kwargs):
        Path(scratch).mkdir(parents=True)
        trained.append(kwargs["warm_steps"])
        return SimpleNamespace(steps=120, seconds=42.0)

    trained, shipped = [], []
    monkeypatch.setattr(adapter, "train_tool_adapter", fake_train)
    monkeypatch.setattr(adapter, "ship_tool_adapter", lambda *args, **kwargs: shipped.append(kwargs) or {})
    said = []
    adapter.build_tool_adapter(tmp_path / "tools", steps=120, log=said.append)
    assert said == [
        "tools: разогрев на вызовах content_validator, template_generator (50 шагов), затем 120 шагов на всей смеси",
        "tools: 120 шагов за 42 с",
    ]
    assert trained == [50] and shipped == [{"warm_steps": 50}]  # 900 before 2160, in proportion; the manifest says so
    adapter.build_tool_adapter(tmp_path / "tools", steps=1, log=said.append, warm_steps=0)
    assert said[2] == "tools: 1 шаг на всей смеси, без разогрева"


# ---------------------------------------------------------------- 6. the adapter-folder check
@pytest.mark.parametrize(
    "damage, english, russian",
    [
        (lambda f: (f / "adapter_config.json").unlink(), "is missing", "adapter_config.json отсутствует"),
        (lambda f: (f / "adapter_config.json").write_text('{"r'), "not valid JSON", "adapter_config.json — невалидный"),
        (lambda f: (f / "adapter_config.json").write_text("[1]"), "is not a JSON object", "— не объект JSON"),
        (lambda f: (f / "adapter_model.safetensors").write_bytes(b""), "is empty", "safetensors пуст, обрезан"),
    ],
    ids=["no-config", "config-cut", "config-list", "weights-empty"],
)
def test_adapter_folder_problems_in_both_languages(monkeypatch, tmp_path, damage, english, russian):
    from lessons_lib.adapters import adapter_problem
    from lessons_lib.train import checkpoint_problem

    checkpoint = tmp_path / "checkpoint-2"
    shutil.copytree(TINY_ADAPTERS_DIR / "json", checkpoint / "json")
    damage(checkpoint / "json")
    monkeypatch.delenv("LESSONS_LANG", raising=False)
    assert english in adapter_problem(checkpoint / "json")
    assert checkpoint_problem(checkpoint).startswith("json/adapter_")  # the same check, named inside the checkpoint
    monkeypatch.setenv("LESSONS_LANG", "ru")
    assert russian in adapter_problem(checkpoint / "json") and english not in adapter_problem(checkpoint / "json")
    assert russian in checkpoint_problem(checkpoint)


def test_a_skipped_damaged_copy_is_one_language(ru, tmp_path, monkeypatch):
    from lessons_lib import adapters
    from lessons_lib.profiles import get_profile

    monkeypatch.setattr(adapters, "DRIVE_MOUNT", tmp_path / "not-mounted")
    folder = tmp_path / "wd" / "adapters" / "json"
    shutil.copytree(TINY_ADAPTERS_DIR / "json", folder)
    (folder / "adapter_config.json").unlink()
    said = []
    assert adapters.find_artifact("json", get_profile("t4-rehearsal"), tmp_path / "wd", log=said.append) is None
    assert "adapter_config.json отсутствует" in said[0] and "missing" not in said[0]


def test_checkpoint_problems_are_russian(ru, tmp_path):
    from lessons_lib.train import checkpoint_problem

    checkpoint = tmp_path / "checkpoint-2"
    checkpoint.mkdir()
    assert checkpoint_problem(checkpoint) == "нет adapter_model.safetensors"
    shutil.copytree(TINY_ADAPTERS_DIR / "json", checkpoint / "json")
    assert checkpoint_problem(checkpoint) == "нет optimizer.pt"


# ---------------------------------------------------------------- 7. quiz 06 states what notebook 06 measures
def test_quiz_06_counts_the_concurrent_requests_notebook_06_sends():
    source = (REPO_DIR / "notebooks" / "src" / "06_deploy.py").read_text(encoding="utf-8")
    sent = re.search(r"Now (\d+) requests spread over .*?all at once\*\* from (\d+) threads", source, re.S)
    assert sent and sent.group(1) == sent.group(2), "notebook 06 no longer says how many requests it sends"
    bank = json.loads((REPO_DIR / "assets" / "quizzes" / "06.json").read_text(encoding="utf-8"))
    text = json.dumps(bank, ensure_ascii=False)
    said_en = re.findall(r"(\d+) concurrent requests", text)
    said_ru = re.findall(r"(\d+) одновременн\w+ запрос", text)
    assert said_en and said_ru and set(said_en) == set(said_ru) == {sent.group(1)}, (said_en, said_ru)


@pytest.mark.parametrize(
    "call, english, russian",
    [
        (lambda data: data.tool_examples(3, "valid"), "Unknown split 'valid'", "Неизвестная часть данных 'valid'"),
        (lambda data: data.tool_examples(-2), "n must be >= 0 (the number of requests to make), got -2", "получено -2"),
        (
            lambda data: data.tool_sft_rows(3, tools=["validator"]),
            "Unknown tools ['validator']: choose among",
            "Неизвестные инструменты ['validator']: выберите из",
        ),
    ],
)
@pytest.mark.parametrize("lang", ["en", "ru"])
def test_tool_data_argument_errors_in_both_languages(monkeypatch, lang, call, english, russian):
    from lessons_lib.tools import data

    monkeypatch.setenv("LESSONS_LANG", lang)
    with pytest.raises(ValueError) as caught:
        call(data)
    if lang == "en":
        assert english in str(caught.value)
    else:
        assert russian in str(caught.value)
        assert_russian(str(caught.value), english)
