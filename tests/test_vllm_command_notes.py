"""`python -m lessons_lib.serve vllm`: every composition setting vLLM will not use gets a note, damaged adapters
(or ones built for another base) are left out of `--lora-modules` with the reason, and the tool-call note names the
right profile, in English or Russian."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from test_vllm_handoff import run_cli

from lessons_lib.paths import REPO_DIR

STORE = (REPO_DIR / "assets" / "adapters").resolve()


def lora_module_names(out: str) -> list[str]:
    """The adapter names in the printed vLLM command's --lora-modules entries."""
    return re.findall(r'\{"name": "([^"]+)", "path"', out.split("# LoRAX")[0])


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A copy of the shipped json and support adapters, plus an emptied one and one built for another base."""
    root = tmp_path / "store"
    for name in ("json", "support", "empty", "other"):
        shutil.copytree(STORE / ("json" if name in ("empty", "other") else name), root / name)
    (root / "empty" / "adapter_model.safetensors").write_bytes(b"")
    manifest = json.loads((root / "other" / "manifest.json").read_text())
    manifest.update(base_model="TinyLlama/TinyLlama-1.1B-Chat-v1.0", base_fingerprint="0123456789abcdef")
    (root / "other" / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_damaged_adapters_and_ones_for_another_base_are_left_out_with_the_reason(store):
    """Before: an adapter with a 0-byte adapter_model.safetensors went into `vllm serve --lora-modules`."""
    result = run_cli("--profile", "tiny", "--adapters-dir", str(store))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert sorted(lora_module_names(out)) == ["json", "support"]
    assert "left out of vLLM: empty: " in out and "is not a readable safetensors file" in out
    assert "left out of vLLM: other: Adapter 'other' was trained on base 'TinyLlama/TinyLlama-1.1B-Chat-v1.0'" in out


def test_every_composition_setting_vllm_does_not_use_gets_a_note(store, tmp_path):
    """Before: precision and [server] port/max_batch were dropped without a word."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[base]\nprofile = "tiny"\n'
        f'[adapters.json]\npath = "{store / "json"}"\nprecision = "fp16"\n'
        f'[adapters.empty]\npath = "{store / "empty"}"\n'
        '[router]\nkind = "ngram"\n'
        '[server]\nhost = "0.0.0.0"\nport = 8123\nmax_batch = 8\nwindow_ms = 5.0\nmax_body_bytes = 5000\n'
    )
    result = run_cli("--config", str(config))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert lora_module_names(out) == ["json"] and "left out of vLLM: empty: " in out
    assert "--port 8123" in out and "--host 0.0.0.0" in out  # carried over, so no note
    for note in (
        "note: json: precision fp16 in the composition; vLLM loads every adapter in one dtype",
        "note: server.max_batch = 8 in the composition: vLLM schedules its own batches",
        "note: server.window_ms = 5.0 in the composition: vLLM batches continuously",
        "note: server.max_body_bytes = 5000 in the composition: vLLM has no request size limit",
        "note: router 'ngram': vLLM has no model='auto'",
    ):
        assert note in out, out
    assert "server.port" not in out and "server.host" not in out


def test_a_composition_of_damaged_adapters_only_is_one_error_line(store, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'[base]\nprofile = "tiny"\n[adapters.empty]\npath = "{store / "empty"}"\n')
    result = run_cli("--config", str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: every adapter is damaged or built for another base (empty: ")


def test_the_tool_calling_note_names_profile_t4_in_english_and_in_russian(monkeypatch):
    """Before: "TinyLlama-1.1B-Chat (profiles tiny/t4)", in English only; the tiny profile is the course's own Llama."""
    from lessons_lib.serve import vllm

    english, russian = vllm.tool_calling_note("en"), vllm.tool_calling_note("ru")
    assert "TinyLlama-1.1B-Chat (profile t4)" in english and "tiny/t4" not in english
    assert "TinyLlama-1.1B-Chat (профиль t4)" in russian and "Вызовы инструментов в vLLM" in russian
    assert "--tool-call-parser mistral" in russian and "--enable-auto-tool-choice" in russian
    monkeypatch.setenv("LESSONS_LANG", "ru")
    from lessons_lib.serve.vllm import TOOL_CALLING_NOTE  # as notebook 06 imports it, after its setup cell

    assert russian == TOOL_CALLING_NOTE


def test_an_adapter_left_out_gets_no_note_about_settings_vllm_would_not_use(store, tmp_path):
    """Before: the course composition left the tools adapter out and still noted its precision."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[base]\nprofile = "tiny"\n'
        f'[adapters.json]\npath = "{store / "json"}"\nprecision = "fp16"\n'
        f'[adapters.empty]\npath = "{store / "empty"}"\nprecision = "fp16"\n'
    )
    out = run_cli("--config", str(config)).stdout
    assert "left out of vLLM: empty: " in out and "note: json: precision fp16" in out
    assert "note: empty:" not in out, out
