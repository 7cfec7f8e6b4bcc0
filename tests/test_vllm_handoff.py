"""The vLLM / LoRAX hand-off: commands for the adapters vLLM can load, the others left out with the reason.

No vLLM here: the adapters are the shipped ones or tmp folders holding only the files vLLM reads first
(adapter_config.json, and an empty adapter_model.safetensors for the course's file check)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from lessons_lib.paths import REPO_DIR
from lessons_lib.profiles import PROFILES
from lessons_lib.serve.vllm import (
    TOOL_CALLING_NOTE,
    handoff,
    handoff_report,
    lorax_command,
    read_adapters,
    shell,
    split_for_vllm,
    vllm_command,
    vllm_max_lora_rank,
)

TINY = PROFILES["tiny"]
STORE = REPO_DIR / "assets" / "adapters"
LORA = {
    "peft_type": "LORA",
    "r": 8,
    "lora_alpha": 16,
    "target_modules": ["q_proj", "v_proj"],
    "modules_to_save": None,
    "use_dora": False,
    "base_model_name_or_path": "lora-adapter-lab/tiny-course-model",
}


def fake_adapter(folder: Path, **config) -> Path:
    """An adapter folder holding just its config (and an empty weights file)."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({**LORA, **config}))
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return folder


def entries(command: list[str]) -> list[dict]:
    """The --lora-modules values, parsed as vLLM parses the JSON form."""
    values = command[command.index("--lora-modules") + 1 : command.index("--max-lora-rank")]
    return [json.loads(value) for value in values]


# ---------------------------------------------------------------- the shipped store
def test_the_shipped_store_serves_the_domain_adapters_and_leaves_out_the_tools_adapter():
    folders = {p.name: p for p in sorted(STORE.iterdir())}
    plan = handoff(folders, TINY.model_id)
    assert [a.name for a in plan["adapters"]] == ["coding", "json", "support"]
    assert list(plan["left_out"]) == ["tools"]
    assert plan["left_out"]["tools"].startswith(
        "modules_to_save ['lm_head']: vLLM only supports modules_to_save being None"
    )
    command = plan["vllm_args"]
    assert command[:3] == ["vllm", "serve", TINY.model_id] and "--enable-lora" in command
    assert entries(command) == [
        {"name": n, "path": str((STORE / n).resolve()), "base_model_name": "base"}
        for n in ("coding", "json", "support")
    ]
    assert command[command.index("--max-lora-rank") + 1] == "8"
    assert command[command.index("--max-loras") + 1] == "3"
    assert command[command.index("--served-model-name") + 1] == "base"
    assert plan["lorax"].startswith("docker run") and "--model-id /base" in plan["lorax"]
    assert f"{STORE.resolve()}:/data" in plan["lorax"]  # the store, where adapter_id=/data/NAME
    mapping = {row["our model"]: row["vllm model"] for row in plan["mapping"]}
    assert mapping == {
        "base": "base",
        "coding": "coding",
        "json": "json",
        "support": "support",
        "auto": "(route on the client, then send the chosen name)",
    }


def test_course_adapters_of_the_profile_all_go_to_vllm():
    from lessons_lib.adapters import COURSE_ADAPTERS, adapter_dir

    folders = {name: adapter_dir(name, TINY) for name in COURSE_ADAPTERS}
    plan = handoff(folders, TINY.model_id)
    assert [a.name for a in plan["adapters"]] == list(COURSE_ADAPTERS) and plan["left_out"] == {}
    assert (vllm_max_lora_rank(12), vllm_max_lora_rank(64), vllm_max_lora_rank(300)) == (16, 64, 320)
    with pytest.raises(ValueError, match="largest"):
        vllm_max_lora_rank(1024)
    with pytest.raises(ValueError, match="path separator"):
        read_adapters({"../json": folders["json"]})


# ---------------------------------------------------------------- what vLLM would refuse
@pytest.mark.parametrize(
    "config, reason",
    [
        (
            {"modules_to_save": ["lm_head"]},
            "modules_to_save ['lm_head']: vLLM only supports modules_to_save being None",
        ),
        ({"use_dora": True}, "use_dora: vLLM does not support DoRA adapters"),
        ({"r": 1024}, "rank 1024 is above vLLM's largest --max-lora-rank (512)"),
        ({"rank_pattern": {"q_proj": 640}}, "rank 640 is above vLLM's largest --max-lora-rank (512)"),
        (
            {"target_modules": ["q_proj", "score", "mlp.fc1"]},
            "target modules ['mlp.fc1', 'score']: vLLM's Llama/Mistral models take LoRA only on q_proj, k_proj",
        ),
        ({"peft_type": "IA3"}, "peft_type IA3: vLLM's --lora-modules loads LoRA adapters only"),
    ],
)
def test_an_adapter_vllm_cannot_load_is_left_out_with_the_reason(tmp_path, config, reason):
    folders = {"good": fake_adapter(tmp_path / "good"), "odd": fake_adapter(tmp_path / "odd", **config)}
    plan = handoff(folders, TINY.model_id)
    assert [a.name for a in plan["adapters"]] == ["good"]
    assert plan["left_out"]["odd"].startswith(reason)
    assert [e["name"] for e in entries(plan["vllm_args"])] == ["good"]
    with pytest.raises(ValueError, match="vLLM would refuse adapter 'odd'"):
        vllm_command(TINY.model_id, read_adapters(folders))


