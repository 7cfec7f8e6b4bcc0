"""Saves survive a kill at any moment: a manifest, an adapter config and a router are old or new, never half-written.

Each kill is a real SIGKILL of a forked child at a chosen point of the save (no re-import, so the file stays fast).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

from lessons_lib import storage
from lessons_lib.manifest import Manifest
from lessons_lib.router import course_labels
from lessons_lib.router.learned import ROUTER_FILE, LearnedRouter
from lessons_lib.router.ngram import CONFIG_FILE, WEIGHTS_FILE, NgramConfig, NgramRouter, shipped_ngram_dir

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="kills a forked child")
TEXTS = ["Turn this into JSON: Ada, 36", "Мой заказ не пришёл", "why is the sky blue?"]


def die(*args, **kwargs) -> None:
    """The kill: SIGKILL this process, so no `finally` or cleanup runs."""
    os.kill(os.getpid(), signal.SIGKILL)


def killed(save: Callable[[], object]) -> None:
    """Run `save` in a forked child that sets its own kill point; fail unless the child died by SIGKILL there."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            save()
        finally:
            os._exit(0)  # the kill point was never reached
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, "the save did not reach the kill point"


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- manifest.json and adapter_config.json
def manifest(steps: int) -> Manifest:
    return Manifest(name="json", base_model="tiny", base_fingerprint="0" * 16, profile="tiny", steps=steps)


@pytest.mark.parametrize("kill_point", ["fsync", "replace"])
def test_a_manifest_save_killed_midway_keeps_the_old_manifest(tmp_path, kill_point):
    """Before: write_text truncated manifest.json first, so a kill left the adapter 'damaged' (invalid JSON)."""
    manifest(1).save(tmp_path)

    def save() -> None:
        setattr(os, kill_point, die)
        manifest(2).save(tmp_path)

    killed(save)
    assert Manifest.load(tmp_path).steps == 1
    again = manifest(3)
    again.save(tmp_path)
    assert Manifest.load(tmp_path) == again


def test_a_killed_base_stamp_keeps_the_old_adapter_config(tmp_path):
    config = tmp_path / "adapter_config.json"
    config.write_text(json.dumps({"base_model_name_or_path": "old/base", "r": 8}), encoding="utf-8")

    def stamp() -> None:
        os.replace = die
        storage.stamp_base(tmp_path, "new/base")

    killed(stamp)
    assert json.loads(config.read_text(encoding="utf-8")) == {"base_model_name_or_path": "old/base", "r": 8}
    storage.stamp_base(tmp_path, "new/base")
    assert json.loads(config.read_text(encoding="utf-8")) == {"base_model_name_or_path": "new/base", "r": 8}


# ---------------------------------------------------------------- the n-gram router
def ngram(seed: int, threshold: float) -> NgramRouter:
    """A small n-gram router with random weights: `seed` tells routers apart."""
    config = NgramConfig(max_n=2, buckets=64)
    gen = torch.Generator().manual_seed(seed)
    labels = course_labels()
    weight, bias = torch.randn(64, len(labels), generator=gen), torch.randn(len(labels), generator=gen)
    return NgramRouter(weight, bias, labels, config, threshold)


def same_router(a: NgramRouter, b: NgramRouter) -> bool:
    return a.threshold == b.threshold and torch.equal(a.probabilities(TEXTS), b.probabilities(TEXTS))


def rename_dies_onto(name: str) -> None:
    """Kill at the rename that moves a folder onto `name` (between moving the old one aside and the new one in)."""
    rename = Path.rename
    Path.rename = lambda self, target: die() if Path(target).name == name else rename(self, target)


# kill point -> (the router there before, how the child dies, the router after the next call: "old", "new" or None)
KILL_POINTS = {
    "first save, between its two files": (False, lambda: setattr(Path, "write_text", die), None),
    "between its two files": (True, lambda: setattr(Path, "write_text", die), "old"),
    "between the renames": (True, lambda: rename_dies_onto("ngram"), "old"),
    "before the backup is deleted": (True, lambda: setattr(shutil, "rmtree", die), "new"),
}


@pytest.mark.parametrize("next_call", ["load", "save"])
@pytest.mark.parametrize("kill_point", KILL_POINTS)
def test_a_killed_router_save_leaves_the_old_router_or_the_new_one(tmp_path, kill_point, next_call):
    """Before: a kill between the files left new weights beside the old config (its threshold), and load took it."""
    existed, set_kill_point, after = KILL_POINTS[kill_point]
    target, old, new = tmp_path / "ngram", ngram(1, 0.25), ngram(2, 0.5)
    if existed:
        old.save(target)

    def save() -> None:
        set_kill_point()
        new.save(target, extra={"note": "new"})

    killed(save)
    if next_call == "load" and after is None:
        with pytest.raises(FileNotFoundError):
            NgramRouter.load(target)
    elif next_call == "load":
        assert same_router(NgramRouter.load(target), {"old": old, "new": new}[after])
    else:
        third = ngram(3, 0.75)
        assert same_router(NgramRouter.load(third.save(target)), third)
    assert entries(tmp_path) == ([] if next_call == "load" and after is None else ["ngram"]), "no leftovers"


