"""CLI: `python -m lessons_lib.router evaluate --router keyword|learned|embedding|ngram --data FILE.jsonl`, `train`
(the learned router) and `train-ngram` (the n-gram router: tuned on a dev split, scored once on the held-out set).

Without --out, `train` (tiny profile) and `train-ngram` rebuild the shipped router in assets/router with the course
recipe; changing the recipe (--steps, --seed, --lr) then needs --out, so the router the notebooks load is replaced
only on purpose (`--out assets/router/adapter`). The --out folder is checked before any training starts."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from ..cli import CourseArgumentParser, check_language, error_line, os_error_text, until_interrupted, whole_number
from ..i18n import tr
from ..lesson import quiet_library_notices
from . import KINDS, MODEL_KINDS
from .learned import TRAIN_STEPS

DESCRIPTION_RU = """Командная строка: `python -m lessons_lib.router evaluate --router keyword|learned|embedding|ngram
--data FILE.jsonl`, `train` (обучаемый маршрутизатор) и `train-ngram` (n-граммный маршрутизатор: настраивается на части
dev и один раз оценивается на отложенной выборке).

Без --out команды `train` (профиль tiny) и `train-ngram` пересобирают поставляемый маршрутизатор в assets/router по
рецепту курса; если рецепт изменён (--steps, --seed, --lr), нужен --out, чтобы маршрутизатор, который загружают
ноутбуки, заменялся только намеренно (`--out assets/router/adapter`). Папка --out проверяется до начала обучения."""


def saved_line(folder) -> str:
    """The line that says where a trained router was saved."""
    return tr(en=f"saved to {folder}", ru=f"сохранено в {folder}")


def training_steps(text: str) -> int:
    """An argparse type: a whole number of training steps, at least 1 (0 or -5 steps would save an untrained router)."""
    return whole_number(text, 1, None, tr(en="a number of training steps", ru="число шагов обучения"))


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0 (a learning rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(tr(en=f"{text!r} is not a number", ru=f"{text!r} — не число")) from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            tr(
                en=f"must be a finite number above 0 (e.g. 5e-3), not {text}",
                ru=f"должно быть конечным числом больше 0 (например, 5e-3), а не {text}",
            )
        )
    return value


def recipe_changes(args: argparse.Namespace, defaults: dict) -> list[str]:
    """The recipe options given with a value other than the course's, as `--option value`."""
    return [f"--{name} {getattr(args, name)}" for name, value in defaults.items() if getattr(args, name) != value]


def shipped_overwrite_problem(changed: list[str], shipped: Path) -> str | None:
    """Why training without --out must stop: a changed recipe would replace the shipped router (None: fine)."""
    if not changed:
        return None
    options = " ".join(changed)
    return tr(
        en=f"{options} changes the course recipe, and without --out the result would replace the shipped router in "
        f"{shipped} (the one the notebooks load). Pass --out FOLDER, e.g. --out build/my-router, or "
        f"--out {shipped} to replace it on purpose.",
        ru=f"{options} меняет рецепт курса, и без --out результат заменил бы поставляемый маршрутизатор в {shipped} "
        f"(его загружают ноутбуки). Укажите --out ПАПКА, например --out build/my-router, или --out {shipped}, "
        "чтобы заменить его намеренно.",
    )


def output_folder(args: argparse.Namespace, default: Path, shipped: Path | None, recipe: dict) -> Path:
    """Where to save: --out, else `default`; refused (ValueError) when a changed recipe would replace `shipped`,
    and checked for writing (OSError) before any training."""
    from ..train import check_writable

    if args.out is None and shipped is not None and default == shipped:
        problem = shipped_overwrite_problem(recipe_changes(args, recipe), shipped)
        if problem:
            raise ValueError(problem)
        print(
            tr(
                en=f"no --out: rebuilding the shipped router in {shipped} with the course recipe",
                ru=f"без --out: поставляемый маршрутизатор в {shipped} пересобирается по рецепту курса",
            ),
            flush=True,
        )
    return check_writable(args.out or default, tr(en="router", ru="маршрутизатор"))


