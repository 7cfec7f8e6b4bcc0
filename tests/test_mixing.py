"""Merging and mixing adapters: merge equality, reload without PEFT, weighted adapters that reload, clear errors."""

from __future__ import annotations

import warnings

import pytest
import torch

from lessons_lib.adapters import adapter_dir
from lessons_lib.data import DOMAINS, examples
from lessons_lib.mixing import (
    COMBINATION_TYPES,
    MixError,
    RankMismatchError,
    SvdDtypeError,
    create_weighted_adapter,
    folder_bytes,
    load_merged,
    max_logit_diff,
    merge_for_deployment,
    module_ranks,
    runtime_mix,
    save_merged,
)
from lessons_lib.models import generate, load_base

MAX_NEW = 16
# Same maths, another rounding order: fp32 logits (|x| up to ~20) differ by ~1e-5 across CPUs and BLAS builds.
# These bounds leave 10x room for that; another adapter moves the logits by 1e-1 to 16.
FP32 = dict(rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def prompts():
    return [examples(domain, 1, "heldout")[0].prompt for domain in DOMAINS]


def logits(model, tokenizer, prompts):
    from lessons_lib.models import chat_text

    enc = tokenizer(
        [chat_text(tokenizer, p) for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False
    )
    with torch.no_grad():
        return model(**enc).logits


def test_merged_model_equals_the_adapter_and_reloads_without_peft(course_model, tokenizer, prompts, tmp_path, tiny):
    from peft import PeftModel

    course_model.set_adapter("coding", inference_mode=True)
    want_logits = logits(course_model, tokenizer, prompts)
    want_text = generate(course_model, tokenizer, prompts, MAX_NEW)
    merged = course_model.merge_and_unload(adapter_names=["coding"])
    assert not isinstance(merged, PeftModel)
    torch.testing.assert_close(logits(merged, tokenizer, prompts), want_logits, **FP32)
    assert generate(merged, tokenizer, prompts, MAX_NEW) == want_text

    folder = save_merged(merged, tokenizer, tmp_path / "merged")
    assert not (folder / "adapter_config.json").exists()
    reloaded = load_merged(folder)
    assert type(reloaded).__name__ == "LlamaForCausalLM" and not hasattr(reloaded, "peft_config")
    assert generate(reloaded, tokenizer, prompts, MAX_NEW) == want_text
    assert max_logit_diff(reloaded, merged, tokenizer, prompts) <= FP32["atol"]  # the same weights, reloaded
    assert folder_bytes(folder) > 5 * folder_bytes(adapter_dir("coding", tiny))


def test_saving_a_peft_model_as_merged_is_refused(course_model, tokenizer, tmp_path):
    with pytest.raises(TypeError, match="merge_and_unload"):
        save_merged(course_model, tokenizer, tmp_path / "x")


@pytest.mark.parametrize("combination_type", COMBINATION_TYPES)
def test_every_combination_type_saves_and_loads_back(
    course_model, tokenizer, prompts, tmp_path, tiny, combination_type
):
    from peft import PeftModel

    name = create_weighted_adapter(course_model, ["json", "support"], [1.0, 0.5], "mix", combination_type)
    assert name == "mix" and "mix" in course_model.peft_config
    assert course_model.active_adapter == "json"  # creating does not activate
    course_model.set_adapter("mix", inference_mode=True)
    want = logits(course_model, tokenizer, prompts)
    course_model.save_pretrained(tmp_path, selected_adapters=["mix"])
    reloaded = PeftModel.from_pretrained(load_base(tiny), tmp_path / "mix", adapter_name="mix")
    torch.testing.assert_close(logits(reloaded, tokenizer, prompts), want, **FP32)


def _rank_pattern_model(tiny, patterns):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    configs = [
        LoraConfig(r=8, target_modules=["q_proj", "v_proj"], rank_pattern=p, init_lora_weights=False) for p in patterns
    ]
    model = get_peft_model(load_base(tiny), configs[0], adapter_name="a")
    model.add_adapter("b", configs[1])
    return model


@pytest.mark.parametrize("combination_type", ["linear", "ties", "magnitude_prune"])
def test_rank_pattern_adapters_combine_into_a_reloadable_adapter(tiny, tmp_path, combination_type):
    """peft #3737: plain add_weighted_adapter saves a config whose ranks don't match the weights."""
    from peft import PeftModel

    model = _rank_pattern_model(tiny, [{"v_proj": 4}, {"v_proj": 4}])
    model.add_weighted_adapter(["a", "b"], [1.0, 0.5], "raw", combination_type=combination_type, density=0.5)
    model.save_pretrained(tmp_path, selected_adapters=["raw"])
    with pytest.raises(RuntimeError, match="size mismatch"):
        PeftModel.from_pretrained(load_base(tiny), tmp_path / "raw")  # the trap our helper avoids

    create_weighted_adapter(model, ["a", "b"], [1.0, 0.5], "safe", combination_type)
    assert set(module_ranks(model, "safe").values()) == {4, 8}
    model.set_adapter("safe")
    x = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        want = model(x).logits
    model.save_pretrained(tmp_path, selected_adapters=["safe"])
    reloaded = PeftModel.from_pretrained(load_base(tiny), tmp_path / "safe")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).logits, want, **FP32)


