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

`python -m lessons_lib.natural_eval [--base DIR] [--adapters DIR ...] [--copy-bias B]` prints a table for the base
and each adapter on every set (`--copy-bias`: with copy-aware decoding, `lessons_lib.copying`).
`python -m lessons_lib.natural_eval --update-manifests [DIR ...]` measures saved adapters (by default the shipped
ones) and adds their `natural_*` figures (greedy, and `_nudged`: decoded as the "copy names exactly" boxes do, copy
bias and requested function names; the tools adapter: every figure, as `tools.adapter.tool_metrics` scores it with
today's decoding) to each `manifest.json` in place, leaving every other key as it was.
A --base that is no saved model, a missing, damaged or unloadable adapter folder, or an --out that cannot be written
ends the command with one `error:` line and exit code 2, before anything is measured.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import compat, domains
from .cli import CourseArgumentParser, fail, one_line, os_error_text, until_interrupted
from .compat import AdapterCompatError, load_adapter_checked
from .evaluate import GREETING, run_code_check, strip_fences
from .files import write_text_atomic
from .i18n import tr
from .manifest import MANIFEST_FILE, Manifest, base_fingerprint
from .paths import ASSETS_DIR, TINY_ADAPTERS_DIR, TINY_MODEL_DIR
from .profiles import PROFILES

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
        raise ValueError(
            tr(
                en=f"Unknown domain {domain!r}; the natural sets are {', '.join(DOMAINS)}.",
                ru=f"Неизвестный домен {domain!r}; наборы запросов своими словами есть для {', '.join(DOMAINS)}.",
            )
        )
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
        raise ValueError(
            tr(
                en=f"{len(items)} items but {len(outputs)} outputs",
                ru=f"Примеров {len(items)}, а ответов {len(outputs)}",
            )
        )
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

    names = adapter_names(adapter_dirs)
    tok = AutoTokenizer.from_pretrained(base_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    for name, folder in zip(names, adapter_dirs):  # checked against the base first: damaged, another base, shapes
        model, _ = load_adapter_checked(model, folder, name)
    model.eval()
    return model, tok, names


def adapter_names(adapter_dirs: list[Path]) -> list[str]:
    """The names the adapters load under (their folder names), or a ValueError when two are the same."""
    names = [Path(d).name for d in adapter_dirs]
    if len(set(names)) != len(names):
        raise ValueError(
            tr(
                en=f"Adapter folders need distinct names, got {names}; copy one under a new name.",
                ru=f"Папки адаптеров должны называться по-разному, а получено {names}; скопируйте одну под новым "
                "именем.",
            )
        )
    return names


def check_peft_files(folder: Path) -> None:
    """Raise a compat error saying what to do when `folder` cannot load under its name: an unusable name, missing or
    damaged PEFT files (the config and the weights' header; no base needed)."""
    compat.check_adapter_name(Path(folder).name)
    folder = compat.check_adapter_files(folder)
    compat.check_lora_config(folder, compat.read_adapter_config(folder))
    compat.read_weight_shapes(folder)


def check_base_folder(base: Path) -> None:
    """Raise FileNotFoundError saying what to pass when `base` is not a saved model's folder."""
    if (Path(base) / "config.json").is_file():
        return
    raise FileNotFoundError(
        tr(
            en=f"--base {base}: no saved model there (a folder with config.json and the weights). Leave --base out "
            f"for the course's tiny model ({TINY_MODEL_DIR}), or give the folder a model was saved to with "
            "save_pretrained().",
            ru=f"--base {base}: там нет сохранённой модели (папки с config.json и весами). Уберите --base, чтобы "
            f"взять модель tiny курса ({TINY_MODEL_DIR}), или укажите папку, в которую модель сохранена через "
            "save_pretrained().",
        )
    )


def check_out_file(out: Path) -> None:
    """Prove the results can be written to `out` (its folder created if needed); OSError saying what to do."""
    if out.is_dir():
        raise IsADirectoryError(
            tr(
                en=f"--out {out} is a folder; give a file to write the rows to, e.g. --out {out / 'natural.json'}.",
                ru=f"--out {out} — папка; укажите файл для строк результата, например --out {out / 'natural.json'}.",
            )
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".write-test"):
            pass
    except OSError as err:
        reason = err.strerror or str(err)
        if isinstance(err, FileExistsError):  # what mkdir says when a folder on the way is a file
            reason = tr(en=f"{err.filename} is a file, not a folder", ru=f"{err.filename} — файл, а не папка")
        raise OSError(
            tr(
                en=f"Cannot write the results to {out} ({reason}). Nothing was evaluated: pass --out a file in a "
                "writable folder, or fix that folder's permissions, and run again.",
                ru=f"Не удаётся записать результаты в {out} ({reason}). Оценка не запускалась: укажите в --out файл "
                "в папке, доступной для записи, или исправьте права на неё и запустите снова.",
            )
        ) from err


def evaluate(
    base_dir: Path,
    adapter_dirs: list[Path],
    sets=DOMAINS,
    max_new_tokens: int | None = None,
    log=print,
    copy_bias: float = 0.0,
    requested_names: bool = False,
) -> list[dict]:
    """One row per (model, set): the base alone ("base") and each adapter (greedy; `copy_bias`: copy-aware;
    `requested_names`: a defined function is named as the request names it)."""
    from .models import generate

    model, tok, names = load_models(base_dir, adapter_dirs)
    rows = []
    for label in ["__base__"] + names:
        for domain in sets:
            items = load(domain)
            route = [label] * len(items) if names else None
            prompts = [it.prompt for it in items]
            outputs = generate(
                model,
                tok,
                prompts,
                max_new_tokens,
                adapter_names=route,
                copy_bias=copy_bias,
                requested_names=requested_names,
            )
            row = {"model": "base" if label == "__base__" else label, "set": domain, **score(items, outputs)}
            log(json.dumps(row, ensure_ascii=False))
            rows.append(row)
    return rows


# The figures a manifest carries for its adapter on its own domain's natural set (see `manifest_metrics`); the
# `_nudged` ones are decoded as the widgets' and web page's "copy names exactly" box does: `copying.COPY_BIAS` and
# requested function names (`copying.RequestedNames`; it changes only code that defines a function).
MANIFEST_KEYS = (
    "natural_valid",
    "natural_copy",
    "natural_task",
    "natural_n",
    "natural_copy_nudged",
    "natural_task_nudged",
)
MANIFEST_INDENT = 2  # how `Manifest.save` writes: indent 2, non-ASCII kept, one trailing newline


def manifest_metrics(model, tokenizer, domain: str, max_new_tokens: int) -> dict:
    """The `natural_*` manifest figures of `model` (its active adapter) on its domain's natural set: greedy, and
    greedy with the copy box's decoding (`_nudged`: copy bias and requested names)."""
    from .copying import copy_aware_kwargs
    from .models import generate

    items = load(domain)
    prompts = [it.prompt for it in items]
    row = score(items, generate(model, tokenizer, prompts, max_new_tokens))
    nudged = score(items, generate(model, tokenizer, prompts, max_new_tokens, **copy_aware_kwargs()))
    return {
        "natural_valid": row["valid"],
        "natural_copy": row["copy"],
        "natural_task": row["task"],
        "natural_n": row["n"],
        "natural_copy_nudged": nudged["copy"],
        "natural_task_nudged": nudged["task"],
    }


def check_adapter_folder(folder: Path) -> Manifest:
    """The manifest of a saved adapter folder with a hand-written set to measure on, or a clear error saying why not."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            tr(
                en=f"{folder} is not a folder; pass an adapter folder (e.g. {TINY_ADAPTERS_DIR / 'json'}).",
                ru=f"{folder} — не папка; укажите папку адаптера (например, {TINY_ADAPTERS_DIR / 'json'}).",
            )
        )
    missing = [
        f for f in ("adapter_config.json", "adapter_model.safetensors", MANIFEST_FILE) if not (folder / f).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            tr(
                en=f"{folder} is not a saved course adapter: {', '.join(missing)} missing. Save adapters with "
                "lessons_lib.storage.save_adapter (it writes the PEFT files and the manifest).",
                ru=f"{folder} — не сохранённый адаптер курса: нет {', '.join(missing)}. Сохраняйте адаптеры через "
                "lessons_lib.storage.save_adapter (она записывает файлы PEFT и манифест).",
            )
        )
    check_peft_files(folder)
    read_manifest_json(folder / MANIFEST_FILE)
    manifest = Manifest.load(folder)
    if manifest.domain not in MEASURES:
        raise ValueError(
            tr(
                en=f"{folder}: its manifest's domain is {manifest.domain!r}; only {', '.join(MEASURES)} adapters have "
                "hand-written sets to measure on.",
                ru=f"{folder}: в манифесте домен {manifest.domain!r}; написанные вручную наборы для измерения есть "
                f"только у адаптеров {', '.join(MEASURES)}.",
            )
        )
    if manifest.profile not in PROFILES:
        raise ValueError(
            tr(
                en=f"{folder}: unknown profile {manifest.profile!r} in its manifest ({', '.join(PROFILES)}).",
                ru=f"{folder}: в манифесте неизвестный профиль {manifest.profile!r} ({', '.join(PROFILES)}).",
            )
        )
    return manifest


def measure_adapter(folder: Path, base_dir: Path = TINY_MODEL_DIR) -> dict:
    """Load the base and one saved adapter and return the figures its manifest should carry (see `MEASURES`)."""
    manifest = check_adapter_folder(folder)
    model, tok, names = load_models(base_dir, [Path(folder)])
    base = model.get_base_model()
    if base_fingerprint(base) != manifest.base_fingerprint:
        raise ValueError(
            tr(
                en=f"{folder} was trained on a base with fingerprint {manifest.base_fingerprint}, but {base_dir} has "
                f"{base_fingerprint(base)}; measure it on the base it was trained on (--base).",
                ru=f"{folder} обучен на базовой модели с отпечатком {manifest.base_fingerprint}, а у {base_dir} "
                f"отпечаток {base_fingerprint(base)}; измеряйте его на той базовой модели, на которой он обучен "
                "(--base).",
            )
        )
    return MEASURES[manifest.domain](model, tok, manifest, names[0])


def _measure_domain(model, tok, manifest: Manifest, adapter: str) -> dict:
    """A domain adapter's `natural_*` figures (`adapter` is the only one loaded, so it is the active one)."""
    return manifest_metrics(model, tok, manifest.domain, PROFILES[manifest.profile].max_new_tokens)


def _measure_tools(model, tok, manifest: Manifest, adapter: str) -> dict:
    """Every figure of the tool adapter's manifest (see `tools.adapter.tool_metrics`), with today's decoding."""
    from .tools.adapter import tool_metrics

    return tool_metrics(model, tok, adapter)


# How each kind of adapter is measured on its hand-written set, by the domain its manifest names.
MEASURES = {**{d: _measure_domain for d in DOMAINS}, "tools": _measure_tools}


def manifest_text(raw: dict) -> str:
    """A manifest's JSON exactly as `Manifest.save` writes it."""
    return json.dumps(raw, indent=MANIFEST_INDENT, ensure_ascii=False) + "\n"


def read_manifest_json(path: Path) -> dict:
    """A manifest.json as written by `Manifest.save` (so it can be rewritten byte for byte), or a clear error."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(
            tr(
                en=f"{path} is not valid JSON ({err}); re-save the adapter.",
                ru=f"{path} — некорректный JSON ({err}); сохраните адаптер заново.",
            )
        ) from err
    if not isinstance(raw, dict) or not isinstance(raw.get("metrics"), dict):
        raise ValueError(
            tr(
                en=f"{path} has no metrics object; re-save the adapter with its manifest.",
                ru=f"В {path} нет объекта metrics; сохраните адаптер заново вместе с манифестом.",
            )
        )
    if manifest_text(raw) != text:
        raise ValueError(
            tr(
                en=f"{path} is not formatted as Manifest.save writes it, so an in-place update would rewrite other "
                "lines; re-save it with Manifest.load(folder).save(folder) first.",
                ru=f"{path} оформлен не так, как его записывает Manifest.save, поэтому обновление на месте переписало "
                "бы другие строки; сначала пересохраните его через Manifest.load(folder).save(folder).",
            )
        )
    return raw


def add_manifest_metrics(folder: Path, metrics: dict) -> dict:
    """Add (or refresh) `metrics` in a folder's manifest.json in place; every other key and byte stays as it was."""
    path = Path(folder) / MANIFEST_FILE
    raw = read_manifest_json(path)
    raw["metrics"].update(metrics)  # existing keys keep their place, new ones go last
    write_text_atomic(path, manifest_text(raw))
    return raw["metrics"]


def update_manifests(folders: list[Path], base_dir: Path = TINY_MODEL_DIR, log=print) -> dict:
    """Measure each saved adapter and write its hand-written figures into its manifest; returns them by folder."""
    folders = [Path(f) for f in folders]
    for folder in folders:  # every folder is checked before the first slow measurement
        check_adapter_folder(folder)
    out = {}
    for folder in folders:
        metrics = measure_adapter(folder, base_dir)
        add_manifest_metrics(folder, metrics)
        log(f"{folder}: {json.dumps(metrics)}")
        out[str(folder)] = metrics
    return out


SHIPPED = (*DOMAINS, "tools")  # the shipped adapters --update-manifests measures by default


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: print the table (and write it as JSON with --out), or update manifests."""
    p = CourseArgumentParser(
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
    p.add_argument(
        "--copy-bias",
        type=float,
        default=0.0,
        metavar="B",
        help="copy-aware decoding: add B to the logits of tokens that finish a prompt word the answer has begun "
        "(lessons_lib.copying; the manifests' _nudged figures use 6.0 with --requested-names); default 0 = plain "
        "greedy",
    )
    p.add_argument(
        "--requested-names",
        action="store_true",
        help="a function an answer defines (def NAME) must take a name the request gives (lessons_lib.copying)",
    )
    p.add_argument(
        "--update-manifests",
        type=Path,
        nargs="*",
        default=None,
        metavar="DIR",
        help=f"measure these adapter folders (default: the shipped {', '.join(SHIPPED)}) and add the figures to "
        "their manifests; --adapters, --sets and --out do not apply",
    )
    a = p.parse_args(argv)
    if a.update_manifests is not None:
        given = {"--adapters": a.adapters != p.get_default("adapters"), "--sets": a.sets != list(DOMAINS)}
        given["--out"] = a.out is not None
        given["--copy-bias"] = a.copy_bias != 0.0
        given["--requested-names"] = a.requested_names
        clash = [flag for flag, on in given.items() if on]
        if clash:
            p.error(
                f"--update-manifests measures each adapter on its own set (greedy, and with the course's copy bias); "
                f"drop {', '.join(clash)}."
            )
    if a.copy_bias < 0:
        p.error(f"--copy-bias must be >= 0 (0 = plain greedy), got {a.copy_bias}.")
    if a.update_manifests is not None:
        a.update_manifests = a.update_manifests or [TINY_ADAPTERS_DIR / d for d in SHIPPED]
    try:
        check_inputs(a)
    except OSError as err:
        return fail(os_error_text(err))
    except ValueError as err:  # compat errors among them; every message says what to do
        return fail(one_line(err))
    import torch

    torch.set_num_threads(1)
    try:  # what only loading can tell: a base that does not load, an adapter made for another base
        return run(a)
    except AdapterCompatError as err:
        return fail(one_line(err))
    except OSError as err:
        return fail(os_error_text(err))


def check_inputs(a: argparse.Namespace) -> None:
    """Every check that needs no model, so that bad input stops before the base loads; raises saying what to do."""
    check_base_folder(a.base)
    if a.update_manifests is not None:
        for folder in a.update_manifests:
            check_adapter_folder(folder)
        return
    adapter_names(a.adapters)
    for folder in a.adapters:
        check_peft_files(folder)
    if a.out:
        check_out_file(a.out)


def run(a: argparse.Namespace) -> int:
    """Update the manifests, or print the table (and write it as JSON with --out) for checked arguments."""
    from .evaluate import format_table

    if a.update_manifests is not None:
        update_manifests(a.update_manifests, a.base)
        return 0
    rows = evaluate(
        a.base,
        a.adapters,
        a.sets,
        log=lambda m: print(m, file=sys.stderr, flush=True),
        copy_bias=a.copy_bias,
        requested_names=a.requested_names,
    )
    print(format_table(rows))
    if a.out:
        results = {
            "base": str(a.base),
            "adapters": [str(d) for d in a.adapters],
            "copy_bias": a.copy_bias,
            "requested_names": a.requested_names,
            "rows": rows,
        }
        write_text_atomic(a.out, json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(until_interrupted(main))
