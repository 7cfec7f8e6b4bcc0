"""Tool-use adapter commands.

`python -m lessons_lib.tools build-adapter [--steps N]` rebuilds the shipped tiny tool-use adapter;
`python -m lessons_lib.tools evaluate [--adapter FOLDER]
[--data heldout|dev|handwritten|dev-handwritten|dev2-handwritten|FILE.jsonl] [--tool-choice auto|required]`
scores base vs adapter on held-out requests and prints the table (`final answer`: the expected result reached the
answer; `uses result`: the answer delivers the result of the call that ran).
`--n N` takes the first N requests of any data source. An option of the other command (`evaluate --steps`,
`build-adapter --adapter` ...) is a usage error.
A missing or unreadable file or folder, a damaged adapter or one made for another base or task, or a bad line in a
data file, ends the command with one `error:` line (naming file:line) and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

USAGE_ERROR = 2  # the exit code argparse also uses for bad arguments
TASK = "tools"  # the manifest domain of a tool-use adapter
COMMAND_OPTIONS = {  # option -> (attribute, the command it belongs to); each is refused with the other command
    "--steps": ("steps", "build-adapter"),
    "--out": ("out", "build-adapter"),
    "--ship": ("ship", "build-adapter"),
    "--adapter": ("adapter", "evaluate"),
    "--data": ("data", "evaluate"),
    "--n": ("n", "evaluate"),
    "--tool-choice": ("tool_choice", "evaluate"),
}
DEFAULT_DATA, DEFAULT_TOOL_CHOICE = "heldout", "auto"


def fail(message: str) -> int:
    """Print one `error:` line to stderr and return the usage-error exit code."""
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR


def os_error_text(err: OSError) -> str:
    """An OSError as one line: our own messages as they are, the system's as 'PATH: reason'."""
    return f"{err.filename}: {err.strerror}" if err.strerror and err.filename else str(err)


def adapter_folder_problem(folder: str | None) -> str | None:
    """Why `folder` is not an adapter folder (None when it is, or when none was given)."""
    if folder is None or (Path(folder) / "adapter_config.json").is_file():
        return None
    return (
        f"no adapter at {folder}: give a folder with adapter_config.json and adapter_model.safetensors "
        "(e.g. one `build-adapter --out FOLDER` wrote)."
    )


def misplaced_option(args: argparse.Namespace) -> str | None:
    """The usage error for the first option given that belongs to the other command, or None."""
    for option, (attribute, command) in COMMAND_OPTIONS.items():
        if getattr(args, attribute) is not None and args.command != command:
            return f"{option} does not apply to {args.command}; it is an option of: {command}"
    return None


