"""Profiles: choice order, dtype rules (never bf16 on a T4), clear errors."""

import pytest
import torch

from lessons_lib import env, profiles
from lessons_lib.lesson import setup_lesson
from lessons_lib.profiles import PROFILES, choose_profile, get_profile


def test_three_profiles_and_their_rehearsals_exist():
    assert set(PROFILES) == {"tiny", "t4", "7b", "t4-rehearsal", "7b-rehearsal"}
    assert "TinyLlama" in PROFILES["t4"].model_id and "Mistral-7B" in PROFILES["7b"].model_id
    assert PROFILES["t4"].load_in_4bit and PROFILES["7b"].load_in_4bit and not PROFILES["tiny"].load_in_4bit


def test_unknown_profile_says_what_to_do():
    with pytest.raises(ValueError, match=r"Unknown profile 'huge'.*tiny, t4, 7b.*LESSONS_PROFILE=tiny\|t4\|7b"):
        get_profile("huge")


def test_choice_order(monkeypatch):
    monkeypatch.setenv(profiles.PROFILE_ENV_VAR, "7b")
    assert choose_profile("t4")[0].name == "t4"  # the parameters cell wins
    assert choose_profile(None) == (PROFILES["7b"], "set by $LESSONS_PROFILE")
    monkeypatch.delenv(profiles.PROFILE_ENV_VAR)
    monkeypatch.setattr(env, "cuda_available", lambda: False)
    assert choose_profile(None)[0].name == "tiny"
    monkeypatch.setattr(env, "cuda_available", lambda: True)
    assert choose_profile(None)[0].name == "t4"


def test_env_var_typo_is_an_error(monkeypatch):
    monkeypatch.setenv(profiles.PROFILE_ENV_VAR, "tinny")
    with pytest.raises(ValueError, match="tinny"):
        choose_profile(None)


@pytest.mark.parametrize(
    "capability, expected",
    [((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16), ((6, 1), torch.float16)],
)
def test_gpu_dtype_follows_compute_capability(capability, expected, monkeypatch):
    # A T4 (7.5) reports is_bf16_supported() == True through emulation; the profile must ignore that.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert PROFILES["t4"].torch_dtype(capability) == expected


def test_a_rehearsal_on_a_gpu_takes_the_lower_of_its_gpus_and_this_ones(monkeypatch):
    monkeypatch.delenv(env.CAPABILITY_ENV_VAR, raising=False)
    monkeypatch.setattr(env, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))  # an H100 or H200
    t4, t4_rehearsal, b7_rehearsal = PROFILES["t4"], PROFILES["t4-rehearsal"], PROFILES["7b-rehearsal"]
    assert t4.torch_dtype() == torch.bfloat16 and t4.dtype_reason() == "compute capability 9.0"
    assert t4_rehearsal.torch_dtype() == torch.float16 and b7_rehearsal.torch_dtype() == torch.bfloat16
    assert t4_rehearsal.dtype_reason() == "the t4 rehearsal, decided as on a T4 (7.5); this GPU: 9.0"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 5))  # a T4: no bf16 for the 7b one either
    assert b7_rehearsal.torch_dtype() == torch.float16 and b7_rehearsal.dtype_reason() == "compute capability 7.5"


