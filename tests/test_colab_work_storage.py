"""Where a lesson keeps its work on Colab (Drive by default with a real model), and what it says about it."""

from __future__ import annotations

import sys
import types

import pytest

from lessons_lib import lesson as lesson_module
from lessons_lib import paths, profiles
from lessons_lib.lesson import Lesson, drive_wanted, setup_lesson
from lessons_lib.profiles import PROFILES

SILENT = lambda *_: None  # noqa: E731 - a log that prints nothing


@pytest.mark.parametrize("colab", [True, False])
@pytest.mark.parametrize("name", ["tiny", "t4", "7b"])
@pytest.mark.parametrize("use_drive", [True, False, None])
def test_drive_is_used_as_asked_or_by_default_on_colab_with_a_real_model(colab, name, use_drive):
    expected = use_drive if use_drive is not None else colab and name != "tiny"
    assert drive_wanted(use_drive, colab, PROFILES[name]) is expected


@pytest.mark.parametrize("name", ["t4-rehearsal", "7b-rehearsal"])
def test_rehearsals_stay_local_by_default(name):
    assert drive_wanted(None, True, PROFILES[name]) is False


@pytest.fixture
def colab(monkeypatch, tmp_path):
    """A fake Colab: `google.colab.drive.mount` recorded (and made to fail via `calls["fail"]`), folders in tmp."""
    calls = {"mount": [], "fail": None}

    def mount(where: str) -> None:
        calls["mount"].append(where)
        if calls["fail"] is not None:
            raise calls["fail"]
        (tmp_path / "drive" / paths.MY_DRIVE).mkdir(parents=True, exist_ok=True)

    drive = types.ModuleType("google.colab.drive")
    drive.mount = mount
    google, google_colab = types.ModuleType("google"), types.ModuleType("google.colab")
    google_colab.drive = drive
    google.colab = google_colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", google_colab)
    monkeypatch.setitem(sys.modules, "google.colab.drive", drive)
    monkeypatch.setattr(lesson_module, "DRIVE_MOUNT", tmp_path / "drive")
    monkeypatch.setattr(lesson_module, "DRIVE_COURSE_DIR", tmp_path / "drive" / paths.MY_DRIVE / "course")
    monkeypatch.setattr(paths, "WORK_ROOT", tmp_path / "local")
    monkeypatch.delenv(profiles.PROFILE_ENV_VAR, raising=False)
    return calls


def test_colab_t4_mounts_drive_by_default_and_says_it_outlives_the_runtime(colab, tmp_path, capsys):
    lesson = setup_lesson("99", profile="t4")
    out = capsys.readouterr().out
    assert colab["mount"] == [str(tmp_path / "drive")]
    assert lesson.drive_dir == tmp_path / "drive" / paths.MY_DRIVE / "course"
    assert lesson.work_dir == lesson.drive_dir / "t4" and lesson.work_dir.is_dir()
    assert f"Work is kept in {lesson.work_dir}, on your Google Drive: it outlives this runtime" in out


@pytest.mark.parametrize(
    "error", [ValueError("mount failed"), RuntimeError("Error: credential propagation was unsuccessful")]
)
def test_a_failed_or_declined_mount_falls_back_to_the_local_folder(colab, tmp_path, capsys, error):
    colab["fail"] = error
    lesson = setup_lesson("99", profile="7b")
    out = capsys.readouterr().out
    assert colab["mount"] and lesson.drive_dir is None
    assert lesson.work_dir == tmp_path / "local" / "7b" and lesson.work_dir.is_dir()
    assert f"Google Drive could not be mounted ({type(error).__name__}: {error})" in out
    assert "disappears when the runtime is disconnected" in out
    assert "because Google Drive could not be mounted" in out and "allow Drive access" in out
    assert "set USE_DRIVE = True" not in out, "Drive was asked for already: the advice is to retry, not to ask"


def test_colab_tiny_stays_local_unless_asked_and_says_the_folder_is_ephemeral(colab, tmp_path, capsys):
    lesson = setup_lesson("99", profile="tiny")
    out = capsys.readouterr().out
    assert colab["mount"] == [] and lesson.drive_dir is None and lesson.colab
    assert f"Work is kept in {tmp_path / 'local' / 'tiny'}, on this Colab runtime's own disk" in out
    setup_lesson("99", profile="tiny", use_drive=True, log=SILENT)
    assert len(colab["mount"]) == 1  # True asks for Drive on any profile


