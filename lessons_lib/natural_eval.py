"""Score adapters on requests in learners' own words: the hand-written sets in assets/natural/.

Each set (json, support, coding; EN + RU) holds natural requests whose names, towns, order numbers and function
names appear in no pool of `lessons_lib.data` nor in the tiny model's pretraining corpus. Figures per set:

- valid: the course's own format check for the set's domain (`evaluate.score_json` etc.);
- copy: the share of the request's entities (names, towns, e-mails, order numbers, function names) that the
  answer repeats verbatim, averaged over requests;
- task: json — the answer is a JSON object holding every requested value (key names are not judged: a Russian
  request may name its fields in Russian); support — a reply (opening with a greeting) that contains the
  customer's name and order number; coding — the requested function is defined and passes its small check
  (run in a subprocess with a timeout).

`python -m lessons_lib.natural_eval [--base DIR] [--adapters DIR ...]` prints a table for the base and each
adapter on every set.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from . import domains
from .evaluate import GREETING, run_code_check, strip_fences
from .paths import ASSETS_DIR, TINY_ADAPTERS_DIR, TINY_MODEL_DIR

NATURAL_DIR = ASSETS_DIR / "natural"


@dataclass(frozen=True)
class NaturalItem:
    """One hand-written request, what a right answer must contain, and the entities it must copy."""

    id: str
    domain: str
    lang: str
    prompt: str
    expected: dict
    entities: tuple[str, ...]


def load(domain: str, folder: Path = NATURAL_DIR) -> list[NaturalItem]:
    """The hand-written set of one domain."""
    if domain not in DOMAINS:
        raise ValueError(f"Unknown domain {domain!r}; the natural sets are {', '.join(DOMAINS)}.")
    rows = [json.loads(line) for line in (Path(folder) / f"{domain}.jsonl").read_text().splitlines() if line.strip()]
    return [
        NaturalItem(r["id"], r["domain"], r["lang"], r["prompt"], r["expected"], tuple(r["entities"])) for r in rows
    ]


def copy_rate(item: NaturalItem, output: str) -> float:
    """The share of the item's entities found verbatim in the answer."""
    if not item.entities:
        return 1.0
    return sum(e in output for e in item.entities) / len(item.entities)


def json_task(output: str, expected: dict) -> bool:
    """A JSON object whose values include every expected value (compared as text)."""
    try:
        parsed = json.loads(strip_fences(output))
    except (json.JSONDecodeError, ValueError):
        return False
    if not isinstance(parsed, dict):
        return False
    values = {str(v).strip() for v in parsed.values()}
    return all(str(v) in values for v in expected["fields"].values())


def support_task(output: str, expected: dict) -> bool:
    """A reply (it opens with a greeting) that names the customer and the order."""
    return bool(GREETING.search(output)) and expected["name"] in output and expected["order"] in output


def defines(source: str, function: str) -> bool:
    """Whether `source` parses and defines `function` at top level."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body)


def coding_task(output: str, expected: dict) -> bool:
    """The requested function is defined and passes its check."""
    source = strip_fences(output)
    if not defines(source, expected["function"]):
        return False
    return run_code_check(source, expected["function"], expected["tests"])[0]


# The natural sets' task checks, per domain (the format check is the domain's own scorer, from the registry).
TASKS = {"json": json_task, "support": support_task, "coding": coding_task}
DOMAINS = tuple(name for name in domains.names() if name in TASKS)  # registry order


def format_score(domain: str, output: str, expected: dict):
    """The domain's own format score (the registry's scorer) of one answer."""
    return domains.resolve(domains.get(domain).scorer)(output, expected)


def task_ok(item: NaturalItem, output: str) -> bool:
    """The domain metric for one answer."""
    return TASKS[item.domain](output, item.expected)


def score(items: list[NaturalItem], outputs: list[str]) -> dict:
    """Course format rate (`valid`, the course's own check), copy rate and task rate; overall and per language."""
    if len(items) != len(outputs):
        raise ValueError(f"{len(items)} items but {len(outputs)} outputs")
    row: dict = {
        "n": len(items),
        "valid": round(
            sum(format_score(it.domain, o, it.expected).valid for it, o in zip(items, outputs)) / max(len(items), 1), 3
        ),
    }
    for lang in ("all", "en", "ru"):
        sel = [(it, out) for it, out in zip(items, outputs) if lang == "all" or it.lang == lang]
        sfx = "" if lang == "all" else f"_{lang}"
        row[f"copy{sfx}"] = round(sum(copy_rate(it, o) for it, o in sel) / max(len(sel), 1), 3)
        row[f"task{sfx}"] = round(sum(task_ok(it, o) for it, o in sel) / max(len(sel), 1), 3)
    return row


def load_models(base_dir: Path, adapter_dirs: list[Path]):
    """The base (tokenizer padded left) with every adapter loaded under its folder name."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    if not adapter_dirs:
        return model, tok, []
    from peft import PeftModel

    names = [Path(d).name for d in adapter_dirs]
    if len(set(names)) != len(names):
        raise ValueError(f"Adapter folders need distinct names, got {names}; copy one under a new name.")
    model = PeftModel.from_pretrained(model, adapter_dirs[0], adapter_name=names[0])
    for name, folder in zip(names[1:], adapter_dirs[1:]):
        model.load_adapter(folder, adapter_name=name)
    model.eval()
    return model, tok, names


def evaluate(
    base_dir: Path, adapter_dirs: list[Path], sets=DOMAINS, max_new_tokens: int | None = None, log=print
) -> list[dict]:
    """One row per (model, set): the base alone ("base") and each adapter."""
    from .models import generate

    model, tok, names = load_models(base_dir, adapter_dirs)
    rows = []
    for label in ["__base__"] + names:
        for domain in sets:
            items = load(domain)
            route = [label] * len(items) if names else None
            outputs = generate(model, tok, [it.prompt for it in items], max_new_tokens, adapter_names=route)
            row = {"model": "base" if label == "__base__" else label, "set": domain, **score(items, outputs)}
            log(json.dumps(row, ensure_ascii=False))
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: print the table (and write it as JSON with --out)."""
    p = argparse.ArgumentParser(
        prog="python -m lessons_lib.natural_eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--base", type=Path, default=TINY_MODEL_DIR)
    p.add_argument(
        "--adapters", type=Path, nargs="*", default=[TINY_ADAPTERS_DIR / d for d in ("json", "support", "coding")]
    )
    p.add_argument("--sets", nargs="*", default=list(DOMAINS), choices=DOMAINS)
    p.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    a = p.parse_args(argv)
    import torch

    from .evaluate import format_table

    torch.set_num_threads(1)
    rows = evaluate(a.base, a.adapters, a.sets, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_table(rows))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(
            json.dumps(
                {"base": str(a.base), "adapters": [str(d) for d in a.adapters], "rows": rows},
                indent=2,
                ensure_ascii=False,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
