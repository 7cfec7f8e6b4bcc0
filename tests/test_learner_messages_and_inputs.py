"""Library defects found by probes: Russian messages, the FineTome file reader, manifests, quiz CLI, profiles, store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lessons_lib import storage
from lessons_lib.jsonl import DataFileError
from lessons_lib.manifest import Manifest
from lessons_lib.paths import TINY_ADAPTERS_DIR
from lessons_lib.sharegpt import Conversion, load_finetome, sharegpt_to_messages

GOOD = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}


def has_cyrillic(text: str) -> bool:
    return any("а" <= ch.lower() <= "я" for ch in text)


# ---------------------------------------------------------------- 1. Russian edition
def test_sharegpt_summary_is_russian_in_the_russian_edition(ru):
    text = Conversion([[{}], [{}]], [(1, "x")]).summary()
    assert text.startswith("2 диалога преобразовано, 1 пропущен; первая пропущенная: строка 1")
    assert "converted" not in text


def test_sharegpt_summary_english_is_unchanged(monkeypatch):
    monkeypatch.delenv("LESSONS_LANG", raising=False)
    assert Conversion([[{}], [{}]], [(1, "x")]).summary() == (
        "2 conversations converted, 1 skipped; first skipped: row 1 (x)"
    )


def test_crosstalk_summary_is_one_language(ru):
    from lessons_lib.serve.crosstalk import cross_talk_report

    refs = {("p", "a"): "A", ("p", "b"): "B"}
    text = cross_talk_report(["A", "B"], ["p", "p"], ["a", "a"], refs).summary()
    assert "same as" not in text and "cross-talk" not in text and "перекрёстные помехи" in text
    assert text.startswith("1/2 совпадают с ответом своего адаптера, 1 — ответ другого адаптера")


def test_client_footer_is_russian(ru, monkeypatch, capsys):
    from types import SimpleNamespace

    from lessons_lib.serve import client

    reply = client.Reply("ok", "coding", 12.0, {"reason": "r"}, {})
    monkeypatch.setattr(client, "ask", lambda *a, **k: reply)
    args = SimpleNamespace(prompt="p", adapter="auto", url="u", max_tokens=None, stream=False)
    assert client.main(args) == 0
    out = capsys.readouterr().out
    assert "-- ответил coding за 12 мс (маршрутизатор: r)" in out and "answered by" not in out


def test_store_refusal_is_russian(ru, tmp_path):
    store = storage.local_store(tmp_path / "store")
    manifest = Manifest.load(TINY_ADAPTERS_DIR / "json")
    storage.save_adapter(TINY_ADAPTERS_DIR / "json", "json", store, manifest)
    with pytest.raises(FileExistsError) as err:
        storage.save_adapter(TINY_ADAPTERS_DIR / "json", "json", store, manifest)
    assert str(err.value).startswith("Адаптер с именем 'json' уже есть") and "overwrite=True" in str(err.value)


def test_mixing_notes_are_russian(ru, monkeypatch, tmp_path):
    from lessons_lib import mixing
    from lessons_lib.profiles import PROFILES

    monkeypatch.setattr(mixing, "merge_checkpoint", lambda *a, **k: None)  # the note, not the minutes of merging
    dtype, notes = mixing._merge_streamed(
        PROFILES["tiny"], {"json": TINY_ADAPTERS_DIR / "json"}, tmp_path, None, None, "cat", print
    )
    assert notes == [f"слияние выполнено пофайлово на CPU в {dtype} (fp16-копия базовой модели не помещается в GPU)"]


def test_router_progress_label_and_log_are_russian(ru, monkeypatch):
    import torch

    from lessons_lib.router import learned

    seen, logged = [], []

    def fake_tqdm(iterable, desc="", disable=False):
        seen.append(desc)
        return iter([0])

    monkeypatch.setattr("tqdm.tqdm", fake_tqdm)

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(1, 2)

        def forward(self, input_ids, attention_mask=None, labels=None):
            logits = self.head(input_ids.float()[:, :1])
            return type("Out", (), {"loss": torch.nn.functional.cross_entropy(logits, labels)})()

    class Tok:
        def __call__(self, texts, **kwargs):
            return {"input_ids": torch.ones(len(texts), 1, dtype=torch.long)}

    monkeypatch.setattr(learned, "encode_batch", lambda tok, texts, device: {"input_ids": torch.ones(len(texts), 1)})
    rows = [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
    learned.fit(Tiny(), Tok(), rows, labels=("x", "y"), steps=1, batch_size=2, log=logged.append, progress=True)
    assert seen == ["обучение маршрутизатора"] and logged[0].startswith("шаг    0  loss ")


# ---------------------------------------------------------------- 2. the FineTome file reader
def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines))
    return path


def test_truncated_last_line_names_file_and_line(tmp_path):
    path = write_lines(tmp_path / "ft.jsonl", [json.dumps(GOOD).encode()] * 2 + [b'{"conversations": [{"fr'])
    with pytest.raises(DataFileError, match=r"ft\.jsonl:3 is not valid JSON"):
        load_finetome(5, path=path, on_error="raise")
    usable, conv = load_finetome(5, path=path)  # skip: the damaged line is reported, the rest is used
    assert len(usable) == 2 and conv.skipped[0][0] == 2 and "ft.jsonl:3" in conv.skipped[0][1]


def test_non_utf8_byte_names_file_line_and_column(tmp_path):
    path = write_lines(tmp_path / "ft.jsonl", [json.dumps(GOOD).encode(), b'{"x": "caf\xe9"}'])
    with pytest.raises(DataFileError, match=r"ft\.jsonl:2:11 is not UTF-8.*Save"):
        load_finetome(5, path=path, on_error="raise")
    usable, conv = load_finetome(5, path=path, on_error="skip")
    assert len(usable) == 1 and "ft.jsonl:2:11 is not UTF-8" in conv.skipped[0][1]


def test_local_reader_stops_after_n_rows_and_reads_json_arrays(tmp_path):
    path = write_lines(tmp_path / "ft.jsonl", [json.dumps(GOOD).encode()] * 2 + [b"broken"])
    assert len(load_finetome(2, path=path, on_error="raise")[0]) == 2  # the damaged third line is never read
    array = tmp_path / "ft.json"
    array.write_text(json.dumps([GOOD] * 3), encoding="utf-8")
    assert len(load_finetome(2, path=array)[0]) == 2
    with pytest.raises(FileNotFoundError, match="No data file at"):
        load_finetome(2, path=tmp_path / "missing.jsonl")


def test_unhashable_role_is_skipped_not_a_type_error():
    row = {"conversations": [{"from": ["human"], "value": "Hi"}, {"from": "gpt", "value": "x"}]}
    conv = sharegpt_to_messages([GOOD, row], on_error="skip")
    assert len(conv.messages) == 1 and "unknown role ['human']" in conv.skipped[0][1]


# ---------------------------------------------------------------- 3. manifests
@pytest.mark.parametrize(
    "content, problem",
    [
        (b'{"name": "json"}', r"lacks the field\(s\) base_model, base_fingerprint, profile"),
        (b"[1, 2]", "holds a JSON list"),
        (b'{"name": "\xff"}', r"is not UTF-8 text \(byte b'\\xff'"),
        (b'{"name": 3, "base_model": "b", "base_fingerprint": "f", "profile": "tiny"}', "must be text"),
    ],
)
def test_broken_manifest_is_a_value_error_naming_the_path(tmp_path, content, problem):
    (tmp_path / "manifest.json").write_bytes(content)
    with pytest.raises(ValueError, match=problem) as err:
        Manifest.load(tmp_path)
    assert str(tmp_path / "manifest.json") in str(err.value) and "re-save the adapter" in str(err.value)


def test_read_manifest_of_a_stored_adapter_with_a_broken_manifest(tmp_path):
    store = storage.local_store(tmp_path)
    storage.save_adapter(TINY_ADAPTERS_DIR / "json", "json", store, Manifest.load(TINY_ADAPTERS_DIR / "json"))
    (tmp_path / "json" / "manifest.json").write_text('{"name": "json"}', encoding="utf-8")
    with pytest.raises(ValueError, match="lacks the field"):
        storage.read_manifest("json", store)


def test_manifest_with_bom_loads(tmp_path):
    good = (TINY_ADAPTERS_DIR / "json" / "manifest.json").read_bytes()
    (tmp_path / "manifest.json").write_bytes(b"\xef\xbb\xbf" + good)
    assert Manifest.load(tmp_path).name == Manifest.load(TINY_ADAPTERS_DIR / "json").name


# ---------------------------------------------------------------- 4. quiz
def quiz_cli(*argv: str) -> tuple[int, str, str]:
    import contextlib
    import io

    from lessons_lib.quiz.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_quiz_show_with_an_unknown_language_is_one_error_line():
    code, out, err = quiz_cli("show", "01", "--lang", "de")
    assert code == 2 and err.startswith("error: Unknown language 'de'") and err.count("\n") == 1


def test_teacher_kit_into_an_unwritable_folder_is_one_error_line(tmp_path, monkeypatch):
    from lessons_lib.quiz import teacher_kit

    def refuse(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(teacher_kit.Path, "mkdir", refuse)
    code, out, err = quiz_cli("teacher-kit", "--out", str(tmp_path / "kit"), "--only", "01")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: cannot write {tmp_path / 'kit'} (Permission denied)") and "--out" in err


@pytest.mark.parametrize("notebook", ["1.5", [1], 1.0, True, "x", "123"])
def test_a_non_number_notebook_is_refused_with_the_existing_numbers(notebook):
    from lessons_lib.quiz.bank import BankError, available_notebooks, load_bank

    with pytest.raises(BankError, match="notebooks with a quiz: 01") as err:
        load_bank(notebook)
    assert ", ".join(available_notebooks()) in str(err.value)


def test_a_missing_notebook_number_lists_the_existing_ones():
    from lessons_lib.quiz.bank import BankError, load_bank

    with pytest.raises(BankError, match=r"99\.json: quiz bank not found.*Notebooks with a quiz: 01"):
        load_bank(99)
    code, _, err = quiz_cli("show", "1.5")
    assert code == 2 and "not a notebook number" in err


def test_bank_encodings(tmp_path):
    from lessons_lib.paths import QUIZ_DIR
    from lessons_lib.quiz.bank import BankError, load_bank

    good = (QUIZ_DIR / "01.json").read_bytes()
    (tmp_path / "01.json").write_bytes(b"\xef\xbb\xbf" + good)
    assert load_bank("01", tmp_path).notebook == "01"  # a BOM is accepted
    (tmp_path / "01.json").write_bytes(good.replace(b"{", b"{\xff", 1))
    with pytest.raises(BankError, match=r"01\.json: line 1 is not UTF-8.*Save the bank as UTF-8"):
        load_bank("01", tmp_path)


# ---------------------------------------------------------------- 5. profiles, router, store
@pytest.mark.parametrize("bad, error", [(None, TypeError), (3, TypeError), ("tiny2", ValueError)])
def test_get_profile_refuses_with_valid_names(bad, error):
    from lessons_lib.profiles import PROFILES, get_profile

    with pytest.raises(error, match=", ".join(PROFILES)):
        get_profile(bad)


@pytest.mark.parametrize("kind", ["ngram", "keyword"])
def test_router_checks_the_profile_for_every_kind(kind):
    from lessons_lib.router import load_router

    with pytest.raises(ValueError, match="Unknown profile 'tiny2'"):
        load_router(kind, "tiny2")
    assert load_router("keyword", "tiny").route("Give me JSON").label


def test_router_cli_refuses_an_unknown_profile(capsys, tmp_path):
    from lessons_lib.router.__main__ import main

    data = tmp_path / "rows.jsonl"
    data.write_text('{"text": "Give me JSON", "label": "json"}\n', encoding="utf-8")
    code = main(["evaluate", "--router", "keyword", "--profile", "tiny2", "--data", str(data)])
    assert code != 0 and "Unknown profile 'tiny2'" in capsys.readouterr().err


def test_a_non_string_adapter_name_is_called_that(tmp_path):
    from lessons_lib.compat import AdapterNameError

    store = storage.local_store(tmp_path)
    with pytest.raises(AdapterNameError, match="must be a string") as err:
        storage.save_adapter(TINY_ADAPTERS_DIR / "json", 3, store, Manifest.load(TINY_ADAPTERS_DIR / "json"))
    assert "empty" not in str(err.value)


def test_saving_into_an_unwritable_store_names_the_folder(tmp_path, monkeypatch):
    store = storage.local_store(tmp_path / "store")
    manifest = Manifest.load(TINY_ADAPTERS_DIR / "json")

    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(storage.StorageError, match="Cannot write into the adapter store folder") as err:
        storage.save_adapter(TINY_ADAPTERS_DIR / "json", "json", store, manifest)
    assert str(store.folder) in str(err.value) and ".saving-" not in str(err.value)
    monkeypatch.undo()

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "store" / ".json.saving-x"))

    monkeypatch.setattr(storage.shutil, "copy2", refuse)
    with pytest.raises(storage.StorageError, match=r"store \(Permission denied\)") as err:
        storage.save_adapter(TINY_ADAPTERS_DIR / "json", "json", store, manifest)
    assert ".saving-" not in str(err.value) and not list((tmp_path / "store").iterdir())


def test_local_store_in_an_unwritable_place(tmp_path, monkeypatch):
    def refuse(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(storage.Path, "mkdir", refuse)
    with pytest.raises(storage.StorageError, match="Cannot write into the adapter store folder .*sub"):
        storage.local_store(tmp_path / "sub")


def test_listing_shows_only_loadable_names_and_says_why(tmp_path):
    store = storage.local_store(tmp_path)
    manifest = Manifest.load(TINY_ADAPTERS_DIR / "json")
    storage.save_adapter(TINY_ADAPTERS_DIR / "json", "json", store, manifest)
    (tmp_path / "рус").mkdir()
    storage.copy_adapter_files(TINY_ADAPTERS_DIR / "json", tmp_path / "рус")
    with pytest.warns(UserWarning, match="рус.*rename the folders|rename the folders.*рус"):
        listed = storage.list_adapters(store)
    assert listed == ["json"]
    for name in listed:
        storage.load_adapter_folder(name, store)
    with pytest.raises(FileNotFoundError, match=r"adapters there: json\)\. Folders skipped .*: рус"):
        storage.load_adapter_folder("missing", store)
