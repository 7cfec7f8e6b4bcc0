"""The artifact search skips damaged adapter copies (saying which) and the quick-training line names its notebook."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lessons_lib import adapters, storage
from lessons_lib.adapters import (
    Found,
    adapter_problem,
    find_artifact,
    full_run_notebook,
    hub_repo_name,
    is_adapter,
    quick_train,
    resolve_artifact,
)
from lessons_lib.paths import TINY_ADAPTERS_DIR
from lessons_lib.profiles import get_profile

REHEARSAL = get_profile("t4-rehearsal")


@pytest.fixture(autouse=True)
def no_drive(tmp_path, monkeypatch):
    """No Drive mounted (as anywhere but Colab)."""
    monkeypatch.setattr(adapters, "DRIVE_MOUNT", tmp_path / "not-mounted")


def copy_adapter(target: Path, name: str = "json") -> Path:
    """A real saved adapter (the shipped tiny one) copied to `target`."""
    shutil.copytree(TINY_ADAPTERS_DIR / name, target)
    return target


def empty_weights(folder: Path) -> Path:
    """The adapter's weights file emptied (a copy that stopped at 0 bytes)."""
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return folder


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda f: (f / "adapter_model.safetensors").write_bytes(b""), "adapter_model.safetensors is empty, cut"),
        (
            lambda f: (f / "adapter_model.safetensors").write_bytes(
                (f / "adapter_model.safetensors").read_bytes()[:99]
            ),
            "adapter_model.safetensors is empty, cut short or damaged",
        ),
        (lambda f: (f / "adapter_config.json").write_text('{"r": 1'), "adapter_config.json is not valid JSON"),
        (lambda f: (f / "adapter_config.json").unlink(), "adapter_config.json is missing"),
    ],
    ids=["weights-empty", "weights-cut", "config-cut", "no-config"],
)
def test_a_damaged_adapter_folder_is_not_an_adapter(tmp_path, damage, problem):
    folder = copy_adapter(tmp_path / "json")
    assert is_adapter(folder) and adapter_problem(folder) is None
    damage(folder)
    assert not is_adapter(folder) and problem in adapter_problem(folder)


def test_a_damaged_local_copy_is_skipped_with_a_line_naming_it(tmp_path):
    """Before: Found(source='local') came back, and the notebook's PeftModel.from_pretrained failed on it."""
    damaged = empty_weights(copy_adapter(tmp_path / "wd" / "adapters" / "json"))
    said = []
    assert find_artifact("json", REHEARSAL, tmp_path / "wd", log=said.append) is None
    assert len(said) == 1 and str(damaged) in said[0] and "adapter_model.safetensors is empty" in said[0]
    assert "Looking further" in said[0]


def test_the_search_goes_on_to_the_hub_past_a_damaged_copy(tmp_path, monkeypatch):
    empty_weights(copy_adapter(tmp_path / "wd" / "adapters" / "json"))
    good = copy_adapter(tmp_path / "hub" / hub_repo_name("json", REHEARSAL))
    monkeypatch.setattr(storage, "load_adapter_folder", lambda name, store, cache_dir=None, token=None: good)
    said = []
    assert find_artifact("json", REHEARSAL, tmp_path / "wd", "someone", log=said.append) == Found("json", good, "hub")
    assert "skipping the local copy" in said[0]


def test_an_adapter_a_killed_overwrite_left_aside_is_found_and_never_quick_trained_over(tmp_path, monkeypatch):
    """Before: a save killed between its renames left `.json.old` and no `json`; the search said "not found" and
    resolve_artifact(train=True) quick-trained a replacement, whose save then overwrote the restored adapter."""
    aside = copy_adapter(tmp_path / "wd" / "adapters" / ".json.old")
    monkeypatch.setattr(adapters, "quick_train", lambda *a, **k: pytest.fail("quick-trained over a saved adapter"))
    found = resolve_artifact("json", REHEARSAL, tmp_path / "wd", log=print)
    assert found == Found("json", tmp_path / "wd" / "adapters" / "json", "local") and not aside.exists()
    assert adapter_problem(found.folder) is None


