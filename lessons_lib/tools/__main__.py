"""Tool-use adapter commands.

`python -m lessons_lib.tools build-adapter [--steps N] [--warm-steps W]` rebuilds the shipped tiny tool-use adapter
(W warm-up steps on the validator's and template generator's calls, then N on the whole mix; W defaults to the
recipe's share of N: 900 before the shipped 2160);
`python -m lessons_lib.tools evaluate [--adapter FOLDER]
[--data heldout|dev|handwritten|dev-handwritten|dev2-handwritten|FILE.jsonl] [--tool-choice auto|required]`
scores base vs adapter on held-out requests and prints the table (`final answer`: the expected result reached the
answer; `uses result`: the answer delivers the result of the call that ran).
`--n N` takes the first N requests of any data source. An option of the other command (`evaluate --steps`,
`build-adapter --adapter` ...) is a usage error. Without --out, `build-adapter` rebuilds the shipped adapter in
assets/adapters/tools with the course recipe; another --steps or --warm-steps then needs --out (the shipped adapter
is replaced only on purpose). `build-adapter --ship FOLDER` scores and ships an adapter trained elsewhere instead of
training one: into --out, which it needs unless FOLDER is the shipped adapter itself (then re-scored in place); FOLDER
gets the checks `evaluate --adapter` gives. The --out folder is checked for writing before anything trains.
A missing or unreadable file or folder, a damaged adapter or one made for another base or task, or a bad line in a
data file, ends the command with one `error:` line (naming file:line) and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..cli import CourseArgumentParser, check_language, fail, one_line, os_error_text, until_interrupted
from ..i18n import tr

DESCRIPTION_RU = """Команды адаптера для вызова инструментов.

`python -m lessons_lib.tools build-adapter [--steps N] [--warm-steps W]` пересобирает поставляемый адаптер tiny для
вызова инструментов (W шагов разогрева на вызовах валидатора и генератора шаблонов, затем N на всей смеси; по умолчанию
W — доля рецепта от N: 900 перед поставляемыми 2160);
`python -m lessons_lib.tools evaluate [--adapter FOLDER]
[--data heldout|dev|handwritten|dev-handwritten|dev2-handwritten|FILE.jsonl] [--tool-choice auto|required]`
сравнивает базовую модель и адаптер на отложенных запросах и печатает таблицу (`итоговый ответ`: ожидаемый результат
попал в ответ; `ответ с результатом`: ответ передаёт результат выполненного вызова).
`--n N` берёт первые N запросов любого источника данных. Параметр другой команды (`evaluate --steps`,
`build-adapter --adapter` ...) — ошибка в аргументах. Без --out команда `build-adapter` пересобирает поставляемый
адаптер в assets/adapters/tools по рецепту курса; тогда для другого --steps или --warm-steps нужен --out
(поставляемый адаптер заменяется только намеренно). `build-adapter --ship ПАПКА` не обучает адаптер, а оценивает и
делает поставляемым обученный где-то ещё: в папку --out, без которой можно обойтись, только если ПАПКА — сам
поставляемый адаптер (тогда он переоценивается на месте); ПАПКА проходит те же проверки, что и `evaluate --adapter`.
Папка --out проверяется на запись до начала обучения.
Отсутствующий или нечитаемый файл или папка, повреждённый адаптер или адаптер для другой базовой модели или задачи,
плохая строка в файле данных завершают команду одной строкой `ошибка:` (с указанием файл:строка) и кодом выхода 2.
"""

TASK = "tools"  # the manifest domain of a tool-use adapter
COMMAND_OPTIONS = {  # option -> (attribute, the command it belongs to); each is refused with the other command
    "--steps": ("steps", "build-adapter"),
    "--warm-steps": ("warm_steps", "build-adapter"),
    "--out": ("out", "build-adapter"),
    "--ship": ("ship", "build-adapter"),
    "--adapter": ("adapter", "evaluate"),
    "--data": ("data", "evaluate"),
    "--n": ("n", "evaluate"),
    "--tool-choice": ("tool_choice", "evaluate"),
}
DEFAULT_DATA, DEFAULT_TOOL_CHOICE = "heldout", "auto"
NAMED_DATA = ("heldout", "dev", "handwritten", "dev-handwritten", "dev2-handwritten")  # what --data names besides files


def adapter_folder_problem(folder: str | None) -> str | None:
    """Why `folder` is not an adapter folder (None when it is, or when none was given)."""
    if folder is None or (Path(folder) / "adapter_config.json").is_file():
        return None
    return tr(
        en=f"no adapter at {folder}: give a folder with adapter_config.json and adapter_model.safetensors "
        "(e.g. one `build-adapter --out FOLDER` wrote).",
        ru=f"в {folder} нет адаптера: укажите папку с adapter_config.json и adapter_model.safetensors "
        "(например, ту, что записала команда `build-adapter --out ПАПКА`).",
    )


def misplaced_option(args: argparse.Namespace) -> str | None:
    """The usage error for the first option given that belongs to the other command, or None."""
    for option, (attribute, command) in COMMAND_OPTIONS.items():
        if getattr(args, attribute) is not None and args.command != command:
            return tr(
                en=f"{option} does not apply to {args.command}; it is an option of: {command}",
                ru=f"{option} не относится к {args.command}; это параметр команды: {command}",
            )
    return None


def check_counts(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse --steps / --n below 1 (0 used to mean 'the default' silently) and --warm-steps below 0 (0: none)."""
    for option, value, least in (("--steps", args.steps, 1), ("--n", args.n, 1), ("--warm-steps", args.warm_steps, 0)):
        if value is not None and value < least:
            parser.error(
                tr(
                    en=f"{option} must be at least {least}, not {value} (leave it out for the default)",
                    ru=f"{option} должно быть не меньше {least}, а не {value} (уберите параметр, чтобы взять значение "
                    "по умолчанию)",
                )
            )


