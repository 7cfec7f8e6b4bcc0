"""LoRA fine-tuning with TRL: the configs a profile implies, and a resumable train-one-adapter loop.

Checkpoints go to `checkpoint_dir` (default `output_dir/checkpoints`, or a Drive folder) every
`save_steps`; only the newest `keep_checkpoints` are kept. Rerunning the same call resumes from the
newest complete one (a checkpoint whose save was cut short, or with any file the Trainer would load on resume
damaged, is set aside as `.incomplete-checkpoint-N`),
for named adapters too (transformers #28531: their weights live in `checkpoint-N/<name>/`),
and refuses a checkpoint whose LoRA shape no longer matches. `disconnect_after(k)` simulates a lost
runtime for drills and tests. Bad rows, step counts below 1 and an output folder that cannot be written raise
before anything is trained or written; the profile may be given by name.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import env
from .adapters import adapter_file_problem
from .chat_format import ROLE_MARKERS
from .data import sft_rows
from .i18n import plural_ru, tr
from .profiles import Profile, get_profile

CHECKPOINTS = "checkpoints"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
CHECKPOINT_NAME = re.compile(r"checkpoint-[0-9]+")
INCOMPLETE_PREFIX = ".incomplete-"
OTHER_BASE_PREFIX = ".other-base-"
BASE_FILE = "base.json"  # which base the checkpoints in a folder were trained on (base_identity)
TRAINER_STATE = "trainer_state.json"
RESUME_FILES = ("optimizer.pt", "scheduler.pt")  # torch.save zip archives; trainer_state.json comes after them
OPTIONAL_FILES = ("scaler.pt", "training_args.bin")  # torch.save files a checkpoint may hold, besides rng_state*.pth
STRUCTURE_ONLY = ("optimizer.pt", "training_args.bin")  # checked by their zip directory only: big, or not loaded
SMALL_TORCH_FILE = 8 * 1024 * 1024  # files up to this size are loaded in full by checkpoint_problem


class DataError(ValueError):
    """Training data that cannot be used as is."""


class ResumeError(ValueError):
    """A checkpoint that does not fit the run asked for (another LoRA shape or target modules)."""


class SimulatedDisconnect(RuntimeError):
    """Raised by `disconnect_after`: stands in for a Colab runtime that went away mid-training."""


def lora_config(
    profile: Profile,
    r: int | None = None,
    alpha: int | None = None,
    dropout: float | None = None,
    target_modules: str | list[str] | None = None,
    task_type: str = "CAUSAL_LM",
):
    """A LoraConfig from the profile's SFT recipe (scale = alpha / r); arguments given replace its values."""
    from peft import LoraConfig

    recipe = profile.sft_recipe
    return LoraConfig(
        r=r or recipe.lora_r,
        lora_alpha=alpha or recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout if dropout is None else dropout,
        target_modules=target_modules or recipe.target_modules,
        task_type=task_type,
        bias="none",
    )


PACKING_STRATEGIES = ("bfd", "bfd-requeue", "wrapped")  # TRL's SFTConfig(packing_strategy=...) choices


def packing_kwargs(strategy: str | None) -> dict:
    """SFTConfig's packing settings for a profile's `packing_strategy` (None: no packing, pad each batch)."""
    if strategy is None:
        return {"packing": False}
    if strategy not in PACKING_STRATEGIES:
        raise ValueError(
            tr(
                en=f"Unknown packing_strategy {strategy!r}: use None (pad each batch) or one of "
                f"{', '.join(PACKING_STRATEGIES)} (TRL's SFTConfig choices).",
                ru=f"Неизвестная packing_strategy {strategy!r}: используйте None (padding каждого батча) или одно "
                f"из {', '.join(PACKING_STRATEGIES)} (варианты SFTConfig из TRL).",
            )
        )
    return {"packing": True, "packing_strategy": strategy}


def check_steps(
    max_steps: int | None = None, save_steps: int | None = None, keep_checkpoints: int | None = None
) -> None:
    """Raise ValueError unless each of max_steps / save_steps / keep_checkpoints is None (the profile's default) or a
    whole number >= 1."""
    for name, value in (("max_steps", max_steps), ("save_steps", save_steps), ("keep_checkpoints", keep_checkpoints)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            counts = (
                tr(en="checkpoints kept on disk", ru="хранимых контрольных точек")
                if name == "keep_checkpoints"
                else tr(en="optimizer steps", ru="шагов оптимизатора")
            )
            raise ValueError(
                tr(
                    en=f"{name} must be at least 1 (a whole number of {counts}), not {value!r}; pass None "
                    "for the profile's default.",
                    ru=f"{name} должно быть не меньше 1 (целое число {counts}), а не {value!r}; передайте "
                    "None, чтобы взять значение профиля.",
                )
            )


def as_profile(profile: Profile | str) -> Profile:
    """`profile` itself, or the profile of that name ("tiny", "t4" ...); TypeError for anything else."""
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, str):
        return get_profile(profile)
    raise TypeError(
        tr(
            en=f"profile must be a Profile (e.g. lessons_lib.profiles.PROFILES['tiny']) or a profile name, not "
            f"{type(profile).__name__} {_show(profile)}.",
            ru=f"profile должен быть Profile (например, lessons_lib.profiles.PROFILES['tiny']) или именем профиля, "
            f"а не {type(profile).__name__} {_show(profile)}.",
        )
    )


