"""Adapter storage: local, Drive (a temp folder as the mount) and Hub (network replaced) round trips, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lessons_lib import storage
from lessons_lib.manifest import Manifest
from lessons_lib.storage import HubError, StorageError

PROMPTS = ["Return JSON with name and city: Anna Smith lives in Paris.", "Write a Python function add(a, b)."]


def trained_like_adapter(base, tiny, name: str = "json", seed: int = 1):
    """A PeftModel whose LoRA weights are non-zero (a fresh adapter equals the base, which would test nothing)."""
    import torch
    from peft import get_peft_model

    from lessons_lib.train import lora_config

    model = get_peft_model(base, lora_config(tiny), adapter_name=name)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, param in model.named_parameters():
            if "lora_B" in pname:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    model.eval()
    return model


def outputs(model, tok) -> tuple:
    """Logits on a fixed prompt and greedy answers: what 'identical behaviour' means here."""
    import torch

    from lessons_lib.models import chat_text, generate

    enc = tok(chat_text(tok, PROMPTS[0]), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        logits = model(**enc).logits
    return logits, generate(model, tok, PROMPTS, max_new_tokens=24)


def manifest_for(model, name="json", steps=7) -> Manifest:
    return Manifest.for_model(
        name, model, "tiny", domain="json", steps=steps, metrics={"heldout_valid": 1.0}, data={"source": "test"}
    )


@pytest.fixture
def drive(tmp_path):
    """A temp folder standing in for /content/drive, with MyDrive inside as on Colab."""
    mount = tmp_path / "content" / "drive"
    (mount / "MyDrive").mkdir(parents=True)
    return storage.drive_store(mount / "MyDrive" / "lora-adapter-lab" / "adapters", mount=mount)


@pytest.fixture(params=["local", "drive"])
def folder_store(request, tmp_path):
    if request.param == "local":
        return storage.local_store(tmp_path / "adapters")
    return request.getfixturevalue("drive")


def test_folder_round_trip_gives_identical_outputs(folder_store, base, tiny, tokenizer):
    import torch
    from peft import PeftModel

    from lessons_lib.models import load_base

    model = trained_like_adapter(base, tiny, name="json")
    before_logits, before_text = outputs(model, tokenizer)
    where = storage.save_adapter(model, "json-v1", folder_store, manifest_for(model))

    folder = storage.load_adapter_folder("json-v1", folder_store)
    assert Path(where) == folder and folder.parent == folder_store.folder
    assert {p.name for p in folder.iterdir()} == {"adapter_config.json", "adapter_model.safetensors", "manifest.json"}
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == Manifest.load(folder).base_model
    reloaded = PeftModel.from_pretrained(load_base(tiny), folder).eval()
    after_logits, after_text = outputs(reloaded, tokenizer)
    assert torch.equal(before_logits, after_logits)
    assert after_text == before_text
    assert not torch.equal(before_logits, outputs(load_base(tiny), tokenizer)[0]), "the adapter must change the base"
    assert storage.list_adapters(folder_store) == ["json-v1"]
    assert storage.read_manifest("json-v1", folder_store).steps == 7


def test_saving_a_saved_folder_copies_it(tmp_path, base, tiny):
    model = trained_like_adapter(base, tiny, name="default")
    store = storage.local_store(tmp_path / "a")
    first = storage.save_adapter(model, "x", store, manifest_for(model))
    second = storage.save_adapter(first, "y", store, manifest_for(model))
    assert (Path(first) / "adapter_model.safetensors").read_bytes() == (
        Path(second) / "adapter_model.safetensors"
    ).read_bytes()
    with pytest.raises(StorageError, match="not a saved PEFT adapter"):
        storage.save_adapter(tmp_path, "z", store, manifest_for(model))


def test_existing_adapter_is_not_overwritten_without_permission(folder_store, base, tiny):
    model = trained_like_adapter(base, tiny)
    store = folder_store
    folder = Path(storage.save_adapter(model, "json", store, manifest_for(model, steps=1)))
    snapshot = {p.name: p.read_bytes() for p in folder.iterdir()}

    with pytest.raises(FileExistsError, match="overwrite=True"):
        storage.save_adapter(model, "json", store, manifest_for(model, steps=2))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == snapshot

    storage.save_adapter(model, "json", store, manifest_for(model, steps=3), overwrite=True)
    assert Manifest.load(folder).steps == 3
    assert sorted(p.name for p in store.folder.iterdir()) == ["json"], "no staging or backup folders left behind"


def test_failed_overwrite_keeps_the_old_adapter(tmp_path, base, tiny, monkeypatch):
    model = trained_like_adapter(base, tiny)
    store = storage.local_store(tmp_path / "adapters")
    folder = Path(storage.save_adapter(model, "json", store, manifest_for(model, steps=1)))
    snapshot = {p.name: p.read_bytes() for p in folder.iterdir()}

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(model, "save_pretrained", broken_save)
    with pytest.raises(OSError, match="disk full"):
        storage.save_adapter(model, "json", store, manifest_for(model, steps=2), overwrite=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == snapshot
    assert sorted(p.name for p in store.folder.iterdir()) == ["json"]


# ---------------------------------------------------------------- a save killed half-way (a real SIGKILL)
KILLED_SAVE = """
import os, shutil, signal, sys
from pathlib import Path

