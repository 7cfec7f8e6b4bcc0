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

A bad option is one `error:` line on stderr and exit code 2, found before the model loads where it can be (the
profile, the adapter folders, whether the port is free); a --router or --lora-modules adapter named on the command
line that cannot be loaded stops the start too, as in vLLM (a damaged adapter found in a folder is left out with a
warning). `ask` prints the answer on stdout and errors on stderr (exit 2 for a usage error, 1 when the server cannot
answer); Ctrl-C ends any command quietly with exit code 130.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from ..cli import CourseArgumentParser, check_language, error_line, whole_number
from ..i18n import tr
from ..profiles import PROFILES
from ..router import KINDS as ROUTER_KINDS

ROUTER_CHOICES = (*ROUTER_KINDS, "none")
PROFILE_HELP = "default: $LESSONS_PROFILE, else tiny on CPU and t4 on a GPU"
PROFILE_HELP_RU = "по умолчанию: $LESSONS_PROFILE, иначе tiny на CPU и t4 на GPU"
SUB_COMMANDS = """sub-commands:
  python -m lessons_lib.serve ask PROMPT [--adapter NAME|auto] [--url URL] [--stream]
                                   ask a running server (see `ask --help`)
  python -m lessons_lib.serve vllm [--profile P] [--adapters-dir DIR] | --config FILE
                                   print the vLLM/LoRAX commands for the same adapters"""
SUB_COMMANDS_RU = """подкоманды:
  python -m lessons_lib.serve ask PROMPT [--adapter NAME|auto] [--url URL] [--stream]
                                   спросить работающий сервер (см. `ask --help`)
  python -m lessons_lib.serve vllm [--profile P] [--adapters-dir DIR] | --config FILE
                                   напечатать команды vLLM/LoRAX для тех же адаптеров"""


