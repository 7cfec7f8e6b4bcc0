"""Where a notebook finds the course artifacts: shipped → work dir → Drive → Hub → a quick training run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lessons_lib import adapters, paths, storage
from lessons_lib.adapters import (
    ARTIFACTS,
    adapter_dir,
    course_artifacts,
    find_artifact,
    hub_repo_name,
    resolve_artifact,
)
from lessons_lib.lesson import Lesson
from lessons_lib.paths import TINY_ADAPTERS_DIR
from lessons_lib.profiles import get_profile, with_overrides

T4 = get_profile("t4")


def copy_adapter(target: Path, name: str = "json") -> Path:
    """A real saved adapter (the shipped tiny one) copied to `target`."""
    shutil.copytree(TINY_ADAPTERS_DIR / name, target)
    return target


@pytest.fixture
def drive(tmp_path, monkeypatch):
    """A fake Colab Drive mount: /content/drive/MyDrive becomes a temp folder."""
    mount = tmp_path / "drive"
    (mount / "MyDrive").mkdir(parents=True)
    monkeypatch.setattr(adapters, "DRIVE_MOUNT", mount)
    monkeypatch.setattr(adapters, "DRIVE_COURSE_DIR", mount / "MyDrive" / "lora-adapter-lab")
    return mount / "MyDrive" / "lora-adapter-lab"


@pytest.fixture
def no_drive(tmp_path, monkeypatch):
    """No Drive mounted (as anywhere but Colab)."""
    monkeypatch.setattr(adapters, "DRIVE_MOUNT", tmp_path / "not-mounted")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The Hub with network calls replaced: repos are folders under a temp dir; calls are recorded."""
    root, calls = tmp_path / "hub", []

    def fake_load(name, store, cache_dir=None, token=None):
        calls.append(f"{store.location}/{name}")
        folder = root / store.location / name
        if not (folder / "adapter_config.json").is_file():
            raise FileNotFoundError(f"No adapter repo {store.location}/{name} on the Hub.")
        return folder

    monkeypatch.setattr(storage, "load_adapter_folder", fake_load)
    return root, calls


def test_tiny_finds_the_shipped_artifacts_first(tmp_path, no_drive):
    tiny = get_profile("tiny")
    copy_adapter(tmp_path / "adapters" / "json")
    found = find_artifact("json", tiny, tmp_path)
    assert (found.source, found.folder) == ("shipped", TINY_ADAPTERS_DIR / "json")
    assert find_artifact("router", tiny, tmp_path).source == "shipped"


def test_local_work_dir_comes_before_drive_and_hub(tmp_path, drive, hub):
    copy_adapter(tmp_path / "work" / "adapters" / "json")
    copy_adapter(drive / "t4" / "adapters" / "json")
    found = find_artifact("json", T4, tmp_path / "work", hub_namespace="someone")
    assert (found.source, found.folder) == ("local", tmp_path / "work" / "adapters" / "json")
    assert hub[1] == []  # the Hub is not asked when a local copy exists


def test_drive_folder_is_where_notebook_01_saves(tmp_path, drive, hub):
    copy_adapter(drive / "t4" / "adapters" / "coding", "coding")
    found = find_artifact("coding", T4, tmp_path / "fresh-runtime", hub_namespace="someone")
    assert (found.source, found.folder) == ("drive", drive / "t4" / "adapters" / "coding")
    assert adapters.drive_dir("coding", T4) == found.folder
    assert hub[1] == []


def test_no_work_dir_means_the_default_one_for_every_artifact(tmp_path, no_drive, monkeypatch):
    """Notebook 01 (no Drive) saves under default_work_dir; the search, the router and the server look there."""
    from lessons_lib.router import router_dir
    from lessons_lib.serve.loading import find_adapter_folders

    monkeypatch.setattr(paths, "WORK_ROOT", tmp_path / "work")
    saved = copy_adapter(paths.adapters_folder(paths.default_work_dir("t4")) / "json")
    assert saved == tmp_path / "work" / "t4" / "adapters" / "json"
    assert find_artifact("json", T4) == adapters.Found("json", saved, "local")
    assert adapter_dir("json", T4) == saved
    assert router_dir(T4) == tmp_path / "work" / "t4" / "adapters" / "router"
    assert find_adapter_folders(T4)[0] == {"json": saved}
    from lessons_lib.lesson import setup_lesson

    assert setup_lesson("99", profile="tiny", log=lambda *_: None).work_dir == tmp_path / "work" / "tiny"


def test_hub_repo_named_as_notebook_01_pushes(tmp_path, no_drive, hub):
    root, calls = hub
    copy_adapter(root / "someone" / hub_repo_name("support", T4), "support")
    found = find_artifact("support", T4, tmp_path, hub_namespace="someone")
    assert found.source == "hub" and calls == ["someone/lora-lab-t4-support"]