from lessons_lib import storage
from lessons_lib.manifest import Manifest

source, store_dir, kill_point = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
die = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
if kill_point == "while staging":
    Manifest.save = die  # the adapter files are staged, the manifest not yet
elif kill_point == "while writing the weights":
    shutil.move = die  # PEFT has written them into the scratch folder, not yet moved into staging
elif kill_point == "between the renames":
    rename = Path.rename
    Path.rename = lambda self, target: die() if Path(target).name == "json" else rename(self, target)
elif kill_point == "before the backup is deleted":
    shutil.rmtree = die
model = source
if kill_point == "while writing the weights":
    from peft import PeftModel
    from lessons_lib.models import load_base
    from lessons_lib.profiles import PROFILES
    model = PeftModel.from_pretrained(load_base(PROFILES["tiny"]), source)
storage.save_adapter(model, "json", storage.local_store(store_dir), Manifest.load(source), overwrite=True)
"""

# kill point -> (an adapter was there before, the adapter after recovery: "old", "new" or None)
KILL_POINTS = {
    "first save, while staging": (False, None),
    "while staging": (True, "old"),
    "while writing the weights": (True, "old"),
    "between the renames": (True, "old"),
    "before the backup is deleted": (True, "new"),
}


def killed_save(tmp_path, base, tiny, kill_point: str) -> storage.AdapterStore:
    """A store where save_adapter(overwrite=True) of 'json' (steps=2) was SIGKILLed at `kill_point`."""
    import subprocess
    import sys

    existed, _ = KILL_POINTS[kill_point]
    model = trained_like_adapter(base, tiny)
    source = Path(
        storage.save_adapter(model, "new", storage.local_store(tmp_path / "src"), manifest_for(model, steps=2))
    )
    store = storage.local_store(tmp_path / "adapters")
    if existed:
        storage.save_adapter(model, "json", store, manifest_for(model, steps=1))
    child = subprocess.run(
        [sys.executable, "-c", KILLED_SAVE, str(source), str(store.folder), kill_point.removeprefix("first save, ")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        timeout=120,
    )
    assert child.returncode == -9, child.stderr
    return store


def store_entries(store: storage.AdapterStore) -> list[str]:
    return sorted(p.name for p in store.folder.iterdir())


@pytest.mark.parametrize("kill_point", [k for k in KILL_POINTS if k != "while writing the weights"])
@pytest.mark.parametrize("next_call", ["list_adapters", "load_adapter_folder", "save_adapter"])
def test_a_killed_save_is_rolled_back_or_forward_by_the_next_call(tmp_path, base, tiny, kill_point, next_call):
    """Before: the adapter vanished into `.json.old` ("No adapter 'json'"), and `.json.saving-*` folders piled up."""
    store = killed_save(tmp_path, base, tiny, kill_point)
    assert any(name.startswith(".json.") for name in store_entries(store)), "the kill left something to settle"
    _, after = KILL_POINTS[kill_point]

    if next_call == "list_adapters":
        assert storage.list_adapters(store) == (["json"] if after else [])
    elif next_call == "load_adapter_folder" and after:
        assert storage.load_adapter_folder("json", store) == store.folder / "json"
    elif next_call == "load_adapter_folder":
        with pytest.raises(FileNotFoundError, match="adapters there: none"):
            storage.load_adapter_folder("json", store)
    else:
        source = tmp_path / "src" / "new"
        storage.save_adapter(source, "other", store, Manifest.load(source))
    assert [n for n in store_entries(store) if n != "other"] == (["json"] if after else []), "no leftovers"
    if after:
        assert Manifest.load(store.folder / "json").steps == {"old": 1, "new": 2}[after]


def test_a_save_killed_while_peft_writes_the_weights_leaves_no_stray_adapter(tmp_path, base, tiny):
    """Before: PEFT's scratch folder sat beside the adapters, so a kill there listed it as an adapter 'tmpXXXX'."""
    store = killed_save(tmp_path, base, tiny, "while writing the weights")
    assert [n for n in store_entries(store) if not n.startswith(".")] == ["json"]
    assert storage.list_adapters(store) == ["json"] and store_entries(store) == ["json"]
    assert Manifest.load(store.folder / "json").steps == 1


