"""Command line: serve, ask, or print the vLLM/LoRAX hand-off.

    python -m lessons_lib.serve --profile tiny --host 127.0.0.1 --port 8000 [--adapters-dir DIR] [--router keyword]
        [--lora-modules json=/path/to/json coding=/path/to/coding ...] [--max-body-bytes 1000000]
    python -m lessons_lib.serve ask "Extract the order as JSON: ..." --adapter auto [--url http://127.0.0.1:8000]
    python -m lessons_lib.serve vllm --profile tiny [--adapters-dir DIR]
"""
from __future__ import annotations

import argparse
import os
import sys


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of bytes (at least 1), got {text!r}")
    return value


def serve_parser() -> argparse.ArgumentParser:
    from .app import DEFAULT_MAX_BODY_BYTES

    parser = argparse.ArgumentParser(prog="python -m lessons_lib.serve",
                                     description="Serve the base model and its LoRA adapters over HTTP "
                                                 "(OpenAI-compatible). Sub-commands: ask, vllm.")
    parser.add_argument("--profile", default=None,
                        help="tiny | t4 | 7b | t4-rehearsal | 7b-rehearsal (default: $LESSONS_PROFILE or automatic)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--adapters-dir", default=None,
                        help="serve every PEFT adapter folder in DIR (a local or Drive store) instead of the course "
                             "adapters of the profile")
    parser.add_argument("--work-dir", default=None, help="where notebook 01 saved the adapters (GPU profiles)")
    parser.add_argument("--lora-modules", nargs="+", default=None, metavar="NAME=PATH",
                        help="serve exactly these adapter folders under these names (as vLLM's --lora-modules)")
    parser.add_argument("--router", default="keyword", help="router for model='auto': keyword | learned | none")
    parser.add_argument("--window-ms", type=float, default=10.0, help="how long the engine gathers a batch")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-body-bytes", type=positive_int, default=DEFAULT_MAX_BODY_BYTES,
                        help=f"refuse request bodies larger than this with 413 (default {DEFAULT_MAX_BODY_BYTES}, "
                             "i.e. 1 MB: far more text than any profile's longest prompt)")
    parser.add_argument("--crash-on", default=None,
                        help="testing aid: make generation raise when a prompt contains this text (shows the 500 path)")
    return parser


def ask_parser() -> argparse.ArgumentParser:
    from .client import DEFAULT_URL

    parser = argparse.ArgumentParser(prog="python -m lessons_lib.serve ask")
    parser.add_argument("prompt")
    parser.add_argument("--adapter", default="auto", help="an adapter name, base, or auto (default)")
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--max-tokens", type=int, default=None)
    return parser


def vllm_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lessons_lib.serve vllm")
    parser.add_argument("--profile", default=None)
    parser.add_argument("--adapters-dir", default=None)
    parser.add_argument("--work-dir", default=None)
    return parser


def crash_hook(marker: str):
    """A fault hook for the engine: raise when any prompt in the batch contains `marker`."""
    def fault(jobs) -> None:
        if any(marker in job.prompt for job in jobs):
            raise RuntimeError(f"injected failure (prompt contains {marker!r})")
    return fault


def serve(args) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from pathlib import Path

    import uvicorn

    from ..profiles import choose_profile
    from .app import create_app
    from .loading import load_served_model, parse_lora_modules

    profile, reason = choose_profile(args.profile)
    print(f"profile {profile.name} ({reason}); loading {profile.model_id} ...", flush=True)
    work_dir = Path(args.work_dir) if args.work_dir else None
    served = load_served_model(profile, args.adapters_dir, work_dir, args.router,
                               lora_modules=parse_lora_modules(args.lora_modules))
    print(f"adapters: {', '.join(served.adapters) or 'none'}; router: {served.router_kind or served.router_error}",
          flush=True)
    app = create_app(served, args.window_ms, args.max_batch, crash_hook(args.crash_on) if args.crash_on else None,
                     max_body_bytes=args.max_body_bytes)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def vllm(args) -> int:
    from pathlib import Path

    from ..profiles import choose_profile
    from .loading import find_adapter_folders
    from .vllm import handoff

    profile, _ = choose_profile(args.profile)
    folders, skipped = find_adapter_folders(profile, args.adapters_dir, Path(args.work_dir) if args.work_dir else None)
    plan = handoff(folders, profile.model_id, args.adapters_dir, profile.max_length + profile.max_new_tokens)
    print("# vLLM\n" + plan["vllm"] + "\n\n# LoRAX\n" + plan["lorax"] + "\n")
    for row in plan["mapping"]:
        print(f"model={row['our model']!r:10} -> vLLM model={row['vllm model']!r}, LoRAX adapter_id={row['lorax adapter_id']!r}")
    for reason in skipped:
        print(f"skipped: {reason}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "ask":
        from .client import main as ask_main

        return ask_main(ask_parser().parse_args(argv[1:]))
    if argv and argv[0] == "vllm":
        return vllm(vllm_parser().parse_args(argv[1:]))
    return serve(serve_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