def test_hub_miss_is_reported_and_search_goes_on(tmp_path, no_drive, hub):
    said = []
    assert find_artifact("json", T4, tmp_path, hub_namespace="someone", log=said.append) is None
    assert "not on the Hub as someone/lora-lab-t4-json" in said[0]


def test_adapter_dir_says_where_it_looked_and_what_to_do(tmp_path, no_drive):
    with pytest.raises(FileNotFoundError) as err:
        adapter_dir("support", T4, tmp_path)
    message = str(err.value)
    for part in (
        str(tmp_path / "adapters" / "support"),
        "Google Drive (not mounted)",
        "no HUB_NAMESPACE",
        "notebook 01",
        "resolve_artifact",
    ):
        assert part in message


def test_quick_train_fallback_when_nothing_is_found(tmp_path, no_drive, monkeypatch):
    trained = []

    def fake_trainer(name, profile, out_dir, steps, log=print):
        trained.append((name, profile.name, steps))
        copy_adapter(out_dir, "json")

    monkeypatch.setitem(adapters.QUICK_TRAINERS, "json", fake_trainer)
    said = []
    profile = get_profile("t4-rehearsal")
    found = resolve_artifact("json", profile, tmp_path, log=said.append)
    steps = profile.quick_train_steps
    assert found.source == "trained" and trained == [("json", "t4-rehearsal", steps)]
    assert found.folder == tmp_path / "adapters" / "json" and (found.folder / "manifest.json").is_file()
    assert any(f"training a quick version here ({steps} steps" in s for s in said)
    # the next notebook (or a rerun) finds it locally instead of training again
    again = resolve_artifact("json", get_profile("t4-rehearsal"), tmp_path, log=said.append)
    assert again.source == "local" and len(trained) == 1


@pytest.mark.parametrize("name", ["t4", "t4-rehearsal"])
def test_quick_domain_training_accumulates_only_off_a_rehearsal(tmp_path, monkeypatch, name):
    """A quick version trains one micro-batch a step on a CPU rehearsal (notebook 01 rehearses accumulation)."""
    from lessons_lib import train

    calls = []
    monkeypatch.setattr(train, "train_domain", lambda *args, **kwargs: calls.append(kwargs))
    profile = get_profile(name)
    adapters.quick_train_domain("json", profile, tmp_path, steps=30, log=lambda *_: None)
    assert profile.grad_accum == (2 if profile.rehearsal else 4)  # a rehearsal accumulates (notebook 01 does)...
    accumulation = 1 if profile.rehearsal else 4  # ...and its quick versions skip it
    assert calls[0]["gradient_accumulation_steps"] == profile.quick_grad_accum == accumulation
    assert calls[0]["n_rows"] == max(64, 30 * profile.batch_size * accumulation) and calls[0]["max_steps"] == 30


def test_resolve_without_training_raises_instead(tmp_path, no_drive):
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_artifact("tools", T4, tmp_path, train=False, log=lambda *_: None)


def test_unknown_artifact_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="json, coding, support, router, tools"):
        find_artifact("sql", T4, tmp_path)
    assert ARTIFACTS == ("json", "coding", "support", "router", "tools")


def test_course_artifacts_reads_the_lesson(tmp_path, no_drive):
    for name in adapters.COURSE_ADAPTERS:
        copy_adapter(tmp_path / "adapters" / name, name)
    lesson = Lesson("02", T4, "test", "cpu", "float16", False, tmp_path, None, None)
    folders = course_artifacts(lesson, log=lambda *_: None)
    assert folders == {name: tmp_path / "adapters" / name for name in adapters.COURSE_ADAPTERS}


@pytest.mark.parametrize("gpu", ["t4", "7b"])
def test_real_quick_training_on_a_rehearsal_profile(tmp_path, no_drive, gpu):
    """The real fallback: 4-bit NF4 on the CPU, fp16, the real chat format; the result loads with PEFT."""
    from peft import PeftModel

    from lessons_lib.models import generate, load_base, load_tokenizer

    # one real step of one micro-batch (the profile's quick steps are checked with a stand-in trainer above)
    profile = with_overrides(get_profile(f"{gpu}-rehearsal"), grad_accum=1)
    found = resolve_artifact("support", profile, tmp_path, steps=1, log=lambda *_: None)
    assert found.source == "trained"
    model = PeftModel.from_pretrained(load_base(profile, log=lambda *_: None), found.folder)
    assert type(model.get_base_model().model.layers[0].mlp.up_proj.base_layer).__name__ == "Linear4bit"
    answer = generate(model, load_tokenizer(profile), "Hi, my order 4821 never arrived.", max_new_tokens=4)
    assert isinstance(answer, str)
