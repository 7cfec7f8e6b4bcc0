"""Composition files: checking (every mistake names file, line, key and fix), loading (weight and precision of each
adapter, exactly as declared), and the round trip `python -m lessons_lib.serve --config FILE` -> HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from lessons_lib.paths import REPO_DIR
from lessons_lib.serve.composition import CompositionError, load_composed, load_composition
from lessons_lib.serve.process import child_env, free_port, wait_until_healthy

COURSE = REPO_DIR / "assets" / "compositions" / "course.toml"
ADAPTERS = (REPO_DIR / "assets" / "adapters").resolve()
PROMPT = "Extract the order as JSON: Mia Novak ordered 3 lamps, order id 48213."
MAX_TOKENS = 24


def start_composed(config: Path, log: Path, extra: list[str] = ()) -> tuple[subprocess.Popen, str]:
    """`python -m lessons_lib.serve --config FILE --port FREE` in the background, once healthy."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lessons_lib.serve", "--config", str(config), "--port", str(port), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=str(REPO_DIR),
        )
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(url, proc, 180, log)
    return proc, url


def write(tmp_path: Path, text: str, name: str = "composition.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def adapter_table(name: str = "json", **fields) -> str:
    body = {"path": f'"{ADAPTERS / name}"', **fields}
    return f"[adapters.{name}]\n" + "".join(f"{k} = {v}\n" for k, v in body.items())


BASE = '[base]\nprofile = "tiny"\n'


# ---------------------------------------------------------------- the shipped example
def test_the_shipped_course_composition():
    composition = load_composition(COURSE)
    assert composition.profile.name == "tiny"
    assert list(composition.adapters) == ["json", "coding", "support", "tools"]  # tools: lesson 05 (probe3, D5)
    for name, spec in composition.adapters.items():
        assert (spec.source, Path(spec.location), spec.weight, spec.precision) == ("path", ADAPTERS / name, 1.0, "fp32")
    assert composition.mixes == {"json_support": {"json": 1.0, "support": 1.0}, "json_strong": {"json": 2.0}}
    assert composition.router == "ngram"
    assert (
        composition.server.host,
        composition.server.port,
        composition.server.max_batch,
        composition.server.window_ms,
    ) == ("127.0.0.1", 8000, 32, 10.0)


# ---------------------------------------------------------------- every mistake is named
@pytest.mark.parametrize(
    "text, expected",
    [
        (BASE + "[adapters.json\npath = 'x'\n", r"not valid TOML .*line 3"),
        (BASE + "[sever]\nport = 1\n", r"line 3: sever: unknown key. Allowed here: base, adapters"),
        (
            BASE + adapter_table(wieght=1.0),
            r"line 5: adapters\.json\.wieght: unknown key\. Allowed here: path, hub, weight",
        ),
        (BASE + adapter_table(weight=2.5), r"line 5: adapters\.json\.weight: 2\.5 is out of range\. .*from 0 up to 2"),
        (BASE + adapter_table(weight=-0.1), r"adapters\.json\.weight: -0\.1 is out of range"),
        (BASE + adapter_table(weight='"1"'), r"adapters\.json\.weight: '1' is not a number"),
        (
            BASE + adapter_table(precision='"fp8"'),
            r"line 5: adapters\.json\.precision: unknown precision 'fp8'\. "
            r"Use one of fp32, fp16, bf16",
        ),
        (
            BASE + '[adapters.json]\npath = "no/such/folder"\n',
            r"line 4: adapters\.json\.path: .*no/such/folder does not "
            r"exist\. Point it at a saved PEFT adapter folder",
        ),
        (BASE + adapter_table(hub='"owner/repo"'), r"adapters\.json: needs exactly one of path or hub"),
        (BASE + "[adapters.json]\nweight = 1.0\n", r"adapters\.json: needs exactly one of path or hub"),
        (
            BASE + adapter_table() + "[mixes]\nm = { json = 1.0, nope = 0.5 }\n",
            r"line 6: mixes\.m\.nope: unknown adapter 'nope'\. A mix combines the composition's adapters: json",
        ),
        (
            BASE + adapter_table() + "[mixes]\nm = { json = 0 }\n",
            r"mixes\.m\.json: 0 is out of range\. .*remove the entry",
        ),
        (
            BASE + adapter_table() + "[mixes]\njson = { json = 1 }\n",
            r"mixes\.json: 'json' is already the name of an adapter",
        ),
        (BASE + adapter_table("auto"), r"adapters\.auto: 'auto' is a reserved model name"),
        (
            BASE + adapter_table() + "[router]\nkind = 'smart'\n",
            r"router\.kind: unknown router 'smart'\. Use one of keyword",
        ),
        (BASE + "[server]\nport = 70000\n", r"line 4: server\.port: 70000 is not a whole number from 1 to 65535"),
        ('[base]\nprofle = "tiny"\n', r"line 2: base\.profle: unknown key"),
        ("[server]\nport = 1\n", r"base: missing\. Add a \[base\] table"),
        ('[base]\nprofile = "t5"\n', r"line 2: base\.profile: unknown profile 't5'\. Use one of tiny, t4, 7b"),
        (
            '[base]\nmodel = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"\n',
            r"base\.profile: missing\. Say whose settings apply",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_file_line_key_and_fix(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(CompositionError, match=expected) as err:
        load_composition(path)
    assert str(err.value).startswith(str(path))


def test_a_missing_file_and_a_yaml_file_say_what_to_pass(tmp_path):
    with pytest.raises(CompositionError, match="does not exist. Pass a TOML file, e.g. assets/compositions"):
        load_composition(tmp_path / "nope.toml")
    with pytest.raises(CompositionError, match="a composition file is TOML"):
        load_composition(write(tmp_path, "base: {profile: tiny}\n", "c.yaml"))


def test_relative_paths_start_at_the_file_and_hub_ids_are_kept(tmp_path):
    (tmp_path / "store").symlink_to(ADAPTERS)
    path = write(
        tmp_path,
        BASE + '[adapters.json]\npath = "store/json"\n[adapters.remote]\nhub = "someone/lora-x"\n'
        "weight = 0.5\nprecision = 'bf16'\n",
    )
    composition = load_composition(path)
    assert composition.adapters["json"].location == str(ADAPTERS / "json")
    remote = composition.adapters["remote"]
    assert (remote.source, remote.location, remote.weight, remote.precision) == ("hub", "someone/lora-x", 0.5, "bf16")
    assert composition.router == "none"  # no [router] table: no `auto`


# ---------------------------------------------------------------- weights and precision, applied when loading
def last_logits(served, adapter: str):
    import torch

    enc = served.tokenizer([PROMPT], return_tensors="pt")
    with torch.no_grad():
        return served.model(**enc, adapter_names=[adapter]).logits[0, -1]


def quiet(*_):
    pass


def test_an_adapter_weight_scales_it_exactly_like_a_one_adapter_mix(tmp_path):
    from lessons_lib.mixing import create_weighted_adapter

    as_trained = load_composed(load_composition(write(tmp_path, BASE + adapter_table(), "w1.toml")), log=quiet)
    create_weighted_adapter(as_trained.model, ["json"], [2.0], "json_x2", "cat")
    doubled = load_composed(load_composition(write(tmp_path, BASE + adapter_table(weight=2.0), "w2.toml")), log=quiet)
    off = load_composed(load_composition(write(tmp_path, BASE + adapter_table(weight=0), "w0.toml")), log=quiet)
    assert doubled.weights == {"json": 2.0}
    # weight 2 == PEFT's 'cat' combination at weight 2; weight 0 == the bare base; weight 1 is neither
    assert (last_logits(doubled, "json") - last_logits(as_trained, "json_x2")).abs().max() == 0
    assert (last_logits(off, "json") - last_logits(as_trained, "__base__")).abs().max() == 0
    assert (last_logits(doubled, "json") - last_logits(as_trained, "json")).abs().max() > 1.0


@pytest.mark.parametrize("precision, dtype_name, tolerance", [("bf16", "bfloat16", 0.05), ("fp16", "float16", 0.01)])
def test_an_adapter_precision_casts_its_lora_weights(tmp_path, precision, dtype_name, tolerance):
    import torch

    reference = load_composed(load_composition(write(tmp_path, BASE + adapter_table(), "fp32.toml")), log=quiet)
    cast = load_composed(load_composition(write(tmp_path, BASE + adapter_table(precision=f'"{precision}"'))), log=quiet)
    lora = {p.dtype for n, p in cast.model.named_parameters() if ".json." in n}
    base = {p.dtype for n, p in cast.model.named_parameters() if "lora_" not in n}
    assert lora == {getattr(torch, dtype_name)} and base == {torch.float32}
    difference = (last_logits(cast, "json") - last_logits(reference, "json")).abs().max().item()
    assert 0 < difference < tolerance  # rounded LoRA weights: close to fp32, not identical


# ---------------------------------------------------------------- the command line
def test_config_refuses_options_that_choose_what_is_served(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lessons_lib.serve", "--config", str(COURSE), "--profile", "tiny", "--router", "none"],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO_DIR,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--profile, --router cannot be combined with --config: the composition file decides" in result.stderr


def serve_with_config(path) -> subprocess.CompletedProcess:
    """`python -m lessons_lib.serve --config PATH` on a free port, as a learner starts it (it should exit at once)."""
    return subprocess.run(
        [sys.executable, "-m", "lessons_lib.serve", "--config", str(path), "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO_DIR,
        timeout=120,
    )


def test_a_bad_file_stops_the_server_before_it_loads_anything(tmp_path):
    path = write(tmp_path, BASE + adapter_table(weight=3))
    result = serve_with_config(path)
    assert result.returncode == 2
    assert f"error: {path.resolve()}, line 5: adapters.json.weight: 3 is out of range" in result.stderr


# ---------------------------------------------------------------- the round trip over HTTP
@pytest.fixture(scope="module")
def composed(composed_server):
    """The shipped course composition, served with --config (conftest's composed_server)."""
    with httpx.Client(base_url=composed_server, timeout=120) as client:
        yield client


def ask(client: httpx.Client, model: str, **extra) -> dict:
    response = client.post(
        "/v1/chat/completions",
        json={"model": model, "max_tokens": MAX_TOKENS, "messages": [{"role": "user", "content": PROMPT}], **extra},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_models_are_exactly_the_composition(composed):
    composition = load_composition(COURSE)
    listed = composed.get("/v1/models").json()["data"]
    assert [m["id"] for m in listed] == ["base", *composition.adapters, *composition.mixes, "auto"]
    mixes = {m["id"]: m for m in listed if m["kind"] == "mix"}
    assert {name: m["adapter_weights"] for name, m in mixes.items()} == composition.mixes
    assert composed.get("/v1/models/json_strong").json()["root"] == "mix:json=2"
    assert composed.get("/health").json()["router"] == "ngram"


def test_a_named_mix_answers_as_its_weights(composed):
    named = ask(composed, "json_support")
    explicit = ask(composed, "mix", adapter_weights={"json": 1.0, "support": 1.0})
    assert named["adapter"] == explicit["adapter"] == "mix:json=1,support=1"
    assert named["requested_model"] == "json_support"
    assert named["choices"][0]["message"]["content"] == explicit["choices"][0]["message"]["content"]


def test_mix_weights_are_applied(composed):
    """json_strong (json at weight 2) is the 'cat' mix at weight 2, and differs from json as trained."""
    strong = ask(composed, "json_strong", logprobs=True, top_logprobs=3)
    explicit = ask(composed, "mix", adapter_weights={"json": 2.0}, logprobs=True, top_logprobs=3)
    plain = ask(composed, "json", logprobs=True, top_logprobs=3)
    first = [body["choices"][0]["logprobs"]["content"][0] for body in (strong, explicit, plain)]
    assert first[0]["logprob"] == pytest.approx(first[1]["logprob"], abs=1e-5)
    assert (first[0]["token"], first[0]["logprob"]) != (first[2]["token"], first[2]["logprob"])
    assert strong["choices"][0]["message"]["content"] == explicit["choices"][0]["message"]["content"]


def test_the_course_composition_serves_the_tools_adapter_and_auto_sends_tools_there(composed):
    """Before: model="tools" was a 404 with --config assets/compositions/course.toml (the example in --help)."""
    from lessons_lib.tools.schemas import tool_schemas

    listed = {m["id"]: m for m in composed.get("/v1/models").json()["data"]}
    assert listed["tools"]["mixable"] is False and listed["auto"]["tools_adapter"] == "tools"
    request = {"tools": tool_schemas(), "tool_choice": "required", "max_tokens": 112}
    for model in ("tools", "auto"):
        body = ask(composed, model, **request)
        assert body["adapter"] == "tools" and body["choices"][0]["finish_reason"] == "tool_calls"


def test_the_log_says_what_was_served_and_no_library_notice(composed, composed_log):
    """Before: transformers' is_gradient_checkpointing FutureWarning and PEFT's tie_word_embeddings UserWarning
    (the tools adapter's untied lm_head copy) between the server's own lines."""
    assert composed.get("/health").status_code == 200  # loaded and listening: the startup lines are written
    lines = composed_log.read_text(encoding="utf-8").splitlines()
    served = [line for line in lines if line.startswith("adapter ")]
    assert served == [
        f"adapter {name}: weight 1, fp32 (path {ADAPTERS / name})" for name in load_composition(COURSE).adapters
    ]
    assert [line for line in lines if "Warning" in line or "warnings.warn" in line] == []


def test_an_unknown_mix_name_is_a_404_listing_the_composition(composed):
    response = composed.post(
        "/v1/chat/completions", json={"model": "json_supprt", "messages": [{"role": "user", "content": PROMPT}]}
    )
    assert response.status_code == 404
    assert "json_support" in response.json()["error"]["message"]


# ---------------------------------------------------------------- the tools adapter (lm_head copy)
def heldout_prompt(domain: str) -> str:
    from lessons_lib.data import examples

    return examples(domain, 1, "heldout", seed=11)[0].prompt


def composition_file(tmp_path, tiny, tools_weight: float = 1.0, mix: str = "") -> object:
    from lessons_lib.adapters import adapter_dir

    path = tmp_path / "composition.toml"
    path.write_text(
        f"""[base]
profile = "tiny"

[adapters.json]
path = "{adapter_dir("json", tiny)}"

[adapters.tools]
path = "{adapter_dir("tools", tiny)}"
weight = {tools_weight}

[mixes]
{mix}

[router]
kind = "none"
"""
    )
    return path


def test_a_composition_refuses_a_tools_mix_and_a_tools_weight(tmp_path, tiny):
    from lessons_lib.serve.composition import CompositionError, load_composed, load_composition

    quiet = lambda *_: None  # noqa: E731
    mixed = load_composition(composition_file(tmp_path, tiny, mix="both = { json = 1.0, tools = 0.5 }"))
    with pytest.raises(CompositionError, match=r"mixes\.both: Cannot mix 'tools'.*remove tools from mixes\.both"):
        load_composed(mixed, log=quiet)
    weighted = load_composition(composition_file(tmp_path, tiny, tools_weight=0.5))
    with pytest.raises(CompositionError, match=r"adapters\.tools\.weight = 0\.5: .*lm_head.*Set weight = 1\.0"):
        load_composed(weighted, log=quiet)


def test_a_composition_with_tools_serves_mixed_batches(tmp_path, tiny):
    """Before: a composition did not patch the lm_head copy for mixed batches (as load_served_model does), so json
    rows beside the tools adapter failed with KeyError: 'json'."""
    from lessons_lib.serve.composition import load_composed, load_composition
    from lessons_lib.serve.engine import BatchingEngine, Job

    served = load_composed(load_composition(composition_file(tmp_path, tiny)), log=lambda *_: None)
    engine = BatchingEngine(served.model, served.tokenizer, served.adapters, window_ms=500)
    try:
        prompt = served.tokenizer.apply_chat_template(
            [{"role": "user", "content": heldout_prompt("json")}], tokenize=False, add_generation_prompt=True
        )
        jobs = [Job(prompt=prompt, route_text="", model=name, max_tokens=8) for name in ("json", "tools")]
        answers = [engine.submit(job) for job in jobs]
        assert [future.result(timeout=120).adapter for future in answers] == ["json", "tools"]
        assert engine.stats["max_batch_seen"] == 2 and engine.stats["failed_batches"] == 0
    finally:
        engine.close()


# ---------------------------------------------------------------- files that are not clean UTF-8 TOML
def test_a_non_utf8_byte_names_the_file_and_line(tmp_path):
    """Before: a raw UnicodeDecodeError naming no file."""
    path = tmp_path / "latin.toml"
    path.write_bytes(BASE.encode() + b'# caf\xe9\n[router]\nkind = "none"\n')
    with pytest.raises(CompositionError, match=r"latin\.toml, line 3: byte b'\\xe9' is not UTF-8 text\. Save"):
        load_composition(path)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    """Before: "not valid TOML (Invalid statement (at line 1, column 1))" with no hint."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + (BASE + adapter_table(weight=0.5)).encode())
    composition = load_composition(path)
    assert composition.profile.name == "tiny" and composition.adapters["json"].weight == 0.5


def test_a_precision_that_is_not_a_string_is_a_composition_error(tmp_path):
    """Before: TypeError: unhashable type: 'list'."""
    path = write(tmp_path, BASE + adapter_table(precision='["fp16"]'))
    with pytest.raises(CompositionError, match=r"line 5: adapters\.json\.precision: unknown precision \['fp16'\]"):
        load_composition(path)


def test_a_folder_is_named_as_a_folder_with_the_toml_files_inside(tmp_path):
    """Before: "Composition file DIR does not exist"."""
    write(tmp_path, BASE, "mine.toml")
    with pytest.raises(CompositionError, match=r"is a folder, not a composition file\. It holds mine\.toml\. Name"):
        load_composition(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        CompositionError, match=r"empty is a folder, not a composition file\. Name .*empty/course\.toml"
    ):
        load_composition(tmp_path / "empty")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (BASE.encode() + b"# \xff\n", "line 3: byte b'\\xff' is not UTF-8 text"),
        ((BASE + adapter_table(precision="[1]")).encode(), "adapters.json.precision: unknown precision [1]"),
        (None, "is a folder, not a composition file"),
    ],
    ids=["not-utf8", "list-precision", "folder"],
)
def test_the_command_line_prints_one_error_line_and_exits_2(tmp_path, content, expected):
    path = tmp_path
    if content is not None:
        path = tmp_path / "bad.toml"
        path.write_bytes(content)
    result = serve_with_config(path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
