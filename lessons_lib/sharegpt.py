"""ShareGPT / FineTome rows (`conversations: [{from, value}]`) to chat messages, and the FineTome loader."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

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
        first = f"; first skipped: row {self.skipped[0][0]} ({self.skipped[0][1]})" if self.skipped else ""
        return f"{len(self.messages)} conversations converted, {len(self.skipped)} skipped{first}"


def row_problem(row) -> str | None:
    """Why a row is not a usable ShareGPT conversation, or None if it is."""
    if not isinstance(row, dict):
        return f"expected a dict, got {type(row).__name__}"
    turns = row.get("conversations")
    if not isinstance(turns, list) or not turns:
        return "no 'conversations' list"
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            return f"turn {i} lacks 'from'/'value'"
        if turn["from"] not in ROLE_MAP:
            return f"turn {i} has unknown role {turn['from']!r} (expected one of {', '.join(ROLE_MAP)})"
        if not isinstance(turn["value"], str) or not turn["value"].strip():
            return f"turn {i} has an empty value"
    if not any(ROLE_MAP[t["from"]] == "assistant" for t in turns):
        return "no assistant ('gpt') turn to learn from"
    return None


def convert_row(row: dict) -> list[dict]:
    """One valid ShareGPT row as chat messages."""
    return [{"role": ROLE_MAP[t["from"]], "content": t["value"]} for t in row["conversations"]]


def sharegpt_to_messages(rows: Iterable[dict], on_error: str = "raise") -> Conversion:
    """Convert rows; malformed ones raise MalformedRowsError (count, first row) or, with on_error='skip', are listed."""
    if on_error not in ("raise", "skip"):
        raise ValueError("on_error must be 'raise' or 'skip'")
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
            f"{len(bad)} malformed row(s); first is row {index}: {problem}. "
            "Fix the data, or pass on_error='skip' to drop them with a report."
        )
    return Conversion(good, bad)


def to_prompt_completion(messages: list[dict]) -> dict:
    """Split a chat at its last assistant turn into TRL's prompt/completion format."""
    answers = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    if not answers:
        raise MalformedRowsError(
            "This chat has no assistant turn to learn from; drop it or add the answer "
            f"(roles seen: {[m.get('role') for m in messages]})."
        )
    if not any(m.get("role") == "user" for m in messages[: answers[-1]]):
        raise MalformedRowsError(
            "This chat has no user turn before its last assistant turn: there is no prompt to answer."
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


def _local_rows(path: str | Path, n: int) -> list[dict]:
    """The first `n` rows of a local JSON/JSONL/Parquet file."""
    from datasets import load_dataset

    kind = "parquet" if Path(path).suffix.lower() == ".parquet" else "json"
    ds = load_dataset(kind, data_files=str(path), split="train")
    return list(ds.select(range(min(n, len(ds)))))


def load_finetome(
    n: int, path: str | Path | None = None, on_error: str = "skip", progress: bool = True
) -> tuple[list[dict], Conversion]:
    """The first `n` FineTome-100k rows (streamed from the Hub, or from a local JSON/JSONL/Parquet file of the same
    shape) as prompt/completion rows, plus the conversion report."""
    rows = _local_rows(path, n) if path is not None else stream_finetome(n, progress)
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
