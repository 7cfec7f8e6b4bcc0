"""ShareGPT / FineTome rows (`conversations: [{from, value}]`) to chat messages, and the FineTome loader."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .i18n import plural_ru, tr
from .jsonl import json_problem

ROLE_MAP = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
FINETOME_ID = "mlabonne/FineTome-100k"


class MalformedRowsError(ValueError):
    """Rows that cannot be turned into chats; says how many and shows the first one."""


@dataclass(frozen=True)
class Conversion:
    """Converted chats plus what was skipped (only filled when on_error='skip')."""

    messages: list[list[dict]]
    skipped: list[tuple[int, str]]

    def summary(self) -> str:
        """One line: how many rows converted and skipped."""
        done, dropped = len(self.messages), len(self.skipped)
        if self.skipped:
            index, problem = self.skipped[0]
            first = tr(
                en=f"; first skipped: row {index} ({problem})", ru=f"; первая пропущенная: строка {index} ({problem})"
            )
        else:
            first = ""
        return tr(
            en=f"{done} conversations converted, {dropped} skipped{first}",
            ru=f"{done} {plural_ru(done, 'диалог преобразован', 'диалога преобразовано', 'диалогов преобразовано')}, "
            f"{dropped} {plural_ru(dropped, 'пропущен', 'пропущено', 'пропущено')}{first}",
        )


@dataclass(frozen=True)
class UnreadableLine:
    """A line of a local data file that is not a JSON object; `problem` names file:line and what to do."""

    problem: str


def row_problem(row) -> str | None:
    """Why a row is not a usable ShareGPT conversation, or None if it is."""
    if isinstance(row, UnreadableLine):
        return row.problem
    if not isinstance(row, dict):
        name = type(row).__name__
        return tr(en=f"expected a dict, got {name}", ru=f"ожидался dict, получен {name}")
    turns = row.get("conversations")
    if not isinstance(turns, list) or not turns:
        return tr(en="no 'conversations' list", ru="нет списка 'conversations'")
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            return tr(en=f"turn {i} lacks 'from'/'value'", ru=f"в реплике {i} нет 'from'/'value'")
        role = turn["from"]
        if not isinstance(role, str) or role not in ROLE_MAP:
            roles = ", ".join(ROLE_MAP)
            return tr(
                en=f"turn {i} has unknown role {role!r} (expected one of {roles})",
                ru=f"у реплики {i} неизвестная роль {role!r} (ожидается одна из: {roles})",
            )
        if not isinstance(turn["value"], str) or not turn["value"].strip():
            return tr(en=f"turn {i} has an empty value", ru=f"у реплики {i} пустое значение 'value'")
    if not any(ROLE_MAP[t["from"]] == "assistant" for t in turns):
        return tr(en="no assistant ('gpt') turn to learn from", ru="нет реплики ассистента ('gpt'), на которой учиться")
    return None


def convert_row(row: dict) -> list[dict]:
    """One valid ShareGPT row as chat messages."""
    return [{"role": ROLE_MAP[t["from"]], "content": t["value"]} for t in row["conversations"]]


def sharegpt_to_messages(rows: Iterable[dict], on_error: str = "raise") -> Conversion:
    """Convert rows; malformed ones raise MalformedRowsError (count, first row) or, with on_error='skip', are listed."""
    if on_error not in ("raise", "skip"):
        raise ValueError(
            tr(
                en=f"on_error must be 'raise' or 'skip', got {on_error!r}.",
                ru=f"on_error должен быть 'raise' или 'skip', а получено {on_error!r}.",
            )
        )
    good, bad = [], []
    for i, row in enumerate(rows):
        problem = row_problem(row)
        if problem:
            bad.append((i, problem))
        else:
            good.append(convert_row(row))
    if bad and on_error == "raise":
        index, problem = bad[0]
        raise MalformedRowsError(
            tr(
                en=f"{len(bad)} malformed row(s); first is row {index}: {problem}. "
                "Fix the data, or pass on_error='skip' to drop them with a report.",
                ru=f"Строк с ошибками: {len(bad)}; первая — строка {index}: {problem}. "
                "Исправьте данные или передайте on_error='skip', чтобы отбросить их с отчётом.",
            )
        )
    return Conversion(good, bad)


def to_prompt_completion(messages: list[dict]) -> dict:
    """Split a chat at its last assistant turn into TRL's prompt/completion format."""
    answers = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    if not answers:
        roles = [m.get("role") for m in messages]
        raise MalformedRowsError(
            tr(
                en=f"This chat has no assistant turn to learn from; drop it or add the answer (roles seen: {roles}).",
                ru="В этом диалоге нет реплики ассистента, на которой учиться; удалите его или добавьте ответ "
                f"(встреченные роли: {roles}).",
            )
        )
    if not any(m.get("role") == "user" for m in messages[: answers[-1]]):
        raise MalformedRowsError(
            tr(
                en="This chat has no user turn before its last assistant turn: there is no prompt to answer.",
                ru="В этом диалоге нет реплики пользователя перед последней репликой ассистента: нет промпта, "
                "на который отвечать.",
            )
        )
    return {"prompt": messages[: answers[-1]], "completion": [messages[answers[-1]]]}