def _evaluate(args) -> int:
    from . import load_router
    from .data import read_jsonl
    from .metrics import evaluate_router

    if args.profile is not None and args.router not in MODEL_KINDS:
        from ..profiles import get_profile

        get_profile(args.profile)  # an unknown name is said as that first
        print(
            error_line(
                tr(
                    en=f"--profile picks the base model of the {' and '.join(MODEL_KINDS)} routers; the {args.router} "
                    "router uses none, so the profile would change nothing: leave --profile out.",
                    ru=f"--profile выбирает базовую модель маршрутизаторов {' и '.join(MODEL_KINDS)}; маршрутизатор "
                    f"{args.router} модели не использует, и профиль ничего бы не изменил: уберите --profile.",
                )
            ),
            file=sys.stderr,
        )
        return 2
    if args.router in MODEL_KINDS:
        quiet_library_notices()  # the table, without the libraries' notices as the base model loads
    router = load_router(args.router, args.profile, log=lambda *a: print(*a, file=sys.stderr))
    rows = read_jsonl(args.data, router.labels)
    report = evaluate_router(router, rows, args.router)
    print(
        tr(
            en=f"router: {args.router}   prompts: {len(rows)}   ms/prompt: {report.ms_per_prompt:.2f}",
            ru=f"маршрутизатор: {args.router}   промптов: {len(rows)}   мс/промпт: {report.ms_per_prompt:.2f}",
        )
    )
    print(report.table())
    print(tr(en=f"accuracy={report.accuracy:.4f}", ru=f"точность={report.accuracy:.4f}"))
    return 0


def _train(args) -> int:
    import torch

    from ..env import cpu_threads
    from ..profiles import get_profile
    from . import router_dir, shipped_router_dir
    from .base import check_router_folder
    from .data import heldout_rows
    from .learned import FOLDER_FILES, ROUTER_FILE, router_learning_rate, train_and_save

    quiet_library_notices()
    profile = get_profile(args.profile or "tiny")
    shipped = shipped_router_dir() if profile.ships_adapters else None
    recipe = {"steps": TRAIN_STEPS, "seed": 0, "lr": None}
    if args.lr == router_learning_rate(profile):  # the course's own rate, given explicitly: no recipe change
        args.lr = None
    out = output_folder(args, router_dir(profile), shipped, recipe)
    check_router_folder(out, FOLDER_FILES)  # before training: the save replaces the folder whole
    torch.set_num_threads(cpu_threads())
    folder = train_and_save(profile, out, args.steps, args.seed, learning_rate=args.lr, heldout=heldout_rows())
    meta = json.loads((folder / ROUTER_FILE).read_text(encoding="utf-8"))
    accuracy, threshold = meta["heldout_accuracy"], meta["threshold"]
    print(
        tr(
            en=f"held-out accuracy {accuracy:.3f} (threshold {threshold:.2f}, chosen on dev)",
            ru=f"точность на отложенной выборке {accuracy:.3f} (порог {threshold:.2f}, выбран на dev)",
        )
    )
    print(saved_line(folder))
    return 0


