"""Hand-off to a multi-LoRA server: the `vllm serve` and LoRAX commands for the adapters in a store.

The course adapters are plain PEFT folders, which vLLM and LoRAX load as they are. vLLM names each
`--lora-modules` entry as a model, so a request's `model` field picks the adapter exactly as in our own API;
`--served-model-name base` makes `model="base"` mean the bare base there too. Only `auto` has no vLLM
equivalent: route on the client (the router is a small function) and send the chosen name.

Entries use vLLM's JSON form, `{"name": ..., "path": ..., "base_model_name": ...}`, so a path holding `,` or `=`
stays one path. Adapters vLLM refuses to load are left out with the reason (`vllm_refusal`), as vLLM's own
PEFTHelper checks them: `modules_to_save` (the course's tools adapter trains `lm_head`), DoRA, a rank above
the largest `--max-lora-rank`, a non-LoRA PEFT type, and target modules that vLLM's Llama/Mistral models do not
take LoRA on. Tool calling on vLLM is in TOOL_CALLING_NOTE (tool_calling_note(): English or Russian).
Every text for people (reasons, notes, the report's labels) is in the course language ($LESSONS_LANG); the commands,
their options and the JSON entries are the same in both.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..i18n import tr

# vLLM accepts only these values for --max-lora-rank (vllm/config LoRAConfig); round the largest rank up.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# Where vLLM's Llama and Mistral models (every course base) take LoRA: the linear layers (packed there as
# qkv_proj / gate_up_proj) plus the embeddings (vLLM's supported_lora_modules / embedding_modules).
VLLM_LLAMA_LORA_MODULES = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "embed_tokens",
    "lm_head",
)
LORAX_IMAGE = "ghcr.io/predibase/lorax:main"
LORAX_DATA = "/data"
TOOL_CALLING_NOTE_EN = """\
Tool calls on vLLM:
- tool_choice "auto" needs a parser for the model's own call format: add --enable-auto-tool-choice
  --tool-call-parser NAME. Mistral-7B-Instruct-v0.3 (profile 7b): --tool-call-parser mistral, with
  --tokenizer-mode mistral (mistral_common writes the [AVAILABLE_TOOLS]/[TOOL_CALLS] turns and the 9-character
  alphanumeric call ids its template demands).