def test_lessons_capability_takes_another_gpus_decisions(monkeypatch):
    monkeypatch.setattr(env, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setenv(env.CAPABILITY_ENV_VAR, "7.5")  # a T4's fp16 path, checked on an H200
    assert PROFILES["t4"].torch_dtype() == torch.float16 == PROFILES["7b-rehearsal"].torch_dtype()
    assert PROFILES["t4"].dtype_reason() == "compute capability 7.5 from $LESSONS_CAPABILITY; this GPU: 9.0"
    monkeypatch.setattr(env, "cuda_available", lambda: False)
    monkeypatch.setenv(env.CAPABILITY_ENV_VAR, " 8.0 ")  # on a CPU it moves the rehearsals only
    assert PROFILES["t4-rehearsal"].torch_dtype() == torch.bfloat16
    assert PROFILES["t4"].torch_dtype() == torch.float32 == PROFILES["tiny"].torch_dtype()
    assert PROFILES["t4-rehearsal"].dtype_reason() == "compute capability 8.0 from $LESSONS_CAPABILITY, on a CPU"
    monkeypatch.delenv(env.CAPABILITY_ENV_VAR)
    assert PROFILES["7b-rehearsal"].dtype_reason() == "the 7b rehearsal, decided as on an A100 or L4 (8.0), on a CPU"
    assert PROFILES["tiny"].dtype_reason() == "fp32: no GPU path on this profile"
    monkeypatch.setenv("LESSONS_LANG", "ru")
    assert PROFILES["7b-rehearsal"].dtype_reason() == "репетиция 7b, решено как на A100 или L4 (8.0), на CPU"


@pytest.mark.parametrize("raw", ["8", "eight", "8.0.1", "8,0", "-7.5"])
def test_a_bad_lessons_capability_says_how_to_write_one(raw, monkeypatch):
    monkeypatch.setenv(env.CAPABILITY_ENV_VAR, raw)
    with pytest.raises(ValueError, match=r"LESSONS_CAPABILITY=.* set it like 7\.5 \(a T4: fp16\) or 8\.0"):
        PROFILES["t4-rehearsal"].torch_dtype()


def test_adapters_merge_in_fp16_where_the_gpu_computes_in_bf16():
    """bf16's 8 significant bits round a small W + B·A back to W; fp16's 11 keep most of it."""
    assert PROFILES["t4"].merge_dtype((8, 0)) == torch.float16 == PROFILES["t4"].merge_dtype((7, 5))
    assert PROFILES["tiny"].merge_dtype((9, 0)) == torch.float32
    weights = torch.randn(256, 256, generator=torch.Generator().manual_seed(0)) * 0.02
    update = weights * 2e-3  # a short run's update: a fifth of a percent of each weight
    error = {}  # how far the update stored in the merged weights is from the update, relative to it
    for dtype in (torch.bfloat16, torch.float16):
        stored = (weights.to(dtype) + update).to(dtype).float() - weights.to(dtype).float()
        error[dtype] = ((stored - update).norm() / update.norm()).item()
    assert error[torch.bfloat16] > 0.9 and error[torch.float16] < 0.15  # measured: 1.00 and 0.10


def test_cpu_and_tiny_are_fp32():
    assert PROFILES["tiny"].torch_dtype((9, 0)) == torch.float32
    assert not env.native_bf16(None)


def test_setup_lesson_prints_choice_and_reason(monkeypatch, capsys):
    monkeypatch.delenv(profiles.PROFILE_ENV_VAR, raising=False)
    lesson = setup_lesson("99", profile="tiny", use_drive=True)
    out = capsys.readouterr().out
    assert lesson.profile.name == "tiny" and lesson.work_dir.is_dir()
    assert "asked for in the notebook's parameters cell" in out
    assert "only mounted on Colab" in out and lesson.drive_dir is None


@pytest.mark.parametrize(
    "gpu, template, half", [("t4", "zephyr", torch.float16), ("7b", "mistral-v0.3", torch.bfloat16)]
)
def test_rehearsal_takes_the_gpu_path_with_tiny_weights(gpu, template, half, monkeypatch):
    """Everything of the GPU profile but the weights, the step counts and the sample sizes."""
    from dataclasses import fields

    from lessons_lib.paths import TINY_MODEL_DIR

    monkeypatch.setattr(env, "cuda_available", lambda: False)
    monkeypatch.delenv(env.CAPABILITY_ENV_VAR, raising=False)
    real, rehearsal = PROFILES[gpu], PROFILES[f"{gpu}-rehearsal"]
    assert rehearsal.rehearsal and not real.rehearsal and rehearsal.rehearsal_of == gpu
    assert rehearsal.gpu_path() and not real.gpu_path() and not PROFILES["tiny"].gpu_path()
    assert rehearsal.torch_dtype() == half  # its GPU's choice on the CPU: a T4's fp16, an A100's or L4's bf16
    assert rehearsal.model_id == str(TINY_MODEL_DIR) and rehearsal.chat_template == template
    shrunk = set(profiles.REHEARSAL_SIZES) | {
        "name",
        "model_id",
        "description",
        "chat_template",
        "rehearsal_of",
        "train_tokens_per_second",
    }
    for field in fields(real):
        if field.name not in shrunk:
            assert getattr(rehearsal, field.name) == getattr(real, field.name), field.name
    assert rehearsal.train_steps < real.train_steps and rehearsal.eval_examples < real.eval_examples


def test_rehearsal_loads_4bit_on_cpu_with_the_real_chat_format():
    from lessons_lib.models import chat_text, load_base, load_tokenizer

    profile = PROFILES["7b-rehearsal"]
    model, tok = load_base(profile, log=lambda *_: None), load_tokenizer(profile)
    assert getattr(model, "is_loaded_in_4bit", False)
    assert type(model.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    assert chat_text(tok, "hello").endswith("[INST] hello[/INST]")


def test_gated_model_says_how_to_get_access(monkeypatch, capsys):
    monkeypatch.delenv(profiles.PROFILE_ENV_VAR, raising=False)
    setup_lesson("99", profile="7b")
    out = capsys.readouterr().out
    assert "gated" in out and "HF_TOKEN" in out and "huggingface.co/mistralai/Mistral-7B-Instruct-v0.3" in out


# ------------------------------------------------------------------ recipes as data: what differs is a profile field
def test_profile_fields_say_what_the_tiny_profile_does_differently():
    tiny, rehearsals = PROFILES["tiny"], [PROFILES["t4-rehearsal"], PROFILES["7b-rehearsal"]]
    assert [p.name for p in PROFILES.values() if p.ships_adapters] == ["tiny"]
    assert [p.name for p in PROFILES.values() if p.train_speed_measured] == ["tiny"]
    assert tiny.tiny_weights and all(p.tiny_weights for p in rehearsals)
    assert not PROFILES["t4"].tiny_weights and not PROFILES["7b"].tiny_weights
    assert (tiny.demo_train_steps, tiny.demo_eval_examples) == (30, 16)  # notebook 01's CPU demo
    assert all(p.demo_train_steps is None and p.demo_eval_examples is None for p in rehearsals)


def test_recipes_are_frozen_and_reached_from_the_profile():
    from dataclasses import FrozenInstanceError

    from lessons_lib.recipes import TINY_TOOL_RECIPE, RouterRecipe, SFTRecipe, ToolRecipe

    for profile in PROFILES.values():
        sft, router, tool = profile.sft_recipe, profile.router_recipe, profile.tool_recipe
        assert (type(sft), type(router), type(tool)) == (SFTRecipe, RouterRecipe, ToolRecipe)
        assert (sft.learning_rate, sft.batch_size, sft.grad_accum, sft.lora_r) == (
            profile.learning_rate,
            profile.batch_size,
            profile.grad_accum,
            profile.lora_r,
        )
        hash(profile)  # recipes inside a frozen profile keep it hashable
        with pytest.raises(FrozenInstanceError):
            sft.learning_rate = 1.0
    assert PROFILES["tiny"].tool_recipe == TINY_TOOL_RECIPE


def test_a_new_profile_is_a_new_entry_only(monkeypatch, tmp_path):
    from dataclasses import replace

    from lessons_lib.router import router_dir

    laptop = replace(PROFILES["tiny"], name="laptop", ships_adapters=False, tuned_tool_recipe=None)
    monkeypatch.setitem(PROFILES, "laptop", laptop)
    assert get_profile("laptop") is laptop and laptop.tiny_weights
    assert router_dir(laptop, tmp_path).is_relative_to(tmp_path)  # nothing ships for it: the work dir
    assert laptop.tool_recipe.rank == laptop.lora_r  # no tuned tool recipe: derived from its own settings


def test_recipe_differences_names_every_differing_field(tmp_path):
    from trl import SFTConfig

    from lessons_lib.recipes import recipe_differences
    from lessons_lib.train import sft_config

    library = sft_config(PROFILES["tiny"], tmp_path / "a", max_steps=30)
    same = sft_config(PROFILES["tiny"], tmp_path / "b", max_steps=30)  # another folder is not another recipe
    assert recipe_differences(same, library) == {}
    kwargs = {
        f: getattr(library, f)
        for f in (
            "max_steps",
            "learning_rate",
            "per_device_train_batch_size",
            "max_length",
            "use_cpu",
            "report_to",
            "seed",
        )
    }
    spelled = SFTConfig(output_dir=str(tmp_path / "c"), save_steps=7, **kwargs)  # misses most knobs
    differences = recipe_differences(spelled, library)
    assert differences["save_steps"] == (7, 10) and differences["completion_only_loss"] == (None, True)
    assert "save_steps" not in recipe_differences(spelled, library, ignore=("save_steps",))
    with pytest.raises(ValueError, match="no field"):
        recipe_differences(spelled, library, ignore=("save_every",))
    with pytest.raises(TypeError, match="one dataclass type"):
        recipe_differences(spelled, PROFILES["tiny"].sft_recipe)


def test_router_and_tool_lora_configs_come_from_the_recipes(tmp_path):
    from lessons_lib.router.learned import router_lora_config
    from lessons_lib.tools.adapter import tool_configs

    for profile in PROFILES.values():
        router, tool = profile.router_recipe, profile.tool_recipe
        lora = router_lora_config(profile)
        assert (lora.r, lora.lora_alpha, lora.lora_dropout, lora.task_type) == (
            router.lora_r,
            router.lora_alpha,
            router.lora_dropout,
            "SEQ_CLS",
        )
        lora, args = tool_configs(profile, tmp_path, 5, 320)
        assert (
            lora.r,
            lora.lora_alpha,
            args.learning_rate,
            args.per_device_train_batch_size,
            args.gradient_accumulation_steps,
            args.max_length,
        ) == (tool.rank, tool.alpha, tool.learning_rate, tool.batch_size, tool.grad_accum, 320)
        assert lora.modules_to_save == (["lm_head"] if profile.name == "tiny" else None)
