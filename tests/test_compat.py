"""The compatibility check refuses bad adapters before injection, with clear errors, and loses nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lessons_lib import compat
from lessons_lib.compat import (
    AdapterCompatError,
    AdapterConfigError,
    AdapterFilesError,
    AdapterLoadError,
    AdapterNameError,
    AdapterWarning,
    BaseMismatchError,
    CorruptAdapterError,
    DamagedWeightsError,
    TargetModulesError,
    check_adapter,
    check_adapter_name,
    load_adapter_checked,
)
from lessons_lib.manifest import TINY_MODEL_ID, Manifest, base_fingerprint
from lessons_lib.paths import TINY_ADAPTERS_DIR, TINY_MODEL_DIR

OTHER_ID = "someone/other-tiny-2layer"
JSON_DIR = TINY_ADAPTERS_DIR / "json"


def make_other_base_adapter(folder: Path, with_manifest: bool = True) -> Path:
    """A LoRA adapter trained (well, initialised) on a different 2-layer Llama base, saved like the course's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    config = LlamaConfig(
        vocab_size=2048,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    config.course_model_id = OTHER_ID
    other = LlamaForCausalLM(config)
    peft_model = get_peft_model(
        other, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(folder)
    cfg_path = folder / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = OTHER_ID
    cfg_path.write_text(json.dumps(cfg))
    if with_manifest:
        Manifest(name="other", base_model=OTHER_ID, base_fingerprint=base_fingerprint(other), profile="custom").save(
            folder
        )
    return folder


def copy_adapter(src: Path, dst: Path, manifest: bool = True) -> Path:
    """A copy of a shipped adapter folder to damage in a test."""
    shutil.copytree(src, dst)
    if not manifest:
        (dst / "manifest.json").unlink()
    return dst


def probe_logits(model, tokenizer):
    """Logits of every loaded adapter (and the base) on one fixed prompt: a cheap exact fingerprint of behaviour."""
    import torch

    enc = tokenizer(
        ["<|user|>\nName: Anna, city: Oslo. Give JSON.<|end|>\n<|assistant|>\n"],
        return_tensors="pt",
        add_special_tokens=False,
    )
    names = list(model.peft_config)
    out = {}
    with torch.no_grad():
        for name in names:
            out[name] = model(**enc, adapter_names=[name]).logits
        with model.disable_adapter():
            out["__base__"] = model(**enc).logits
    return out


def assert_unchanged(model, tokenizer, before: dict, names: list[str], active: str) -> None:
    """Same adapters loaded, same one active, identical logits for every adapter and the base."""
    import torch

    assert list(model.peft_config) == names
    assert model.active_adapter == active
    after = probe_logits(model, tokenizer)
    assert after.keys() == before.keys()
    for name in before:
        assert torch.equal(after[name], before[name]), name


# ---------------------------------------------------------------- names
@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("../json", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("..", "path separator"),
        ("json.v2", "no dots"),
        ("__base__", "reserved"),
        ("9lives", "start"),
        ("has space", "not allowed"),
        (None, "must be a string"),
    ],
)
def test_bad_adapter_names_are_refused_with_a_reason(bad, fragment):
    with pytest.raises(AdapterNameError, match=fragment) as err:
        check_adapter_name(bad)
    assert "e.g. 'json'" in str(err.value)


@pytest.mark.parametrize("good", ["json", "support_v2", "coding-ru", "A1"])
def test_good_adapter_names_pass(good):
    assert check_adapter_name(good) == good


# ---------------------------------------------------------------- files
def test_missing_folder_says_which_folder(base, tmp_path):
    with pytest.raises(AdapterFilesError, match="does not exist") as err:
        check_adapter(base, tmp_path / "nowhere", "x")
    assert str(tmp_path / "nowhere") in str(err.value)
    assert isinstance(err.value, FileNotFoundError)


@pytest.mark.parametrize("filename", ["adapter_config.json", "adapter_model.safetensors"])
def test_missing_file_is_named_with_what_to_do(base, tmp_path, filename):
    folder = copy_adapter(JSON_DIR, tmp_path / "json")
    (folder / filename).unlink()
    with pytest.raises(AdapterFilesError, match=f"has no {filename}") as err:
        check_adapter(base, folder, "json")
    assert "save_pretrained" in str(err.value)


