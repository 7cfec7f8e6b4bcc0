"""Per-domain metrics on held-out prompts: is the answer well-formed, and is it right?"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from . import domains as registry
from .data import Example, examples
from .i18n import column, term, tr

CODE_TIMEOUT_S = 5.0
FENCE = re.compile(r"^```[a-zA-Z]*\n|\n?```\s*$")


@dataclass(frozen=True)
class Score:
    """The verdict on one answer: well-formed (valid) and right (correct), with a reason."""

    valid: bool
    correct: bool
    reason: str = ""


@dataclass(frozen=True)
class DomainReport:
    """Rates over a set of answers for one domain."""

    domain: str
    n: int
    valid_rate: float
    correct_rate: float

    def row(self, label: str = "") -> dict:
        """The report as a table row."""
        return {
            "model": label,
            "domain": self.domain,
            "n": self.n,
            "valid": round(self.valid_rate, 3),
            "correct": round(self.correct_rate, 3),
        }


def strip_fences(text: str) -> str:
    """Remove a surrounding Markdown code fence, if the model wrote one."""
    return FENCE.sub("", text.strip()).strip()


def score_json(output: str, expected: dict) -> Score:
    """Valid: parses to a JSON object. Correct: exactly the expected keys, each with the expected value."""
    try:
        parsed = json.loads(strip_fences(output))
    except (json.JSONDecodeError, ValueError) as err:
        return Score(False, False, f"not JSON: {err}")
    if not isinstance(parsed, dict):
        return Score(False, False, "JSON but not an object")
    fields = expected["fields"]
    wrong = [k for k in fields if str(parsed.get(k)) != str(fields[k])]
    extra = sorted(set(parsed) - set(fields))
    if wrong or extra:
        return Score(True, False, f"wrong {wrong} extra {extra}")
    return Score(True, True, "ok")


CODE_HARNESS = """
import json, sys
source, name, tests = json.loads(sys.stdin.read())
namespace = {}
exec(compile(source, "<answer>", "exec"), namespace)
fn = namespace[name]
print(json.dumps(all(fn(*args) == want for args, want in tests)))
"""


def run_code_check(source: str, function: str, tests: list, timeout: float = CODE_TIMEOUT_S) -> tuple[bool, str]:
    """Run `function` from `source` on `tests` in a separate Python process with a time limit."""
    payload = json.dumps([source, function, tests])
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c", CODE_HARNESS],
            input=payload,
            text=True,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f}s"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["error"])[-1]
        return False, last
    return proc.stdout.strip() == "true", "ok" if proc.stdout.strip() == "true" else "wrong result"


def score_coding(output: str, expected: dict) -> Score:
    """Valid: parses as Python and defines a function. Correct: that function passes the checks."""
    import ast

    source = strip_fences(output)
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        return Score(False, False, f"syntax error: {err.msg}")
    if not any(isinstance(node, ast.FunctionDef) for node in tree.body):
        return Score(False, False, "no function defined")
    passed, reason = run_code_check(source, expected["function"], expected["tests"])
    return Score(True, passed, reason)


GREETING = re.compile(r"^\s*(hello|hi|dear|good (morning|afternoon)|здравствуйте|добрый день|привет)", re.I)
ACK = re.compile(r"thank|sorry|apolog|спасибо|извин", re.I)
STEP = re.compile(r"^\s*\d+[.)]\s+\S", re.M)
SIGN_OFF = re.compile(r"(best|kind) regards|sincerely|с уважением", re.I)


def score_support(output: str, expected: dict) -> Score:
    """Valid: greeting, acknowledgement, two or more numbered steps, sign-off. Correct: plus name and order."""
    missing = [
        part
        for part, ok in (
            ("greeting", GREETING.search(output)),
            ("acknowledgement", ACK.search(output)),
            ("steps", len(STEP.findall(output)) >= 2),
            ("sign-off", SIGN_OFF.search(output)),
        )
        if not ok
    ]
    if missing:
        return Score(False, False, f"missing {', '.join(missing)}")
    lost = [k for k in ("name", "order") if expected[k] not in output]
    return Score(True, not lost, f"did not copy {lost}" if lost else "ok")


def score(example: Example, output: str) -> Score:
    """Score one answer with its domain's metric (the scorer in the domain registry)."""
    return registry.get(example.domain).score(output, example.expected)


def score_all(items: Sequence[Example], outputs: Sequence[str]) -> list[Score]:
    """Score many answers (coding checks run in parallel subprocesses)."""
    if len(items) != len(outputs):
        raise ValueError(
            tr(
                en=f"{len(items)} examples but {len(outputs)} outputs",
                ru=f"Примеров {len(items)}, а ответов {len(outputs)}",
            )
        )
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(score, items, outputs))


def report(domain: str, scores: Sequence[Score]) -> DomainReport:
    """Aggregate scores into rates."""
    n = len(scores)
    return DomainReport(domain, n, sum(s.valid for s in scores) / max(n, 1), sum(s.correct for s in scores) / max(n, 1))


def heldout(domain: str, n: int = 40, seed: int = 0) -> list[Example]:
    """The held-out prompts of a domain (entities and phrasings never used in training)."""
    return examples(domain, n, "heldout", seed)


def evaluate_model(
    model,
    tokenizer,
    domain: str,
    n: int = 40,
    adapter: str | None = None,
    seed: int = 0,
    max_new_tokens: int | None = None,
) -> tuple[DomainReport, list[str]]:
    """Generate answers to `n` held-out prompts of `domain` and score them.

    `adapter` picks a loaded PEFT adapter per row ("__base__" for the base model) without switching.
    """
    from .models import generate

    items = heldout(domain, n, seed)
    names = [adapter] * len(items) if adapter else None
    outputs = generate(model, tokenizer, [ex.prompt for ex in items], max_new_tokens, adapter_names=names)
    return report(domain, score_all(items, outputs)), outputs


def format_table(rows: Sequence[dict]) -> str:
    """A plain-text table (fixed-width columns) that reads well in a notebook and a terminal.

    The keys stay identifiers; the header shows them in the course language (i18n.COLUMNS), and so do catalogue
    phrases among the cells (i18n.TERMS)."""
    if not rows:
        return tr(en="(no rows)", ru="(нет строк)")
    cols = list(rows[0])
    head = {c: column(str(c)) for c in cols}
    rows = [{c: term(r.get(c, "")) for c in cols} for r in rows]
    width = {c: max(len(head[c]), *(len(str(r[c])) for r in rows)) for c in cols}
    line = lambda r: "  ".join(str(r.get(c, "")).ljust(width[c]) for c in cols)  # noqa: E731
    return "\n".join([line(head), "  ".join("-" * width[c] for c in cols), *map(line, rows)])