def test_unequal_ranks_get_a_clear_error_naming_cat_and_svd(tiny):
    model = _rank_pattern_model(tiny, [{"v_proj": 4}, {}])
    for combination_type in ("linear", "ties", "dare_linear", "dare_ties", "magnitude_prune"):
        with pytest.raises(RankMismatchError, match=r"'cat'.*'svd'"):
            create_weighted_adapter(model, ["a", "b"], [1, 1], "mix", combination_type)
    assert "mix" not in model.peft_config and model.active_adapter == "a"
    create_weighted_adapter(model, ["a", "b"], [1, 1], "mix", "cat")
    assert model.peft_config["mix"].r == 16  # cat: ranks add up (8 + 8)


def test_existing_name_is_replaced_not_silently_kept(course_model, tokenizer, prompts):
    course_model.add_weighted_adapter(["json", "support"], [1.0, 1.0], "mix", combination_type="cat")
    course_model.add_weighted_adapter(["coding"], [1.0], "mix", combination_type="cat")  # PEFT: returns silently
    assert course_model.peft_config["mix"].r == 16  # still the json+support mix (rank 8 + 8), not coding
    create_weighted_adapter(course_model, ["coding"], [1.0], "mix", "cat")
    assert course_model.peft_config["mix"].r == 8
    course_model.set_adapter("coding", inference_mode=True)
    coding = logits(course_model, tokenizer, prompts[:1])
    course_model.set_adapter("mix", inference_mode=True)
    torch.testing.assert_close(logits(course_model, tokenizer, prompts[:1]), coding, **FP32)
    create_weighted_adapter(course_model, ["json"], [1.0], "mix", "cat")  # replacing the active adapter
    assert course_model.active_adapter == "mix" and course_model.peft_config["mix"].r == 8
    with pytest.raises(AssertionError, match="not close"):
        torch.testing.assert_close(logits(course_model, tokenizer, prompts[:1]), coding, **FP32)


def test_svd_refuses_half_precision_weights_and_keeps_the_model(course_model):
    course_model.half()
    with pytest.raises(SvdDtypeError, match="fp32.*'cat'"):
        create_weighted_adapter(course_model, ["json", "coding"], [1, 1], "mix", "svd")
    assert "mix" not in course_model.peft_config and list(course_model.peft_config) == ["json", "coding", "support"]


def test_bad_requests_fail_before_touching_the_model(course_model):
    create_weighted_adapter(course_model, ["json", "coding"], [1, 1], "mix", "cat")
    for args, message in [
        ((["json", "legal"], [1, 1], "mix", "cat"), "not loaded"),
        ((["json", "coding"], [1], "mix", "cat"), "one weight per adapter"),
        ((["json", "coding"], [1, 1], "json", "cat"), "source adapter"),
        ((["json", "coding"], [1, 1], "mix_0.5", "cat"), "no dots"),
        ((["json", "coding"], [1, 1], "mix", "average"), "Unknown combination_type"),
    ]:
        with pytest.raises(MixError, match=message):
            create_weighted_adapter(course_model, *args)
    assert "mix" in course_model.peft_config and course_model.peft_config["mix"].r == 16


