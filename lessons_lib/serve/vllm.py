"""Hand-off to a multi-LoRA server: the `vllm serve` and LoRAX commands for the adapters in a store.

The course adapters are plain PEFT folders, which vLLM and LoRAX load as they are. vLLM names each
`--lora-modules name=path` entry as a model, so a request's `model` field picks the adapter exactly as in
our own API; `--served-model-name base` makes `model="base"` mean the bare base there too. Only `auto`
has no vLLM equivalent: route on the client (the router is a small function) and send the chosen name.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

# vLLM accepts only these values for --max-lora-rank (vllm/config LoRAConfig); round the largest rank up.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
LORAX_IMAGE = "ghcr.io/predibase/lorax:main"
LORAX_DATA = "/data"


@dataclass(frozen=True)
class AdapterInfo:
    """What a multi-LoRA server needs to know about one adapter folder."""

    name: str
    path: Path
    rank: int
    base_model: str


def read_adapters(folders: dict[str, str | Path]) -> list[AdapterInfo]:
    """Rank and recorded base of each adapter folder (from adapter_config.json)."""
    from ..compat import check_adapter_files, check_adapter_name, read_adapter_config

    infos = []
    for name, folder in folders.items():
        check_adapter_name(name)
        config = read_adapter_config(check_adapter_files(folder))
        ranks = [int(config.get("r") or 0), *(int(r) for r in (config.get("rank_pattern") or {}).values())]
        infos.append(AdapterInfo(name, Path(folder).resolve(), max(ranks),
                                 str(config.get("base_model_name_or_path") or "")))
    return infos


def vllm_max_lora_rank(rank: int) -> int:
    """The smallest rank vLLM accepts that holds `rank`."""
    for allowed in VLLM_LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise ValueError(f"LoRA rank {rank} is above vLLM's largest --max-lora-rank ({VLLM_LORA_RANKS[-1]}).")


def vllm_command(base_model: str, adapters: list[AdapterInfo], port: int = 8000, served_name: str = "base",
                 max_model_len: int | None = None) -> list[str]:
    """`vllm serve BASE --enable-lora --lora-modules name=path ... --max-lora-rank R` as an argument list."""
    if not adapters:
        raise ValueError("No adapters to serve: pass at least one adapter folder.")
    command = ["vllm", "serve", base_model, "--served-model-name", served_name, "--port", str(port),
               "--enable-lora", "--lora-modules", *(f"{a.name}={a.path}" for a in adapters),
               "--max-lora-rank", str(vllm_max_lora_rank(max(a.rank for a in adapters))),
               "--max-loras", str(len(adapters))]
    if max_model_len:
        command += ["--max-model-len", str(max_model_len)]
    return command


def lorax_command(base_model: str, store_dir: str | Path, port: int = 8080) -> list[str]:
    """`docker run ... lorax --model-id BASE` with the adapter store mounted at /data (adapters load per request).

    A base given as a local folder (the tiny profile) is mounted too, at /base."""
    mounts = ["-v", f"{Path(store_dir).resolve()}:{LORAX_DATA}"]
    if Path(base_model).is_dir():
        mounts += ["-v", f"{Path(base_model).resolve()}:/base"]
        base_model = "/base"
    return ["docker", "run", "--gpus", "all", "--shm-size", "1g", "-p", f"{port}:80", *mounts, LORAX_IMAGE,
            "--model-id", base_model]


def model_mapping(adapters: list[AdapterInfo], served_name: str = "base") -> list[dict]:
    """Per request: our `model` value -> what to send to vLLM and to LoRAX."""
    rows = [{"our model": "base", "vllm model": served_name, "lorax adapter_id": "(none: the base)"}]
    rows += [{"our model": a.name, "vllm model": a.name,
              "lorax adapter_id": f"{LORAX_DATA}/{a.path.name} (adapter_source='local')"}
             for a in adapters]
    rows.append({"our model": "auto", "vllm model": "(route on the client, then send the chosen name)",
                 "lorax adapter_id": "(route on the client)"})
    return rows


def shell(command: list[str], width: int = 88) -> str:
    """A command list as one copy-pasteable shell line, wrapped with backslashes between options (never inside one)."""
    groups: list[list[str]] = []
    for part in command:
        if part.startswith("-") or not groups:
            groups.append([])
        groups[-1].append(shlex.quote(part))
    lines, line = [], ""
    for group in (" ".join(g) for g in groups):
        if line.strip() and len(line) + 1 + len(group) > width:
            lines.append(line)
            line = "    "
        line += (" " if line.strip() else "") + group
    lines.append(line)
    return " \\\n".join(lines)


def handoff(folders: dict[str, str | Path], base_model: str, store_dir: str | Path | None = None,
            max_model_len: int | None = None) -> dict:
    """Everything for the hand-off: both commands (vLLM also as a list), the adapters and the model mapping."""
    adapters = read_adapters(folders)
    store = Path(store_dir) if store_dir else adapters[0].path.parent
    vllm_args = vllm_command(base_model, adapters, max_model_len=max_model_len)
    return {"adapters": adapters, "vllm_args": vllm_args, "vllm": shell(vllm_args),
            "lorax": shell(lorax_command(base_model, store)),
            "mapping": model_mapping(adapters)}
