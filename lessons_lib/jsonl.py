"""Reading course data files: one JSON object per line, with errors that name the file and line."""
from __future__ import annotations

import json
from pathlib import Path


def read_objects(path: str | Path, shape: str) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line; `shape` describes a line in the errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No data file at {path}. Give a JSONL file with one {shape} object per line.")
    objects = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number} is not valid JSON ({err.msg}).") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number} must be a {shape} object.")
        objects.append((number, row))
    if not objects:
        raise ValueError(f"{path} has no rows.")
    return objects
