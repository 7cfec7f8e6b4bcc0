"""Train course adapters on a candidate base folder (not the shipped one), into build/: for trying a new base.

`python -m lessons_lib.tiny.adapters_v2 --base build/tiny-model-v2/final --domains json` trains each domain as
`course_adapters.build_adapter` does (tiny profile, its rows and steps, same seed), then scores it on the course's
template held-out prompts; `--rows course|fresh` trains on the course's template rows instead, with pool or
made-up names. Nothing under assets/ is touched; `natural_eval --base ... --adapters ...` scores the results.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from ..cli import CourseArgumentParser
from ..data import sft_rows
from ..varied_data import fresh_rows, shipped_rows
from .course_adapters import TRAIN_ROWS, TRAIN_STEPS


def course_rows(domain: str, n: int, seed: int = 0) -> list[dict]:
    """The course's template train rows, names from its pools."""
    return sft_rows(domain, n, "train", seed)


ROWS = {"shipped": shipped_rows, "course": course_rows, "fresh": fresh_rows}  # shipped: what assets/ trains on


def load_candidate(base_dir: Path):
    """The candidate base and its tokenizer, set up as models.load_tokenizer sets up the shipped one."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    if tok.pad_token is None or tok.pad_token_id == tok.eos_token_id:
        raise ValueError(
            f"{base_dir}: the tokenizer needs a pad token distinct from eos (build it from assets/tiny-model)."
        )
    tok.padding_side = "left"
    return AutoModelForCausalLM.from_pretrained(base_dir).eval(), tok


def train_on(
    base_dir: Path,
    domain: str,
    out_root: Path,
    steps: int | None = None,
    seed: int = 0,
    eval_n: int = 40,
    rows: str = "shipped",
    log=print,
) -> dict:
    """Train one domain adapter on `base_dir`, save it to out_root/domain, return its template held-out scores."""
    from peft import PeftModel

    from .. import evaluate
    from ..profiles import PROFILES
    from ..train import train_adapter

    profile = PROFILES["tiny"]
    folder = Path(out_root) / domain
    shutil.rmtree(folder, ignore_errors=True)
    base, tok = load_candidate(base_dir)
    result = train_adapter(
        base,
        tok,
        ROWS[rows](domain, TRAIN_ROWS, seed),
        profile,
        folder,
        max_steps=steps or TRAIN_STEPS,
        seed=seed,
        resume=False,
        log=log,
    )
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    untouched, tok = load_candidate(base_dir)
    model = PeftModel.from_pretrained(untouched, folder)
    rep, _ = evaluate.evaluate_model(model, tok, domain, eval_n, max_new_tokens=profile.max_new_tokens)
    metrics = {
        "base": str(base_dir),
        "rows": rows,
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "heldout_valid": rep.valid_rate,
        "heldout_correct": rep.correct_rate,
        "heldout_n": rep.n,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log(json.dumps({"domain": domain, **metrics}))
    return metrics


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = CourseArgumentParser(prog="python -m lessons_lib.tiny.adapters_v2", description=__doc__)
    p.add_argument("--base", type=Path, required=True)
    p.add_argument("--domains", nargs="+", default=["json"], choices=["json", "support", "coding"])
    p.add_argument("--out", type=Path, default=Path("build/adapters-v2"))
    p.add_argument("--steps", type=int, default=TRAIN_STEPS)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rows", choices=sorted(ROWS), default="shipped", help="which train rows (default: shipped)")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    for domain in a.domains:
        train_on(a.base, domain, a.out, a.steps, rows=a.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