def test_colab_t4_with_use_drive_false_never_mounts(colab, capsys):
    lesson = setup_lesson("99", profile="t4", use_drive=False)
    assert colab["mount"] == [] and lesson.drive_dir is None
    assert "disappears when the runtime" in capsys.readouterr().out


def test_off_colab_the_default_is_a_local_folder_that_stays(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(paths, "WORK_ROOT", tmp_path / "local")
    monkeypatch.delenv(profiles.PROFILE_ENV_VAR, raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    lesson = setup_lesson("99", profile="t4")
    out = capsys.readouterr().out
    assert lesson.drive_dir is None and not lesson.colab
    assert f"Work is kept in {tmp_path / 'local' / 't4'}, a local folder: it stays until you delete it." in out


def test_russian_edition_says_where_work_is_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("LESSONS_LANG", "ru")
    lesson = Lesson("99", PROFILES["t4"], "test", "cpu", "float16", True, tmp_path, None, None)
    assert "на диске этой среды выполнения Colab" in lesson.where_kept() and "USE_DRIVE = True" in lesson.where_kept()


def test_scratch_dir_is_local_even_when_work_is_on_drive(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "SCRATCH_ROOT", tmp_path / "scratch")
    drive = tmp_path / "drive" / "course"
    lesson = Lesson("03", PROFILES["7b"], "test", "cuda", "float16", True, drive / "7b", drive, None)
    assert lesson.scratch_dir == tmp_path / "scratch" / "7b"
    assert drive not in lesson.scratch_dir.parents


def scratch_lesson(monkeypatch, tmp_path, profile: str = "t4") -> Lesson:
    """A lesson on `profile` whose scratch folder is under tmp_path."""
    monkeypatch.setattr(paths, "SCRATCH_ROOT", tmp_path / "scratch")
    return Lesson("03", PROFILES[profile], "test", "cuda", "float16", True, tmp_path / "work", None, None)


def test_fresh_scratch_empties_what_a_run_left_and_says_the_room_it_checked(monkeypatch, tmp_path):
    from lessons_lib import budget

    lesson = scratch_lesson(monkeypatch, tmp_path)
    leftover = lesson.scratch_dir / "merged-json" / "model.safetensors"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half-written")
    monkeypatch.setattr(budget, "free_bytes", lambda folder: 10 * budget.GB)
    said = []
    folder = lesson.fresh_scratch("merged-json", log=said.append)
    assert folder == lesson.scratch_dir / "merged-json" and not folder.exists() and folder.parent.is_dir()
    assert said == [f"merged-json, a merged full checkpoint: about 2.2 GB in {folder.parent}; 10.0 GB free there"]


def test_fresh_scratch_refuses_a_disk_without_room_and_says_what_to_free(monkeypatch, tmp_path):
    import errno

    from lessons_lib import budget

    lesson = scratch_lesson(monkeypatch, tmp_path, "7b")
    monkeypatch.setattr(budget, "free_bytes", lambda folder: 5 * budget.GB)
    with pytest.raises(OSError) as caught:
        lesson.fresh_scratch("merged-mix", log=SILENT)
    assert caught.value.errno == errno.ENOSPC
    assert "about 14.5 GB" in str(caught.value) and "5.0 GB free there. Not enough: free some space" in str(
        caught.value
    )


def test_remove_scratch_deletes_the_folder_and_says_the_space_given_back(monkeypatch, tmp_path):
    lesson = scratch_lesson(monkeypatch, tmp_path)
    folder = lesson.scratch_dir / "deploy-json"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x" * 2_500_000)
    said = []
    lesson.remove_scratch(folder, log=said.append)
    assert not folder.exists() and said == [f"deleted {folder} (2.5 MB): the lesson no longer needs it"]


def test_remove_scratch_leaves_a_folder_outside_the_scratch_folder_alone(monkeypatch, tmp_path):
    lesson = scratch_lesson(monkeypatch, tmp_path)
    adapters = tmp_path / "work" / "adapters" / "json"
    adapters.mkdir(parents=True)
    (adapters / "adapter_model.safetensors").write_bytes(b"weights")
    monkeypatch.setenv("LESSONS_LANG", "ru")
    with pytest.raises(ValueError, match="не лежит во временной папке урока"):
        lesson.remove_scratch(adapters, log=SILENT)
    assert (adapters / "adapter_model.safetensors").read_bytes() == b"weights"
