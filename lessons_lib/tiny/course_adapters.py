"""Train, score and ship the tiny profile's course adapters with the same code notebook 01 teaches."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import evaluate
from ..adapters import COURSE_ADAPTERS
from ..manifest import TINY_MODEL_ID, Manifest
from ..paths import TINY_ADAPTERS_DIR
from ..profiles import PROFILES

TRAIN_ROWS = 2000


def stamp_base_id(adapter_folder: Path, base_id: str = TINY_MODEL_ID) -> None:
    """Record the portable base id (not this machine's path) in adapter_config.json."""
    cfg_path = Path(adapter_folder) / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = base_id
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def build_adapter(domain: str, out_root: Path = TINY_ADAPTERS_DIR, steps: int | None = None, seed: int = 0,
                  eval_n: int = 40, log=print) -> dict:
    """Train one domain adapter, score it on held-out prompts, and save it with its manifest."""
    from peft import PeftModel

    from ..models import load_base, load_tokenizer
    from ..train import train_domain

    profile = PROFILES["tiny"]
    folder = Path(out_root) / domain
    scratch = folder.with_name(folder.name + ".training")
    shutil.rmtree(scratch, ignore_errors=True)
    result = train_domain(domain, profile, scratch, n_rows=TRAIN_ROWS, max_steps=steps, seed=seed, resume=False,
                          log=log)
    base, tok = load_base(profile, log=log), load_tokenizer(profile)
    model = PeftModel.from_pretrained(base, scratch)
    rep, _ = evaluate.evaluate_model(model, tok, domain, eval_n, max_new_tokens=profile.max_new_tokens)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy2(scratch / name, folder / name)
    shutil.rmtree(scratch)
    stamp_base_id(folder)
    metrics = {"heldout_valid": rep.valid_rate, "heldout_correct": rep.correct_rate, "heldout_n": rep.n}
    Manifest.for_model(domain, model, "tiny", domain=domain, steps=result.steps, metrics=metrics,
                       data={"source": "lessons_lib.data", "rows": TRAIN_ROWS, "seed": seed, "split": "train"}
                       ).save(folder)
    log(f"{domain}: valid {rep.valid_rate:.2f} correct {rep.correct_rate:.2f} ({result.seconds:.0f}s training)")
    return metrics


def build_all(domains=COURSE_ADAPTERS, **kwargs) -> dict:
    """Build every course adapter; returns their metrics."""
    return {d: build_adapter(d, **kwargs) for d in domains}
