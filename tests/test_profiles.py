"""Profiles: choice order, dtype rules (never bf16 on a T4), clear errors."""
import pytest
import torch

from lessons_lib import env, profiles
from lessons_lib.lesson import setup_lesson
from lessons_lib.profiles import PROFILES, choose_profile, get_profile


def test_three_profiles_exist():
    assert set(PROFILES) == {"tiny", "t4", "7b"}
    assert "TinyLlama" in PROFILES["t4"].model_id and "Mistral-7B" in PROFILES["7b"].model_id
    assert PROFILES["t4"].load_in_4bit and PROFILES["7b"].load_in_4bit and not PROFILES["tiny"].load_in_4bit


def test_unknown_profile_says_what_to_do():
    with pytest.raises(ValueError, match=r"Unknown profile 'huge'.*tiny, t4, 7b.*LESSONS_PROFILE"):
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