def _train_ngram(args) -> int:
    import torch

    from .base import check_router_folder
    from .data import course_splits, heldout_rows
    from .metrics import evaluate_router
    from .ngram import FILES, shipped_ngram_dir, tune

    out = output_folder(args, shipped_ngram_dir(), shipped_ngram_dir(), {"seed": 0})
    check_router_folder(out, FILES)  # before training: the save replaces the folder whole
    torch.set_num_threads(1)  # the same floats on every machine
    train, dev = course_splits(seed=args.seed)
    tuned = tune(train, dev)
    for row in tuned.tried:
        setting = f"max_n={row['max_n']} l2={row['l2']:g}"
        print(
            tr(
                en=f"{setting}: dev accuracy {row['dev_accuracy']:.3f}",
                ru=f"{setting}: точность на dev {row['dev_accuracy']:.3f}",
            )
        )
    router = tuned.router
    report = evaluate_router(router, heldout_rows(), "ngram")
    chosen = f"max_n={router.config.max_n} l2={router.config.l2:g}"
    print(
        tr(
            en=f"chosen: {chosen} threshold={router.threshold:.2f}",
            ru=f"выбрано: {chosen} порог={router.threshold:.2f}",
        )
    )
    print(
        tr(
            en=f"dev accuracy {tuned.dev_accuracy:.3f}; held-out accuracy (seen once) {report.accuracy:.3f}",
            ru=f"точность на dev {tuned.dev_accuracy:.3f}; на отложенной выборке (один раз) {report.accuracy:.3f}",
        )
    )
    extra = {"seed": args.seed, "train_rows": len(train), "dev_rows": len(dev), "dev_accuracy": tuned.dev_accuracy}
    folder = router.save(out, extra={**extra, "tried": tuned.tried})
    print(saved_line(folder))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run a subcommand."""
    check_language()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    parser = CourseArgumentParser(prog="python -m lessons_lib.router", description=tr(en=__doc__, ru=DESCRIPTION_RU))
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser(
        "evaluate",
        help=tr(
            en="accuracy and per-class precision/recall on a labeled JSONL file",
            ru="точность (accuracy) и precision/recall по классам на размеченном файле JSONL",
        ),
    )
    ev.add_argument(
        "--router",
        choices=KINDS,
        default="learned",
        help=tr(
            en="which router to score (default: learned)",
            ru="какой маршрутизатор оценить (по умолчанию: learned)",
        ),
    )
    ev.add_argument(
        "--data",
        required=True,
        help=tr(
            en='JSONL file, lines {"text": ..., "label": ...}',
            ru='файл JSONL, строки вида {"text": ..., "label": ...}',
        ),
    )
    ev.add_argument(
        "--profile",
        default=None,
        help=tr(
            en="tiny | t4 | 7b (default: $LESSONS_PROFILE or automatic)",
            ru="tiny | t4 | 7b (по умолчанию: $LESSONS_PROFILE или автоматический выбор)",
        ),
    )
    train = sub.add_parser(
        "train",
        help=tr(
            en="(re)build the learned router adapter deterministically",
            ru="детерминированно (пере)собрать адаптер обучаемого маршрутизатора",
        ),
        description=tr(
            en="Train the learned (LoRA classifier) router, choose its threshold on dev, score it once on the "
            "held-out set and save it. Without --out the tiny profile's shipped router (assets/router/adapter) is "
            "rebuilt with the course recipe; a changed recipe needs --out.",
            ru="Обучить маршрутизатор learned (классификатор на LoRA), выбрать его порог на dev, один раз оценить "
            "на отложенной выборке и сохранить. Без --out поставляемый маршрутизатор профиля tiny "
            "(assets/router/adapter) пересобирается по рецепту курса; для изменённого рецепта нужен --out.",
        ),
    )
    train.add_argument(
        "--profile",
        default="tiny",
        help=tr(
            en="tiny (default) | t4 | 7b: the base model to train on",
            ru="tiny (по умолчанию) | t4 | 7b: базовая модель, на которой обучать",
        ),
    )
    train.add_argument(
        "--steps",
        type=training_steps,
        default=TRAIN_STEPS,
        help=tr(
            en=f"training steps, at least 1 (default {TRAIN_STEPS})",
            ru=f"число шагов обучения, не меньше 1 (по умолчанию {TRAIN_STEPS})",
        ),
    )
    train.add_argument(
        "--seed",
        type=int,
        default=0,
        help=tr(
            en="seed of the data split and the training (default 0)",
            ru="seed для разбиения данных и для обучения (по умолчанию 0)",
        ),
    )
    train.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help=tr(
            en="learning rate above 0 (default: 5e-3 on tiny, scaled like the profile's SFT rate)",
            ru="скорость обучения (learning rate) больше 0 (по умолчанию: 5e-3 на tiny, на других профилях "
            "масштабируется так же, как скорость SFT профиля)",
        ),
    )
    train.add_argument(
        "--out",
        default=None,
        help=tr(
            en="folder to save into (default: assets/router/adapter for tiny, else the work dir)",
            ru="папка для сохранения (по умолчанию: assets/router/adapter для tiny, иначе рабочая папка)",
        ),
    )
    ng = sub.add_parser(
        "train-ngram",
        help=tr(
            en="(re)build the n-gram router: tune on dev, report held-out once, save",
            ru="(пере)собрать n-граммный маршрутизатор: настроить на dev, один раз оценить на отложенной выборке, "
            "сохранить",
        ),
        description=tr(
            en="Tune the character n-gram router on a dev split, score it once on the held-out set and save it. "
            "It needs no base model, so it has no --profile. Without --out the shipped router (assets/router/ngram) is "
            "rebuilt with the course recipe; another --seed needs --out.",
            ru="Настроить символьный n-граммный маршрутизатор на части dev, один раз оценить его на отложенной "
            "выборке и сохранить. Базовая модель ему не нужна, поэтому параметра --profile здесь нет. Без --out "
            "поставляемый маршрутизатор (assets/router/ngram) пересобирается по рецепту курса; для другого --seed "
            "нужен --out.",
        ),
    )
    ng.add_argument(
        "--seed",
        type=int,
        default=0,
        help=tr(en="seed of the train/dev split (default 0)", ru="seed для разбиения на train/dev (по умолчанию 0)"),
    )
    ng.add_argument(
        "--out",
        default=None,
        help=tr(
            en="folder to save into (default: assets/router/ngram)",
            ru="папка для сохранения (по умолчанию: assets/router/ngram)",
        ),
    )
    args = parser.parse_args(argv)
    commands = {"evaluate": _evaluate, "train": _train, "train-ngram": _train_ngram}
    try:
        return commands[args.command](args)
    except OSError as err:  # FileNotFoundError for --data, check_writable's message for --out
        print(error_line(os_error_text(err)), file=sys.stderr)
        return 2
    except ValueError as err:
        print(error_line(str(err)), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(until_interrupted(main))