def test_a_regex_target_and_the_full_llama_set_pass(tmp_path):
    every = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens", "lm_head"]
    folders = {
        "regex": fake_adapter(tmp_path / "regex", target_modules=r".*\.(q|v)_proj"),
        "every": fake_adapter(tmp_path / "every", target_modules=every),
    }
    served, left_out = split_for_vllm(read_adapters(folders))
    assert [a.name for a in served] == ["regex", "every"] and left_out == {}


def test_when_vllm_can_load_nothing_there_is_no_vllm_command(tmp_path):
    folders = {"tools": fake_adapter(tmp_path / "tools", modules_to_save=["lm_head"])}
    plan = handoff(folders, TINY.model_id)
    assert plan["vllm_args"] is None and plan["adapters"] == []
    report = handoff_report(folders, TINY.model_id)
    assert "vLLM can load none of these adapters" in report and "left out of vLLM: tools: modules_to_save" in report


# ---------------------------------------------------------------- paths that break name=path
@pytest.mark.parametrize("odd", ["a,b", "k=v", "with space", "quote's"])
def test_paths_with_commas_equals_and_spaces_survive_the_json_form_and_the_shell(tmp_path, odd):
    folder = fake_adapter(tmp_path / odd / "json")
    command = vllm_command(TINY.model_id, read_adapters({"json": folder}))
    assert entries(command) == [{"name": "json", "path": str(folder.resolve()), "base_model_name": "base"}]
    assert shlex.split(shell(command).replace("\\\n", " ")) == command


@pytest.mark.parametrize("store", ["/data/a", "/check/" + "deeply/nested/" * 8 + "adapters", "/with space/adapters"])
def test_shell_commands_wrap_between_options_and_round_trip(store):
    command = lorax_command(TINY.model_id, store)
    text = shell(command)
    assert shlex.split(text.replace("\\\n", " ")) == command
    for line in text.splitlines()[1:]:
        assert line.lstrip().startswith("-"), f"a continuation line starts inside an option: {line!r}"
    assert "--model-id /base" in text


def test_long_lora_module_lists_get_one_line_per_entry(tmp_path):
    folders = {f"a{i}": fake_adapter(tmp_path / "store" / f"a{i}") for i in range(3)}
    text = shell(vllm_command(TINY.model_id, read_adapters(folders)))
    json_lines = [line.strip().rstrip(" \\") for line in text.splitlines() if line.strip().startswith("'{")]
    assert [json.loads(shlex.split(line)[0])["name"] for line in json_lines] == ["a0", "a1", "a2"]


# ---------------------------------------------------------------- the command line
def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m lessons_lib.serve vllm ARGS`, run in this process from the repo root (a child process would import
    torch again for the adapter checks: ~6 s a call); its exit code and what it printed."""
    from lessons_lib.serve.__main__ import main

    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(REPO_DIR)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(["vllm", *args])
            except SystemExit as exit_:  # argparse's usage errors
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(["vllm", *args], code, out.getvalue(), err.getvalue())


def test_cli_states_what_is_left_out_and_how_tool_calls_work_there():
    result = run_cli("--profile", "tiny", "--adapters-dir", str(STORE))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "left out of vLLM: tools: modules_to_save ['lm_head']" in out
    assert '"name": "json"' in out and '"name": "tools"' not in out
    assert TOOL_CALLING_NOTE in out
    assert "--tool-call-parser mistral" in out and "--enable-auto-tool-choice" in out


def test_cli_with_a_composition_notes_weights_and_mixes_vllm_cannot_serve(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        f'[base]\nprofile = "tiny"\n[adapters.json]\npath = "{STORE.resolve() / "json"}"\nweight = 0.5\n'
        f'[adapters.tools]\npath = "{STORE.resolve() / "tools"}"\n[mixes]\nboth = {{ json = 1, tools = 1 }}\n'
    )
    result = run_cli("--config", str(config))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '"name": "json"' in out and "left out of vLLM: tools: modules_to_save" in out
    assert "note: json: weight 0.5 in the composition; vLLM serves adapters as trained" in out
    assert "note: mix 'both': vLLM has no weighted mixes" in out
    refused = run_cli("--config", str(config), "--profile", "tiny")
    assert refused.returncode == 2 and "--profile cannot be combined with --config" in refused.stderr


def test_cli_without_adapters_says_what_to_do(tmp_path):
    result = run_cli("--profile", "t4", "--work-dir", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"no adapters of profile t4 found in {tmp_path}" in result.stderr
    assert "Train and save them first (notebook 01)" in result.stderr


def test_cli_leaves_out_a_hub_adapter_it_cannot_download_saying_why(tmp_path, monkeypatch):
    """Before: offline, a `hub = "owner/repo"` adapter in the composition ended the hand-off with a HubError
    traceback (exit code 1); `serve --config` says it in one line."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing cached
    config = tmp_path / "c.toml"
    config.write_text(
        f'[base]\nprofile = "tiny"\n[adapters.json]\nhub = "someone/lora-json"\n'
        f'[adapters.coding]\npath = "{STORE.resolve() / "coding"}"\n'
    )
    result = run_cli("--config", str(config))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert (
        '"name": "coding"' in result.stdout and "skipped: adapters.json: cannot get someone/lora-json" in result.stdout
    )
    config.write_text('[base]\nprofile = "tiny"\n[adapters.json]\nhub = "someone/lora-json"\n')
    alone = run_cli("--config", str(config))
    assert alone.returncode == 2 and "Traceback" not in alone.stderr, alone.stderr
    assert f"found in {config}" in alone.stderr and "cannot get someone/lora-json" in alone.stderr