def test_runtime_mix_equals_cat_and_restores_the_model(course_model, tokenizer, prompts):
    create_weighted_adapter(course_model, ["json", "support"], [1.0, 0.5], "cat_mix", "cat")
    course_model.set_adapter("cat_mix", inference_mode=True)
    cat = logits(course_model, tokenizer, prompts)
    course_model.set_adapter("json", inference_mode=True)
    alone = logits(course_model, tokenizer, prompts)
    with runtime_mix(course_model, {"json": 1.0, "support": 0.5}):
        assert sorted(course_model.active_adapters) == ["json", "support"]
        torch.testing.assert_close(logits(course_model, tokenizer, prompts), cat, **FP32)
    assert course_model.active_adapter == "json"
    assert torch.equal(logits(course_model, tokenizer, prompts), alone)
    with pytest.raises(MixError, match=">= 0"), runtime_mix(course_model, {"json": -1.0}):
        pass


def test_merge_for_deployment_on_cpu_matches_the_adapter(course_model, tokenizer, prompts, tiny, tmp_path):
    course_model.set_adapter("support", inference_mode=True)
    want = generate(course_model, tokenizer, prompts, MAX_NEW)
    result = merge_for_deployment(
        tiny,
        {"support": adapter_dir("support", tiny)},
        tmp_path / "deploy",
        tokenizer,
        requantize=True,
        log=lambda *_: None,
    )
    assert not result.requantized and result.merged_dtype == "torch.float32"
    assert any("skipped" in note for note in result.notes)
    assert (result.folder / "config.json").is_file() and (result.folder / "tokenizer.json").is_file()
    assert generate(result.model, tokenizer, prompts, MAX_NEW) == want


def test_merge_checkpoint_file_by_file_equals_merge_and_unload(course_model, tokenizer, prompts, tiny, tmp_path):
    from lessons_lib.mixing import checkpoint_tensor, merge_checkpoint
    from lessons_lib.models import model_source

    course_model.set_adapter("support", inference_mode=True)
    want = logits(course_model, tokenizer, prompts)
    folder = merge_checkpoint(
        model_source(tiny),
        adapter_dir("support", tiny),
        tmp_path / "streamed",
        torch.float32,
        shard_bytes=2_000_000,
        log=lambda *_: None,
    )
    assert (folder / "model.safetensors.index.json").is_file()  # small shards: several files and an index
    streamed = load_merged(folder)
    torch.testing.assert_close(logits(streamed, tokenizer, prompts), want, **FP32)
    in_memory = course_model.merge_and_unload(adapter_names=["support"])
    key = "model.layers.1.mlp.down_proj.weight"
    torch.testing.assert_close(checkpoint_tensor(folder, key), in_memory.get_parameter(key).detach(), **FP32)


def test_streamed_deployment_matches_the_adapter(course_model, tokenizer, prompts, tiny, tmp_path):
    course_model.set_adapter("json", inference_mode=True)
    want = generate(course_model, tokenizer, prompts, MAX_NEW)
    result = merge_for_deployment(
        tiny, {"json": adapter_dir("json", tiny)}, tmp_path / "deploy", tokenizer, streamed=True, log=lambda *_: None
    )
    assert result.streamed and not result.requantized and result.merged_dtype == "torch.float32"
    assert (result.folder / "tokenizer.json").is_file()
    assert generate(result.model, tokenizer, prompts, MAX_NEW) == want


