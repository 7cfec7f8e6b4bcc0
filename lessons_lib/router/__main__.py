"""CLI: `python -m lessons_lib.router evaluate --router keyword|learned|embedding|ngram --data FILE.jsonl`, `train`
(the learned router) and `train-ngram` (the n-gram router: tuned on a dev split, scored once on the held-out set)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..i18n import tr
from . import KINDS
from .learned import TRAIN_STEPS


def saved_line(folder) -> str:
    """The line that says where a trained router was saved."""
    return tr(en=f"saved to {folder}", ru=f"сохранено в {folder}")


def _evaluate(args) -> int:
    from . import load_router
    from .data import read_jsonl
    from .metrics import evaluate_router

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
    from . import router_dir
    from .data import heldout_rows
    from .learned import ROUTER_FILE, train_and_save

    profile = get_profile(args.profile or "tiny")
    torch.set_num_threads(cpu_threads())
    folder = train_and_save(
        profile, args.out or router_dir(profile), args.steps, args.seed, learning_rate=args.lr, heldout=heldout_rows()
    )
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

    from .data import course_splits, heldout_rows
    from .metrics import evaluate_router
    from .ngram import shipped_ngram_dir, tune

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
    folder = router.save(args.out or shipped_ngram_dir(), extra={**extra, "tried": tuned.tried})
    print(saved_line(folder))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run a subcommand."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    parser = argparse.ArgumentParser(prog="python -m lessons_lib.router", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="accuracy and per-class precision/recall on a labeled JSONL file")
    ev.add_argument("--router", choices=KINDS, default="learned")
    ev.add_argument("--data", required=True, help='JSONL file, lines {"text": ..., "label": ...}')
    ev.add_argument("--profile", default=None, help="tiny | t4 | 7b (default: $LESSONS_PROFILE or automatic)")
    train = sub.add_parser("train", help="(re)build the router adapter deterministically")
    train.add_argument("--profile", default="tiny")
    train.add_argument("--steps", type=int, default=TRAIN_STEPS)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--lr", type=float, default=None, help="default: 5e-3 on tiny, scaled like the profile's SFT rate"
    )
    train.add_argument("--out", default=None, help="folder to save into (default: assets/router/adapter for tiny)")
    ng = sub.add_parser("train-ngram", help="(re)build the n-gram router: tune on dev, report held-out once, save")
    ng.add_argument("--seed", type=int, default=0)
    ng.add_argument("--out", default=None, help="folder to save into (default: assets/router/ngram)")
    args = parser.parse_args(argv)
    commands = {"evaluate": _evaluate, "train": _train, "train-ngram": _train_ngram}
    try:
        return commands[args.command](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)  # the prefix stays, as in every course CLI; the message is translated
        return 2


if __name__ == "__main__":
    sys.exit(main())
