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


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16), ((8, 0), torch.bfloat16),
                                                  ((9, 0), torch.bfloat16), ((6, 1), torch.float16)])
def test_gpu_dtype_follows_compute_capability(capability, expected, monkeypatch):
    # A T4 (7.5) reports is_bf16_supported() == True through emulation; the profile must ignore that.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert PROFILES["t4"].torch_dtype(capability) == expected


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


@pytest.mark.parametrize("gpu, template", [("t4", "zephyr"), ("7b", "mistral-v0.3")])
def test_rehearsal_takes_the_gpu_path_with_tiny_weights(gpu, template, monkeypatch):
    """Everything of the GPU profile but the weights, the step counts and the sample sizes."""
    from dataclasses import fields

    from lessons_lib.paths import TINY_MODEL_DIR

    monkeypatch.setattr(env, "cuda_available", lambda: False)
    real, rehearsal = PROFILES[gpu], PROFILES[f"{gpu}-rehearsal"]
    assert rehearsal.rehearsal and not real.rehearsal and rehearsal.rehearsal_of == gpu
    assert rehearsal.gpu_path() and not real.gpu_path() and not PROFILES["tiny"].gpu_path()
    assert rehearsal.torch_dtype() == torch.float16  # a T4's choice, on the CPU
    assert rehearsal.model_id == str(TINY_MODEL_DIR) and rehearsal.chat_template == template
    shrunk = set(profiles.REHEARSAL_SIZES) | {"name", "model_id", "description", "chat_template", "rehearsal_of",
                                              "train_tokens_per_second"}
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