def test_a_served_adapters_dir_puts_back_an_adapter_a_killed_overwrite_left_aside(tmp_path):
    """Before: `serve --adapters-dir` (and `serve vllm`) silently left that adapter out."""
    from lessons_lib.serve.loading import find_adapter_folders

    copy_adapter(tmp_path / "store" / ".json.old")
    copy_adapter(tmp_path / "store" / "coding", "coding")
    found, skipped = find_adapter_folders(REHEARSAL, tmp_path / "store")
    assert sorted(found) == ["coding", "json"] and not skipped
    half = tmp_path / "store" / "support"  # a copy cut short: its manifest alone (before: passed over without a word)
    half.mkdir()
    shutil.copy(TINY_ADAPTERS_DIR / "support" / "manifest.json", half)
    (tmp_path / "store" / "empty").mkdir()
    found, skipped = find_adapter_folders(REHEARSAL, tmp_path / "store")
    assert sorted(found) == ["coding", "json"] and skipped == [
        f"{half}: no adapter_config.json (not a saved PEFT adapter folder)"
    ]


def test_a_damaged_hub_download_is_not_returned(tmp_path, monkeypatch):
    bad = empty_weights(copy_adapter(tmp_path / "hub" / hub_repo_name("json", REHEARSAL)))
    monkeypatch.setattr(storage, "load_adapter_folder", lambda name, store, cache_dir=None, token=None: bad)
    said = []
    assert find_artifact("json", REHEARSAL, tmp_path / "wd", "someone", log=said.append) is None
    assert str(bad) in said[0]


def test_resolve_artifact_quick_trains_instead_of_returning_a_damaged_copy(tmp_path, monkeypatch):
    empty_weights(copy_adapter(tmp_path / "wd" / "adapters" / "json"))
    trained = []
    monkeypatch.setattr(
        adapters,
        "quick_train",
        lambda name, profile, work_dir, steps=None, log=print: (
            trained.append(name) or Found(name, Path("x"), "trained")
        ),
    )
    said = []
    found = resolve_artifact("json", REHEARSAL, tmp_path / "wd", log=said.append)
    assert found.source == "trained" and trained == ["json"]
    assert "skipping the local copy" in said[0] and "not found" in said[1]


def test_an_empty_or_absent_folder_is_not_reported_as_damaged(tmp_path):
    (tmp_path / "wd" / "adapters" / "json").mkdir(parents=True)
    said = []
    assert find_artifact("json", REHEARSAL, tmp_path / "wd", log=said.append) is None and said == []


class Stop(Exception):
    """Stops quick_train right after its first line."""


@pytest.mark.parametrize(
    "name, lang, expected",
    [
        ("json", "en", "json: training a quick version here (3 steps; "),
        ("router", "en", "A full run (notebook 04) gives a better one."),
        ("tools", "ru", "tools: обучаем здесь быструю версию (3 шага; "),
        ("tools", "ru", "Полный запуск (ноутбук 05) даст лучшую."),
        ("coding", "ru", "Полный запуск (ноутбук 01) даст лучшую."),
    ],
)
def test_the_quick_training_line_names_one_notebook_and_counts_in_russian(tmp_path, monkeypatch, name, lang, expected):
    monkeypatch.setenv("LESSONS_LANG", lang)

    def stop(*args):
        raise Stop

    monkeypatch.setitem(adapters.QUICK_TRAINERS, name, stop)
    said = []
    with pytest.raises(Stop):
        quick_train(name, REHEARSAL, tmp_path, steps=3, log=said.append)
    assert expected in said[0], said[0]
    assert "04 или 05" not in said[0] and "04 or 05" not in said[0]


def test_full_run_notebooks():
    assert [full_run_notebook(n) for n in ("json", "coding", "support", "router", "tools")] == [
        "01",
        "01",
        "01",
        "04",
        "05",
    ]