- TinyLlama-1.1B-Chat (profile t4) has a Zephyr template with no tool turns and no vLLM parser: use
  tool_choice "required" or a named function, which vLLM answers with structured outputs (decoding constrained
  to the tools' JSON schema, as our server does) without any parser.
- The course's tools adapter trains lm_head (modules_to_save), which vLLM does not load: merge it into the base
  (notebook 03, merge_and_unload) and serve the merged model as its own vLLM model, or retrain it without
  modules_to_save."""
TOOL_CALLING_NOTE_RU = """\
Вызовы инструментов в vLLM:
- для tool_choice "auto" нужен парсер формата вызовов самой модели: добавьте --enable-auto-tool-choice
  --tool-call-parser ИМЯ. Mistral-7B-Instruct-v0.3 (профиль 7b): --tool-call-parser mistral вместе с
  --tokenizer-mode mistral (mistral_common пишет ходы [AVAILABLE_TOOLS]/[TOOL_CALLS] и 9-символьные
  буквенно-цифровые id вызовов, которых требует её шаблон).
- У TinyLlama-1.1B-Chat (профиль t4) шаблон Zephyr без ходов инструментов и без парсера в vLLM: используйте
  tool_choice "required" или конкретную функцию — vLLM отвечает на них структурированным выводом (декодирование
  ограничено JSON-схемой инструментов, как на нашем сервере) без всякого парсера.
- Адаптер инструментов курса обучает lm_head (modules_to_save), а vLLM такое не загружает: слейте адаптер с базой
  (ноутбук 03, merge_and_unload) и подайте слитую модель в vLLM как отдельную модель, или переобучите адаптер
  без modules_to_save."""


def tool_calling_note(lang: str | None = None) -> str:
    """How tool calls work on vLLM, in the course language (LESSONS_LANG)."""
    return tr(en=TOOL_CALLING_NOTE_EN, ru=TOOL_CALLING_NOTE_RU, lang=lang)


def __getattr__(name: str):
    """TOOL_CALLING_NOTE in the language in effect when it is imported (notebook 06 imports it after its setup)."""
    if name == "TOOL_CALLING_NOTE":
        return tool_calling_note()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class AdapterInfo:
    """What a multi-LoRA server needs to know about one adapter folder."""

    name: str
    path: Path
    rank: int
    base_model: str
    peft_type: str = "LORA"
    modules_to_save: tuple[str, ...] = ()
    use_dora: bool = False
    target_modules: tuple[str, ...] | str = field(default=())  # a string is a regex (not checked)


def read_adapters(folders: dict[str, str | Path]) -> list[AdapterInfo]:
    """Rank, recorded base and the vLLM-relevant settings of each adapter folder (from adapter_config.json)."""
    from ..compat import (
        AdapterCompatError,
        CorruptAdapterError,
        check_adapter_files,
        check_adapter_name,
        read_adapter_config,
    )

    infos = []
    for name, folder in folders.items():
        check_adapter_name(name)
        files = check_adapter_files(folder)
        try:
            config = read_adapter_config(files)
        except CorruptAdapterError:
            raise
        except AdapterCompatError:  # valid JSON but not LoRA: kept, so that vllm_refusal says why vLLM can't load it
            config = json.loads((files / "adapter_config.json").read_text(encoding="utf-8"))
        ranks = [int(config.get("r") or 0), *(int(r) for r in (config.get("rank_pattern") or {}).values())]
        targets = config.get("target_modules") or ()
        infos.append(
            AdapterInfo(
                name,
                Path(folder).resolve(),
                max(ranks),
                str(config.get("base_model_name_or_path") or ""),
                peft_type=str(config.get("peft_type") or "LORA"),
                modules_to_save=tuple(config.get("modules_to_save") or ()),
                use_dora=bool(config.get("use_dora")),
                target_modules=targets if isinstance(targets, str) else tuple(sorted(targets)),
            )
        )
    return infos


def base_stand_in(base_model: str):
    """Something compat.check_base takes for the base (its config, read without weights), or None when the config
    is not available here (a Hub id not in the local cache)."""
    from types import SimpleNamespace

    try:
        from transformers import AutoConfig

        return SimpleNamespace(config=AutoConfig.from_pretrained(base_model, local_files_only=True))
    except Exception:  # noqa: BLE001 - no config here: the base is not checked (handoff notes say so)
        return None


def damage(name: str, folder: str | Path, base) -> str | None:
    """Why an adapter folder cannot be served (None when sound): the checks the server runs before it loads an
    adapter (lessons_lib.compat: files, config, weights header, recorded base), without loading any weights.
    A valid adapter of another PEFT type passes here: vllm_refusal says why vLLM refuses it."""
    from ..compat import (
        AdapterCompatError,
        CorruptAdapterError,
        check_adapter_files,
        check_base,
        check_lora_config,
        read_adapter_config,
        read_weight_shapes,
    )

    try:
        files = check_adapter_files(folder)
        try:
            config = read_adapter_config(files)
        except CorruptAdapterError:
            raise
        except AdapterCompatError:
            return None
        check_lora_config(files, config)
        read_weight_shapes(files)
        if base is not None:
            check_base(name, files, config, base)
    except AdapterCompatError as err:
        return str(err)
    return None


def split_damaged(folders: dict[str, str | Path], base_model: str) -> tuple[dict[str, str | Path], dict[str, str]]:
    """(the sound adapter folders, {name: reason} for damaged ones or ones built for another base)."""
    base = base_stand_in(base_model)
    reasons = {name: damage(name, folder, base) for name, folder in folders.items()}
    sound = {name: folder for name, folder in folders.items() if reasons[name] is None}
    return sound, {name: reason for name, reason in reasons.items() if reason is not None}


def vllm_refusal(adapter: AdapterInfo) -> str | None:
    """Why vLLM would refuse to load `adapter` (None when it loads), with what to do instead."""
    if adapter.peft_type.upper() != "LORA":
        kind = adapter.peft_type
        return tr(
            en=f"peft_type {kind}: vLLM's --lora-modules loads LoRA adapters only",
            ru=f"peft_type {kind}: --lora-modules в vLLM загружает только адаптеры LoRA",
        )
    if adapter.modules_to_save:
        saved = list(adapter.modules_to_save)
        return tr(
            en=f"modules_to_save {saved}: vLLM only supports modules_to_save being None "
            "(merge the adapter into the base and serve that model, or retrain without modules_to_save)",
            ru=f"modules_to_save {saved}: vLLM поддерживает только modules_to_save = None "
            "(слейте адаптер с базовой моделью и подайте в vLLM получившуюся модель или переобучите адаптер без "
            "modules_to_save)",
        )
    if adapter.use_dora:
        return tr(
            en="use_dora: vLLM does not support DoRA adapters (merge it into the base, or retrain as plain LoRA)",
            ru="use_dora: vLLM не поддерживает адаптеры DoRA (слейте адаптер с базовой моделью или переобучите его "
            "как обычный LoRA)",
        )
    if adapter.rank > VLLM_LORA_RANKS[-1]:
        rank, largest = adapter.rank, VLLM_LORA_RANKS[-1]
        return tr(
            en=f"rank {rank} is above vLLM's largest --max-lora-rank ({largest}); retrain smaller",
            ru=f"ранг {rank} больше наибольшего --max-lora-rank в vLLM ({largest}); переобучите с меньшим рангом",
        )
    if not isinstance(adapter.target_modules, str):
        odd = [m for m in adapter.target_modules if m.rsplit(".", 1)[-1] not in VLLM_LLAMA_LORA_MODULES]
        if odd:
            takes = ", ".join(VLLM_LLAMA_LORA_MODULES)
            return tr(
                en=f"target modules {odd}: vLLM's Llama/Mistral models take LoRA only on {takes}",
                ru=f"целевые модули {odd}: модели Llama/Mistral в vLLM принимают LoRA только на {takes}",
            )
    return None


def split_for_vllm(adapters: list[AdapterInfo]) -> tuple[list[AdapterInfo], dict[str, str]]:
    """(the adapters vLLM loads, {name: reason} for those it would refuse)."""
    reasons = {a.name: vllm_refusal(a) for a in adapters}
    return [a for a in adapters if reasons[a.name] is None], {k: v for k, v in reasons.items() if v is not None}


def vllm_max_lora_rank(rank: int) -> int:
    """The smallest rank vLLM accepts that holds `rank`."""
    for allowed in VLLM_LORA_RANKS:
        if allowed >= rank:
            return allowed
    largest = VLLM_LORA_RANKS[-1]
    raise ValueError(
        tr(
            en=f"LoRA rank {rank} is above vLLM's largest --max-lora-rank ({largest}).",
            ru=f"Ранг LoRA {rank} больше наибольшего --max-lora-rank в vLLM ({largest}).",
        )
    )


def lora_module(adapter: AdapterInfo, served_name: str = "base") -> str:
    """One --lora-modules entry in vLLM's JSON form (a path with ',' or '=' stays intact)."""
    return json.dumps({"name": adapter.name, "path": str(adapter.path), "base_model_name": served_name})


def vllm_command(
    base_model: str,
    adapters: list[AdapterInfo],
    port: int = 8000,
    served_name: str = "base",
    max_model_len: int | None = None,
    host: str | None = None,
) -> list[str]:
    """`vllm serve BASE --enable-lora --lora-modules '{"name": ...}' ... --max-lora-rank R` as an argument list.

    Every adapter given must be loadable (see split_for_vllm); ValueError naming the first that is not."""
    if not adapters:
        raise ValueError(
            tr(
                en="No adapters to serve: pass at least one adapter folder vLLM can load.",
                ru="Нет адаптеров для vLLM: передайте хотя бы одну папку адаптера, которую vLLM может загрузить.",
            )
        )
    for adapter in adapters:
        reason = vllm_refusal(adapter)
        if reason:
            name = adapter.name
            raise ValueError(
                tr(
                    en=f"vLLM would refuse adapter {name!r}: {reason}. Leave it out (split_for_vllm).",
                    ru=f"vLLM откажется загружать адаптер {name!r}: {reason}. Уберите его (split_for_vllm).",
                )
            )
    command = [
        "vllm",
        "serve",
        base_model,
        "--served-model-name",
        served_name,
        "--port",
        str(port),
        "--enable-lora",
        "--lora-modules",
        *(lora_module(a, served_name) for a in adapters),
        "--max-lora-rank",
        str(vllm_max_lora_rank(max(a.rank for a in adapters))),
        "--max-loras",
        str(len(adapters)),
    ]
    if max_model_len:
        command += ["--max-model-len", str(max_model_len)]
    if host:
        command += ["--host", host]
    return command


def lorax_command(base_model: str, store_dir: str | Path, port: int = 8080) -> list[str]:
    """`docker run ... lorax --model-id BASE` with the adapter store mounted at /data (adapters load per request).

    A base given as a local folder (the tiny profile) is mounted too, at /base."""
    mounts = ["-v", f"{Path(store_dir).resolve()}:{LORAX_DATA}"]
    if Path(base_model).is_dir():
        mounts += ["-v", f"{Path(base_model).resolve()}:/base"]
        base_model = "/base"
    # The mounts go first: the image then follows a short option, so a long mount path never drags it onto a
    # line of its own when the command is wrapped (see `shell`).
    return [
        "docker",
        "run",
        *mounts,
        "--gpus",
        "all",
        "--shm-size",
        "1g",
        "-p",
        f"{port}:80",
        LORAX_IMAGE,
        "--model-id",
        base_model,
    ]


def model_mapping(adapters: list[AdapterInfo], served_name: str = "base") -> list[dict]:
    """Per request: our `model` value -> what to send to vLLM and to LoRAX."""
    rows = [
        {
            "our model": "base",
            "vllm model": served_name,
            "lorax adapter_id": tr(en="(none: the base)", ru="(нет: это базовая модель)"),
        }
    ]
    rows += [
        {
            "our model": a.name,
            "vllm model": a.name,
            "lorax adapter_id": f"{LORAX_DATA}/{a.path.name} (adapter_source='local')",
        }
        for a in adapters
    ]
    rows.append(
        {
            "our model": "auto",
            "vllm model": tr(
                en="(route on the client, then send the chosen name)",
                ru="(маршрутизируйте на клиенте и отправьте выбранное имя)",
            ),
            "lorax adapter_id": tr(en="(route on the client)", ru="(маршрутизируйте на клиенте)"),
        }
    )
    return rows


def shell(command: list[str], width: int = 88) -> str:
    """A command list as one copy-pasteable shell line, wrapped with backslashes between options (never inside one);
    an option whose values do not fit on one line gets one line per value (e.g. --lora-modules entries)."""
    groups: list[list[str]] = []
    for part in command:
        if part.startswith("-") or not groups:
            groups.append([])
        groups[-1].append(shlex.quote(part))
    if any(len(" ".join(g)) > width - 4 and len(g) > 2 for g in groups):
        groups = [
            piece
            for g in groups
            for piece in ([g[:1], *([v] for v in g[1:])] if len(" ".join(g)) > width - 4 and len(g) > 2 else [g])
        ]
    lines, line = [], ""
    for group in (" ".join(g) for g in groups):
        if line.strip() and len(line) + 1 + len(group) > width:
            lines.append(line)
            line = "    "
        line += (" " if line.strip() else "") + group
    lines.append(line)
    return " \\\n".join(lines)


def handoff(
    folders: dict[str, str | Path],
    base_model: str,
    store_dir: str | Path | None = None,
    max_model_len: int | None = None,
    port: int = 8000,
    host: str | None = None,
) -> dict:
    """Everything for the hand-off: both commands (vLLM also as a list; None when vLLM can load no adapter), the
    adapters vLLM serves, those `left_out` with the reason, and the model mapping."""
    every = read_adapters(folders)
    if not every:
        raise ValueError(
            tr(
                en="No adapters to hand off: pass at least one adapter folder.",
                ru="Нет адаптеров для передачи в vLLM и LoRAX: передайте хотя бы одну папку адаптера.",
            )
        )
    adapters, left_out = split_for_vllm(every)
    store = Path(store_dir) if store_dir else every[0].path.parent
    vllm_args = vllm_command(base_model, adapters, port, max_model_len=max_model_len, host=host) if adapters else None
    return {
        "adapters": adapters,
        "left_out": left_out,
        "vllm_args": vllm_args,
        "vllm": shell(vllm_args) if vllm_args else None,
        "lorax": shell(lorax_command(base_model, store)),
        "mapping": model_mapping(adapters),
    }


def handoff_report(
    folders: dict[str, str | Path],
    base_model: str,
    store_dir: str | Path | None = None,
    max_model_len: int | None = None,
    skipped: list[str] = (),
    notes: list[str] = (),
    damaged: dict[str, str] | None = None,
    port: int = 8000,
    host: str | None = None,
) -> str:
    """The hand-off as text: the commands, the model mapping, what was left out and why (`damaged`: adapters
    already left out by `split_damaged`), the notes (those about an adapter left out dropped: `composition_notes`
    starts an adapter's notes with its name), and the tool-call note."""
    damaged = damaged or {}
    plan = handoff(folders, base_model, store_dir, max_model_len, port, host)
    nothing = tr(
        en="# (nothing: vLLM can load none of these adapters; see 'left out' below)",
        ru="# (ничего: vLLM не может загрузить ни один из этих адаптеров; см. «не передан в vLLM» ниже)",
    )
    vllm = plan["vllm"] or nothing
    lines = ["# vLLM", vllm, "", "# LoRAX", plan["lorax"], ""]
    lines += [
        f"model={row['our model']!r:10} -> vLLM model={row['vllm model']!r}, "
        f"LoRAX adapter_id={row['lorax adapter_id']!r}"
        for row in plan["mapping"]
    ]
    left_out = {**damaged, **plan["left_out"]}
    lines += [
        tr(en=f"left out of vLLM: {name}: {reason}", ru=f"не передан в vLLM: {name}: {reason}")
        for name, reason in left_out.items()
    ]
    lines += [tr(en=f"skipped: {reason}", ru=f"пропущено: {reason}") for reason in skipped]
    lines += [
        tr(en=f"note: {note}", ru=f"примечание: {note}")
        for note in notes
        if not any(note.startswith(f"{name}: ") for name in left_out)
    ]
    return "\n".join(lines + ["", tool_calling_note()])


# [server] settings vLLM has no equivalent for (port and host go into the vLLM command), and why; the Russian below
UNUSED_SERVER_SETTINGS = {
    "max_batch": "vLLM schedules its own batches (its nearest setting is --max-num-seqs; add it to cap them)",
    "window_ms": "vLLM batches continuously and has no gathering window",
    "max_body_bytes": "vLLM has no request size limit (put a reverse proxy with a body limit in front of it)",
}
UNUSED_SERVER_SETTINGS_RU = {
    "max_batch": "vLLM сам составляет батчи (ближайшая настройка — --max-num-seqs; добавьте её, чтобы ограничить их)",
    "window_ms": "vLLM собирает батчи непрерывно, без окна ожидания",
    "max_body_bytes": "в vLLM нет ограничения на размер запроса (поставьте перед ним обратный прокси с ограничением "
    "размера тела запроса)",
}


def composition_notes(composition) -> list[str]:
    """A note for every setting of a composition file that the vLLM command does not carry over, in the course
    language; an adapter's notes start with "NAME: " in both (handoff_report drops those of an adapter left out)."""
    notes = []
    for name, spec in composition.adapters.items():
        if spec.weight != 1.0:
            weight = f"{spec.weight:g}"
            notes.append(
                tr(
                    en=f"{name}: weight {weight} in the composition; vLLM serves adapters as trained "
                    "(weight 1): merge a scaled copy to keep it",
                    ru=f"{name}: вес {weight} в композиции; vLLM обслуживает адаптеры такими, какими они обучены "
                    "(вес 1): чтобы сохранить этот вес, слейте масштабированную копию",
                )
            )
        if f"adapters.{name}.precision" in composition.written:
            precision = spec.precision
            notes.append(
                tr(
                    en=f"{name}: precision {precision} in the composition; vLLM loads every adapter in one dtype "
                    "(--lora-dtype, default the base model's), not per adapter",
                    ru=f"{name}: точность {precision} в композиции; vLLM загружает все адаптеры в одном dtype "
                    "(--lora-dtype, по умолчанию как у базовой модели), а не в своём для каждого",
                )
            )
    notes += [
        tr(
            en=f"mix {name!r}: vLLM has no weighted mixes; send one adapter's name, or merge the mix into a new "
            "adapter (notebook 03)",
            ru=f"смесь {name!r}: в vLLM нет взвешенных смесей; отправляйте имя одного адаптера или слейте смесь в "
            "новый адаптер (ноутбук 03)",
        )
        for name in composition.mixes
    ]
    for key, why in UNUSED_SERVER_SETTINGS.items():
        if f"server.{key}" in composition.written:
            value = getattr(composition.server, key)
            notes.append(
                tr(
                    en=f"server.{key} = {value!r} in the composition: {why}",
                    ru=f"server.{key} = {value!r} в композиции: {UNUSED_SERVER_SETTINGS_RU[key]}",
                )
            )
    if composition.router != "none":
        router = composition.router
        notes.append(
            tr(
                en=f"router {router!r}: vLLM has no model='auto'; route on the client and send the chosen name",
                ru=f"маршрутизатор {router!r}: в vLLM нет model='auto'; маршрутизируйте на клиенте и отправляйте "
                "выбранное имя",
            )
        )
    return notes
