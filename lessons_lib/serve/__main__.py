"""Command line: serve, ask, or print the vLLM/LoRAX hand-off.

    python -m lessons_lib.serve --profile tiny --host 127.0.0.1 --port 8000 [--adapters-dir DIR] [--router keyword]
        [--lora-modules json=/path/to/json coding=/path/to/coding ...] [--max-body-bytes 1000000]
    python -m lessons_lib.serve --config assets/compositions/course.toml [--port 8001]
    python -m lessons_lib.serve ask "Extract the order as JSON: ..." --adapter auto [--url http://127.0.0.1:8000]
    python -m lessons_lib.serve vllm --profile tiny [--adapters-dir DIR] | --config FILE

`--config FILE` serves exactly what a composition file declares (see composition.py); --host, --port,
--max-batch, --window-ms and --max-body-bytes given on the command line override its [server] table, and the
options that choose what is served (--profile, --adapters-dir, --work-dir, --lora-modules, --router) are refused
next to it.
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
    from .protocol import DEFAULT_MAX_BODY_BYTES

    parser = argparse.ArgumentParser(
        prog="python -m lessons_lib.serve",
        description="Serve the base model and its LoRA adapters over HTTP "
        "(OpenAI-compatible). Sub-commands: ask, vllm.",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="a composition file (TOML: base, adapters with weight and precision, named mixes, "
        "router, server); e.g. assets/compositions/course.toml",
    )
    parser.add_argument(
        "--profile",
        default=None,
        help="tiny | t4 | 7b | t4-rehearsal | 7b-rehearsal (default: $LESSONS_PROFILE or automatic)",
    )
    parser.add_argument("--host", default=None, help="default 127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default 8000")
    parser.add_argument(
        "--adapters-dir",
        default=None,
        help="serve every PEFT adapter folder in DIR (a local or Drive store) instead of the course "
        "adapters of the profile",
    )
    parser.add_argument("--work-dir", default=None, help="where notebook 01 saved the adapters (GPU profiles)")
    parser.add_argument(
        "--lora-modules",
        nargs="+",
        default=None,
        metavar="NAME=PATH",
        help="serve exactly these adapter folders under these names (as vLLM's --lora-modules)",
    )
    parser.add_argument(
        "--router",
        default=None,
        help="router for model='auto': ngram (default) | keyword | learned | embedding | none; a request with "
        "tools goes to the tools adapter (a 400 when it is not served)",
    )
    parser.add_argument(
        "--window-ms", type=float, default=None, help="how long the engine gathers a batch (default 10)"
    )
    parser.add_argument("--max-batch", type=int, default=None, help="default 32")
    parser.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=None,
        help=f"refuse request bodies larger than this with 413 (default {DEFAULT_MAX_BODY_BYTES}, "
        "i.e. 1 MB: far more text than any profile's longest prompt)",
    )
    parser.add_argument(
        "--lora-path",
        choices=("batched", "peft"),
        default="batched",
        help="how mixed-adapter batches run: batched (stacked LoRA matrices, one gather + two batched "
        "matmuls per layer; used when it covers every adapter, else PEFT) or peft (PEFT's "
        "adapter_names); /health's engine.lora_path says which ran",
    )
    parser.add_argument(
        "--crash-on",
        default=None,
        help="testing aid: make generation raise when a prompt contains this text (shows the 500 path)",
    )
    return parser


def ask_parser() -> argparse.ArgumentParser:
    from .client import DEFAULT_URL

    parser = argparse.ArgumentParser(prog="python -m lessons_lib.serve ask")
    parser.add_argument("prompt")
    parser.add_argument("--adapter", default="auto", help="an adapter name, base, or auto (default)")
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--stream", action="store_true", help="print the answer as it is generated (SSE)")
    return parser


def vllm_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lessons_lib.serve vllm",
        description="Print the vLLM and LoRAX commands that serve the same adapters, "
        "leaving out (with the reason) those vLLM cannot load.",
    )
    parser.add_argument("--config", default=None, metavar="FILE", help="the adapters of a composition file")
    parser.add_argument("--profile", default=None)
    parser.add_argument("--adapters-dir", default=None)
    parser.add_argument("--work-dir", default=None)
    return parser


# Options that choose what is served: a composition file says that itself.
CHOOSING_OPTIONS = ("profile", "adapters_dir", "work_dir", "lora_modules", "router")


def refuse_with_config(args, parser: argparse.ArgumentParser) -> None:
    """Exit with a usage error if an option that chooses what is served was given next to --config."""
    given = [f"--{name.replace('_', '-')}" for name in CHOOSING_OPTIONS if getattr(args, name, None) is not None]
    if args.config and given:
        parser.error(
            f"{', '.join(given)} cannot be combined with --config: the composition file decides what is "
            "served. Edit the file (or drop --config)."
        )


def crash_hook(marker: str):
    """A fault hook for the engine: raise when any prompt in the batch contains `marker`."""

    def fault(jobs) -> None:
        if any(marker in job.prompt for job in jobs):
            raise RuntimeError(f"injected failure (prompt contains {marker!r})")

    return fault


def server_settings(args, composition=None):
    """Host, port, max_batch, window_ms, max_body_bytes: the command line's, else the file's, else the defaults."""
    from dataclasses import replace

    from .composition import ServerSettings
    from .protocol import DEFAULT_MAX_BODY_BYTES

    settings = composition.server if composition is not None else ServerSettings()
    for name in ("host", "port", "max_batch", "window_ms", "max_body_bytes"):
        value = getattr(args, name)
        if value is not None:
            if composition is not None and value != getattr(settings, name):
                print(
                    f"{name} {value} (from --{name.replace('_', '-')}; the file says {getattr(settings, name)})",
                    flush=True,
                )
            settings = replace(settings, **{name: value})
    return settings if settings.max_body_bytes else replace(settings, max_body_bytes=DEFAULT_MAX_BODY_BYTES)


def load_served(args, composition=None):
    """The served model: the composition file's (already read and checked), else what the command line asks for."""
    from pathlib import Path

    from ..profiles import choose_profile
    from .loading import DEFAULT_ROUTER, load_served_model, parse_lora_modules

    if composition is not None:
        from .composition import load_composed

        print(
            f"composition {composition.path}: profile {composition.profile.name}; loading "
            f"{composition.profile.model_id} ...",
            flush=True,
        )
        return load_composed(composition)
    profile, reason = choose_profile(args.profile)
    print(f"profile {profile.name} ({reason}); loading {profile.model_id} ...", flush=True)
    work_dir = Path(args.work_dir) if args.work_dir else None
    return load_served_model(
        profile,
        args.adapters_dir,
        work_dir,
        args.router or DEFAULT_ROUTER,
        lora_modules=parse_lora_modules(args.lora_modules),
    )