def task_problem(folder: Path) -> str | None:
    """Why the adapter in `folder` is not a tool-use adapter according to its manifest, or None (no manifest: None)."""
    from ..manifest import MANIFEST_FILE, Manifest

    if not (folder / MANIFEST_FILE).is_file():
        return None
    try:
        domain = Manifest.load(folder).domain
    except (OSError, ValueError, TypeError) as err:
        return tr(
            en=f"{folder / MANIFEST_FILE} cannot be read ({err}); re-save the adapter with lessons_lib.storage.",
            ru=f"{folder / MANIFEST_FILE} не читается ({err}); сохраните адаптер заново через lessons_lib.storage.",
        )
    if domain is not None and domain != TASK:
        return tr(
            en=f"the adapter in {folder} was trained for the {domain!r} task (its {MANIFEST_FILE} says domain "
            f"{domain!r}), not for tool use, so it would score about 0: give a tool-use adapter (domain {TASK!r}, "
            "e.g. one `build-adapter --out FOLDER` wrote).",
            ru=f"адаптер в {folder} обучен для задачи {domain!r} (его {MANIFEST_FILE} указывает domain {domain!r}), "
            f"а не для вызова инструментов, и набрал бы около 0: укажите адаптер для инструментов (domain {TASK!r}, "
            "например, записанный командой `build-adapter --out ПАПКА`).",
        )
    return None


def shipped_overwrite_problem(
    steps: int | None, warm_steps: int | None, out: str | None, recipe: tuple[int, int], shipped: Path
) -> str | None:
    """Why `build-adapter` must stop: another --steps or --warm-steps without --out would replace the shipped adapter
    (None: fine). `recipe`: the course's (steps, warm-up steps)."""
    if out is not None:
        return None
    given = (("--steps", steps, recipe[0], ""), ("--warm-steps", warm_steps, recipe[1], "warm"))
    changed = [(option, value, tag) for option, value, default, tag in given if value not in (None, default)]
    if not changed:
        return None
    options = " ".join(f"{option} {value}" for option, value, _ in changed)
    example = "build/tools-" + "-".join(f"{tag}{value}" for _, value, tag in changed)
    return tr(
        en=f"{options} changes the course recipe ({recipe[0]} steps after {recipe[1]} warm-up steps), and without "
        f"--out the result would replace the shipped tool adapter in {shipped}. Pass --out FOLDER, e.g. --out "
        f"{example}, or --out {shipped} to replace it on purpose.",
        ru=f"{options} меняет рецепт курса ({recipe[0]} шагов после {recipe[1]} шагов разогрева), и без --out "
        f"результат заменил бы поставляемый адаптер для инструментов в {shipped}. Укажите --out ПАПКА, например "
        f"--out {example}, или --out {shipped}, чтобы заменить его намеренно.",
    )


def ship_overwrite_problem(folder: str, out: str | None, shipped: Path) -> str | None:
    """Why `build-adapter --ship FOLDER` must stop: without --out it would replace the shipped adapter by another one
    (None: fine, also when FOLDER is the shipped adapter itself, re-scored in place)."""
    if out is not None or Path(folder).resolve() == shipped.resolve():
        return None
    return tr(
        en=f"--ship {folder} without --out would replace the shipped tool adapter in {shipped} with that one. Pass "
        f"--out FOLDER to ship it elsewhere, e.g. --out build/tools-shipped, or --out {shipped} to replace it on "
        "purpose.",
        ru=f"--ship {folder} без --out заменил бы им поставляемый адаптер для инструментов в {shipped}. Укажите "
        "--out ПАПКА, чтобы сделать его поставляемым в другом месте, например --out build/tools-shipped, или "
        f"--out {shipped}, чтобы заменить поставляемый намеренно.",
    )


