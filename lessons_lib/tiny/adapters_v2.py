"""Train course adapters on a candidate base folder (not the shipped one) with the course's recipe, into build/.

`python -m lessons_lib.tiny.adapters_v2 --base build/tiny-model-v2/final --domains json` trains each domain
exactly as `course_adapters.build_adapter` does (tiny profile, 2000 train rows, same seed), then scores it on
the course's template held-out prompts. Nothing under assets/ is touched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from .course_adapters import TRAIN_ROWS

EN_RU = ("en", "ru")


def _row(prompt: str, response: str) -> dict:
    return {"prompt": [{"role": "user", "content": prompt}], "completion": [{"role": "assistant", "content": response}]}


def fresh_rows(domain: str, n: int, seed: int = 0) -> list[dict]:
    """The course's train rows with every name, town, order number and function name drawn fresh (syllables).

    An experiment for stage 2: the templates stay the course's, only the entities change, so the adapter cannot
    succeed by recalling a pool (or by deriving a function name from its task) and must copy from the prompt.
    """
    import random
    import re

    from .. import data
    from .copy_corpus import Entities

    rng = random.Random(f"fresh/{domain}/{seed}")
    rows = []
    for i, ex in enumerate(data.examples(domain, n, "train", seed)):
        ent = Entities(rng, EN_RU[i % 2])
        prompt, response = ex.prompt, ex.response
        if domain == "json":
            fields = ex.expected["fields"]
            swaps = {"name": ent.person, "city": ent.place, "product": ent.product}
            new = {k: (swaps[k]() if k in swaps else v) for k, v in fields.items()}
            if "order_id" in new:
                new["order_id"] = int(ent.number(3, 7))
            if "email" in new:
                new["email"] = ent.email(new["name"])
            for k, v in fields.items():
                prompt = prompt.replace(str(v), str(new[k]))
            response = json.dumps(new, ensure_ascii=False)
        elif domain == "support":
            name, order = ent.person(), ent.number(4, 7)
            for old, fresh in ((ex.expected["name"], name), (ex.expected["order"], order)):
                prompt, response = prompt.replace(old, fresh), response.replace(old, fresh)
        else:
            fn, arg = ex.expected["function"], re.search(r"def \w+\((\w+)\)", ex.response).group(1)
            new_fn, new_arg = ent.identifier(), rng.choice([ent.identifier(), "xs", "values", "data", "s"])
            if new_fn == new_arg:
                new_arg += "_in"
            for old, fresh in ((fn, new_fn), (arg, new_arg)):
                pattern = re.compile(rf"\b{re.escape(old)}\b")
                prompt, response = pattern.sub(fresh, prompt), pattern.sub(fresh, response)
        rows.append(_row(prompt, response))
    return rows


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
    fresh_entities: bool = False,
    log=print,
) -> dict:
    """Train one domain adapter on `base_dir`, save it to out_root/domain, return its template held-out scores."""
    from peft import PeftModel

    from .. import evaluate
    from ..data import sft_rows
    from ..profiles import PROFILES
    from ..train import train_adapter

    profile = PROFILES["tiny"]
    folder = Path(out_root) / domain
    shutil.rmtree(folder, ignore_errors=True)
    base, tok = load_candidate(base_dir)
    result = train_adapter(
        base,
        tok,
        fresh_rows(domain, TRAIN_ROWS, seed) if fresh_entities else sft_rows(domain, TRAIN_ROWS, "train", seed),
        profile,
        folder,
        max_steps=steps,
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
        "fresh_entities": fresh_entities,
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
    p = argparse.ArgumentParser(prog="python -m lessons_lib.tiny.adapters_v2", description=__doc__)
    p.add_argument("--base", type=Path, required=True)
    p.add_argument("--domains", nargs="+", default=["json"], choices=["json", "support", "coding"])
    p.add_argument("--out", type=Path, default=Path("build/adapters-v2"))
    p.add_argument("--steps", type=int, default=None, help="default: the tiny profile's train_steps")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fresh-entities", action="store_true", help="train rows with syllable entities (fresh_rows)")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    for domain in a.domains:
        train_on(a.base, domain, a.out, a.steps, fresh_entities=a.fresh_entities)
    return 0


if __name__ == "__main__":
    sys.exit(main())
