"""Train, score and ship the tiny profile's course adapters with the same code notebook 01 teaches.

The rows are `varied_data.shipped_rows` (learners' phrasings and made-up names next to the course's templates),
so the shipped adapters copy a learner's own names instead of recalling the course's pools.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import evaluate, natural_eval, storage
from ..adapters import COURSE_ADAPTERS
from ..manifest import Manifest
from ..paths import TINY_ADAPTERS_DIR
from ..profiles import PROFILES
from ..varied_data import SHIPPED_MIX, shipped_rows

TRAIN_ROWS = 2000
TRAIN_STEPS = 720  # about six passes over the rows; 360 steps left json's natural task ~0.05 lower


def build_adapter(
    domain: str,
    out_root: Path = TINY_ADAPTERS_DIR,
    steps: int | None = None,
    seed: int = 0,
    eval_n: int = 40,
    log=print,
) -> dict:
    """Train one domain adapter, score it on template and natural held-out prompts, save it with its manifest."""
    from peft import PeftModel

    from ..models import load_base, load_tokenizer
    from ..train import train_adapter

    profile = PROFILES["tiny"]
    folder = Path(out_root) / domain
    scratch = folder.with_name(folder.name + ".training")
    shutil.rmtree(scratch, ignore_errors=True)
    rows = shipped_rows(domain, TRAIN_ROWS, seed)
    result = train_adapter(
        load_base(profile, log=log),
        load_tokenizer(profile),
        rows,
        profile,
        scratch,
        max_steps=steps or TRAIN_STEPS,
        seed=seed,
        resume=False,
        log=log,
    )
    base, tok = load_base(profile, log=log), load_tokenizer(profile)
    model = PeftModel.from_pretrained(base, scratch)
    rep, _ = evaluate.evaluate_model(model, tok, domain, eval_n, max_new_tokens=profile.max_new_tokens)
    metrics = {"heldout_valid": rep.valid_rate, "heldout_correct": rep.correct_rate, "heldout_n": rep.n}
    metrics |= natural_eval.manifest_metrics(model, tok, domain, profile.max_new_tokens)  # learners' own words
    manifest = Manifest.for_model(
        domain,
        model,
        "tiny",
        domain=domain,
        steps=result.steps,
        metrics=metrics,
        data={"source": "lessons_lib.varied_data.shipped_rows", "rows": TRAIN_ROWS, "mix": SHIPPED_MIX, "seed": seed},
    )
    storage.save_adapter(scratch, domain, storage.local_store(out_root), manifest, overwrite=True)
    shutil.rmtree(scratch)
    log(
        f"{domain}: valid {rep.valid_rate:.2f} correct {rep.correct_rate:.2f} on template prompts; natural requests: "
        f"copy {metrics['natural_copy']:.2f} task {metrics['natural_task']:.2f} ({result.seconds:.0f}s training)"
    )
    return metrics


def build_all(domains=COURSE_ADAPTERS, **kwargs) -> dict:
    """Build every course adapter; returns their metrics."""
    return {d: build_adapter(d, **kwargs) for d in domains}
