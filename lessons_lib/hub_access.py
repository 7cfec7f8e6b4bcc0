"""Hugging Face Hub access: which course models are gated, and 401/403 errors turned into the steps that fix them.

Wrap downloads in `explain_hub_errors(model_id)`: a gated-repo, 401 or 403 answer from the Hub (raised by
huggingface_hub, or wrapped by transformers in an OSError) becomes a `HubAccessError` that says how to get access.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

GATED_MODELS = frozenset({"mistralai/Mistral-7B-Instruct-v0.3"})
TOKENS_PAGE = "https://huggingface.co/settings/tokens"
ACCESS_STATUSES = (401, 403)
# transformers wraps Hub errors in OSError `from` the original; these texts cover a chain that was lost.
ACCESS_TEXT = re.compile(r"gated repo|gated repository|\b40[13] Client Error|\b403 Forbidden", re.I)


class HubAccessError(OSError):
    """The Hub refused a model (gated, private or a token without access); the message says how to get access."""


def model_page(model_id: str) -> str:
    """The model's page on the Hub, where its terms are accepted."""
    return f"https://huggingface.co/{model_id}"


def access_note(model_id: str) -> str:
    """One line to show before loading `model_id`: empty for open models, what to do first for gated ones."""
    if model_id not in GATED_MODELS:
        return ""
    return (
        f"{model_id} is gated: accept its terms at {model_page(model_id)}, then add a read token as the Colab "
        "secret HF_TOKEN (or run huggingface_hub.login())."
    )


def access_steps(model_id: str) -> str:
    """The numbered steps that give this session access to a gated or private model."""
    return "\n".join(
        [
            f"1. Open {model_page(model_id)}, sign in and accept the model's terms "
            "(access is usually granted at once).",
            f"2. Create a token with read access at {TOKENS_PAGE} (a fine-grained token needs 'Read access to contents "
            "of all public gated repos you can access').",
            "3. On Colab: add it as a secret named HF_TOKEN (key icon in the left sidebar, notebook access on), "
            "then run `from lessons_lib.hub_access import use_colab_secret; use_colab_secret()` and rerun this cell: "
            "no runtime restart needed (huggingface_hub reads Colab secrets once per session; this puts the token in "
            "the HF_TOKEN environment variable, which it reads on every download).",
            "   Elsewhere: run `huggingface_hub.login()` or set the HF_TOKEN environment variable.",
        ]
    )


def _chain(err: BaseException) -> Iterator[BaseException]:
    """The error and every error it was raised from or while handling."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _status(err: BaseException) -> int | None:
    """The HTTP status of a Hub error, if it carries a response."""
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def is_access_error(err: BaseException) -> bool:
    """Whether the Hub refused access (gated repo, 401, 403), however the error was wrapped."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

    for link in _chain(err):
        if isinstance(link, GatedRepoError):
            return True
        if isinstance(link, HfHubHTTPError):
            if _status(link) in ACCESS_STATUSES:
                return True  # RepositoryNotFoundError with 401 is what a gated repo answers without a token
        elif isinstance(link, OSError) and ACCESS_TEXT.search(str(link)):
            return True
    return False


def _token_state() -> str:
    """Whether this session has a Hub token at all: it decides which step is missing."""
    import huggingface_hub

    try:
        token = huggingface_hub.get_token()
    except Exception:  # noqa: BLE001 - e.g. a failed OIDC exchange: the explanation must still come out
        token = None
    if token:
        return "A Hugging Face token is set, but it has no access to this model yet (step 1 or 2 below)."
    return "No Hugging Face token was found in this session."


def access_message(model_id: str, err: BaseException) -> str:
    """The whole explanation for a refused download of `model_id`."""
    reason = " ".join([line.strip() for line in str(err).splitlines() if line.strip()][:2]) or type(err).__name__
    if model_id in GATED_MODELS:
        headline = f"{model_id} is gated on the Hugging Face Hub and this session has no access to it yet."
    else:
        headline = f"The Hugging Face Hub refused {model_id} (gated or private model, or a bad token)."
    return f"{headline}\nHub said: {reason}\n{_token_state()}\n{access_steps(model_id)}"


@contextmanager
def explain_hub_errors(model_id: str) -> Iterator[None]:
    """Turn a gated/401/403 error raised inside the block into a HubAccessError with the steps to get access."""
    try:
        yield
    except HubAccessError:
        raise
    except Exception as err:
        if not is_access_error(err):
            raise
        raise HubAccessError(access_message(model_id, err)) from err


def use_colab_secret(name: str = "HF_TOKEN") -> bool:
    """On Colab, copy the secret `name` into the HF_TOKEN environment variable (no restart needed); False elsewhere."""
    try:
        from google.colab import userdata
    except ImportError:
        return False
    os.environ["HF_TOKEN"] = userdata.get(name).strip()  # Colab's own error says if the secret is missing
    return True
