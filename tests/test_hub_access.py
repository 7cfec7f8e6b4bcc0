"""Gated models: a refused download becomes the steps to get access; other errors pass through unchanged.

No network: the Hub's answers are fake httpx responses turned into the real exceptions by huggingface_hub's own
`hf_raise_for_status`, and transformers' download function is replaced to raise them.
"""

import sys
import types

import httpx
import pytest
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError
from huggingface_hub.utils import hf_raise_for_status

from lessons_lib import hub_access
from lessons_lib.hub_access import HubAccessError, access_note, explain_hub_errors, is_access_error

GATED = "mistralai/Mistral-7B-Instruct-v0.3"
OPEN = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"


def hub_error(status: int, url: str, **headers) -> HfHubHTTPError:
    """The exception huggingface_hub raises for this answer from the Hub."""
    response = httpx.Response(status, headers=headers, request=httpx.Request("GET", url))
    with pytest.raises(HfHubHTTPError) as caught:
        hf_raise_for_status(response)
    return caught.value


def gated_error(model_id: str = GATED) -> GatedRepoError:
    url = f"https://huggingface.co/{model_id}/resolve/main/config.json"
    return hub_error(401, url, **{"X-Error-Code": "GatedRepo"})


@pytest.fixture(autouse=True)
def no_token(monkeypatch, tmp_path):
    """A session without any Hugging Face token."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "token"))


def test_fake_answers_raise_the_real_classes():
    assert type(gated_error()) is GatedRepoError
    assert type(hub_error(401, f"https://huggingface.co/api/models/{GATED}")) is RepositoryNotFoundError
    assert type(hub_error(403, f"https://huggingface.co/{GATED}/resolve/main/config.json")) is HfHubHTTPError


def test_gated_error_becomes_the_steps_to_get_access():
    original = gated_error()
    with pytest.raises(HubAccessError) as caught, explain_hub_errors(GATED):
        raise original
    message = str(caught.value)
    assert caught.value.__cause__ is original and isinstance(caught.value, OSError)
    for step in (
        f"https://huggingface.co/{GATED}",
        "accept the model's terms",
        "https://huggingface.co/settings/tokens",
        "secret named HF_TOKEN",
        "use_colab_secret()",
        "no runtime restart needed",
        "huggingface_hub.login()",
    ):
        assert step in message
    assert "No Hugging Face token was found" in message and "Cannot access gated repo" in message


def test_transformers_wrapping_is_recognised(monkeypatch):
    """transformers turns the Hub's error into an OSError `from` it; the advice still comes out."""
    from transformers import AutoConfig

    def refuse(*args, **kwargs):
        raise gated_error()

    monkeypatch.setattr("transformers.utils.hub.hf_hub_download", refuse)
    with pytest.raises(OSError, match="gated repo") as plain:
        AutoConfig.from_pretrained(GATED)
    assert not isinstance(plain.value, HubAccessError) and isinstance(plain.value.__cause__, GatedRepoError)
    with pytest.raises(HubAccessError, match="accept the model's terms"), explain_hub_errors(GATED):
        AutoConfig.from_pretrained(GATED)


@pytest.mark.parametrize(
    "make",
    [
        lambda: gated_error(),
        lambda: hub_error(401, f"https://huggingface.co/api/models/{GATED}"),  # what a gated repo answers without token
        lambda: hub_error(
            403,
            f"https://huggingface.co/{GATED}/resolve/main/config.json",
            **{"X-Error-Message": "Your token has no access"},
        ),
        lambda: OSError("You are trying to access a gated repo.\nMake sure to have access to it."),  # chain lost
    ],
    ids=["gated", "401", "403", "text-only"],
)
def test_access_errors_are_recognised(make):
    assert is_access_error(make())


@pytest.mark.parametrize(
    "make",
    [
        lambda: hub_error(404, f"https://huggingface.co/api/models/{GATED}-typo", **{"X-Error-Code": "RepoNotFound"}),
        lambda: LocalEntryNotFoundError("offline and not in the cache"),
        lambda: ValueError("something else"),
    ],
    ids=["404", "offline", "other"],
)
def test_other_errors_pass_through_unchanged(make):
    original = make()
    assert not is_access_error(original)
    with pytest.raises(type(original)) as caught, explain_hub_errors(GATED):
        raise original
    assert caught.value is original


def test_message_says_when_a_token_is_set_but_lacks_access(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_fake")
    with pytest.raises(HubAccessError, match="token is set, but it has no access"), explain_hub_errors(GATED):
        raise hub_error(403, f"https://huggingface.co/{GATED}/resolve/main/config.json")


def test_open_model_that_refuses_is_still_explained():
    with pytest.raises(HubAccessError, match="gated or private model, or a bad token"), explain_hub_errors(OPEN):
        raise gated_error(OPEN)


def test_access_note_only_for_gated_models():
    assert access_note(OPEN) == "" and access_note("/local/tiny-model") == ""
    note = access_note(GATED)
    assert "\n" not in note and f"https://huggingface.co/{GATED}" in note and "HF_TOKEN" in note


def test_colab_secret_goes_to_the_environment(monkeypatch):
    userdata = types.SimpleNamespace(get=lambda name: {"HF_TOKEN": " hf_secret \n"}[name])
    colab = types.ModuleType("google.colab")
    colab.userdata = userdata
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    assert hub_access.use_colab_secret() is True
    import huggingface_hub

    assert huggingface_hub.get_token() == "hf_secret"


def test_colab_secret_is_a_no_op_elsewhere(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", None)
    assert hub_access.use_colab_secret() is False