def serve(args) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from .composition import CompositionError, load_composition

    # the file is read and checked before torch, transformers and PEFT are imported: a mistake costs no wait
    try:
        composition = load_composition(args.config) if args.config else None
        import uvicorn

        from .app import create_app

        served = load_served(args, composition)
    except CompositionError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    settings = server_settings(args, composition)
    mixes = getattr(served, "mixes", {})
    print(
        f"adapters: {', '.join(served.adapters) or 'none'}; router: {served.router_kind or served.router_error}"
        + (f"; mixes: {', '.join(mixes)}" if mixes else ""),
        flush=True,
    )
    app = create_app(
        served,
        settings.window_ms,
        settings.max_batch,
        crash_hook(args.crash_on) if args.crash_on else None,
        max_body_bytes=settings.max_body_bytes,
        batched_lora=args.lora_path == "batched",
    )
    print(f"mixed batches: {app.state.server.engine.stats['lora_path']}", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return 0


def exit_now(code: int) -> None:
    """Exit without the interpreter's teardown of torch, PEFT and bitsandbytes (about 1.5 s on 2 CPUs).

    Used when the command returned (a server only after a clean shutdown: uvicorn has closed every connection and
    the engine's worker has stopped); the exit handlers run here, only the slow freeing of modules is skipped.
    """
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def vllm(args) -> int:
    """Print the vLLM/LoRAX hand-off; damaged adapters (or ones built for another base) are left out, with why."""
    from .composition import CompositionError
    from .vllm import handoff_report, split_damaged

    try:
        profile, folders, skipped, notes, server = hand_off_source(args)
    except (CompositionError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not folders:
        where = args.adapters_dir or args.work_dir or "the profile's work dir"
        first = f" The first of {len(skipped)}: {skipped[0]}" if skipped else ""
        print(
            f"error: no adapters of profile {profile.name} found in {where}. Train and save them first "
            f"(notebook 01), or pass --adapters-dir DIR / --config FILE.{first}",
            file=sys.stderr,
        )
        return 2
    sound, damaged = split_damaged(folders, profile.model_id)
    if not sound:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in damaged.items())
        print(f"error: every adapter is damaged or built for another base ({reasons}).", file=sys.stderr)
        return 2
    print(
        handoff_report(
            sound,
            profile.model_id,
            args.adapters_dir,
            profile.max_length + profile.max_new_tokens,
            skipped=skipped,
            notes=notes,
            damaged=damaged,
            **server,
        )
    )
    return 0


def hand_off_source(args) -> tuple:
    """(profile, adapter folders, skipped, notes, vLLM server options) from --config FILE, else from the profile."""
    from pathlib import Path

    from ..profiles import choose_profile
    from .composition import ServerSettings, adapter_folder, load_composition
    from .loading import find_adapter_folders
    from .vllm import composition_notes

    if not args.config:
        profile, _ = choose_profile(args.profile)
        work_dir = Path(args.work_dir) if args.work_dir else None
        folders, skipped = find_adapter_folders(profile, args.adapters_dir, work_dir)
        return profile, folders, skipped, [], {}
    composition = load_composition(args.config)
    folders = {name: adapter_folder(spec) for name, spec in composition.adapters.items()}
    server = {"port": composition.server.port}
    if composition.server.host != ServerSettings().host:
        server["host"] = composition.server.host
    return composition.profile, folders, [], composition_notes(composition), server


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "ask":
        from .client import main as ask_main

        return ask_main(ask_parser().parse_args(argv[1:]))
    if argv and argv[0] == "vllm":
        parser = vllm_parser()
        args = parser.parse_args(argv[1:])
        refuse_with_config(args, parser)
        return vllm(args)
    parser = serve_parser()
    args = parser.parse_args(argv)
    refuse_with_config(args, parser)
    return serve(args)


if __name__ == "__main__":
    exit_now(main())