def check_counts(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse --steps / --n below 1 (0 used to mean 'the default' silently)."""
    for option, value in (("--steps", args.steps), ("--n", args.n)):
        if value is not None and value < 1:
            parser.error(f"{option} must be at least 1, not {value} (leave it out for the default)")


def task_problem(folder: Path) -> str | None:
    """Why the adapter in `folder` is not a tool-use adapter according to its manifest, or None (no manifest: None)."""
    from ..manifest import MANIFEST_FILE, Manifest

    if not (folder / MANIFEST_FILE).is_file():
        return None
    try:
        domain = Manifest.load(folder).domain
    except (OSError, ValueError, TypeError) as err:
        return f"{folder / MANIFEST_FILE} cannot be read ({err}); re-save the adapter with lessons_lib.storage."
    if domain is not None and domain != TASK:
        return (
            f"the adapter in {folder} was trained for the {domain!r} task (its {MANIFEST_FILE} says domain "
            f"{domain!r}), not for tool use, so it would score about 0: give a tool-use adapter (domain {TASK!r}, "
            "e.g. one `build-adapter --out FOLDER` wrote)."
        )
    return None


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m lessons_lib.tools", description=__doc__)
    parser.add_argument("command", choices=["build-adapter", "evaluate"])
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the shipped recipe)")
    parser.add_argument("--out", default=None, help="output folder (default: assets/adapters/tools)")
    parser.add_argument(
        "--ship",
        default=None,
        metavar="FOLDER",
        help="do not train: score an already trained adapter folder and ship it with a manifest",
    )
    parser.add_argument("--adapter", default=None, help="evaluate: adapter folder (default: the shipped one)")
    parser.add_argument(
        "--data",
        default=None,
        help="evaluate: heldout (default), dev (template splits), handwritten (held-out), dev-handwritten (the "
        "hand-written requests recipes are chosen on), dev2-handwritten (a fresher second dev set), or a JSONL file "
        "of requests",
    )
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help="evaluate: how many requests (a template split: drawn; a hand-written set or file: the first N)",
    )
    parser.add_argument(
        "--tool-choice",
        default=None,
        choices=["auto", "required"],
        help="evaluate: 'required' constrains the call to the tools' schemas (structured generation); default auto",
    )
    parser.add_argument(
        "--quote",
        action="store_true",
        help="evaluate, with --tool-choice required: free-text arguments must be whole phrases of the request, "
        "and final answers must repeat the tool's result exactly",
    )
    args = parser.parse_args(argv)
    if args.quote and (args.command != "evaluate" or args.tool_choice != "required"):
        parser.error("--quote constrains the evaluated calls; use it with: evaluate --tool-choice required")
    misplaced = misplaced_option(args)
    if misplaced:
        parser.error(misplaced)
    check_counts(parser, args)
    args.data = args.data or DEFAULT_DATA
    args.tool_choice = args.tool_choice or DEFAULT_TOOL_CHOICE
    problem = adapter_folder_problem(args.adapter if args.command == "evaluate" else args.ship)
    if problem:
        return fail(problem)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch

    from ..env import cpu_threads
    from .adapter import STEPS, build_tool_adapter, ship_tool_adapter

    # Two threads (the course's CPU target) unless OMP_NUM_THREADS says fewer, e.g. on a busy shared machine.
    torch.set_num_threads(min(2, cpu_threads()))
    if args.command == "evaluate":
        return evaluate_cli(args.adapter, args.data, args.n, args.tool_choice, args.quote)
    kwargs = {"steps": args.steps or STEPS}
    if args.out:
        kwargs["out_dir"] = Path(args.out)
    if args.ship:
        print(json.dumps(ship_tool_adapter(args.ship, **kwargs), indent=2))
    else:
        print(json.dumps(build_tool_adapter(**kwargs), indent=2))
    return 0


def requests_for(data: str, n: int | None) -> list:
    """The requests `--data` names: a template split, a hand-written set, or a JSONL file of requests."""
    from .adapter import EVAL_N
    from .data import HANDWRITTEN_SETS, SPLITS, read_handwritten, tool_examples

    if data in SPLITS:
        return tool_examples(n or EVAL_N, data)
    examples = read_handwritten(HANDWRITTEN_SETS.get(data, data))
    return examples if n is None else examples[:n]


def evaluate_cli(adapter: str | None, data: str, n: int | None, tool_choice: str = "auto", quote: bool = False) -> int:
    """Print base vs adapter rates on the chosen requests (a bad data file: one error line, exit code 2)."""
    try:  # before importing peft, whose import may print warnings
        examples = requests_for(data, n)
    except OSError as err:
        return fail(os_error_text(err))
    except ValueError as err:  # DataFileError and bad rows: the message names file:line
        return fail(str(err))
    from ..compat import AdapterCompatError, load_adapter_checked
    from ..evaluate import format_table
    from ..models import load_base, load_tokenizer
    from ..paths import TINY_ADAPTERS_DIR
    from ..profiles import PROFILES
    from .adapter import ADAPTER_NAME
    from .evaluate import evaluate_tools

    profile = PROFILES["tiny"]
    folder = Path(adapter) if adapter else TINY_ADAPTERS_DIR / ADAPTER_NAME
    problem = task_problem(folder)
    if problem:
        return fail(problem)
    try:  # damaged files, another base, wrong shapes: one line, and the model is never half-loaded
        model, _ = load_adapter_checked(load_base(profile), folder, ADAPTER_NAME)
    except AdapterCompatError as err:
        return fail(" ".join(str(err).split()))
    except OSError as err:
        return fail(os_error_text(err))
    reports, _ = evaluate_tools(
        model,
        load_tokenizer(profile),
        ["__base__", ADAPTER_NAME],
        examples=examples,
        tool_choice=tool_choice,
        quote=quote,
    )
    print(
        f"{data}: {len(examples)} requests, adapter {folder}, tool_choice={tool_choice}" + (", quote" if quote else "")
    )
    print(format_table([r.row() for r in reports]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