def compat_problem(folder: Path) -> str | None:
    """Why the adapter in `folder` cannot load into the tiny base (damaged, another base, wrong shapes), or None."""
    from ..compat import AdapterCompatError, check_adapter
    from ..models import load_base
    from ..profiles import PROFILES
    from .adapter import ADAPTER_NAME

    try:  # the checks `load_adapter_checked` runs for `evaluate`, without loading the adapter
        check_adapter(load_base(PROFILES["tiny"]), folder, ADAPTER_NAME)
    except AdapterCompatError as err:
        return one_line(err)
    except OSError as err:
        return os_error_text(err)
    return None


def ship_problem(folder: str, out: str | None, shipped: Path) -> str | None:
    """Why `--ship FOLDER` must stop before anything is scored or written, or None: cheap checks first."""
    return ship_overwrite_problem(folder, out, shipped) or task_problem(Path(folder)) or compat_problem(Path(folder))


def check_out_folder(folder: Path) -> None:
    """Prove the adapter can be saved in `folder` (created if needed) before anything trains; OSError saying why."""
    from ..train import check_writable

    check_writable(folder, tr(en="tool adapter", ru="адаптер для инструментов"))


def build_cli(args: argparse.Namespace) -> int:
    """`build-adapter`: train (or `--ship` an already trained folder), score and save; bad --out: one line, exit 2."""
    from ..paths import TINY_ADAPTERS_DIR
    from .adapter import ADAPTER_NAME, STEPS, WARM_STEPS, build_tool_adapter, ship_tool_adapter, warm_steps_for

    shipped = TINY_ADAPTERS_DIR / ADAPTER_NAME
    recipe = (STEPS, WARM_STEPS)
    problem = shipped_overwrite_problem(args.steps, args.warm_steps, args.out, recipe, shipped)
    if not problem and args.ship:
        problem = ship_problem(args.ship, args.out, shipped)
    if problem:
        return fail(problem)
    out = Path(args.out) if args.out else shipped
    steps = args.steps or STEPS
    warm = warm_steps_for(steps) if args.warm_steps is None else args.warm_steps
    kwargs = {"steps": steps, "out_dir": out, "warm_steps": warm}
    try:
        check_out_folder(out)
        if args.ship:
            metrics = ship_tool_adapter(args.ship, **kwargs)
        else:
            metrics = build_tool_adapter(**kwargs)
    except OSError as err:
        return fail(os_error_text(err))
    except ValueError as err:  # e.g. an --out name the adapter store refuses
        return fail(str(err))
    print(json.dumps(metrics, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    check_language()
    parser = CourseArgumentParser(prog="python -m lessons_lib.tools", description=tr(en=__doc__, ru=DESCRIPTION_RU))
    parser.add_argument("command", choices=["build-adapter", "evaluate"])
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=tr(
            en="build-adapter: training steps on the whole mix, at least 1 (default: the shipped recipe's 2160; "
            "another value needs --out)",
            ru="build-adapter: число шагов обучения на всей смеси, не меньше 1 (по умолчанию — 2160, по рецепту "
            "поставляемого адаптера; для другого значения нужен --out)",
        ),
    )
    parser.add_argument(
        "--warm-steps",
        type=int,
        default=None,
        help=tr(
            en="build-adapter: warm-up steps on the validator's and template generator's calls before the mix, 0 for "
            "none (default: the recipe's share of --steps, 900 before 2160)",
            ru="build-adapter: шаги разогрева на вызовах валидатора и генератора шаблонов перед смесью, 0 — без "
            "разогрева (по умолчанию — доля рецепта от --steps, 900 перед 2160)",
        ),
    )
    parser.add_argument(
        "--out",
        default=None,
        help=tr(
            en="build-adapter: output folder (default: the shipped assets/adapters/tools; another recipe or --ship "
            "of another folder needs it)",
            ru="build-adapter: папка для результата (по умолчанию — поставляемая assets/adapters/tools; она нужна "
            "для другого рецепта или для --ship другой папки)",
        ),
    )
    parser.add_argument(
        "--ship",
        default=None,
        metavar="FOLDER",
        help=tr(
            en="do not train: score an already trained adapter folder and ship it with a manifest, into --out "
            "(needed unless FOLDER is the shipped adapter, then re-scored in place)",
            ru="не обучать: оценить папку уже обученного адаптера и сделать его поставляемым, с манифестом, в папку "
            "--out (она нужна, если ПАПКА — не сам поставляемый адаптер, который тогда переоценивается на месте)",
        ),
    )
    parser.add_argument(
        "--adapter",
        default=None,
        help=tr(
            en="evaluate: adapter folder (default: the shipped one)",
            ru="evaluate: папка адаптера (по умолчанию — поставляемый адаптер)",
        ),
    )
    parser.add_argument(
        "--data",
        default=None,
        help=tr(
            en="evaluate: heldout (default), dev (template splits), handwritten (held-out), dev-handwritten "
            "(the hand-written requests recipes are chosen on), dev2-handwritten (a fresher second dev set), or a "
            "JSONL file of requests",
            ru="evaluate: heldout (по умолчанию), dev (части шаблонных запросов), handwritten (отложенные, написанные "
            "вручную), dev-handwritten (написанные вручную запросы, на которых выбирают рецепты), dev2-handwritten "
            "(второй, более свежий набор dev) или файл JSONL с запросами",
        ),
    )
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help=tr(
            en="evaluate: how many requests (a template split: drawn; a hand-written set or file: the first N)",
            ru="evaluate: сколько запросов (из шаблонной части — случайные; из набора, написанного вручную, или "
            "из файла — первые N)",
        ),
    )
    parser.add_argument(
        "--tool-choice",
        default=None,
        choices=["auto", "required"],
        help=tr(
            en="evaluate: 'required' constrains the call to the tools' schemas (structured generation); default auto",
            ru="evaluate: 'required' ограничивает вызов схемами инструментов (структурированная генерация); "
            "по умолчанию auto",
        ),
    )
    parser.add_argument(
        "--quote",
        action="store_true",
        help=tr(
            en="evaluate, with --tool-choice required: free-text arguments must be whole phrases of the request, "
            "and final answers must repeat the tool's result exactly",
            ru="evaluate вместе с --tool-choice required: текстовые аргументы должны быть целыми фразами из запроса, "
            "а итоговые ответы — дословно повторять результат инструмента",
        ),
    )
    args = parser.parse_args(argv)
    if args.quote and (args.command != "evaluate" or args.tool_choice != "required"):
        parser.error(
            tr(
                en="--quote constrains the evaluated calls; use it with: evaluate --tool-choice required",
                ru="--quote ограничивает оцениваемые вызовы; используйте его так: evaluate --tool-choice required",
            )
        )
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
    from ..lesson import quiet_library_notices

    quiet_library_notices()  # the tables and training lines, without the libraries' notices
    import torch

    from ..env import cpu_threads

    # Two threads (the course's CPU target) unless OMP_NUM_THREADS says fewer, e.g. on a busy shared machine.
    torch.set_num_threads(min(2, cpu_threads()))
    if args.command == "evaluate":
        return evaluate_cli(args.adapter, args.data, args.n, args.tool_choice, args.quote)
    return build_cli(args)


