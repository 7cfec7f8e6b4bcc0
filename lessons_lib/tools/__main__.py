"""`python -m lessons_lib.tools build-adapter [--steps N]`: rebuild the shipped tiny tool-use adapter."""
from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m lessons_lib.tools", description=__doc__)
    parser.add_argument("command", choices=["build-adapter"])
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the shipped recipe)")
    parser.add_argument("--out", default=None, help="output folder (default: assets/adapters/tools)")
    parser.add_argument("--ship", default=None, metavar="FOLDER",
                        help="do not train: score an already trained adapter folder and ship it with a manifest")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch

    from .adapter import STEPS, build_tool_adapter, ship_tool_adapter

    # Two threads (the course's CPU target) unless OMP_NUM_THREADS says fewer, e.g. on a busy shared machine.
    torch.set_num_threads(min(2, int(os.environ.get("OMP_NUM_THREADS") or 2)))
    kwargs = {"steps": args.steps or STEPS}
    if args.out:
        from pathlib import Path

        kwargs["out_dir"] = Path(args.out)
    if args.ship:
        print(json.dumps(ship_tool_adapter(args.ship, **kwargs), indent=2))
    else:
        print(json.dumps(build_tool_adapter(**kwargs), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