def test_bin_only_adapter_gets_a_resave_hint(base, tmp_path):
    folder = copy_adapter(JSON_DIR, tmp_path / "json")
    (folder / "adapter_model.safetensors").rename(folder / "adapter_model.bin")
    with pytest.raises(AdapterFilesError, match="adapter_model.bin"):
        check_adapter(base, folder, "json")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupted_safetensors_is_reported(base, tmp_path, damage):
    folder = copy_adapter(JSON_DIR, tmp_path / "json")
    weights = folder / "adapter_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(
        {"truncate": data[: len(data) // 3], "garbage": b"\x00not a safetensors file" * 40, "empty": b""}[damage]
    )
    with pytest.raises(CorruptAdapterError, match="not a readable safetensors file") as err:
        check_adapter(base, folder, "json")
    assert "download the adapter again" in str(err.value)


def test_safetensors_without_lora_tensors_is_reported(base, tmp_path):
    import torch
    from safetensors.torch import save_file

    folder = copy_adapter(JSON_DIR, tmp_path / "json")
    save_file({"something.weight": torch.zeros(2, 2)}, str(folder / "adapter_model.safetensors"))
    with pytest.raises(CorruptAdapterError, match="no LoRA weights"):
        check_adapter(base, folder, "json")


def test_corrupted_config_json_is_reported(base, tmp_path):
    folder = copy_adapter(JSON_DIR, tmp_path / "json")
    (folder / "adapter_config.json").write_text('{"r": 8, "target_modules": [')
    with pytest.raises(CorruptAdapterError, match="not valid JSON"):
        check_adapter(base, folder, "json")


# ---------------------------------------------------------------- base and targets
def test_report_for_a_shipped_adapter(base):
    report = check_adapter(base, JSON_DIR, "json")
    assert report.adapter_base == report.loaded_base == TINY_MODEL_ID
    assert report.adapter_fingerprint == report.loaded_fingerprint == base_fingerprint(base)
    assert report.base_source == "manifest.json"
    assert report.rank == 8 and set(report.ranks) == {8}
    assert report.target_modules == tuple(
        sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    )
    assert report.modules_matched == 7 * base.config.num_hidden_layers
    assert "rank r" in report.summary() and TINY_MODEL_ID in report.summary()


def test_adapter_from_another_base_names_both_bases(base, tmp_path):
    folder = make_other_base_adapter(tmp_path / "other")
    with pytest.raises(BaseMismatchError) as err:
        check_adapter(base, folder, "other")
    message = str(err.value)
    assert OTHER_ID in message and TINY_MODEL_ID in message and "Load the base" in message


def test_other_base_without_manifest_is_caught_from_adapter_config(base, tmp_path):
    folder = make_other_base_adapter(tmp_path / "other", with_manifest=False)
    with pytest.raises(BaseMismatchError, match="adapter_config.json") as err:
        check_adapter(base, folder, "other")
    assert OTHER_ID in str(err.value) and TINY_MODEL_ID in str(err.value)


def test_other_base_with_no_record_is_caught_by_shapes(base, tmp_path):
    folder = make_other_base_adapter(tmp_path / "other", with_manifest=False)
    cfg = json.loads((folder / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = None
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(BaseMismatchError, match="layer shapes differ") as err:
        check_adapter(base, folder, "other")
    assert "4x64" in str(err.value) and "192x192" in str(err.value)


def test_same_shapes_but_other_base_id_needs_strict_false(base, tmp_path):
    folder = copy_adapter(JSON_DIR, tmp_path / "json")
    manifest = Manifest.load(folder)
    manifest.base_model = "someone/finetuned-variant"
    manifest.save(folder)
    with pytest.raises(BaseMismatchError, match="strict=False") as err:
        check_adapter(base, folder, "json")
    assert "someone/finetuned-variant" in str(err.value)
    report = check_adapter(base, folder, "json", strict=False)
    assert any("strict=False" in note for note in report.notes)


def test_adapter_config_naming_the_local_base_folder_is_accepted(base, tmp_path):
    folder = copy_adapter(JSON_DIR, tmp_path / "json", manifest=False)
    cfg = json.loads((folder / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(Path(TINY_MODEL_DIR).resolve()) + "/"
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    report = check_adapter(base, folder, "json")
    assert report.base_source == "adapter_config.json" and report.adapter_fingerprint is None


def test_targets_missing_from_the_base_are_named(base, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = copy_adapter(JSON_DIR, tmp_path / "json", manifest=False)
    weights = load_file(str(folder / "adapter_model.safetensors"))
    save_file(
        {k.replace("q_proj", "query_key_value"): v for k, v in weights.items()},
        str(folder / "adapter_model.safetensors"),
    )
    with pytest.raises(TargetModulesError, match="query_key_value"):
        check_adapter(base, folder, "json")


# ---------------------------------------------------------------- loading safely
def test_load_checked_wraps_a_plain_base_and_adds_to_a_peft_model(base, tokenizer):
    from peft import PeftModel

    model, report = load_adapter_checked(base, JSON_DIR, "json")
    assert isinstance(model, PeftModel) and list(model.peft_config) == ["json"] and report.name == "json"
    model, _ = load_adapter_checked(model, TINY_ADAPTERS_DIR / "coding", "coding")
    assert list(model.peft_config) == ["json", "coding"] and model.active_adapter == "json"
    model, _ = load_adapter_checked(model, TINY_ADAPTERS_DIR / "support", "support", activate=True)
    assert model.active_adapter == "support"
    assert not any(p.requires_grad for p in model.parameters())


def test_every_failure_leaves_loaded_adapters_working(course_model, tokenizer, tmp_path):
    names, active = list(course_model.peft_config), course_model.active_adapter
    before = probe_logits(course_model, tokenizer)
    corrupt = copy_adapter(JSON_DIR, tmp_path / "corrupt")
    (corrupt / "adapter_model.safetensors").write_bytes(b"\x00" * 20)
    missing = copy_adapter(JSON_DIR, tmp_path / "missing")
    (missing / "adapter_config.json").unlink()
    attempts = [
        (make_other_base_adapter(tmp_path / "other"), "other", BaseMismatchError),
        (corrupt, "corrupt", CorruptAdapterError),
        (missing, "missing", AdapterFilesError),
        (JSON_DIR, "../json", AdapterNameError),
        (JSON_DIR, "json", AdapterNameError),
        (tmp_path / "nowhere", "nowhere", AdapterFilesError),
    ]
    for folder, name, error in attempts:
        with pytest.raises(error):
            load_adapter_checked(course_model, folder, name)
        assert_unchanged(course_model, tokenizer, before, names, active)


def test_reloading_a_loaded_name_does_not_overwrite_it(course_model, tokenizer):
    before = probe_logits(course_model, tokenizer)
    with pytest.raises(AdapterNameError, match="already loaded") as err:
        load_adapter_checked(course_model, TINY_ADAPTERS_DIR / "coding", "json")
    assert "delete_adapter('json')" in str(err.value)
    assert_unchanged(course_model, tokenizer, before, ["json", "coding", "support"], "json")


def test_peft_failure_after_the_check_is_rolled_back(course_model, tokenizer, tmp_path, monkeypatch):
    names, active = list(course_model.peft_config), course_model.active_adapter
    before = probe_logits(course_model, tokenizer)
    folder = make_other_base_adapter(tmp_path / "other")
    monkeypatch.setattr(
        compat,
        "check_adapter",
        lambda model, folder, name, strict=True: compat.CompatReport(
            name, Path(folder), OTHER_ID, None, TINY_MODEL_ID, "", "test", 4, (4,), 8, ("q_proj",), 0
        ),
    )
    with pytest.raises(AdapterLoadError, match="removed again") as err:
        load_adapter_checked(course_model, folder, "other")
    assert "size mismatch" in str(err.value)
    assert_unchanged(course_model, tokenizer, before, names, active)


def test_peft_failure_on_a_plain_base_restores_the_base(base, tokenizer, tmp_path, monkeypatch):
    import torch

    enc = tokenizer(["<|user|>\nhello<|end|>\n<|assistant|>\n"], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        before = base(**enc).logits
    folder = make_other_base_adapter(tmp_path / "other")
    monkeypatch.setattr(
        compat,
        "check_adapter",
        lambda model, folder, name, strict=True: compat.CompatReport(
            name, Path(folder), OTHER_ID, None, TINY_MODEL_ID, "", "test", 4, (4,), 8, ("q_proj",), 0
        ),
    )
    with pytest.raises(AdapterLoadError, match="restored"):
        load_adapter_checked(base, folder, "other")
    from peft.tuners.lora import LoraLayer

    assert not any(isinstance(m, LoraLayer) for m in base.modules())
    with torch.no_grad():
        assert torch.equal(base(**enc).logits, before)


def test_all_errors_share_one_catchable_class():
    for cls in (
        AdapterNameError,
        AdapterFilesError,
        CorruptAdapterError,
        BaseMismatchError,
        TargetModulesError,
        AdapterLoadError,
        DamagedWeightsError,
        AdapterConfigError,
    ):
        assert issubclass(cls, AdapterCompatError) and issubclass(cls, ValueError)


# ---------------------------------------------------------------- damaged weights and configs (issue 15)
def _edit_config(folder: Path, **changes) -> Path:
    """Change fields of a copied adapter's adapter_config.json."""
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))
    return folder


def _edit_weights(folder: Path, change) -> Path:
    """Rewrite a copied adapter's weights: `change(dict of tensors)` returns the new dict."""
    from safetensors.torch import load_file, save_file

    path = folder / "adapter_model.safetensors"
    save_file(change(load_file(str(path))), str(path))
    return folder


def _zero(which: str):
    """A weights edit that zeroes every tensor whose name contains `which`."""
    import torch

    return lambda weights: {k: torch.zeros_like(v) if which in k else v for k, v in weights.items()}


def test_nan_or_inf_weights_are_refused_naming_the_file(base, tmp_path):

    for value in (float("nan"), float("inf")):
        folder = copy_adapter(JSON_DIR, tmp_path / f"json-{value}")
        key = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"

        def poison(weights, key=key, value=value):
            weights[key] = weights[key].clone()
            weights[key][0, 0] = value
            return weights

        _edit_weights(folder, poison)
        with pytest.raises(DamagedWeightsError, match="NaN or infinite") as err:
            check_adapter(base, folder, "json")
        assert str(folder / "adapter_model.safetensors") in str(err.value) and key in str(err.value)
        assert "lower learning rate" in str(err.value) and "download" in str(err.value)


def test_zero_filled_weights_are_refused(base, tmp_path):
    folder = _edit_weights(copy_adapter(JSON_DIR, tmp_path / "json"), _zero("lora_"))
    with pytest.raises(DamagedWeightsError, match="Every LoRA tensor .* is zero") as err:
        check_adapter(base, folder, "json")
    assert "exactly like the base" in str(err.value) and str(folder) in str(err.value)


def test_a_zeroed_lora_a_is_damage_not_training(base, tmp_path):
    folder = _edit_weights(copy_adapter(JSON_DIR, tmp_path / "json"), _zero("layers.0.mlp.up_proj.lora_A"))
    with pytest.raises(DamagedWeightsError, match="lora_A is all zero in 1 of 28"):
        check_adapter(base, folder, "json")


def test_untrained_adapter_loads_with_a_warning_and_answers_like_the_base(base, tokenizer, tmp_path):
    """All-zero lora_B with random lora_A is a fresh LoRA (B = 0 by design): a warning, not an error."""
    import torch

    folder = _edit_weights(copy_adapter(JSON_DIR, tmp_path / "json"), _zero("lora_B"))
    enc = tokenizer(["<|user|>\nhello<|end|>\n<|assistant|>\n"], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        before = base(**enc).logits
    with pytest.warns(AdapterWarning, match="untrained"):
        model, report = load_adapter_checked(base, folder, "json")
    assert report.warnings and "untrained" in report.summary() and "WARNING" in report.summary()
    with torch.no_grad():
        assert torch.equal(model(**enc).logits, before)


def test_partly_untrained_adapter_warns_how_many_modules(base, tmp_path):
    folder = _edit_weights(copy_adapter(JSON_DIR, tmp_path / "json"), _zero("layers.2.self_attn.q_proj.lora_B"))
    with pytest.warns(AdapterWarning, match="1 of 28 modules"):
        report = check_adapter(base, folder, "json")
    assert len(report.warnings) == 1


def test_shipped_adapter_has_no_warnings(base, recwarn):
    report = check_adapter(base, JSON_DIR, "json")
    assert report.warnings == () and not [w for w in recwarn if issubclass(w.category, AdapterWarning)]


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"lora_alpha": 1600}, "1600 / 8 = 200 is outside"),
        ({"lora_alpha": 0.05}, "barely change"),
        ({"lora_alpha": 0}, "positive number"),
        ({"lora_alpha": -16}, "positive number"),
        ({"lora_alpha": "16"}, "positive number"),
        ({"lora_alpha": True}, "positive number"),
        ({"r": 0}, "positive whole number"),
        ({"r": "abc"}, "positive whole number"),
        ({"r": 8.0}, "whole number"),
        ({"alpha_pattern": {"q_proj": 4000}}, "for modules matching 'q_proj'"),
        ({"use_rslora": True, "lora_alpha": 64, "r": 8}, r"sqrt\(r\)"),
        ({"target_modules": ["q_proj", 3]}, "list of module names"),
    ],
)
def test_config_values_that_break_the_adapter_are_refused(base, tmp_path, changes, fragment):
    folder = _edit_config(copy_adapter(JSON_DIR, tmp_path / "json"), **changes)
    with pytest.raises(AdapterConfigError, match=fragment) as err:
        check_adapter(base, folder, "json")
    assert str(folder / "adapter_config.json") in str(err.value)


def test_rslora_scale_uses_the_square_root(base, tmp_path):
    folder = _edit_config(copy_adapter(JSON_DIR, tmp_path / "json"), use_rslora=True, lora_alpha=16)
    assert check_adapter(base, folder, "json").lora_alpha == 16  # 16 / sqrt(8) = 5.7: in range


def test_config_listing_fewer_targets_than_the_tensors_is_refused(base, tmp_path):
    folder = _edit_config(copy_adapter(JSON_DIR, tmp_path / "json"), target_modules=["q_proj", "v_proj"])
    with pytest.raises(TargetModulesError, match="does not target") as err:
        check_adapter(base, folder, "json")
    message = str(err.value)
    assert "partial adapter" in message and "'up_proj'" in message and "'q_proj'" not in message.split("Add")[1]


def test_config_listing_more_targets_than_the_tensors_is_refused(base, tmp_path):
    folder = _edit_weights(
        copy_adapter(JSON_DIR, tmp_path / "json"),
        lambda weights: {k: v for k, v in weights.items() if "k_proj" not in k},
    )
    with pytest.raises(TargetModulesError, match="no weights in") as err:
        check_adapter(base, folder, "json")
    assert "k_proj" in str(err.value) and "untrained" in str(err.value)


def test_layers_to_transform_must_agree_with_the_tensors(base, tmp_path):
    folder = _edit_config(copy_adapter(JSON_DIR, tmp_path / "json"), layers_to_transform=[0, 1])
    with pytest.raises(TargetModulesError, match="layers.2"):
        check_adapter(base, folder, "json")


def test_missing_half_of_a_lora_pair_is_refused(base, tmp_path):
    key = "base_model.model.model.layers.3.mlp.down_proj.lora_B.weight"
    folder = _edit_weights(
        copy_adapter(JSON_DIR, tmp_path / "json"), lambda weights: {k: v for k, v in weights.items() if k != key}
    )
    with pytest.raises(DamagedWeightsError, match="only one of lora_A/lora_B"):
        check_adapter(base, folder, "json")


def test_rank_in_config_must_match_the_tensors(base, tmp_path):
    folder = _edit_config(copy_adapter(JSON_DIR, tmp_path / "json"), r=4, lora_alpha=8)
    with pytest.raises(TargetModulesError, match="says r=4"):
        check_adapter(base, folder, "json")


@pytest.mark.parametrize("targets", ["all-linear", r".*\.(q|k|v|o|up|gate|down)_proj"])
def test_shorthand_and_regex_targets_that_match_the_tensors_pass(base, tmp_path, targets):
    folder = _edit_config(copy_adapter(JSON_DIR, tmp_path / "json"), target_modules=targets)
    assert check_adapter(base, folder, "json").modules_matched == 28


def test_damaged_adapters_leave_loaded_ones_working(course_model, tokenizer, tmp_path):
    names, active = list(course_model.peft_config), course_model.active_adapter
    before = probe_logits(course_model, tokenizer)
    damaged = [
        (_edit_weights(copy_adapter(JSON_DIR, tmp_path / "zero"), _zero("lora_")), DamagedWeightsError),
        (_edit_config(copy_adapter(JSON_DIR, tmp_path / "alpha"), lora_alpha=1600), AdapterConfigError),
        (_edit_config(copy_adapter(JSON_DIR, tmp_path / "fewer"), target_modules=["q_proj"]), TargetModulesError),
    ]
    for folder, error in damaged:
        with pytest.raises(error):
            load_adapter_checked(course_model, folder, folder.name)
        assert_unchanged(course_model, tokenizer, before, names, active)


@pytest.mark.parametrize("bad", ["json\n", "json\r\n", "\njson", "json\n\n"])
def test_names_with_a_newline_are_refused(bad):
    with pytest.raises(AdapterNameError, match="not allowed"):
        check_adapter_name(bad)


def test_a_target_regex_that_does_not_compile_is_a_config_error(base, tmp_path):
    folder = _edit_config(copy_adapter(JSON_DIR, tmp_path / "json"), target_modules="(q_proj")
    with pytest.raises(AdapterConfigError, match="cannot be matched against the model"):
        check_adapter(base, folder, "json")


def test_manifest_field_of_the_wrong_type_is_a_clear_error(tmp_path, base):
    import json
    import shutil

    from lessons_lib.compat import CorruptAdapterError, check_adapter
    from lessons_lib.paths import TINY_ADAPTERS_DIR

    folder = shutil.copytree(TINY_ADAPTERS_DIR / "json", tmp_path / "json")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["base_model"] = [1]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptAdapterError, match=r"base_model=\[1\].*must be text"):
        check_adapter(base, folder, "json")


def test_a_config_saved_with_a_bom_or_without_peft_type_says_what_to_do(base, tmp_path):
    """Before: a BOM was called damaged ("copy or download again"); a missing peft_type was PEFT's bare KeyError."""
    folder = copy_adapter(JSON_DIR, tmp_path / "json")
    config = folder / "adapter_config.json"
    raw = config.read_bytes()
    config.write_bytes(b"\xef\xbb\xbf" + raw)
    with pytest.raises(CorruptAdapterError, match="byte-order mark .* Save the file again as UTF-8 without BOM"):
        check_adapter(base, folder, "json")
    edited = json.loads(raw)
    del edited["peft_type"]
    config.write_text(json.dumps(edited))
    with pytest.raises(CorruptAdapterError, match='has no peft_type.* add "peft_type": "LORA"'):
        check_adapter(base, folder, "json")


def test_an_adapter_that_records_the_loaded_base_but_does_not_fit_it_is_called_changed(base, tmp_path):
    """Before: "Load the base 'lora-adapter-lab/tiny-course-model' before loading ..." — the base already loaded."""
    from safetensors.torch import load_file, save_file

    folder = copy_adapter(JSON_DIR, tmp_path / "json")
    weights = load_file(str(folder / "adapter_model.safetensors"))
    key = next(k for k in sorted(weights) if "lora_A" in k)
    weights[key] = weights[key][:, :64].contiguous()  # as if mixed with another adapter's file
    save_file(weights, str(folder / "adapter_model.safetensors"))
    with pytest.raises(BaseMismatchError, match="layer shapes differ") as err:
        check_adapter(base, folder, "json")
    assert "records this very base, so its files changed after training" in str(err.value)
    assert "Load the base" not in str(err.value)