def check_writable(folder: str | Path, what: str) -> Path:
    """Create `folder` if needed and prove a file can be written there; OSError saying what to do otherwise."""
    import tempfile

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        reason = err.strerror or str(err)
        message = tr(
            en=f"Cannot write the {what} to {folder} ({reason}). Nothing was trained: pass a writable folder "
            "(e.g. one in your work dir or on a mounted Drive), or fix that folder's permissions, and run again.",
            ru=f"Не удаётся записать {what} в {folder} ({reason}). Обучение не запускалось: укажите папку, доступную "
            "для записи (например, в рабочей папке или на подключённом Диске), или исправьте права на неё и "
            "запустите снова.",
        )
        raise (PermissionError if isinstance(err, PermissionError) else OSError)(message) from err
    return folder


def sft_config(
    profile: Profile,
    output_dir: str | Path,
    max_steps: int | None = None,
    save_steps: int | None = None,
    save_total_limit: int | None = None,
    seed: int = 0,
    **overrides,
):
    """An SFTConfig from the profile's SFT recipe: fp32 on CPU, fp16 on a T4, bf16 only where native; its packing."""
    import torch
    from trl import SFTConfig

    check_steps(max_steps, save_steps, save_total_limit)
    profile = as_profile(profile)
    recipe = profile.sft_recipe
    on_gpu = env.cuda_available()
    gpu_path = profile.gpu_path()  # a CPU rehearsal takes the GPU's decisions (fp16 AMP, checkpointing) too
    dtype = profile.torch_dtype()
    steps = profile.train_steps if max_steps is None else max_steps
    kwargs = dict(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=recipe.batch_size,
        gradient_accumulation_steps=recipe.grad_accum,
        learning_rate=recipe.learning_rate,
        lr_scheduler_type=recipe.lr_scheduler_type,
        warmup_steps=recipe.warmup_steps(steps),
        max_length=recipe.max_length,
        **packing_kwargs(recipe.packing_strategy),
        completion_only_loss=recipe.completion_only_loss,
        gradient_checkpointing=recipe.gradient_checkpointing and gpu_path,
        fp16=gpu_path and dtype == torch.float16,
        bf16=gpu_path and dtype == torch.bfloat16,
        use_cpu=not on_gpu,
        logging_steps=recipe.logging_steps(steps),
        save_strategy="steps",
        save_steps=recipe.save_steps(steps) if save_steps is None else save_steps,
        save_total_limit=recipe.save_total_limit if save_total_limit is None else save_total_limit,
        report_to="none",
        seed=seed,
        dataloader_pin_memory=on_gpu,
    )
    kwargs.update(overrides)
    return SFTConfig(**kwargs)


KNOWN_ROLES = ("system", "user", "assistant", "tool")
ROW_SHAPE = (
    "Each row needs 'prompt' (user messages) and 'completion' (an assistant message), e.g. {'prompt': "
    "[{'role': 'user', 'content': 'Hi'}], 'completion': [{'role': 'assistant', 'content': 'Hello'}]}"
)
ROW_SHAPE_RU = (
    "В каждой строке нужны 'prompt' (сообщения пользователя) и 'completion' (сообщение ассистента), например "
    "{'prompt': [{'role': 'user', 'content': 'Hi'}], 'completion': [{'role': 'assistant', 'content': 'Hello'}]}"
)


def _show(value) -> str:
    """A short, recursion-bounded repr for error messages."""
    import reprlib

    shower = reprlib.Repr()
    shower.maxlevel, shower.maxstring, shower.maxother = 4, 120, 120
    return shower.repr(value)[:200]


def _marker_in(text: str) -> str | None:
    """The first chat-template role marker inside `text`, if any."""
    return next((marker for marker in ROLE_MARKERS if marker in text), None)


def _calls_problem(calls) -> str | None:
    """Why an assistant message's `tool_calls` cannot be rendered as calls, or None."""
    if not isinstance(calls, list) or not calls:
        return tr(
            en=f"has tool_calls {_show(calls)}; give a non-empty list of {{'function': {{'name', 'arguments'}}}}",
            ru=f"tool_calls равно {_show(calls)}; нужен непустой список {{'function': {{'name', 'arguments'}}}}",
        )
    for call in calls:
        function = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            return tr(
                en=f"has a tool call without a function name: {_show(call)}",
                ru=f"вызов инструмента без имени функции: {_show(call)}",
            )
        try:
            marker = _marker_in(json.dumps(function, ensure_ascii=False, default=str))
        except (ValueError, RecursionError):  # a circular or absurdly deep arguments object
            return tr(
                en=f"has a tool call whose arguments are not JSON data: {_show(call)}",
                ru=f"аргументы вызова инструмента — не данные JSON: {_show(call)}",
            )
        if marker:
            return tr(
                en=f"has the role marker {marker!r} inside a tool call",
                ru=f"маркер роли {marker!r} внутри вызова инструмента",
            )
    return None