def test_router_save_round_trips_and_replaces_the_old_router_whole(tmp_path):
    target = tmp_path / "ngram"
    first, second = ngram(1, 0.25), ngram(2, 0.5)
    assert first.save(target, extra={"note": "first"}) == target
    second.save(target)
    loaded = NgramRouter.load(target)
    assert same_router(loaded, second) and loaded.labels == second.labels and loaded.config == second.config
    assert "note" not in json.loads((target / CONFIG_FILE).read_text(encoding="utf-8")), "nothing of the old one"
    assert entries(tmp_path) == ["ngram"] and entries(target) == sorted([CONFIG_FILE, WEIGHTS_FILE])


def test_a_router_save_never_deletes_files_that_are_not_the_router(tmp_path):
    """Saving replaces the folder, so a folder holding anything else is refused, before the CLI trains."""
    from lessons_lib.router.__main__ import main

    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    (tmp_path / ".ngram_router.json.k3j9.writing").write_text("{", encoding="utf-8")  # a killed write: no reason
    with pytest.raises(FileExistsError, match="notes.txt") as excinfo:
        ngram(1, 0.25).save(tmp_path)
    assert main(["train-ngram", "--out", str(tmp_path)]) == 2
    assert "writing" not in str(excinfo.value), "a killed write's temporary file is not the learner's"
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine" and len(entries(tmp_path)) == 2


def test_the_shipped_ngram_router_still_loads():
    router = NgramRouter.load(shipped_ngram_dir())
    assert router.labels == course_labels() and 0 <= router.threshold < 1


# ---------------------------------------------------------------- the learned router (a stand-in for the PEFT model)
class FakeClassifier(torch.nn.Module):
    """Stands in for the PEFT SEQ_CLS model: one head, saved the way PEFT saves an adapter (config, weights, card)."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.score = torch.nn.Parameter(weights)
        self.config = SimpleNamespace(num_labels=len(weights), course_model_id="course/tiny")

    def save_pretrained(self, folder: Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        save_file({"score": self.score.detach().contiguous()}, str(Path(folder) / "adapter_model.safetensors"))
        (Path(folder) / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/my/laptop/tiny"}))
        (Path(folder) / "README.md").write_text("PEFT's card")


def learned(value: float, threshold: float) -> LearnedRouter:
    return LearnedRouter(FakeClassifier(torch.full((len(course_labels()),), value)), "tokenizer", threshold=threshold)


@pytest.fixture
def fake_peft(monkeypatch):
    """LearnedRouter.load without the base model: PEFT's loader reads the saved head back into a FakeClassifier."""
    from lessons_lib.router import learned as learned_module

    def from_pretrained(base, folder):
        return FakeClassifier(load_file(str(Path(folder) / "adapter_model.safetensors"))["score"])

    monkeypatch.setattr(learned_module, "load_classifier_base", lambda *args, **kwargs: None)
    monkeypatch.setitem(
        sys.modules, "peft", SimpleNamespace(PeftModel=SimpleNamespace(from_pretrained=from_pretrained))
    )


def load_learned(folder: Path) -> tuple[float, float]:
    """(threshold, head weight) of the learned router saved in `folder`."""
    router = LearnedRouter.load(folder, profile=None, tokenizer="tokenizer")
    return router.threshold, float(router.model.score.detach()[0])


def test_learned_router_save_round_trips_with_the_portable_base_id(tmp_path, fake_peft):
    target = tmp_path / "router"
    learned(1.0, 0.25).save(target)
    learned(2.0, 0.5).save(target, extra={"steps": 3})
    assert load_learned(target) == (0.5, 2.0)
    assert json.loads((target / "adapter_config.json").read_text())["base_model_name_or_path"] == "course/tiny"
    assert json.loads((target / ROUTER_FILE).read_text())["steps"] == 3
    assert entries(target) == ["adapter_config.json", "adapter_model.safetensors", ROUTER_FILE]
    assert entries(tmp_path) == ["router"]


@pytest.mark.parametrize("kill_point", ["between its files", "between the renames"])
def test_a_killed_learned_router_save_keeps_the_old_router(tmp_path, fake_peft, kill_point):
    """Before: a kill after PEFT's weights left them beside the old router.json (its threshold) and config."""
    target = tmp_path / "router"
    learned(1.0, 0.25).save(target)

    def save() -> None:
        if kill_point == "between its files":
            Path.write_text = die
        else:
            rename_dies_onto("router")
        learned(2.0, 0.5).save(target)

    killed(save)
    assert load_learned(target) == (0.25, 1.0)
    assert entries(tmp_path) == ["router"], "the load settled what the kill left"
