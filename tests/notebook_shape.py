"""Reading built notebooks in tests: cells as text, and the course's section order (EN and RU editions)."""

from __future__ import annotations

import json
import re
from pathlib import Path


def load(path: Path) -> dict:
    """A notebook file as JSON."""
    return json.loads(path.read_text(encoding="utf-8"))


def text(cell) -> str:
    """A cell's source as one string."""
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def assert_lesson_sections(markdown: list[str], lesson: str, headings: list[str], heading_end: str = r"\b") -> None:
    """Title cell `# NN — ...` right after the badge, then every heading present, in the given order."""
    assert re.match(rf"# {lesson} — ", markdown[1]), "title cell `# NN — Title` comes right after the badge"
    positions = []
    for heading in headings:
        found = [i for i, md in enumerate(markdown) if re.search(rf"^{re.escape(heading)}{heading_end}", md, re.M)]
        assert found, f"missing section {heading!r}"
        positions.append(found[0])
    assert positions == sorted(positions), f"sections must come in the order {', '.join(headings)}"