def test_staging_folders_of_saves_still_running_are_kept(tmp_path):
    """Only abandoned staging folders go: a live process's stays; one from elsewhere goes once an hour old."""
    import os
    import time

    store = storage.local_store(tmp_path / "adapters")
    live = store.folder / f".json.saving-{storage._save_owner()}-abc123"
    elsewhere = store.folder / ".json.saving-other_host-42-abc123"
    legacy, fresh = store.folder / ".json.saving-k3j_x9z1", store.folder / ".json.saving-other_host-43-abc123"
    for folder in (live, elsewhere, legacy, fresh):
        folder.mkdir()
        (folder / "adapter_config.json").write_text("{}")
    hour_ago = time.time() - storage.STALE_SAVE_SECONDS - 60
    for path in (elsewhere, elsewhere / "adapter_config.json", legacy, legacy / "adapter_config.json"):
        os.utime(path, (hour_ago, hour_ago))
    assert storage.list_adapters(store) == []
    assert store_entries(store) == sorted([live.name, fresh.name])


@pytest.mark.parametrize("bad", ["../escape", "a/b", "..", "", "a\\b", ".hidden", "x" * 200, "bad name"])
def test_bad_names_are_refused_before_anything_is_written(tmp_path, base, tiny, bad):
    model = trained_like_adapter(base, tiny)
    store = storage.local_store(tmp_path / "adapters")
    with pytest.raises(ValueError, match="not allowed"):
        storage.save_adapter(model, bad, store, manifest_for(model))
    with pytest.raises(ValueError, match="not allowed"):
        storage.load_adapter_folder(bad, store)
    assert list(tmp_path.rglob("*")) == [store.folder]