def _message_problem(message) -> str | None:
    """Why one chat message would render wrong or teach nothing, or None if it is fine."""
    if not isinstance(message, dict):
        return tr(
            en=f"is a {type(message).__name__}, not a {{'role': ..., 'content': ...}} message",
            ru=f"это {type(message).__name__}, а не сообщение {{'role': ..., 'content': ...}}",
        )
    role, content = message.get("role"), message.get("content")
    if not isinstance(role, str) or role not in KNOWN_ROLES:
        return tr(
            en=f"has role {_show(role)}; use one of {', '.join(KNOWN_ROLES)} (map others first, e.g. 'human' -> "
            "'user', 'gpt' -> 'assistant')",
            ru=f"роль {_show(role)}; используйте одну из {', '.join(KNOWN_ROLES)} (остальные сначала замените, "
            "например 'human' -> 'user', 'gpt' -> 'assistant')",
        )
    calls = message.get("tool_calls")
    if calls is not None and calls != []:
        if role != "assistant":
            return tr(
                en=f"is a {role!r} message with tool_calls; only assistant messages carry calls",
                ru=f"сообщение {role!r} с tool_calls; вызовы бывают только в сообщениях ассистента",
            )
        problem = _calls_problem(calls)
        if problem or _blank(content):
            return problem  # the calls are the answer: no text needed
    if not isinstance(content, str) or not content.strip():
        return tr(
            en=f"has content {_show(content)}; it must be non-empty text: a list of parts, a dict, a number or "
            "None renders as an empty turn (join text parts into one string, or drop the message)",
            ru=f"content равно {_show(content)}; нужен непустой текст: список частей, dict, число или None "
            "превращаются в пустую реплику (соедините текстовые части в одну строку или удалите сообщение)",
        )
    marker = _marker_in(content)
    if marker:
        return tr(
            en=f"contains the role marker {marker!r} in its content; the model would learn to fake turns. Remove "
            "or reword it (e.g. '< |user| >'), or drop the row",
            ru=f"в content есть маркер роли {marker!r}; модель научилась бы подделывать реплики. Удалите или "
            "перефразируйте его (например, '< |user| >') либо уберите строку",
        )
    return None


def _blank(content) -> bool:
    """Whether message content is missing or only whitespace."""
    return content is None or (isinstance(content, str) and not content.strip())


def _answers(message) -> bool:
    """Whether a completion message is an assistant turn that tries to answer (its content is checked later)."""
    return (
        isinstance(message, dict)
        and message.get("role") == "assistant"
        and (not _blank(message.get("content")) or bool(message.get("tool_calls")))
    )


def _completion_problem(completion) -> str | None:
    """Why a completion is not 'the assistant's answer, ending the conversation', or None."""
    if not isinstance(completion, list) or not any(_answers(m) for m in completion):
        return tr(
            en=f"has no assistant turn to learn from. {ROW_SHAPE}",
            ru=f"нет реплики ассистента, на которой можно учиться. {ROW_SHAPE_RU}",
        )
    for k, message in enumerate(completion):
        problem = _message_problem(message)
        if problem:
            return tr(en=f"completion message {k} {problem}", ru=f"сообщение {k} ответа (completion): {problem}")
        if message["role"] != "assistant":
            later = "after the answer" if k else "before the answer"
            return tr(
                en=f"completion message {k} is a {message['role']!r} turn {later}; a completion holds only the "
                "assistant's answer and ends the conversation (move other turns into the prompt, or into a "
                "new row)",
                ru=f"сообщение {k} ответа (completion) — реплика {message['role']!r} "
                f"{'после ответа' if k else 'до ответа'}; completion содержит только ответ ассистента и завершает "
                "разговор (перенесите другие реплики в prompt или в новую строку)",
            )
    return None


def _prompt_problem(prompt) -> str | None:
    """Why a prompt is not a chat the completion answers, or None."""
    if not isinstance(prompt, list) or not prompt:
        return tr(en=f"has no prompt messages. {ROW_SHAPE}", ru=f"в prompt нет сообщений. {ROW_SHAPE_RU}")
    for k, message in enumerate(prompt):
        problem = _message_problem(message)
        if problem:
            return tr(en=f"prompt message {k} {problem}", ru=f"сообщение {k} промпта (prompt): {problem}")
        role, before = message["role"], prompt[k - 1]["role"] if k else None
        if role == "system" and before not in (None, "system"):
            return tr(
                en=f"prompt message {k} is a system message after the conversation started; put it first",
                ru=f"сообщение {k} промпта (prompt) — системное сообщение после начала разговора; поставьте его первым",
            )
        if role == "tool" and before not in ("assistant", "tool"):
            return tr(
                en=f"prompt message {k} is a tool result that follows no assistant call; put the call before it",
                ru=f"сообщение {k} промпта (prompt) — результат инструмента, перед которым нет вызова ассистента; "
                "поставьте вызов перед ним",
            )
    if not any(m["role"] == "user" for m in prompt):
        return tr(
            en="has no user turn in its prompt; add the user's request the completion answers",
            ru="в prompt нет реплики пользователя; добавьте запрос пользователя, на который отвечает completion",
        )
    if prompt[-1]["role"] not in ("user", "tool"):
        return tr(
            en=f"ends its prompt with a {prompt[-1]['role']!r} turn; the completion must answer a user (or tool) "
            "turn, so end the prompt with it",
            ru=f"prompt заканчивается репликой {prompt[-1]['role']!r}; completion должен отвечать на реплику "
            "пользователя (или инструмента), поэтому закончите prompt ею",
        )
    return None