def stream_finetome(n: int, progress: bool = True) -> list[dict]:
    """The first `n` FineTome-100k rows, streamed from the Hub (downloading only what is read), with a progress bar."""
    from datasets import load_dataset
    from tqdm import tqdm  # a text bar: its last state is what a saved notebook shows (a widget bar stays at 0%)

    stream = load_dataset(FINETOME_ID, split="train", streaming=True)
    rows = []
    with tqdm(total=n, desc=f"{FINETOME_ID} (streamed)", unit="row", disable=not progress) as bar:
        for row in stream.take(n):
            rows.append(row)
            bar.update()
    return rows


def _local_rows(path: str | Path, n: int, on_error: str = "raise") -> list[dict | UnreadableLine]:
    """The first `n` rows of a local JSON/JSONL/Parquet file; JSON is read with the course reader (`jsonl`), so a
    damaged line is a DataFileError naming file:line[:column], or, with on_error='skip', an UnreadableLine row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            tr(
                en=f"No data file at {path}. Give a JSONL (one ShareGPT row per line), JSON or Parquet file, "
                "or leave path=None to stream FineTome from the Hub.",
                ru=f"Файла данных {path} нет. Укажите файл JSONL (по строке ShareGPT в строке), JSON или Parquet "
                "или оставьте path=None, чтобы загружать FineTome потоком с Hub.",
            )
        )
    if path.suffix.lower() == ".parquet":
        from datasets import load_dataset

        ds = load_dataset("parquet", data_files=str(path), split="train")
        return list(ds.select(range(min(n, len(ds)))))
    data = path.read_bytes()
    if path.suffix.lower() == ".json" and data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        return _json_array_rows(path, data, n)
    return _jsonl_rows(path, data, n, on_error)


def _jsonl_rows(path: Path, data: bytes, n: int, on_error: str) -> list[dict | UnreadableLine]:
    """The first `n` non-blank lines of a JSONL file as objects (damaged lines raise, or become UnreadableLine)."""
    from .jsonl import DataFileError, decode_line, parse_line

    rows: list[dict | UnreadableLine] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if len(rows) >= n:
            break
        try:
            text = decode_line(path, number, raw)
            if not text.strip():
                continue
            row = parse_line(path, number, text)
            if not isinstance(row, dict):
                kind = type(row).__name__
                raise DataFileError(
                    tr(
                        en=f"{path}:{number} must be a ShareGPT row object, got a JSON {kind}. "
                        "Write one object per line.",
                        ru=f"{path}:{number} должна быть объектом строки ShareGPT, а это JSON {kind}. "
                        "Пишите по одному объекту в строке.",
                    )
                )
        except DataFileError as err:
            if on_error != "skip":
                raise
            rows.append(UnreadableLine(str(err)))
            continue
        rows.append(row)
    return rows


def _json_array_rows(path: Path, data: bytes, n: int) -> list[dict]:
    """The first `n` items of a file holding one JSON array, or a DataFileError naming the file and the fix."""
    import json

    from .jsonl import DataFileError

    try:
        value = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataFileError(
            tr(
                en=f"{path}:{line} is not UTF-8 (byte {data[err.start : err.start + 1]!r}). Save the file as UTF-8.",
                ru=f"{path}:{line} не в UTF-8 (байт {data[err.start : err.start + 1]!r}). Сохраните файл в UTF-8.",
            )
        ) from None
    except json.JSONDecodeError as err:
        where, problem = f"{path}:{err.lineno}:{err.colno}", json_problem(err)
        raise DataFileError(
            tr(
                en=f"{where} is not valid JSON ({problem}). Fix the file, or save it as "
                "JSONL (one row per line) so a damaged row can be skipped.",
                ru=f"{where} — невалидный JSON ({problem}). Исправьте файл или сохраните "
                "его как JSONL (по строке в строке), чтобы повреждённую строку можно было пропустить.",
            )
        ) from None
    except RecursionError:
        raise DataFileError(
            tr(
                en=f"{path} nests too deeply to read. Fix the file.",
                ru=f"{path} вложен слишком глубоко. Исправьте файл.",
            )
        ) from None
    return value[:n]


def load_finetome(
    n: int, path: str | Path | None = None, on_error: str = "skip", progress: bool = True
) -> tuple[list[dict], Conversion]:
    """The first `n` FineTome-100k rows (streamed from the Hub, or from a local JSON/JSONL/Parquet file of the same
    shape) as prompt/completion rows, plus the conversion report; a damaged JSONL line is an error naming file:line
    (on_error='raise') or a skipped row whose reason names it (on_error='skip')."""
    if on_error not in ("raise", "skip"):  # checked before reading anything
        sharegpt_to_messages([], on_error=on_error)
    rows = _local_rows(path, n, on_error) if path is not None else stream_finetome(n, progress)
    conversion = sharegpt_to_messages(rows, on_error=on_error)
    from .train import row_problem as training_problem

    usable = []
    for i, messages in enumerate(conversion.messages):
        try:
            row = to_prompt_completion(messages)
        except MalformedRowsError as err:  # e.g. a chat that opens with the assistant: nothing to prompt with
            conversion.skipped.append((i, str(err)))
            continue
        problem = training_problem(row)  # what SFT would refuse: role markers in text, turns out of order
        if problem:
            conversion.skipped.append((i, problem))
        else:
            usable.append(row)
    return usable, conversion