def test_missing_adapter_and_unmounted_drive_explain_what_to_do(tmp_path, base, tiny):
    store = storage.local_store(tmp_path / "adapters")
    model = trained_like_adapter(base, tiny)
    storage.save_adapter(model, "coding", store, manifest_for(model))
    with pytest.raises(FileNotFoundError, match="adapters there: coding"):
        storage.load_adapter_folder("json", store)
    with pytest.raises(StorageError, match=r"drive\.mount"):
        storage.drive_store(tmp_path / "nowhere" / "adapters", mount=tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(TypeError, match="Manifest"):
        storage.save_adapter(model, "x", store, manifest={"base_model": "?"})


def test_named_adapter_is_saved_flat_and_the_right_one_is_picked(tmp_path, base, tiny):
    import torch
    from peft import PeftModel

    from lessons_lib.models import load_base
    from lessons_lib.train import lora_config

    model = trained_like_adapter(base, tiny, name="json")
    model.add_adapter("other", lora_config(tiny))
    store = storage.local_store(tmp_path / "adapters")
    folder = Path(storage.save_adapter(model, "json", store, manifest_for(model), adapter_name="json"))
    assert not (folder / "json").exists() and (folder / "adapter_model.safetensors").is_file()
    reloaded = PeftModel.from_pretrained(load_base(tiny), folder)
    saved_b = [p for n, p in reloaded.named_parameters() if "lora_B" in n][0]
    original_b = [p for n, p in model.named_parameters() if "lora_B.json" in n][0]
    assert torch.equal(saved_b, original_b)
    with pytest.raises(StorageError, match="no adapter 'missing'"):
        storage.save_adapter(model, "m", store, manifest_for(model), adapter_name="missing")


# ---------------------------------------------------------------- Hugging Face Hub, network replaced
class FakeHub:
    """Stands in for the Hub: repos are folders under `root`; every call is recorded."""

    def __init__(self, root: Path):
        self.root, self.calls = root, []

    def install(self, monkeypatch, token="hf_test_token"):
        import huggingface_hub

        hub = self
        monkeypatch.setattr(huggingface_hub, "get_token", lambda: token)

        def file_exists(self, repo_id, filename, token=None, **kw):
            hub.calls.append(("file_exists", repo_id, token))
            return (hub.root / repo_id / filename).is_file()

        def create_repo(self, repo_id, token=None, private=None, exist_ok=False, **kw):
            hub.calls.append(("create_repo", repo_id, private))
            (hub.root / repo_id).mkdir(parents=True, exist_ok=exist_ok)

        def upload_folder(self, *, repo_id, folder_path, token=None, **kw):
            hub.calls.append(("upload_folder", repo_id, token))
            shutil.copytree(folder_path, hub.root / repo_id, dirs_exist_ok=True)

        def list_models(self, author=None, token=None, **kw):
            from types import SimpleNamespace

            return [SimpleNamespace(id=f"{author}/{p.name}") for p in sorted((hub.root / author).iterdir())]

        def whoami(self, token=None, **kw):
            return {"name": "learner"}

        def snapshot_download(repo_id, token=None, local_dir=None, allow_patterns=None, **kw):
            hub.calls.append(("snapshot_download", repo_id, token))
            source = hub.root / repo_id
            if not source.is_dir():
                from huggingface_hub.errors import RepositoryNotFoundError

                raise RepositoryNotFoundError(f"404 {repo_id}", response=_fake_response(404))
            target = Path(local_dir or hub.root.parent / "cache" / repo_id)
            shutil.copytree(source, target, dirs_exist_ok=True)
            return str(target)

        for name, fn in [
            ("file_exists", file_exists),
            ("create_repo", create_repo),
            ("upload_folder", upload_folder),
            ("list_models", list_models),
            ("whoami", whoami),
        ]:
            monkeypatch.setattr(huggingface_hub.HfApi, name, fn)
        monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
        return self


def _fake_response(status: int):
    import httpx

    return httpx.Response(status, request=httpx.Request("GET", "https://huggingface.co/api/x"))


def test_hub_round_trip_gives_identical_outputs(tmp_path, base, tiny, tokenizer, monkeypatch):
    import torch
    from peft import PeftModel

    from lessons_lib.models import load_base

    hub = FakeHub(tmp_path / "hub").install(monkeypatch)
    model = trained_like_adapter(base, tiny)
    before_logits, before_text = outputs(model, tokenizer)
    store = storage.hub_store()
    assert store.location == "learner" and store.private

    repo_id = storage.save_adapter(model, "json-v1", store, manifest_for(model))
    assert repo_id == "learner/json-v1"
    assert ("upload_folder", repo_id, "hf_test_token") in hub.calls
    assert {p.name for p in (hub.root / repo_id).iterdir()} == {
        "adapter_config.json",
        "adapter_model.safetensors",
        "manifest.json",
    }
    uploaded = {p.name: p.read_bytes() for p in (hub.root / repo_id).iterdir()}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        storage.save_adapter(trained_like_adapter(load_base(tiny), tiny, seed=2), "json-v1", store, manifest_for(model))
    assert [c for c in hub.calls if c[0] == "upload_folder"] == [("upload_folder", repo_id, "hf_test_token")]
    assert {p.name: p.read_bytes() for p in (hub.root / repo_id).iterdir()} == uploaded, "nothing overwritten"
    assert storage.list_adapters(store) == ["json-v1"]

    folder = storage.load_adapter_folder("json-v1", store, cache_dir=tmp_path / "downloads")
    assert folder == tmp_path / "downloads" / "json-v1"
    after_logits, after_text = outputs(PeftModel.from_pretrained(load_base(tiny), folder).eval(), tokenizer)
    assert torch.equal(before_logits, after_logits) and after_text == before_text
    with pytest.raises(FileNotFoundError, match="No adapter repo learner/missing"):
        storage.load_adapter_folder("missing", store)


def test_hub_without_a_token_says_how_to_get_one(tmp_path, base, tiny, monkeypatch):
    hub = FakeHub(tmp_path / "hub").install(monkeypatch, token=None)
    model = trained_like_adapter(base, tiny)
    with pytest.raises(HubError, match="HF_TOKEN") as err:
        storage.save_adapter(model, "json", storage.AdapterStore("hub", "learner"), manifest_for(model))
    assert "login()" in str(err.value)
    with pytest.raises(HubError, match="HF_TOKEN"):
        storage.hub_store()
    assert hub.calls == [] and not (tmp_path / "hub").exists()


def test_hub_without_network_gives_a_clear_error_and_writes_nothing(tmp_path, base, tiny, monkeypatch):
    import httpx
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    FakeHub(tmp_path / "hub").install(monkeypatch)

    def unreachable(*args, **kwargs):
        raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(huggingface_hub.HfApi, "file_exists", unreachable)
    model = trained_like_adapter(base, tiny)
    store = storage.AdapterStore("hub", "learner")
    with pytest.raises(HubError, match="no connection to the Hugging Face Hub"):
        storage.save_adapter(model, "json", store, manifest_for(model))

    def offline(*args, **kwargs):
        raise OfflineModeIsEnabled("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        storage.load_adapter_folder("json", store)

    def not_cached(*args, **kwargs):
        raise LocalEntryNotFoundError("not cached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", not_cached)
    with pytest.raises(HubError, match="cannot be reached"):
        storage.load_adapter_folder("json", store)
    assert not (tmp_path / "hub").exists()


def test_real_hub_client_in_offline_mode_fails_clearly(tmp_path, base, tiny, monkeypatch):
    """No fakes for the client: with HF_HUB_OFFLINE=1 (as in CI) the real huggingface_hub refuses, and we explain."""
    import huggingface_hub

    if not huggingface_hub.constants.HF_HUB_OFFLINE:
        pytest.skip("only meaningful with HF_HUB_OFFLINE=1 set before huggingface_hub is imported (CI sets it)")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test_token")
    model = trained_like_adapter(base, tiny)
    with pytest.raises(HubError, match="Cannot"):
        storage.save_adapter(model, "json", storage.AdapterStore("hub", "learner"), manifest_for(model))
    with pytest.raises(HubError, match="Cannot"):
        storage.load_adapter_folder("json", storage.AdapterStore("hub", "learner"), cache_dir=tmp_path)


# ---------------------------------------------------------------- names are matched whole (issue 15)
@pytest.mark.parametrize("bad", ["json\n", "json-v2\n", "json\r\n", "\njson"])
def test_names_with_a_trailing_or_leading_newline_are_refused(bad):
    with pytest.raises(ValueError, match="is not allowed"):
        storage.check_name(bad)
    with pytest.raises(ValueError, match="is not allowed"):
        storage.check_name(bad, "Hub namespace")


@pytest.mark.parametrize("good", ["json", "json-v2", "support_v2_1", "A1"])
def test_whole_names_still_pass(good):
    assert storage.check_name(good) == good


# ---------------------------------------------------------------- one name rule (issue 18)
@pytest.mark.parametrize("namespace", ["learner", "01-ai", "my.org", "A_b-c"])
def test_hub_namespaces_follow_the_hub_not_the_adapter_rule(namespace):
    assert storage.check_namespace(namespace) == namespace


def test_a_stored_dotted_name_is_refused_with_one_message_everywhere(tmp_path, tiny):
    """Before: the store saved `json.v2` and the server skipped it (PEFT cannot hold a dotted adapter name)."""
    from lessons_lib.compat import AdapterNameError, check_adapter_name
    from lessons_lib.paths import TINY_ADAPTERS_DIR
    from lessons_lib.serve.loading import find_adapter_folders, named_folders

    store = storage.local_store(tmp_path / "adapters")
    shutil.copytree(TINY_ADAPTERS_DIR / "json", store.folder / "json.v2")  # as an older version saved it
    messages = []
    for refuse in (
        lambda: check_adapter_name("json.v2"),
        lambda: storage.check_name("json.v2"),
        lambda: storage.load_adapter_folder("json.v2", store),
        lambda: storage.save_adapter(
            TINY_ADAPTERS_DIR / "json", "json.v2", store, Manifest.load(TINY_ADAPTERS_DIR / "json"), overwrite=True
        ),
    ):
        with pytest.raises(AdapterNameError) as err:
            refuse()
        messages.append(str(err.value))
    assert len(set(messages)) == 1 and "no dots" in messages[0]
    found, skipped = find_adapter_folders(tiny, store.folder)
    assert found == {} and skipped == [f"{store.folder / 'json.v2'}: {messages[0]}"]
    assert named_folders({"json.v2": store.folder / "json.v2"})[1] == [f"{store.folder / 'json.v2'}: {messages[0]}"]
    with pytest.warns(UserWarning, match=r"json\.v2.*no dots") as said:  # not listed, but said why
        assert storage.list_adapters(store) == []
    assert "rename the folders" in str(said[0].message)


def test_active_adapters_of_plain_and_peft_models(base, tiny):
    assert storage.active_adapters(base) == []
    model = trained_like_adapter(base, tiny)
    assert storage.active_adapters(model) == ["json"]
    model.base_model.set_adapter(["json"])
    assert storage.active_adapters(model) == ["json"]


@pytest.mark.parametrize("name", ["json", "tools"])
def test_the_builders_save_shipped_adapters_as_shipped(tmp_path, name):
    """The tiny and tool-adapter builders save through the store: it writes their files byte for byte."""
    from lessons_lib.paths import TINY_ADAPTERS_DIR

    shipped = TINY_ADAPTERS_DIR / name
    store = storage.local_store(tmp_path / "adapters")
    folder = Path(storage.save_adapter(shipped, name, store, Manifest.load(shipped)))
    for file in (*storage.ADAPTER_FILES, "manifest.json"):
        assert (folder / file).read_bytes() == (shipped / file).read_bytes(), file