def row_problem(row) -> str | None:
    """Why one training row would fail or teach nothing (the text after 'Row i'), or None if it is usable."""
    if not isinstance(row, dict):
        return tr(
            en=f"is a {type(row).__name__}, not a prompt/completion object. {ROW_SHAPE}",
            ru=f"это {type(row).__name__}, а не объект prompt/completion. {ROW_SHAPE_RU}",
        )
    if "messages" in row and "completion" not in row:
        return tr(
            en="is a 'messages' chat; split it into 'prompt' and 'completion' first "
            "(lessons_lib.sharegpt.to_prompt_completion) so the loss covers only the answer",
            ru="это чат 'messages'; сначала разделите его на 'prompt' и 'completion' "
            "(lessons_lib.sharegpt.to_prompt_completion), чтобы функция потерь (loss) учитывала только ответ",
        )
    return _completion_problem(row.get("completion")) or _prompt_problem(row.get("prompt"))


def check_rows(rows: list[dict]) -> None:
    """Raise DataError naming the first bad row when rows are not prompt/completion chats."""
    if rows is None or (isinstance(rows, (list, tuple)) and len(rows) == 0):
        raise DataError(
            tr(
                en="The training set is empty: give at least one prompt/completion row.",
                ru="Обучающий набор пуст: передайте хотя бы одну строку prompt/completion.",
            )
        )
    if not isinstance(rows, (list, tuple)):
        raise DataError(
            tr(
                en=f"The training set is a {type(rows).__name__}; give a list of prompt/completion rows.",
                ru=f"Обучающий набор — это {type(rows).__name__}; передайте список строк prompt/completion.",
            )
        )
    for i, row in enumerate(rows):
        problem = row_problem(row)
        if problem:
            raise DataError(
                tr(
                    en=f"Row {i} {problem}. The row: {_show(row)}",
                    ru=f"Строка {i}: {problem}. Сама строка: {_show(row)}",
                )
            )


def check_lengths(rows: list[dict], tokenizer, max_length: int) -> None:
    """Raise DataError when a prompt alone fills max_length, so nothing of the answer would be learned."""
    for i, row in enumerate(rows):
        length = _prompt_length(row, tokenizer)
        if length >= max_length:
            raise DataError(
                tr(
                    en=f"Row {i}: the prompt is {length} tokens but max_length is {max_length}, "
                    "so no answer token would be trained. Raise max_length, shorten the prompt, "
                    "or drop such rows with fit_to_length(rows, tokenizer, max_length).",
                    ru=f"Строка {i}: промпт занимает {length} {plural_ru(length, 'токен', 'токена', 'токенов')}, "
                    f"а max_length равен {max_length}, так что ни один токен ответа не попал бы в обучение. "
                    "Увеличьте max_length, сократите промпт или отбросьте такие строки через "
                    "fit_to_length(rows, tokenizer, max_length).",
                )
            )


def fit_to_length(rows: list[dict], tokenizer, max_length: int, room: int = 16) -> tuple[list[dict], int]:
    """Keep the rows whose prompt leaves at least `room` tokens for the answer; returns (kept, dropped count).

    Real chat data (FineTome) has some very long prompts; dropping them is better than training on none.
    """
    kept = [row for row in rows if _prompt_length(row, tokenizer) + room <= max_length]
    return kept, len(rows) - len(kept)