def test_merging_files_refuses_what_it_cannot_merge(tiny, tmp_path):
    import json
    import shutil

    from lessons_lib.mixing import lora_updates

    folder = tmp_path / "dora"
    shutil.copytree(adapter_dir("json", tiny), folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(MixError, match="merge_and_unload"):
        lora_updates(folder)


# ---------------------------------------------------------------- mix weights are checked (issue 15)
NOT_FINITE_OR_HUGE = [float("nan"), float("inf"), -float("inf"), 1e30]
NOT_NUMBERS = [None, "0.5", True, [0.5]]


@pytest.mark.parametrize("weight", NOT_FINITE_OR_HUGE, ids=repr)
def test_weights_that_are_not_finite_or_out_of_range_are_refused(course_model, weight):
    """Before: NaN, inf and 1e30 were accepted by create_weighted_adapter and set_runtime_mix."""
    from lessons_lib.mixing import MixWeightError, set_runtime_mix

    loaded = list(course_model.peft_config)
    with pytest.raises(MixWeightError, match=r"'support' is .*finite number from -4 to 4"):
        create_weighted_adapter(course_model, ["json", "support"], [1.0, weight], "bad", "cat")
    with pytest.raises(ValueError, match=r"'support' is .*finite number from 0 to 4|must be >= 0"):
        set_runtime_mix(course_model, {"json": 1.0, "support": weight})
    with pytest.raises(ValueError, match="finite number|must be >= 0"), runtime_mix(course_model, {"support": weight}):
        pass
    assert list(course_model.peft_config) == loaded and course_model.active_adapter == "json"


@pytest.mark.parametrize("weight", NOT_NUMBERS, ids=repr)
def test_weights_that_are_not_numbers_say_what_to_pass(course_model, weight):
    """Before: None and "0.5" gave raw TypeErrors from deep inside (or "0.5" was silently converted)."""
    from lessons_lib.mixing import set_runtime_mix

    with pytest.raises(TypeError, match=r"pass a number \(e\.g\. 0\.5\)"):
        create_weighted_adapter(course_model, ["json", "support"], [1.0, weight], "bad", "cat")
    with pytest.raises(TypeError, match="pass a number"):
        set_runtime_mix(course_model, {"json": 1.0, "support": weight})
    assert "bad" not in course_model.peft_config


def test_weight_containers_and_the_shared_bound(course_model):
    import numpy as np

    from lessons_lib.mixing import MAX_WEIGHT, check_weights, merge_for_deployment, set_runtime_mix
    from lessons_lib.profiles import PROFILES
    from lessons_lib.serve.app import Server

    assert MAX_WEIGHT == 4.0 and "MAX_WEIGHT" in Server.check_weights.__doc__  # the server uses the same bound
    assert check_weights(["json", "support"], np.array([1.0, -0.5])) == [1.0, -0.5]  # negative: fine here
    assert check_weights(["json"], (np.float32(4.0),)) == [4.0]
    with pytest.raises(TypeError, match="one number per adapter"):
        check_weights(["json"], 0.5)
    with pytest.raises(TypeError, match="one number per adapter"):
        check_weights(["json"], {"json": 0.5})
    with pytest.raises(MixError, match="2 adapters but 1 weights"):
        check_weights(["json", "support"], [1.0])
    with pytest.raises(TypeError, match="a dict"):
        set_runtime_mix(course_model, [1.0])
    with pytest.raises(ValueError, match=">= 0"):
        set_runtime_mix(course_model, {"json": -0.5})
    start = __import__("time").perf_counter()
    with pytest.raises(ValueError, match="finite number"):  # refused before the base is loaded
        merge_for_deployment(
            PROFILES["tiny"], {"json": "unused", "support": "unused"}, "unused", weights=[1.0, float("nan")]
        )
    assert __import__("time").perf_counter() - start < 1.0


# ---------------------------------------------------------------- a wrapper merged away refuses to switch
def test_after_merge_and_unload_the_old_wrapper_refuses_to_switch(course_model, tokenizer, prompts):
    """Before: set_adapter("coding") on the old PeftModel succeeded silently and it still answered as json."""
    from lessons_lib.mixing import StaleModelError

    course_model.set_adapter("json", inference_mode=True)
    json_answers = generate(course_model, tokenizer, prompts, MAX_NEW)
    merged = course_model.merge_and_unload(adapter_names=["json"])  # PEFT's own call
    with pytest.raises(StaleModelError, match=r"set_adapter\('coding'\) refused: merge_and_unload\(\) baked json"):
        course_model.set_adapter("coding")
    with pytest.raises(StaleModelError, match="load a fresh base"):
        course_model.base_model.set_adapter(["json", "coding"])
    with pytest.raises(StaleModelError):
        runtime_mix(course_model, {"coding": 1.0}).__enter__()
    with pytest.raises(StaleModelError, match="create_weighted_adapter refused"):
        create_weighted_adapter(course_model, ["coding"], [1.0], "late_mix", "cat")
    assert generate(merged, tokenizer, prompts, MAX_NEW) == json_answers  # the merged model itself is fine


def test_the_guard_covers_models_built_by_peft_directly_and_unload(tiny, tokenizer):
    from peft import PeftModel

    from lessons_lib.mixing import StaleModelError, install_merge_guard

    model = PeftModel.from_pretrained(load_base(tiny), str(adapter_dir("json", tiny)), adapter_name="json")
    model.load_adapter(str(adapter_dir("coding", tiny)), adapter_name="coding")
    model.set_adapter("coding")  # a healthy wrapper switches as before
    assert model.active_adapter == "coding"
    model.unload()
    with pytest.raises(StaleModelError, match=r"unload\(\) removed its LoRA layers"):
        model.set_adapter("json")
    assert model.active_adapter == "coding"  # refused before PEFT changed anything
    assert install_merge_guard() and install_merge_guard()  # idempotent: wrapped once
    assert not hasattr(PeftModel.set_adapter.__wrapped__, "__wrapped__")


# ---------------------------------------------------------------- adapters with modules_to_save copies
@pytest.fixture
def tools_and_json(base, tiny):
    """A PeftModel with the shipped tools adapter (it saves its own lm_head) and the json adapter."""
    from peft import PeftModel

    from lessons_lib.adapters import adapter_dir

    model = PeftModel.from_pretrained(base, str(adapter_dir("tools", tiny)), adapter_name="tools")
    model.load_adapter(str(adapter_dir("json", tiny)), adapter_name="json")
    model.eval()
    return model


def test_peft_alone_drops_the_tools_lm_head_in_a_weighted_mix(tools_and_json):
    """Why the refusal exists: PEFT's add_weighted_adapter gives the mix the base's lm_head, without a word."""
    import torch

    head = tools_and_json.base_model.model.lm_head
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tools_and_json.add_weighted_adapter(["tools", "json"], [1.0, 1.0], "raw_mix", combination_type="cat")
    tools_and_json.set_adapter("raw_mix")
    x = torch.randn(1, 3, head.original_module.in_features)
    with torch.no_grad():
        assert torch.equal(head(x), head.original_module(x))  # the base's lm_head ...
        assert not torch.allclose(head.modules_to_save["tools"](x), head.original_module(x))  # ... not tools' copy


@pytest.mark.parametrize("order", [["tools", "json"], ["json", "tools"], ["tools"]])
def test_a_mix_with_the_tools_adapter_is_refused_saying_what_to_do(tools_and_json, order):
    from lessons_lib.mixing import SavedModulesMixError, create_weighted_adapter

    before = list(tools_and_json.peft_config)
    with pytest.raises(SavedModulesMixError) as caught:
        create_weighted_adapter(tools_and_json, order, [1.0] * len(order), "mix", "cat")
    message = str(caught.value)
    assert "'tools'" in message and "lm_head" in message and "modules_to_save" in message
    assert "serve 'tools' on its own" in message and "merge_and_unload" in message
    if "json" in order:
        assert "('json')" in message  # the adapters that can still be mixed
    assert list(tools_and_json.peft_config) == before  # nothing half-built


def test_a_mix_without_the_tools_adapter_still_works(course_model):
    import torch

    from lessons_lib.mixing import create_weighted_adapter, saved_modules

    assert create_weighted_adapter(course_model, ["json", "support"], [1.0, 0.5], "js", "cat") == "js"
    assert saved_modules(course_model, "js") == []
    course_model.set_adapter("js")
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        mixed = course_model(input_ids=ids).logits
        with course_model.disable_adapter():
            plain = course_model(input_ids=ids).logits
    assert not torch.allclose(mixed, plain)  # the mix changes the answer
