"""Composition files in the Russian edition: under LESSONS_LANG=ru every mistake in the file is said in Russian (the
problem, the fix and the frame "FILE, строка N: key: ..."), with the same file, line, key and values; in English
each message is exactly what it was. Also: the static scan that keeps every CompositionError message behind tr,
the serve CLI's one `ошибка:` line for a bad --config file, and the profile's reason in Russian in the lesson's
setup table and in the server's loading line (no model is loaded).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from test_composition import BASE, adapter_table, write
from test_russian_errors_generation import refusal as error_message
from test_serve_cli_bad_input import no_loading, one_error_line, run_cli  # noqa: F401 - no_loading is a fixture used by name
from test_serve_russian import CYRILLIC, ENGLISH_PROSE, untranslated

from lessons_lib.paths import REPO_DIR
from lessons_lib.profiles import PROFILES, choose_profile, reason_text
from lessons_lib.serve.composition import CompositionError, load_composition
from lessons_lib.serve.process import free_port

COMPOSITION_PY = REPO_DIR / "lessons_lib" / "serve" / "composition.py"
ENGLISH_ONLY_COMMIT = "bf37ba5217c5383d3b1b84ebf484e09e67e9a85a"  # composition.py before its Russian messages


def refusal(path: Path, lang: str | None) -> str:
    """The CompositionError message for the file at `path`, with $LESSONS_LANG set to `lang` (None: unset)."""
    return error_message(lambda: load_composition(path), CompositionError, lang)


# (id, file text, where: the line and key after the file name, the English after `where` (None: not pinned), phrases
# of the Russian message, values both messages keep as they are)
PROFILE_NAMES = ", ".join(PROFILES)
CASES = [
    (
        "weight-type",
        BASE + adapter_table(weight='"1"'),
        ", line 5: adapters.json.weight: ",
        "'1' is not a number. Write the adapter's weight (1 = as trained, 0 = off), e.g. 1.0 (no quotes)",
        ("не число", "вес адаптера", "без кавычек"),
        ("'1'", "1.0"),
    ),
    (
        "weight-range",
        BASE + adapter_table(weight=2.5),
        ", line 5: adapters.json.weight: ",
        "2.5 is out of range. Use the adapter's weight (1 = as trained, 0 = off): a number from 0 up to 2",
        ("вне допустимого диапазона", "число от 0 до 2"),
        ("2.5",),
    ),
    (
        "mix-weight-zero",
        BASE + adapter_table() + "[mixes]\nm = { json = 0 }\n",
        ", line 6: mixes.m.json: ",
        "0 is out of range. Use a mix weight (remove the entry to leave the adapter out): a number greater than 0 "
        "and up to 2",
        ("вне допустимого диапазона", "вес в смеси", "число больше 0 и не больше 2"),
        (),
    ),
    (
        "unknown-profile",
        '[base]\nprofile = "t5"\n',
        ", line 2: base.profile: ",
        f"unknown profile 't5'. Use one of {PROFILE_NAMES}",
        ("неизвестный профиль",),
        ("'t5'", PROFILE_NAMES),
    ),
    (
        "missing-base",
        "[server]\nport = 1\n",
        ": base: ",
        'missing. Add a [base] table with profile = "tiny" (or t4, 7b, ...)',
        ("отсутствует", "Добавьте таблицу"),
        ("[base]", 'profile = "tiny"'),
    ),
    (
        "bad-adapter-name",
        BASE + '[adapters."a.b"]\npath = "x"\n',
        ": adapters.a.b: ",
        None,
        ("недопустимое имя адаптера", "Имя адаптера 'a.b' недопустимо"),
        ("'a.b'",),
    ),
    (
        "bad-mix-name",
        BASE + adapter_table() + '[mixes]\n"a b" = { json = 1 }\n',
        ", line 6: mixes.a b: ",
        None,
        ("недопустимое имя смеси", "Имя смеси 'a b' недопустимо"),
        ("'a b'",),
    ),
    (
        "mix-of-no-adapter",
        BASE + adapter_table() + "[mixes]\nm = {}\n",
        ", line 6: mixes.m: ",
        "the mix names no adapter. List at least one adapter with its weight",
        ("в смеси не указан ни один адаптер",),
        (),
    ),
    (
        "mix-of-an-unknown-adapter",
        BASE + adapter_table() + "[mixes]\nm = { json = 1.0, nope = 0.5 }\n",
        ", line 6: mixes.m.nope: ",
        "unknown adapter 'nope'. A mix combines the composition's adapters: json",
        ("неизвестный адаптер",),
        ("'nope'", ": json"),
    ),
    (
        "unknown-router",
        BASE + "[router]\nkind = 'smart'\n",
        ", line 4: router.kind: ",
        "unknown router 'smart'. Use one of keyword, learned, embedding, ngram, none (or leave out [router] to serve "
        "without `auto`)",
        ("неизвестный маршрутизатор",),
        ("'smart'", "keyword, learned, embedding, ngram, none", "[router]", "`auto`"),
    ),
    (
        "unknown-section",
        BASE + "[sever]\nport = 1\n",
        ", line 3: sever: ",
        "unknown key. Allowed here: base, adapters, mixes, router, server (check the spelling; a key that is not "
        "understood is never ignored)",
        ("неизвестный ключ", "Здесь допустимы"),
        ("base, adapters, mixes, router, server",),
    ),
    (
        "path-and-hub",
        BASE + adapter_table(hub='"owner/repo"'),
        ", line 3: adapters.json: ",
        'needs exactly one of path or hub. Write path = "folder" (relative to this file) or hub = "owner/repo"',
        ("ровно один",),
        ('path = "folder"', 'hub = "owner/repo"'),
    ),
    (
        "precision",
        BASE + adapter_table(precision='"fp8"'),
        ", line 5: adapters.json.precision: ",
        "unknown precision 'fp8'. Use one of fp32, fp16, bf16, as one string: precision = \"fp16\"",
        ("неизвестная точность",),
        ("'fp8'", "fp32, fp16, bf16", 'precision = "fp16"'),
    ),
    (
        "port",
        BASE + "[server]\nport = 70000\n",
        ", line 4: server.port: ",
        "70000 is not a whole number from 1 to 65535. Fix the value",
        ("не целое число от 1 до 65535", "Исправьте значение"),
        ("70000",),
    ),
    (
        "host",
        BASE + "[server]\nhost = 5\n",
        ", line 4: server.host: ",
        'expected a non-empty string, got 5. Write e.g. "127.0.0.1"',
        ("ожидалась непустая строка",),
        ('"127.0.0.1"',),
    ),
    (
        "base-not-a-table",
        "base = 5\n",
        ", line 1: base: ",
        'expected a table, got int 5. Write it as profile = "tiny"',
        ("ожидалась таблица",),
        ("int 5", 'profile = "tiny"'),
    ),
]


@pytest.mark.parametrize(("case_id", "text", "where", "english", "russian", "kept"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_file_is_russian_under_ru_and_unchanged_in_english(
    tmp_path, case_id, text, where, english, russian, kept
):
    path = write(tmp_path, text).resolve()
    en, ru = refusal(path, None), refusal(path, "ru")
    head = f"{path}{where}"
    assert en.startswith(head), en
    if english is not None:
        assert en == head + english
    assert ru.startswith(head.replace(", line ", ", строка ")), ru
    assert all(phrase in ru for phrase in russian), ru
    words = ru.removeprefix(str(path))
    assert CYRILLIC.search(words) and not ENGLISH_PROSE.search(words), ru
    for value in kept:
        assert value in en and value in ru, (value, ru)


def test_a_toml_syntax_error_is_russian_around_tomllibs_own_words(tmp_path):
    path = write(tmp_path, BASE + "[adapters.json\npath = 'x'\n")
    en, ru = refusal(path, None), refusal(path, "ru")
    library = re.search(r"not valid TOML \((.*)\)\. Fix", en)[1]  # tomllib's message, in English in both
    assert en == (
        f"{path}: not valid TOML ({library}). Fix the syntax there: strings in quotes, tables as [name], one "
        "key = value per line."
    )
    assert ru.startswith(f"{path}: некорректный TOML ({library}). ") and "[name]" in ru and "key = value" in ru
    words = ru.replace(library, "")
    assert CYRILLIC.search(words) and not ENGLISH_PROSE.search(words), ru


def test_missing_folder_yaml_and_non_utf8_files_are_russian(tmp_path):
    write(tmp_path, BASE, "mine.toml")
    yaml = write(tmp_path, "base: {profile: tiny}\n", "c.yaml")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(BASE.encode() + b"# caf\xe9\n")
    missing = tmp_path / "nope.toml"
    english = {
        missing: f"Composition file {missing} does not exist. Pass a TOML file, e.g. assets/compositions/course.toml "
        "(copy it and edit).",
        tmp_path: f"{tmp_path} is a folder, not a composition file. It holds latin.toml, mine.toml. Name a .toml "
        f"file, e.g. {tmp_path / 'latin.toml'}.",
        yaml: f"{yaml}: a composition file is TOML (.toml); got '.yaml'. Write it as TOML like "
        "assets/compositions/course.toml.",
        latin: f"{latin}, line 3: byte b'\\xe9' is not UTF-8 text. Save the file as UTF-8 (TOML files are UTF-8), or "
        "retype the characters on that line.",
    }
    russian = {
        missing: (f"Файла композиции {missing} нет", "assets/compositions/course.toml"),
        tmp_path: (f"{tmp_path} — это папка", "latin.toml, mine.toml", str(tmp_path / "latin.toml")),
        yaml: (f"{yaml}: ", "'.yaml'", "assets/compositions/course.toml"),
        latin: (f"{latin}, строка 3: байт b'\\xe9'", "UTF-8"),
    }
    for path, message in english.items():
        assert refusal(path, None) == message
        ru = refusal(path, "ru")
        assert all(text in ru for text in russian[path]), ru
        assert CYRILLIC.search(ru) and not ENGLISH_PROSE.search(ru), ru


# ---------------------------------------------------------------- every CompositionError message goes through tr
def test_every_composition_error_message_goes_through_tr():
    calls, found = untranslated(COMPOSITION_PY.read_text(encoding="utf-8"))
    assert calls >= 11, calls  # the scan sees composition's errors: check.error's frame and the direct raises
    assert found == [], found


def test_the_scan_flags_the_english_only_composition_file():
    """The scan above can fail: on composition.py as it was before the Russian edition it finds the English."""
    old = subprocess.run(
        ["git", "show", f"{ENGLISH_ONLY_COMMIT}:lessons_lib/serve/composition.py"],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
    )
    if old.returncode != 0:
        pytest.skip(f"this checkout has no git history with {ENGLISH_ONLY_COMMIT[:7]}: {old.stderr.strip()}")
    calls, found = untranslated(old.stdout)
    assert calls >= 11, calls
    texts = " | ".join(found)
    for english in (
        "unknown key",  # check.error's problem
        "(check the spelling; a key that is not understood is never ignored)",  # its fix
        "the adapter's weight (1 = as trained, 0 = off)",  # check.number's `what`, from its caller
        "Write the adapter folder as a string",  # check.string's fix, from its caller
        "needs exactly one of path or hub",
        "unknown router ",
        "the mix names no adapter",
        " does not exist. Pass a TOML file",  # a direct raise
        "no LoRA layer holds this adapter",
        'the composition declares no router (add [router] kind = "keyword")',  # a tuple assignment
    ):
        assert english in texts, english
    assert len(found) > 50, len(found)


# ---------------------------------------------------------------- the serve command line
@pytest.mark.usefixtures("no_loading")
def test_serve_config_with_a_bad_file_prints_one_russian_error_line(monkeypatch, tmp_path):
    path = write(tmp_path, BASE + adapter_table(weight=3)).resolve()
    port = str(free_port())
    monkeypatch.delenv("LESSONS_LANG", raising=False)
    result = run_cli("--config", str(path), "--port", port)
    assert result.returncode == 2
    assert one_error_line(result) == (
        f"error: {path}, line 5: adapters.json.weight: 3 is out of range. Use the adapter's weight (1 = as trained, "
        "0 = off): a number from 0 up to 2"
    )
    monkeypatch.setenv("LESSONS_LANG", "ru")
    result = run_cli("--config", str(path), "--port", port)
    assert result.returncode == 2
    line = one_error_line(result)
    assert line.startswith(f"ошибка: {path}, строка 5: adapters.json.weight: 3 вне допустимого диапазона. "), line
    assert "от 0 до 2" in line and not ENGLISH_PROSE.search(line.removeprefix(f"ошибка: {path}")), line


# ---------------------------------------------------------------- the profile's reason
@pytest.mark.parametrize(
    ("requested", "from_env", "cuda", "english", "russian"),
    [
        ("tiny", "", False, "asked for in the notebook's parameters cell", "задан в ячейке параметров ноутбука"),
        (None, "tiny", False, "set by $LESSONS_PROFILE", "задан через $LESSONS_PROFILE"),
        (None, "", True, "a CUDA GPU is present", "есть GPU с CUDA"),
        (
            None,
            "",
            False,
            "no CUDA GPU: the offline tiny model runs on CPU",
            "нет GPU с CUDA: офлайн-модель tiny работает на CPU",
        ),
    ],
    ids=["asked", "environment", "gpu", "cpu"],
)
def test_every_reason_of_choose_profile_has_its_russian_text(monkeypatch, requested, from_env, cuda, english, russian):
    monkeypatch.setenv("LESSONS_PROFILE", from_env)
    monkeypatch.setattr("lessons_lib.env.cuda_available", lambda: cuda)
    _, reason = choose_profile(requested)
    assert reason == english  # choose_profile's reason stays English: the text shown is reason_text's
    monkeypatch.delenv("LESSONS_LANG", raising=False)
    assert reason_text(reason) == english
    monkeypatch.setenv("LESSONS_LANG", "ru")
    assert reason_text(reason) == russian


def test_the_lesson_table_shows_the_reason_in_russian(monkeypatch, tmp_path):
    from lessons_lib.lesson import Lesson

    monkeypatch.setenv("LESSONS_PROFILE", "tiny")
    profile, reason = choose_profile()
    lesson = Lesson("06_serving", profile, reason, "cpu", "float32", False, tmp_path, None)
    monkeypatch.delenv("LESSONS_LANG", raising=False)
    assert ("profile", "tiny (set by $LESSONS_PROFILE)") in lesson.summary_rows()
    monkeypatch.setenv("LESSONS_LANG", "ru")
    assert ("профиль", "tiny (задан через $LESSONS_PROFILE)") in lesson.summary_rows()


def test_the_servers_loading_line_shows_the_reason_in_russian(monkeypatch):
    from lessons_lib.serve.loading import ServeOptionError

    def stop(*args, **kwargs):
        raise ServeOptionError("stopped before loading")

    monkeypatch.setattr("lessons_lib.serve.loading.load_served_model", stop)
    monkeypatch.setenv("LESSONS_PROFILE", "tiny")
    port = str(free_port())
    monkeypatch.delenv("LESSONS_LANG", raising=False)
    english = run_cli("--port", port)
    assert english.returncode == 2, english
    assert english.stdout.startswith("profile tiny (set by $LESSONS_PROFILE); loading "), english.stdout
    monkeypatch.setenv("LESSONS_LANG", "ru")
    russian = run_cli("--port", port)
    assert russian.returncode == 2, russian
    assert russian.stdout.startswith("профиль tiny (задан через $LESSONS_PROFILE); загружается "), russian.stdout