def _prompt_length(row: dict, tokenizer) -> int:
    tools = json.loads(row["tools"]) if isinstance(row.get("tools"), str) else row.get("tools")  # as TRL renders it
    ids = tokenizer.apply_chat_template(row["prompt"], tools=tools, tokenize=True, add_generation_prompt=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


def checkpoint_folder(checkpoint_dir: str | Path) -> Path:
    """Where the checkpoint-N folders are: `checkpoint_dir/checkpoints` when it exists, else `checkpoint_dir`."""
    folder = Path(checkpoint_dir)
    return folder / CHECKPOINTS if (folder / CHECKPOINTS).is_dir() else folder


def last_checkpoint(checkpoint_dir: str | Path, log=print, base=None) -> str | None:
    """The newest complete checkpoint-N in `checkpoint_dir` (or `checkpoint_dir/checkpoints`), if any.

    Newer incomplete ones (a save cut short by a disconnect) are renamed `.incomplete-checkpoint-N`,
    and `log` says so: the trainer then rewrites that step into a fresh folder and its rotation ignores them.
    Given the `base` model about to train, checkpoints made on another base are set aside first
    (`keep_only_this_base`), so a changed base never resumes a run it did not start.
    """
    folder = checkpoint_folder(checkpoint_dir)
    if base is not None:
        keep_only_this_base(folder, base, log)
    for checkpoint in checkpoints_newest_first(folder):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return str(checkpoint)
        set_aside(checkpoint, problem, log)
    return None


def base_identity(model) -> dict:
    """What checkpoints must share with the model that resumes them: the base's name, shape and weights (a digest
    of its first embedding rows, rounded to fp16 so the 4-bit, fp16 and fp32 loads of one base agree)."""
    import hashlib

    import torch

    from .manifest import base_fingerprint, base_model_id

    rows = model.get_input_embeddings().weight[:16].detach().to(device="cpu", dtype=torch.float16)
    return {
        "base_model": base_model_id(model),
        "base_fingerprint": base_fingerprint(model),
        "embedding_digest": hashlib.sha256(rows.numpy().tobytes()).hexdigest()[:16],
    }


def recorded_base(folder: Path) -> dict | None:
    """The base identity recorded in a checkpoint folder, or None when there is none (or it is unreadable)."""
    try:
        recorded = json.loads((folder / BASE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return recorded if isinstance(recorded, dict) else None


def keep_only_this_base(checkpoint_dir: str | Path, base, log=print) -> list[Path]:
    """Set aside (as `.other-base-checkpoint-N`) checkpoints made on another base or on an unrecorded one, then
    record `base` as the folder's base; returns the folders set aside."""
    folder = checkpoint_folder(checkpoint_dir)
    identity = base_identity(base)
    recorded = recorded_base(folder)
    moved = []
    if recorded != identity:
        for checkpoint in checkpoints_newest_first(folder):
            target = checkpoint.with_name(OTHER_BASE_PREFIX + checkpoint.name)
            shutil.rmtree(target, ignore_errors=True)
            checkpoint.rename(target)
            moved.append(target)
    if moved:
        made_on = f"base {recorded['base_model']}" if recorded else "a base this folder did not record"
        made_on_ru = (
            f"базовой модели {recorded['base_model']}" if recorded else "базовой модели, не записанной в этой папке"
        )
        n = len(moved)
        log(
            tr(
                en=f"{n} checkpoint(s) in {folder} were made on {made_on}, not on this {identity['base_model']} "
                f"(weights {identity['embedding_digest']}); set aside as {OTHER_BASE_PREFIX}checkpoint-N (safe to "
                "delete), and training starts over on this base.",
                ru=f"{n} {plural_ru(n, 'контрольная точка', 'контрольные точки', 'контрольных точек')} в {folder} "
                f"{plural_ru(n, 'сделана', 'сделаны', 'сделаны')} на {made_on_ru}, а не на этой базовой модели "
                f"{identity['base_model']} (веса {identity['embedding_digest']}); "
                f"{plural_ru(n, 'отложена', 'отложены', 'отложены')} как {OTHER_BASE_PREFIX}checkpoint-N (можно "
                "удалить), и обучение начинается заново.",
            )
        )
    if recorded != identity:
        folder.mkdir(parents=True, exist_ok=True)
        scratch = folder / (BASE_FILE + ".tmp")
        scratch.write_text(json.dumps(identity, indent=2) + "\n", encoding="utf-8")
        scratch.replace(folder / BASE_FILE)  # atomic: a kill leaves the old record or the new one
    return moved


def checkpoints_newest_first(folder: Path) -> list[Path]:
    """The checkpoint-N folders in `folder`, highest N first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if CHECKPOINT_NAME.fullmatch(p.name) and p.is_dir()]
    return sorted(found, key=checkpoint_step, reverse=True)


def checkpoint_problem(checkpoint: str | Path) -> str | None:
    """Why training cannot resume from `checkpoint` (what is missing, cut short or unreadable), or None if it is whole.

    Every file the Trainer loads on resume is checked: the adapter weights (safetensors header) and their
    adapter_config.json, optimizer.pt (zip structure), scheduler.pt, and when present rng_state*.pth, scaler.pt
    (small: loaded as the Trainer loads them) and training_args.bin; last, trainer_state.json. So a save stopped
    anywhere, or a file damaged since, is caught before the Trainer fails on it.
    """
    folder = Path(checkpoint)
    weights = [folder / ADAPTER_WEIGHTS, *folder.glob(f"*/{ADAPTER_WEIGHTS}")]
    weights = [w for w in weights if w.is_file()]
    if not weights:
        return tr(en=f"no {ADAPTER_WEIGHTS}", ru=f"нет {ADAPTER_WEIGHTS}")
    for path in weights:
        found = adapter_file_problem(path.parent)  # the adapter folder check, shared with the artifact search
        if found is not None:
            file, why = found
            return f"{(path.parent / file).relative_to(folder)} {why}"
    for name in RESUME_FILES:
        if not (folder / name).is_file():
            return tr(en=f"no {name}", ru=f"нет {name}")
    torch_files = [folder / name for name in RESUME_FILES]
    torch_files += sorted(folder.glob("rng_state*.pth"))
    torch_files += [folder / name for name in OPTIONAL_FILES if (folder / name).is_file()]
    for path in torch_files:
        if not readable_torch_file(path, load=path.name not in STRUCTURE_ONLY):
            return tr(en=f"{path.name} is cut short or unreadable", ru=f"{path.name} обрезан или не читается")
    if not isinstance(read_trainer_state(folder).get("global_step"), int):
        return tr(en=f"{TRAINER_STATE} is missing or cut short", ru=f"{TRAINER_STATE} отсутствует или обрезан")
    return None


def readable_torch_file(path: Path, load: bool = True) -> bool:
    """True when a torch.save file is whole: its zip directory covers the file, and (when `load`, for the Trainer's
    small files) it loads the way the Trainer loads it (weights_only, with the Trainer's safe globals)."""
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            if any(info.header_offset + info.compress_size > size for info in archive.infolist()):
                return False
        if not load or size > SMALL_TORCH_FILE:
            return True
        import torch

        try:
            from transformers.trainer_pt_utils import safe_globals
        except ImportError:  # an older transformers, which loads these files whole: never be stricter than it
            torch.load(path, map_location="cpu", weights_only=False)
            return True
        with safe_globals():
            torch.load(path, map_location="cpu", weights_only=True)
        return True
    except Exception:  # noqa: BLE001 - zipfile, OSError, pickle and torch errors all mean "cannot be loaded"
        return False


def read_trainer_state(checkpoint: Path) -> dict:
    """The checkpoint's trainer_state.json, or {} when it is missing or not valid JSON."""
    try:
        state = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return state if isinstance(state, dict) else {}


def set_aside(checkpoint: Path, problem: str, log=print) -> Path:
    """Rename an incomplete checkpoint-N to `.incomplete-checkpoint-N` (replacing an older one of that step)."""
    target = checkpoint.with_name(INCOMPLETE_PREFIX + checkpoint.name)
    shutil.rmtree(target, ignore_errors=True)
    checkpoint.rename(target)
    log(
        tr(
            en=f"{checkpoint.name} is incomplete ({problem}): the run was stopped while saving it, or a file was "
            f"damaged since. Set it aside as {target} (safe to delete); training resumes from the newest complete "
            "checkpoint, if any.",
            ru=f"Контрольная точка {checkpoint.name} неполная ({problem}): запуск прервался во время сохранения, "
            f"или файл с тех пор повреждён. Она отложена как {target} (можно удалить); обучение продолжится с "
            "последней полной контрольной точки, если она есть.",
        )
    )
    return target


def checkpoint_step(checkpoint: str | Path | None) -> int:
    """The step number of a `checkpoint-N` folder (0 for None)."""
    return int(Path(checkpoint).name.rsplit("-", 1)[-1]) if checkpoint else 0


def checkpoint_weights(checkpoint: str | Path, adapter_name: str) -> Path:
    """Where a checkpoint keeps an adapter's weights: the folder itself, or `<name>/` for named adapters."""
    folder = Path(checkpoint)
    for candidate in (folder / adapter_name / ADAPTER_WEIGHTS, folder / ADAPTER_WEIGHTS):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        tr(
            en=f"No {ADAPTER_WEIGHTS} for adapter {adapter_name!r} in {folder}.",
            ru=f"В {folder} нет {ADAPTER_WEIGHTS} для адаптера {adapter_name!r}.",
        )
    )


@dataclass
class TrainResult:
    """What a training run produced."""

    adapter_dir: Path
    steps: int
    resumed_from: str | None
    seconds: float
    log_history: list[dict] = field(default_factory=list)
    checkpoint_dir: Path | None = None
    steps_run: int = 0

    def losses(self) -> list[tuple[int, float]]:
        """(step, loss) pairs from the trainer's log."""
        return [(h["step"], h["loss"]) for h in self.log_history if "loss" in h]


def _trainer_callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


def restore_adapter_callback(checkpoint: str, adapter_name: str, log=print):
    """A callback that checks, as training starts, that the resumed adapter holds the checkpoint's weights.

    If the trainer left them at their fresh initialisation (transformers #28531 with named adapters),
    it loads them from the checkpoint itself, so a resumed run never silently starts from scratch.
    """
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    class RestoreAdapter(_trainer_callback_base()):
        restored = False

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            saved = load_file(str(checkpoint_weights(checkpoint, adapter_name)))
            current = get_peft_model_state_dict(model, adapter_name=adapter_name)
            same = saved.keys() == current.keys() and all(
                torch.equal(saved[k].to(current[k].device, current[k].dtype), current[k]) for k in saved
            )
            if not same:
                set_peft_model_state_dict(model, saved, adapter_name=adapter_name)
                RestoreAdapter.restored = True
                log(
                    tr(
                        en=f"The trainer did not restore adapter {adapter_name!r} from {checkpoint} "
                        "(transformers #28531); loaded its weights from the checkpoint instead.",
                        ru=f"Тренер не восстановил адаптер {adapter_name!r} из {checkpoint} "
                        "(transformers #28531); его веса загружены прямо из контрольной точки.",
                    )
                )

    return RestoreAdapter()


def disconnect_after(step: int):
    """A callback that interrupts training once, right after optimizer step `step` (a simulated disconnect).

    Pass the same callback to the rerun: it has fired already, so the rerun trains to the end.
    """
    if step < 1:
        raise ValueError(tr(en="step must be >= 1", ru="step должен быть >= 1"))

    class DisconnectAfter(_trainer_callback_base()):
        fired = False

        def on_step_end(self, args, state, control, **kwargs):
            if not self.fired and state.global_step >= step:
                self.fired = True
                raise SimulatedDisconnect(
                    tr(
                        en=f"Simulated disconnect after step {state.global_step} of {state.max_steps}: "
                        "rerun the same call to resume from the newest checkpoint.",
                        ru=f"Имитация разрыва соединения после шага {state.global_step} из {state.max_steps}: "
                        "запустите тот же вызов снова, чтобы продолжить с последней контрольной точки.",
                    )
                )

    return DisconnectAfter()


def check_resumable(checkpoint: str | Path, lora, adapter_name: str) -> None:
    """Raise ResumeError when a checkpoint's adapter has another rank, alpha or target modules than `lora`."""
    from .compat import read_adapter_config

    saved = read_adapter_config(Path(checkpoint_weights(checkpoint, adapter_name)).parent)
    wanted = lora.to_dict()
    # "all-linear" is saved resolved to module names, so target modules are compared only when listed.
    fields = ("r", "lora_alpha") + (
        ("target_modules",) if isinstance(wanted.get("target_modules"), (list, set)) else ()
    )
    normal = lambda v: sorted(v) if isinstance(v, (list, set, tuple)) else v  # noqa: E731
    changed = [
        tr(
            en=f"{f}: checkpoint {saved.get(f)!r}, now {normal(wanted.get(f))!r}",
            ru=f"{f}: в контрольной точке {saved.get(f)!r}, сейчас {normal(wanted.get(f))!r}",
        )
        for f in fields
        if normal(saved.get(f)) != normal(wanted.get(f))
    ]
    if changed:
        raise ResumeError(
            tr(
                en=f"Cannot resume from {checkpoint}: the LoRA settings changed ({'; '.join(changed)}). "
                "Use a new output_dir (or checkpoint_dir) for the new settings, or pass resume=False "
                "to start over.",
                ru=f"Нельзя продолжить обучение с {checkpoint}: настройки LoRA изменились ({'; '.join(changed)}). "
                "Для новых настроек укажите новый output_dir (или checkpoint_dir) либо передайте resume=False, "
                "чтобы начать заново.",
            )
        )


def step_counter():
    """A callback counting the optimizer steps actually run in this call (a resumed run starts past zero)."""

    class StepCounter(_trainer_callback_base()):
        steps = 0

        def on_step_end(self, args, state, control, **kwargs):
            self.steps += 1

    return StepCounter()


def has_lora_layers(model) -> bool:
    """True when LoRA layers were already injected into `model` (by an earlier, maybe interrupted, run)."""
    from peft.tuners.lora import LoraLayer

    return any(isinstance(m, LoraLayer) for m in model.modules())


def is_quantized(model) -> bool:
    """True for a model loaded in 4-bit or 8-bit with bitsandbytes."""
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def check_fresh_base(model) -> None:
    """Raise ValueError when a plain base already carries LoRA layers (get_peft_model changed it in place)."""
    from peft import PeftModel

    if not isinstance(model, PeftModel) and has_lora_layers(model):
        raise ValueError(
            tr(
                en="This base model already carries LoRA layers from an earlier run (get_peft_model changes "
                "the base in place). Load a fresh base with load_base(profile) and call again; training "
                "resumes from the newest checkpoint.",
                ru="В этой базовой модели уже есть слои LoRA от прошлого запуска (get_peft_model меняет базовую "
                "модель на месте). Загрузите свежую базовую модель через load_base(profile) и вызовите снова; "
                "обучение продолжится с последней контрольной точки.",
            )
        )


def wrap_with_lora(model, lora, adapter_name: str, gradient_checkpointing: bool, seed: int):
    """Prepare a (possibly 4-bit) base for training and add a fresh LoRA adapter named `adapter_name`."""
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training
    from transformers import set_seed

    if isinstance(model, PeftModel):
        if adapter_name not in model.peft_config:
            raise ValueError(
                tr(
                    en=f"The PeftModel has adapters {sorted(model.peft_config)}, not {adapter_name!r}: pass "
                    "a plain base model (load_base) to train a new adapter.",
                    ru=f"В PeftModel есть адаптеры {sorted(model.peft_config)}, но нет {adapter_name!r}: чтобы "
                    "обучить новый адаптер, передайте обычную базовую модель (load_base).",
                )
            )
        model.set_adapter(adapter_name)
        return model
    check_fresh_base(model)
    if is_quantized(model):
        with quiet_checkpointing_notice():
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    set_seed(seed)  # LoRA's A matrices start random: same seed, same adapter
    return get_peft_model(model, lora, adapter_name=adapter_name)


@contextlib.contextmanager
def quiet_checkpointing_notice():
    """Hide transformers 5.23's rename notice for gradient_checkpointing, which PEFT and TRL still call by that name."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*checkpointing.*deprecated", category=FutureWarning)
        yield


def keep_adapter_fp32(model) -> int:
    """Cast trainable (LoRA) weights to fp32: fp16 AMP cannot unscale half gradients; bf16 keeps 8 bits of B·A."""
    import torch

    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
            cast += 1
    return cast


def train_adapter(
    model,
    tokenizer,
    rows: list[dict],
    profile: Profile | str,
    output_dir: str | Path,
    max_steps: int | None = None,
    save_steps: int | None = None,
    resume: bool = True,
    callbacks: list | None = None,
    lora=None,
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    keep_checkpoints: int | None = None,
    adapter_name: str = "default",
    log=print,
    **config_overrides,
) -> TrainResult:
    """Train one LoRA adapter on prompt/completion rows with SFTTrainer; resume from the newest checkpoint.

    The adapter (only) is saved flat to `output_dir`; checkpoints go to `checkpoint_dir`
    (default `output_dir/checkpoints`) every `save_steps`, keeping the last `keep_checkpoints` (None: the profile's
    `sft_recipe.save_total_limit`).
    """
    from datasets import Dataset
    from trl import SFTTrainer

    from .storage import write_adapter_files

    check_rows(rows)
    profile = as_profile(profile)
    output_dir = Path(output_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else output_dir / CHECKPOINTS
    args = sft_config(
        profile, checkpoint_dir, max_steps, save_steps, save_total_limit=keep_checkpoints, seed=seed, **config_overrides
    )
    check_lengths(rows, tokenizer, args.max_length)
    lora = lora or lora_config(profile)
    check_fresh_base(model)  # before anything is written
    check_writable(output_dir, tr(en="trained adapter", ru="обученный адаптер"))  # not only after every step ran
    check_writable(checkpoint_dir, tr(en="checkpoints", ru="контрольные точки"))
    keep_only_this_base(checkpoint_dir, model, log)
    resume_from = last_checkpoint(checkpoint_dir, log) if resume else None
    if resume_from:
        check_resumable(resume_from, lora, adapter_name)
    peft_model = wrap_with_lora(model, lora, adapter_name, args.gradient_checkpointing, seed)
    if resume_from and checkpoint_step(resume_from) >= args.max_steps:
        return finished_run(peft_model, resume_from, args.max_steps, adapter_name, output_dir, checkpoint_dir, log)
    counter = step_counter()
    all_callbacks = [counter, *(callbacks or [])]
    if resume_from:
        all_callbacks.append(restore_adapter_callback(resume_from, adapter_name, log))
        step = checkpoint_step(resume_from)
        log(
            tr(
                en=f"Resuming from {resume_from} (step {step} of {args.max_steps}).",
                ru=f"Продолжаем с {resume_from} (шаг {step} из {args.max_steps}).",
            )
        )
    trainer = SFTTrainer(
        model=peft_model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=all_callbacks,
    )
    if args.fp16 or args.bf16:
        keep_adapter_fp32(trainer.model)
    start = time.time()
    with quiet_checkpointing_notice():
        trainer.train(resume_from_checkpoint=resume_from)
    write_adapter_files(trainer.model, output_dir, adapter_name)
    return TrainResult(
        output_dir,
        trainer.state.global_step,
        resume_from,
        time.time() - start,
        list(trainer.state.log_history),
        checkpoint_dir,
        counter.steps,
    )


def finished_run(
    peft_model, checkpoint: str, max_steps: int, adapter_name: str, output_dir: Path, checkpoint_dir: Path, log=print
) -> TrainResult:
    """A rerun of a run that reached `max_steps`: its last checkpoint's adapter saved to `output_dir`, no step trained
    (resuming would train past the end, the learning rate schedule starting over)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from .storage import write_adapter_files

    saved = load_file(str(checkpoint_weights(checkpoint, adapter_name)))
    set_peft_model_state_dict(peft_model, saved, adapter_name=adapter_name)
    write_adapter_files(peft_model, output_dir, adapter_name)
    step = checkpoint_step(checkpoint)
    log(
        tr(
            en=f"{checkpoint} is at step {step}, and this run trains {max_steps}: nothing left to train; its adapter "
            f"is saved to {output_dir}. To train again from scratch, use a new output_dir or pass resume=False.",
            ru=f"{checkpoint} — это шаг {step}, а запуск обучает {max_steps}: обучать больше нечего; адаптер из неё "
            f"сохранён в {output_dir}. Чтобы обучить заново, укажите новый output_dir или передайте resume=False.",
        )
    )
    history = read_trainer_state(Path(checkpoint)).get("log_history", [])
    return TrainResult(output_dir, step, checkpoint, 0.0, list(history), checkpoint_dir, 0)


def train_domain(
    domain: str,
    profile: Profile | str,
    output_dir: str | Path,
    n_rows: int = 2000,
    max_steps: int | None = None,
    seed: int = 0,
    log=print,
    extra_rows: list[dict] | None = None,
    **kwargs,
) -> TrainResult:
    """Load a fresh base and train the adapter for one course domain (what the adapter loop calls).

    `extra_rows` (e.g. FineTome chats) are mixed in after the domain rows; the trainer shuffles them.
    Rerunning the same call after an interruption resumes from the newest checkpoint in `output_dir`.
    """
    from .models import load_base, load_tokenizer

    profile = as_profile(profile)
    check_steps(max_steps, kwargs.get("save_steps"), kwargs.get("keep_checkpoints"))  # before the base is loaded
    base, tok = load_base(profile, log=log), load_tokenizer(profile)
    rows = sft_rows(domain, n_rows, "train", seed) + list(extra_rows or [])
    result = train_adapter(base, tok, rows, profile, output_dir, max_steps=max_steps, seed=seed, log=log, **kwargs)
    log(
        tr(
            en=f"{domain}: {result.steps} steps in {result.seconds:.0f}s -> {output_dir}",
            ru=f"{domain}: {result.steps} {plural_ru(result.steps, 'шаг', 'шага', 'шагов')} за "
            f"{result.seconds:.0f} с -> {output_dir}",
        )
    )
    return result