def looks_like_a_name(data: str) -> bool:
    """Whether --data reads as a set's name (no folder, no file extension), e.g. the typo 'heldot'."""
    path = Path(data)
    return len(path.parts) == 1 and not path.suffix


def unknown_data_text(data: str) -> str:
    """The error for a --data that is neither a named set nor an existing file (often a typo of a set's name)."""
    named = ", ".join(NAMED_DATA)
    return tr(
        en=f"--data {data} is neither a named set ({named}) nor an existing file: pick one of those names, or give "
        'a JSONL file of requests, one {"lang", "request", "tool", "arguments"} object per line.',
        ru=f"--data {data} — не имя набора ({named}) и не существующий файл: выберите одно из этих имён или укажите "
        'файл JSONL с запросами, по одному объекту {"lang", "request", "tool", "arguments"} в строке.',
    )


def requests_for(data: str, n: int | None) -> list:
    """The requests `--data` names: a template split, a hand-written set, or a JSONL file of requests."""
    from .adapter import EVAL_N
    from .data import HANDWRITTEN_SETS, SPLITS, read_handwritten, tool_examples

    if data in SPLITS:
        return tool_examples(n or EVAL_N, data)
    if data not in HANDWRITTEN_SETS and looks_like_a_name(data) and not Path(data).exists():
        raise FileNotFoundError(unknown_data_text(data))
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
        return fail(one_line(err))
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
    quoted = ", quote" if quote else ""
    print(
        tr(
            en=f"{data}: {len(examples)} requests, adapter {folder}, tool_choice={tool_choice}{quoted}",
            ru=f"{data}: запросов {len(examples)}, адаптер {folder}, tool_choice={tool_choice}{quoted}",
        )
    )
    print(format_table([r.row() for r in reports]))
    return 0


if __name__ == "__main__":
    sys.exit(until_interrupted(main))