def positive_int(text: str) -> int:
    """argparse type: a whole number of bytes of at least 1."""
    return whole_number(text, 1, 1 << 40, tr(en="a number of bytes", ru="число байт"))


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1 to 65535."""
    return whole_number(text, 1, 65535, tr(en="a TCP port", ru="номер TCP-порта"))


def batch_size(text: str) -> int:
    """argparse type: the most requests in one batch, 1 to 4096 (as the composition file's server.max_batch)."""
    return whole_number(text, 1, 4096, tr(en="a batch size", ru="размер батча"))


def window_ms(text: str) -> float:
    """argparse type: milliseconds the engine gathers a batch, 0 to 10000 (as the file's server.window_ms)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 10_000:  # also refuses nan
        raise argparse.ArgumentTypeError(
            tr(
                en=f"expected milliseconds from 0 to 10000 (0: no waiting for more requests), got {text!r}",
                ru=f"нужно число миллисекунд от 0 до 10000 (0 — не ждать других запросов), а получено {text!r}",
            )
        )
    return value


def profile_help() -> str:
    """The help of --profile, shared by `serve` and `vllm`."""
    return tr(en=PROFILE_HELP, ru=PROFILE_HELP_RU)


def work_dir_help() -> str:
    """The help of --work-dir, shared by `serve` and `vllm`."""
    return tr(
        en="where notebook 01 saved the adapters (GPU profiles)",
        ru="куда ноутбук 01 сохранил адаптеры (профили для GPU)",
    )


def serve_parser() -> argparse.ArgumentParser:
    from .protocol import DEFAULT_MAX_BODY_BYTES

    parser = CourseArgumentParser(
        prog="python -m lessons_lib.serve",
        description=tr(
            en="Serve the base model and its LoRA adapters over HTTP (OpenAI-compatible; the web page is at /).",
            ru="Запустить сервер базовой модели и её адаптеров LoRA по HTTP (совместимый с OpenAI; веб-страница — "
            "по адресу /).",
        ),
        epilog=tr(en=SUB_COMMANDS, ru=SUB_COMMANDS_RU),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help=tr(
            en="a composition file (TOML: base, adapters with weight and precision, named mixes, "
            "router, server); e.g. assets/compositions/course.toml",
            ru="файл композиции (TOML: базовая модель, адаптеры с весом и точностью, именованные смеси, "
            "маршрутизатор, сервер); например, assets/compositions/course.toml",
        ),
    )
    parser.add_argument("--profile", default=None, choices=tuple(PROFILES), help=profile_help())
    parser.add_argument(
        "--host",
        default=None,
        help=tr(
            en="address to listen on (default 127.0.0.1: this machine only)",
            ru="адрес, который слушает сервер (по умолчанию 127.0.0.1: только эта машина)",
        ),
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=None,
        help=tr(en="TCP port, 1 to 65535 (default 8000)", ru="TCP-порт, от 1 до 65535 (по умолчанию 8000)"),
    )
    parser.add_argument(
        "--adapters-dir",
        default=None,
        metavar="DIR",
        help=tr(
            en="serve every PEFT adapter folder in DIR (a local or Drive store) instead of the course "
            "adapters of the profile",
            ru="обслуживать все папки адаптеров PEFT из DIR (локальное хранилище или хранилище на Google Диске) "
            "вместо адаптеров курса для профиля",
        ),
    )
    parser.add_argument("--work-dir", default=None, metavar="DIR", help=work_dir_help())
    parser.add_argument(
        "--lora-modules",
        nargs="+",
        default=None,
        metavar="NAME=PATH",
        help=tr(
            en="serve exactly these adapter folders under these names (as vLLM's --lora-modules); a folder "
            "that does not hold a loadable adapter stops the server",
            ru="обслуживать ровно эти папки адаптеров под этими именами (как --lora-modules в vLLM); папка без "
            "загружаемого адаптера останавливает запуск сервера",
        ),
    )
    parser.add_argument(
        "--router",
        default=None,
        choices=ROUTER_CHOICES,
        help=tr(
            en="router for model='auto' (default ngram; none: no auto); a request with tools goes to the tools "
            "adapter (a 400 when it is not served)",
            ru="маршрутизатор для model='auto' (по умолчанию ngram; none: без auto); запрос с инструментами идёт "
            "к адаптеру tools (ошибка 400, если сервер его не обслуживает)",
        ),
    )
    parser.add_argument(
        "--window-ms",
        type=window_ms,
        default=None,
        help=tr(
            en="milliseconds the engine waits to gather a batch, 0 to 10000 (default 10)",
            ru="сколько миллисекунд движок ждёт, собирая батч, от 0 до 10000 (по умолчанию 10)",
        ),
    )
    parser.add_argument(
        "--max-batch",
        type=batch_size,
        default=None,
        help=tr(
            en="most requests in one batch, 1 to 4096 (default 32)",
            ru="наибольшее число запросов в одном батче, от 1 до 4096 (по умолчанию 32)",
        ),
    )
    parser.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=None,
        help=tr(
            en=f"refuse request bodies larger than this with 413 (default {DEFAULT_MAX_BODY_BYTES}, "
            "i.e. 1 MB: far more text than any profile's longest prompt)",
            ru=f"отклонять тела запросов больше этого размера с кодом 413 (по умолчанию {DEFAULT_MAX_BODY_BYTES}, "
            "то есть 1 МБ: намного больше текста, чем самый длинный промпт любого профиля)",
        ),
    )
    parser.add_argument(
        "--lora-path",
        choices=("batched", "peft"),
        default="batched",
        help=tr(
            en="how mixed-adapter batches run: batched (stacked LoRA matrices, one gather + two batched "
            "matmuls per layer; used when it covers every adapter, else PEFT) or peft (PEFT's "
            "adapter_names); /health's engine.lora_path says which ran",
            ru="как выполняются смешанные батчи: batched (матрицы LoRA, сложенные в стопку, на каждый слой один "
            "gather и два батчевых matmul; используется, если охватывает все адаптеры, иначе PEFT) или peft "
            "(adapter_names из PEFT); какой путь сработал, показывает engine.lora_path в /health",
        ),
    )
    parser.add_argument(
        "--crash-on",
        default=None,
        help=tr(
            en="testing aid: make generation raise when a prompt contains this text (shows the 500 path)",
            ru="для тестов: генерация падает с исключением, если промпт содержит этот текст (показывает путь "
            "ошибки 500)",
        ),
    )
    return parser


def ask_parser() -> argparse.ArgumentParser:
    from .client import DEFAULT_URL, max_tokens, prompt_text, server_url

    parser = CourseArgumentParser(
        prog="python -m lessons_lib.serve ask",
        description=tr(
            en="Send one prompt to a running server and print the answer (stdout), then which adapter "
            "answered. Errors go to stderr: exit code 2 for a usage error, 1 when the server cannot answer.",
            ru="Отправить один промпт работающему серверу и напечатать ответ (stdout), а затем — какой адаптер "
            "ответил. Ошибки выводятся в stderr: код выхода 2 — ошибка в аргументах, 1 — сервер не может ответить.",
        ),
    )
    parser.add_argument(
        "prompt", type=prompt_text, help=tr(en="the user message (not empty)", ru="сообщение пользователя (не пустое)")
    )
    parser.add_argument(
        "--adapter",
        default="auto",
        help=tr(
            en="an adapter name, a mix, base, or auto (default)",
            ru="имя адаптера, смесь, base или auto (по умолчанию)",
        ),
    )
    parser.add_argument(
        "--url",
        type=server_url,
        default=DEFAULT_URL,
        help=tr(
            en=f"the server's address (default {DEFAULT_URL}, or $LESSONS_SERVER_URL); an OpenAI base_url "
            "ending in /v1 works too",
            ru=f"адрес сервера (по умолчанию {DEFAULT_URL} или $LESSONS_SERVER_URL); подойдёт и base_url "
            "для OpenAI, оканчивающийся на /v1",
        ),
    )
    parser.add_argument(
        "--max-tokens",
        type=max_tokens,
        default=None,
        help=tr(
            en="most tokens to generate, at least 1 (default: the server's, i.e. the profile's)",
            ru="наибольшее число генерируемых токенов, не меньше 1 (по умолчанию — как на сервере, то есть как "
            "в профиле)",
        ),
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help=tr(en="print the answer as it is generated (SSE)", ru="печатать ответ по мере генерации (SSE)"),
    )
    return parser


def vllm_parser() -> argparse.ArgumentParser:
    parser = CourseArgumentParser(
        prog="python -m lessons_lib.serve vllm",
        description=tr(
            en="Print the vLLM and LoRAX commands that serve the same adapters, "
            "leaving out (with the reason) those vLLM cannot load.",
            ru="Напечатать команды vLLM и LoRAX, которые обслуживают те же адаптеры; адаптеры, которые vLLM "
            "не может загрузить, пропускаются (с указанием причины).",
        ),
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help=tr(en="the adapters of a composition file", ru="адаптеры из файла композиции"),
    )
    parser.add_argument("--profile", default=None, choices=tuple(PROFILES), help=profile_help())
    parser.add_argument(
        "--adapters-dir",
        default=None,
        metavar="DIR",
        help=tr(
            en="every PEFT adapter folder in DIR (a local or Drive store)",
            ru="все папки адаптеров PEFT из DIR (локальное хранилище или хранилище на Google Диске)",
        ),
    )
    parser.add_argument("--work-dir", default=None, metavar="DIR", help=work_dir_help())
    return parser


# Options that choose what is served: a composition file says that itself.
CHOOSING_OPTIONS = ("profile", "adapters_dir", "work_dir", "lora_modules", "router")


def refuse_with_config(args, parser: argparse.ArgumentParser) -> None:
    """Exit with a usage error if an option that chooses what is served was given next to --config."""
    given = [f"--{name.replace('_', '-')}" for name in CHOOSING_OPTIONS if getattr(args, name, None) is not None]
    if args.config and given:
        options = ", ".join(given)
        parser.error(
            tr(
                en=f"{options} cannot be combined with --config: the composition file decides what is "
                "served. Edit the file (or drop --config).",
                ru=f"{options} нельзя указывать вместе с --config: что обслуживает сервер, решает файл композиции. "
                "Измените файл (или уберите --config).",
            )
        )


def crash_hook(marker: str):
    """A fault hook for the engine: raise when any prompt in the batch contains `marker`."""

    def fault(jobs) -> None:
        if any(marker in job.prompt for job in jobs):
            raise RuntimeError(
                tr(
                    en=f"injected failure (prompt contains {marker!r})",
                    ru=f"искусственный сбой (промпт содержит {marker!r})",
                )
            )

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
                option, in_file = f"--{name.replace('_', '-')}", getattr(settings, name)
                print(
                    tr(
                        en=f"{name} {value} (from {option}; the file says {in_file})",
                        ru=f"{name} {value} (из {option}; в файле {in_file})",
                    ),
                    flush=True,
                )
            settings = replace(settings, **{name: value})
    return settings if settings.max_body_bytes else replace(settings, max_body_bytes=DEFAULT_MAX_BODY_BYTES)


class UsageError(ValueError):
    """A command-line value that cannot be honoured: one `error:` line and exit code 2."""


def check_choices(args) -> None:
    """Check the profile and the adapter folders the command line names, before anything loads (UsageError)."""
    from pathlib import Path

    from ..profiles import choose_profile
    from .loading import find_adapter_folders, parse_lora_modules

    try:
        profile, _ = choose_profile(args.profile, asked_in="--profile")
        modules = parse_lora_modules(args.lora_modules)
    except ValueError as err:
        raise UsageError(str(err)) from err
    if args.work_dir and not Path(args.work_dir).is_dir():
        raise UsageError(
            tr(
                en=f"--work-dir {args.work_dir} is not a folder. Pass the folder notebook 01 saved the adapters "
                "in, or leave --work-dir out.",
                ru=f"--work-dir {args.work_dir} — не папка. Укажите папку, куда ноутбук 01 сохранил адаптеры, "
                "или уберите --work-dir.",
            )
        )
    if modules and args.adapters_dir:
        raise UsageError(
            tr(
                en="--lora-modules and --adapters-dir both choose the adapters to serve: pass one of them.",
                ru="--lora-modules и --adapters-dir оба выбирают адаптеры для сервера: укажите что-то одно.",
            )
        )
    if modules or args.adapters_dir:
        try:
            found, skipped = find_adapter_folders(profile, args.adapters_dir, None, modules)
        except FileNotFoundError as err:
            raise UsageError(str(err)) from err
        check_named_folders(args, found, skipped)


def check_named_folders(args, found: dict, skipped: list[str]) -> None:
    """Every --lora-modules folder must hold an adapter (ServeOptionError), an --adapters-dir one (UsageError)."""
    from .loading import refuse_named

    refuse_named(args.lora_modules, skipped)
    if args.adapters_dir and not found:
        first = f" ({skipped[0]})" if skipped else ""
        raise UsageError(
            tr(
                en=f"--adapters-dir {args.adapters_dir} holds no adapter folder{first}. Point it at a folder with "
                "one sub-folder per adapter (adapter_config.json + adapter_model.safetensors).",
                ru=f"в --adapters-dir {args.adapters_dir} нет ни одной папки адаптера{first}. Укажите папку, где "
                "у каждого адаптера своя подпапка (adapter_config.json + adapter_model.safetensors).",
            )
        )


def check_port_free(host: str, port: int) -> None:
    """Bind host:port once (as uvicorn will) so that a busy port is said before the model loads (UsageError)."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a closed server's port is free
            sock.bind((host, port))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise UsageError(
                tr(
                    en=f"port {port} on {host} is already in use (is a server already running there?). Stop it, "
                    f"or pass another port, e.g. --port {port % 65535 + 1}.",
                    ru=f"порт {port} на {host} уже занят (там уже работает сервер?). Остановите его или укажите "
                    f"другой порт, например --port {port % 65535 + 1}.",
                )
            ) from err
        raise UsageError(
            tr(
                en=f"cannot listen on {host}:{port} ({err.strerror or err}). Pass another --host or --port "
                "(ports below 1024 need root).",
                ru=f"нельзя слушать {host}:{port} ({err.strerror or err}). Укажите другой --host или --port "
                "(порты ниже 1024 требуют root).",
            )
        ) from err


def load_served(args, composition=None):
    """The served model: the composition file's (already read and checked), else what the command line asks for."""
    from pathlib import Path

    from ..profiles import choose_profile, reason_text
    from .loading import DEFAULT_ROUTER, load_served_model, parse_lora_modules

    if composition is not None:
        from .composition import load_composed

        path, profile = composition.path, composition.profile
        print(
            tr(
                en=f"composition {path}: profile {profile.name}; loading {profile.model_id} ...",
                ru=f"композиция {path}: профиль {profile.name}; загружается {profile.model_id} ...",
            ),
            flush=True,
        )
        return load_composed(composition)
    profile, reason = choose_profile(args.profile, asked_in="--profile")
    reason = reason_text(reason)
    print(
        tr(
            en=f"profile {profile.name} ({reason}); loading {profile.model_id} ...",
            ru=f"профиль {profile.name} ({reason}); загружается {profile.model_id} ...",
        ),
        flush=True,
    )
    work_dir = Path(args.work_dir) if args.work_dir else None
    return load_served_model(
        profile,
        args.adapters_dir,
        work_dir,
        args.router or DEFAULT_ROUTER,
        lora_modules=parse_lora_modules(args.lora_modules),
        require_router=args.router is not None,
    )


def prepare(args):
    """(composition or None, server settings): everything checked that can be checked before the model loads."""
    from .composition import load_composition

    # the file is read and checked before torch, transformers and PEFT are imported: a mistake costs no wait
    composition = load_composition(args.config) if args.config else None
    if composition is None:
        check_choices(args)
    settings = server_settings(args, composition)
    check_port_free(settings.host, settings.port)
    return composition, settings


def serve(args) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from ..lesson import quiet_library_notices
    from .composition import CompositionError
    from .loading import ServeOptionError

    try:
        composition, settings = prepare(args)
        import uvicorn

        from ..models import freeze_imports
        from .app import create_app

        quiet_library_notices()  # the log says what loaded, without the libraries' notices
        freeze_imports()  # before the model loads: the server's full garbage collections skip the libraries
        served = load_served(args, composition)
    except (CompositionError, UsageError, ServeOptionError) as err:
        print(error_line(str(err)), file=sys.stderr, flush=True)
        return 2
    print(served_line(served), flush=True)
    app = create_app(
        served,
        settings.window_ms,
        settings.max_batch,
        crash_hook(args.crash_on) if args.crash_on else None,
        max_body_bytes=settings.max_body_bytes,
        batched_lora=args.lora_path == "batched",
    )
    lora_path = app.state.server.engine.stats["lora_path"]
    print(tr(en=f"mixed batches: {lora_path}", ru=f"смешанные батчи: {lora_path}"), flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return 0


def served_line(served) -> str:
    """The line that says what the server serves: adapters, router and mixes."""
    adapters = ", ".join(served.adapters) or tr(en="none", ru="нет")
    router = served.router_kind or served.router_error
    mixes = ", ".join(getattr(served, "mixes", {}))
    if mixes:
        return tr(
            en=f"adapters: {adapters}; router: {router}; mixes: {mixes}",
            ru=f"адаптеры: {adapters}; маршрутизатор: {router}; смеси: {mixes}",
        )
    return tr(en=f"adapters: {adapters}; router: {router}", ru=f"адаптеры: {adapters}; маршрутизатор: {router}")


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
    except (CompositionError, FileNotFoundError, ValueError) as err:  # ValueError: e.g. a bad $LESSONS_PROFILE
        print(error_line(str(err)), file=sys.stderr)
        return 2
    if not folders:
        where = args.config or args.adapters_dir or args.work_dir
        print(error_line(no_adapters_text(profile.name, where, skipped)), file=sys.stderr)
        return 2
    sound, damaged = split_damaged(folders, profile.model_id)
    if not sound:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in damaged.items())
        print(
            error_line(
                tr(
                    en=f"every adapter is damaged or built for another base ({reasons}).",
                    ru=f"все адаптеры повреждены или сделаны для другой базовой модели ({reasons}).",
                )
            ),
            file=sys.stderr,
        )
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


def no_adapters_text(profile: str, where: str | None, skipped: list[str]) -> str:
    """The error for a `vllm` hand-off that found no adapters of `profile` in `where` (None: the profile's work dir)."""
    where = where or tr(en="the profile's work dir", ru="рабочей папке профиля")
    first = ""
    if skipped:
        first = tr(
            en=f" The first of {len(skipped)}: {skipped[0]}",
            ru=f" Первая из пропущенных папок ({len(skipped)}): {skipped[0]}",
        )
    return tr(
        en=f"no adapters of profile {profile} found in {where}. Train and save them first (notebook 01), or pass "
        f"--adapters-dir DIR / --config FILE.{first}",
        ru=f"адаптеры профиля {profile} не найдены в {where}. Сначала обучите и сохраните их (ноутбук 01) или "
        f"укажите --adapters-dir DIR / --config FILE.{first}",
    )


def hand_off_source(args) -> tuple:
    """(profile, adapter folders, skipped, notes, vLLM server options) from --config FILE, else from the profile."""
    from pathlib import Path

    from ..profiles import choose_profile
    from .composition import ServerSettings, adapter_folder, load_composition
    from .loading import find_adapter_folders
    from .vllm import composition_notes

    if not args.config:
        profile, _ = choose_profile(args.profile, asked_in="--profile")
        work_dir = Path(args.work_dir) if args.work_dir else None
        folders, skipped = find_adapter_folders(profile, args.adapters_dir, work_dir)
        return profile, folders, skipped, [], {}
    from ..storage import StorageError

    composition = load_composition(args.config)
    folders, skipped = {}, []
    for name, spec in composition.adapters.items():
        try:
            folders[name] = adapter_folder(spec)
        except (StorageError, OSError) as err:  # a Hub adapter that cannot be downloaded is left out, saying why
            skipped.append(
                tr(
                    en=f"adapters.{name}: cannot get {spec.location} ({err})",
                    ru=f"adapters.{name}: не удалось получить {spec.location} ({err})",
                )
            )
    server = {"port": composition.server.port}
    if composition.server.host != ServerSettings().host:
        server["host"] = composition.server.host
    return composition.profile, folders, skipped, composition_notes(composition), server


def main(argv: list[str] | None = None) -> int:
    """Run `serve`, `ask` or `vllm`; Ctrl-C ends any of them quietly with exit code 130."""
    check_language()
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run_command(argv)
    except KeyboardInterrupt:
        print(file=sys.stderr, flush=True)
        return 130


def run_command(argv: list[str]) -> int:
    """Parse `argv` for its sub-command and run it."""
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
