"""`python -m lessons_lib.tiny build [--stage base|adapters|all]`: rebuild the tiny model and its adapters."""

from __future__ import annotations

import json
import sys

from ..cli import CourseArgumentParser
from ..manifest import TINY_MODEL_ID
from ..paths import TINY_MODEL_DIR


def stamp_model_id(folder=TINY_MODEL_DIR) -> None:
    """Give the tiny model a portable id in config.json, so adapters name their base the same everywhere."""
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    cfg["course_model_id"] = TINY_MODEL_ID
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = CourseArgumentParser(prog="python -m lessons_lib.tiny", description=__doc__)
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--stage", choices=["base", "adapters", "all"], default="all")
    args = parser.parse_args(argv)
    import torch

    if args.stage in ("base", "all"):
        from .copy_base import build_shipped

        print(json.dumps(build_shipped(TINY_MODEL_DIR, log=lambda m: print(m, flush=True)), indent=2))
        stamp_model_id()
    if args.stage in ("adapters", "all"):
        from .course_adapters import build_all

        torch.set_num_threads(2)
        print(json.dumps(build_all(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
