"""Tool-use data, the shipped tool adapter (held-out rates vs base), LangChain tools and the style toggle."""

import json

import pytest

from lessons_lib.manifest import Manifest
from lessons_lib.paths import TINY_ADAPTERS_DIR
from lessons_lib.tools.data import (
    COMPOSED_VERBS,
    DEV_PHRASINGS,
    EXTRA_REQUESTS,
    FORMATTER_REQUESTS,
    TEMPLATE_REQUESTS,
    VALIDATOR_REQUESTS,
    call_rows,
    composed_phrasing,
    read_handwritten,
    tool_examples,
    tool_sft_rows,
)
from lessons_lib.tools.functions import TOOLS

TOOLS_DIR = TINY_ADAPTERS_DIR / "tools"


def test_examples_cover_every_tool_and_both_languages_and_are_reproducible():
    items = tool_examples(60, "train")
    assert {ex.tool for ex in items} == set(TOOLS) and {ex.lang for ex in items} == {"en", "ru"}
    assert items == tool_examples(60, "train") and items != tool_examples(60, "train", seed=1)
    for ex in items:  # gold calls really produce the recorded results
        assert TOOLS[ex.tool](**ex.arguments) == ex.result


def test_train_and_heldout_share_no_request_phrasing_or_request():
    train, held = tool_examples(300, "train"), tool_examples(300, "heldout")
    assert not {ex.request for ex in train} & {ex.request for ex in held}
    for pool in (FORMATTER_REQUESTS, TEMPLATE_REQUESTS, VALIDATOR_REQUESTS):
        for lang, phrasings in pool.items():
            heads = {p.split("{")[0] for p in phrasings}
            used_train = {h for h in heads if any(ex.request.startswith(h) for ex in train if ex.lang == lang)}
            used_held = {h for h in heads if any(ex.request.startswith(h) for ex in held if ex.lang == lang)}
            assert not used_train & used_held, (lang, used_train & used_held)


def test_dev_split_has_phrasings_of_its_own():
    train, dev, held = (tool_examples(300, split) for split in ("train", "dev", "heldout"))
    dev_requests = {ex.request for ex in dev}
    assert not dev_requests & {ex.request for ex in train} and not dev_requests & {ex.request for ex in held}
    for by_lang in EXTRA_REQUESTS.values():
        for lang, phrasings in by_lang.items():
            for head in (p.split("{")[0] for p in phrasings[-DEV_PHRASINGS:]):
                assert any(ex.request.startswith(head) for ex in dev if ex.lang == lang), head
                assert not any(ex.request.startswith(head) for ex in train + held if ex.lang == lang), head
    from lessons_lib import data as course_data

    known = set(course_data.EN_CITIES + course_data.RU_CITIES)
    assert not any(town in ex.request for ex in dev for town in known)  # dev names and towns are made up
    with pytest.raises(ValueError, match="Unknown split 'valid'"):
        tool_examples(3, "valid")


def test_composed_train_phrasings_never_equal_a_heldout_phrasing():
    import random

    rng = random.Random(0)
    for tool, table in (("text_formatter", FORMATTER_REQUESTS), ("content_validator", VALIDATOR_REQUESTS)):
        for lang in ("en", "ru"):
            heldout = {p.lower() for p in table[lang][1::2]}
            for _ in range(300):
                phrase = composed_phrasing(rng, tool, lang)
                assert phrase.lower() not in heldout and phrase[0].isupper() and phrase.endswith("{text}")
    assert set(COMPOSED_VERBS) == {"text_formatter", "content_validator"}


def test_handwritten_requests_parse_and_cover_every_tool_in_both_languages():
    items = read_handwritten()
    counts = {
        (lang, tool): sum(ex.lang == lang and ex.tool == tool for ex in items)
        for lang in ("en", "ru")
        for tool in TOOLS
    }
    assert len(items) >= 60 and min(counts.values()) >= 10, counts
    assert not {ex.request for ex in items} & {ex.request for ex in tool_examples(300, "train")}
    for ex in items:
        assert TOOLS[ex.tool](**ex.arguments) == ex.result and ex.final


@pytest.mark.parametrize(
    "line, fragment",
    [
        ('{"lang": "en", "request": "x"', "is not valid JSON"),
        ('{"lang": "de", "request": "x", "tool": "text_formatter", "arguments": {}}', '"lang" (en or ru)'),
        ('{"lang": "en", "request": "x", "tool": "spellcheck", "arguments": {}}', "known tools: text_formatter"),
        (
            '{"lang": "en", "request": "x", "tool": "text_formatter", "arguments": {"text": "a", "width": 0}}',
            "the gold call fails: width",
        ),
    ],
)
def test_handwritten_file_errors_name_the_line(tmp_path, line, fragment):
    path = tmp_path / "requests.jsonl"
    good = '{"lang": "en", "request": "Wrap: a b", "tool": "text_formatter", "arguments": {"text": "a b", "width": 5}}'
    path.write_text(good + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="requests.jsonl:2") as err:
        read_handwritten(path)
    assert fragment in str(err.value)
    with pytest.raises(FileNotFoundError, match="one"):
        read_handwritten(tmp_path / "missing.jsonl")


def test_call_rows_are_the_mix_rows_that_call_the_chosen_tools():
    mix = tool_sft_rows(30)
    calls = [row for row in mix if row["prompt"][-1]["role"] == "user"]  # answer rows end with the tool's result
    validator = call_rows(30, ["content_validator"])
    assert len(validator) == 10 and all(
        json.loads(r["completion"][0]["content"])["tool"] == "content_validator" for r in validator
    )
    assert validator == [r for r in calls if r in validator] and call_rows(30, TOOLS) == calls
    with pytest.raises(ValueError, match="Unknown tools \\['validator'\\]: choose among"):
        call_rows(30, ["validator"])


@pytest.mark.slow
def test_a_warm_up_starts_the_mix_from_its_weights_and_changes_nothing_when_off(tmp_path):
    from safetensors.torch import load_file

    from lessons_lib.profiles import PROFILES
    from lessons_lib.tools.adapter import WARM_UP, train_tool_adapter

    def trained(folder, warm_steps):
        result = train_tool_adapter(
            PROFILES["tiny"],
            tmp_path / folder,
            n_requests=12,
            max_steps=2,
            warm_steps=warm_steps,
            per_device_train_batch_size=2,
            log=lambda *_: None,
        )
        assert result.steps == 2
        return load_file(str(result.adapter_dir / "adapter_model.safetensors"))

    plain, again, warmed = trained("plain", 0), trained("again", 0), trained("warmed", 2)
    assert (
        not (tmp_path / "plain" / WARM_UP).exists()
        and (tmp_path / "warmed" / WARM_UP / "adapter_config.json").is_file()
    )
    assert plain.keys() == warmed.keys() and all(plain[k].equal(again[k]) for k in plain)  # deterministic
    assert any(not plain[k].equal(warmed[k]) for k in plain)  # the mix started from the warm-up, not from scratch


def test_sft_rows_render_exactly_like_tool_calls(tokenizer):
    rows = tool_sft_rows(4, "train")
    ex = tool_examples(4, "train")[0]
    call_row, answer_row = rows[0], rows[1]
    tools = json.loads(call_row["tools"])
    as_rows = tokenizer.apply_chat_template(
        answer_row["prompt"] + answer_row["completion"], tools=tools, tokenize=False
    )
    as_calls = tokenizer.apply_chat_template(ex.messages(), tools=tools, tokenize=False)
    assert as_rows == as_calls
    prompt = tokenizer.apply_chat_template(call_row["prompt"], tools=tools, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(call_row["prompt"] + call_row["completion"], tools=tools, tokenize=False)
    assert full.startswith(prompt) and full.endswith("<|end|>")  # prefix-stable: loss on the call only


def test_shipped_tool_adapter_is_a_standard_peft_folder_with_manifest():
    assert {"adapter_config.json", "adapter_model.safetensors", "manifest.json"} <= {
        p.name for p in TOOLS_DIR.iterdir()
    }
    manifest = Manifest.load(TOOLS_DIR)
    assert manifest.name == "tools" and manifest.profile == "tiny"
    # Issue 7 asks for >= 0.9. On the copying base (issue 16), trained with natural phrasings and many voices too
    # (NATURAL_SHARE, VOICED_SHARE), free decoding: 0.85 correct tool / 0.85 valid args on held-out, 0.78 / 0.80
    # hand-written. Schema-constrained (tool_choice="required"): 1.00 / 1.00 held-out, 0.97 / 1.00 hand-written (0.87
    # before the voices, 0.85 before the natural phrasings; valid 0.98 before the grammar kept the indent below the
    # width); the base then picks the right tool 0.23 held-out, 0.32 hand-written (chance 0.33). The recipe is chosen
    # on the hand-written dev requests: right tool 0.74 there.
    metrics = manifest.metrics
    assert metrics["heldout_correct_tool"] >= 0.8 and metrics["heldout_valid_args"] >= 0.8, metrics
    assert metrics["handwritten_correct_tool"] >= 0.6 and metrics["handwritten_base_correct_tool"] <= 0.1, metrics
    assert metrics["dev_correct_tool"] >= 0.9  # the split the recipe was chosen on
    assert metrics["heldout_required_correct_tool"] >= 0.9 and metrics["heldout_required_valid_args"] >= 0.9, metrics
    assert metrics["heldout_required_base_correct_tool"] <= 0.6, metrics
    assert metrics["handwritten_required_correct_tool"] >= 0.9, metrics  # issue 16's target
    assert metrics["handwritten_required_valid_args"] == metrics["heldout_required_valid_args"] == 1.0, metrics
    assert metrics["dev_handwritten_n"] == 90 and metrics["dev_handwritten_quoted_correct_tool"] >= 0.7, metrics


@pytest.fixture(scope="module")
def heldout_reports():
    from peft import PeftModel

    from lessons_lib.models import load_base, load_tokenizer
    from lessons_lib.profiles import PROFILES
    from lessons_lib.tools.evaluate import evaluate_tools

    tiny = PROFILES["tiny"]
    model = PeftModel.from_pretrained(load_base(tiny), TOOLS_DIR, adapter_name="tools")
    tok = load_tokenizer(tiny)
    reports, raw = evaluate_tools(model, tok, ["__base__", "tools"], n=30)
    required, required_raw = evaluate_tools(model, tok, ["__base__", "tools"], n=30, turns=1, tool_choice="required")
    return {r.label: r for r in reports + required}, raw | required_raw


def test_adapter_calls_the_right_tool_with_valid_arguments_and_the_base_does_not(heldout_reports):
    reports, _ = heldout_reports
    tools, base = reports["tools"], reports["base"]
    assert tools.n == base.n == 30
    assert tools.correct_tool >= 0.75 and tools.valid_args >= 0.75, tools  # the manifest: 0.85 / 0.85 on 60
    assert base.correct_tool <= 0.1 and base.valid_args <= 0.1, base
    assert tools.final_correct >= base.final_correct


def test_schema_constrained_calls_always_validate_and_the_adapter_still_chooses(heldout_reports):
    reports, raw = heldout_reports
    tools, base = reports["tools · schema-constrained"], reports["base · schema-constrained"]
    # The grammar admits only calls that validate and that the tool takes: the schemas' bounds, and "indent below
    # width" (functions.BELOW), which spans two arguments and so is in no schema.
    assert tools.valid_args == base.valid_args == 1.0
    assert tools.correct_tool >= 0.9, tools  # the manifest: 1.00 on 60 (free decoding: 0.85)
    assert base.correct_tool <= 0.6, base  # the form comes from the grammar, the choice from the adapter
    assert all(item["call"].startswith('{"tool": ') for item in raw["base · schema-constrained"])


def test_scores_are_consistent_with_raw_replies(heldout_reports):
    from lessons_lib.tools.calls import parse_call

    _, raw = heldout_reports
    for item in raw["tools"]:
        score = item["score"]
        assert not score.exact_args or score.valid_args
        assert not score.final_correct or item["final"] is not None
        if score.correct_tool:
            assert parse_call(item["call"]).name in TOOLS


def test_evaluate_command_prints_base_and_adapter_rows(tmp_path, capsys):
    from lessons_lib.tools.__main__ import main

    path = tmp_path / "mine.jsonl"
    path.write_text(
        '{"lang": "en", "request": "Is this an e-mail? a@b.org", "tool": "content_validator", '
        '"arguments": {"text": "a@b.org", "rules": ["is_email"]}}\n',
        encoding="utf-8",
    )
    assert main(["evaluate", "--data", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: 1 requests" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["base"], ["tools"])]
    assert [r[0] for r in rows] == ["base", "tools"] and all(r[1] == "1" for r in rows)
    assert main(["evaluate", "--data", str(path), "--tool-choice", "required"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if "schema-constrained" in line]
    assert "tool_choice=required" in out and [r[:4] for r in rows] == [
        ["base", "·", "schema-constrained", "1"],
        ["tools", "·", "schema-constrained", "1"],
    ]
    assert rows[1][5] == "1.0"  # valid args: whatever the tiny adapter writes, the grammar keeps it valid
    assert main(["evaluate", "--data", str(path), "--tool-choice", "required", "--quote"]) == 0
    out = capsys.readouterr().out
    assert "tool_choice=required, quote" in out
    assert [line.split()[0] for line in out.splitlines() if "· quoting" in line] == ["base", "tools"]
    with pytest.raises(SystemExit):
        main(["evaluate", "--data", str(path), "--quote"])
    assert "use it with: evaluate --tool-choice required" in capsys.readouterr().err


def test_langchain_tools_share_schema_and_report_errors():
    pytest.importorskip("langchain_core", reason="langchain-core is an optional extra")
    from lessons_lib.tools.langchain import langchain_tools

    tools = {t.name: t for t in langchain_tools()}
    assert list(tools) == list(TOOLS)
    assert tools["template_generator"].args["template_type"]["enum"] == [
        "instruction",
        "email",
        "bug_report",
        "meeting_notes",
    ]
    assert tools["text_formatter"].args["width"]["description"].startswith("The longest allowed line")
    assert tools["text_formatter"].invoke({"text": "a b c d", "width": 3}) == "a b\nc d"
    refused = tools["text_formatter"].invoke({"text": "a", "width": 0})
    assert refused.startswith("error: width must be 1 or more characters"), refused
    answer = tools["template_generator"].invoke({"template_type": "poem", "topic": "x"})
    assert answer.startswith("error: bad arguments: template_type: Input should be 'instruction'")


def test_style_score_counts_the_five_moves():
    from lessons_lib.tools.prompts import moves_present, style_score, system_prompt

    assert style_score("Nothing here.") == 0.0
    rich = (
        "Anchor: you already know a plug. In short, the idea: a small file. Step one: load it. "
        "Now you can switch. A common mistake is to retrain everything instead."
    )
    assert all(moves_present(rich).values()) and style_score(rich) == 1.0
    for lang in ("en", "ru"):
        assert (
            len([line for line in system_prompt(lang).splitlines() if line[:2] in {"1.", "2.", "3.", "4.", "5."}]) == 5
        )
    with pytest.raises(ValueError, match="use 'en' or 'ru'"):
        system_prompt("de")


@pytest.mark.widgets
def test_style_toggle_switches_the_system_prompt_and_compares():
    from lessons_lib.tools.playground import DESIGNER, PLAIN, StyleToggle

    seen = []

    def fake(question, system):
        seen.append(system)
        return "Anchor: you already know X. Step one." if system else "plain answer"

    toggle = StyleToggle(fake, question="What is LoRA?")
    toggle.ask_button.click()
    assert seen == [None] and toggle.last == {PLAIN: "plain answer"} and "style score 0.0" in toggle.status.value
    toggle.style_choice.value = DESIGNER
    toggle.ask_button.click()
    assert seen[-1].startswith("You are a cognitive designer") and "style score 0.4" in toggle.status.value
    toggle.compare_button.click()
    assert set(toggle.last) == {PLAIN, DESIGNER} and toggle.output.value.count("<td") == 2
    toggle.question.value = "  "
    assert toggle.ask() == {} and toggle.status.value == "Type a question first."


@pytest.mark.parametrize("name", ["tiny", "t4-rehearsal", "7b-rehearsal"])
def test_training_length_cuts_no_row_and_keeps_the_tiny_recipe(name):
    from lessons_lib.models import load_tokenizer
    from lessons_lib.profiles import PROFILES
    from lessons_lib.tools.adapter import MAX_LENGTH, rendered_length, training_length
    from lessons_lib.train import DataError, check_lengths

    profile = PROFILES[name]
    tok = load_tokenizer(profile)
    rows = tool_sft_rows(30, answer_every=2, tokenizer=tok)
    length = training_length(rows, tok, profile)
    assert length >= max(rendered_length(row, tok) for row in rows) and length >= profile.max_length
    check_lengths(rows, tok, length)  # the trainer's own check passes
    if name == "tiny":
        assert length >= MAX_LENGTH == 320  # the recipe's floor; rows with made-up names may run longer
    else:  # tools make these rows longer than the GPU profile's max_length: it would have cut them
        assert length > profile.max_length
    if name == "7b-rehearsal":  # Mistral renders the tools from the row's `tools` column: the check counts them
        with pytest.raises(DataError, match="the prompt is"):
            check_lengths(rows, tok, 512)


def test_tool_recipe_is_the_shipped_one_on_tiny_and_the_profiles_elsewhere():
    from lessons_lib.profiles import PROFILES
    from lessons_lib.tools.adapter import BATCH_SIZE, LEARNING_RATE, MODULES_TO_SAVE, RANK, tool_recipe

    tiny = tool_recipe(PROFILES["tiny"])
    assert (tiny.rank, tiny.alpha, tiny.learning_rate, tiny.batch_size, tiny.grad_accum, tiny.modules_to_save) == (
        RANK,
        2 * RANK,
        LEARNING_RATE,
        BATCH_SIZE,
        1,
        MODULES_TO_SAVE,
    )
    for gpu in ("t4", "7b"):
        real, rehearsal = tool_recipe(PROFILES[gpu]), tool_recipe(PROFILES[f"{gpu}-rehearsal"])
        p = PROFILES[gpu]
        assert (real.rank, real.alpha, real.learning_rate, real.batch_size, real.grad_accum, real.modules_to_save) == (
            p.lora_r,
            p.lora_alpha,
            p.learning_rate,
            p.batch_size,
            p.grad_accum,
            None,
        )
        # one micro-batch per step on a CPU, of the rehearsal's two rows (profiles.REHEARSAL_SIZES)
        assert rehearsal == type(real)(**{**real.__dict__, "grad_accum": 1, "batch_size": 2})


def test_score_problems_catch_a_score_that_contradicts_its_reply():
    from dataclasses import replace

    from lessons_lib.tools.calls import call_text
    from lessons_lib.tools.evaluate import CallScore, score_problems

    ex = tool_examples(1, "heldout")[0]
    good = {
        "request": ex.request,
        "call": call_text(ex.tool, ex.arguments),
        "final": None,
        "score": CallScore(True, True, True, False, "ok"),
    }
    assert score_problems([good], [ex]) == []
    wrong = {**good, "score": replace(good["score"], correct_tool=False)}
    broken = {**good, "call": '{"tool": ', "score": CallScore(False, True, False, False)}
    assert len(score_problems([wrong, broken], [ex, ex])) == 2
    assert score_problems([good], [ex, ex]) == ["1 scored replies for 2 requests"]


def test_an_answer_delivers_the_result_it_got_in_the_requests_language():
    from lessons_lib.tools.evaluate import delivers

    wrapped = "Rain is\nexpected."
    assert delivers("en", "text_formatter", wrapped, "Here is the formatted text:\nRain is\nexpected.")
    assert not delivers("en", "text_formatter", wrapped, "Here is the formatted text:\nRain is\nexpectd.")
    verdict = {"ok": False, "passed": ["non_empty"], "failed": ["is_email"]}
    assert delivers("ru", "content_validator", verdict, "Не пройдены проверки: is_email.")
    assert not delivers("ru", "content_validator", verdict, "Failed checks: is_email.")  # English to a Russian request
    assert not delivers("en", "content_validator", verdict, "All checks passed: non_empty.")
    assert not delivers("en", "text_formatter", None, "anything")  # no result, nothing delivered
    both = {"ok": True, "passed": ["non_empty", "min_words:4"], "failed": []}
    assert delivers("en", "content_validator", both, "All checks passed: min_words:4, non_empty.")  # any order
    assert not delivers("en", "content_validator", both, "All checks passed: min_words:4.")  # one rule missing
    assert not delivers("en", "content_validator", both, "All checks passed: non_empty, non_empty.")


def test_exact_arguments_ignore_only_the_order_of_rules_and_omitted_defaults():
    from lessons_lib.tools.data import ToolExample
    from lessons_lib.tools.evaluate import score_call
    from lessons_lib.tools.functions import same_arguments
    from lessons_lib.tools.schemas import schemas_by_name, tool_schemas

    want = {"text": "The build is green.", "rules": ["no_trailing_spaces", "min_words:3"]}
    assert same_arguments("content_validator", {**want, "rules": ["min_words:3", "no_trailing_spaces"]}, want)
    assert not same_arguments("content_validator", {**want, "rules": ["min_words:3"]}, want)
    assert not same_arguments("content_validator", {**want, "rules": ["min_words:3"] * 2}, want)
    assert not same_arguments("content_validator", {**want, "text": "The build is green"}, want)
    assert not same_arguments("text_formatter", {"text": "b a", "width": 9}, {"text": "a b", "width": 9})
    # an omitted argument is its default (indent 0, language "en"); a default that differs from the gold is wrong
    assert same_arguments("text_formatter", {"text": "a b", "width": 9}, {"text": "a b", "width": 9, "indent": 0})
    assert not same_arguments("text_formatter", {"text": "a b", "width": 9}, {"text": "a b", "width": 9, "indent": 2})
    topic = {"template_type": "email", "topic": "refund"}
    assert same_arguments("template_generator", topic, {**topic, "language": "en"})
    assert not same_arguments("template_generator", topic, {**topic, "language": "ru"})
    assert not same_arguments("text_formatter", {"text": "a b", "size": 9}, {"text": "a b"})  # an unknown argument
    ex = ToolExample("en", "Check: The build is green.", "content_validator", want, None, "")
    reordered = '{"tool": "content_validator", "arguments": {"text": "The build is green.", "rules": ["min_words:3", '
    score, call, result = score_call(ex, reordered + '"no_trailing_spaces"]}}', schemas_by_name(tool_schemas()))
    assert score.exact_args and call.arguments["rules"][0] == "min_words:3" and result["ok"]


@pytest.mark.slow
@pytest.mark.parametrize("gpu", ["t4", "7b"])
def test_quick_train_tools_runs_the_gpu_path_on_a_rehearsal(tmp_path, monkeypatch, gpu):
    """The fallback a notebook uses when no tool adapter exists: 4-bit, fp16, the real template's rows."""
    from peft import PeftModel

    from lessons_lib import adapters
    from lessons_lib.models import load_base, load_tokenizer
    from lessons_lib.profiles import PROFILES, with_overrides
    from lessons_lib.tools import ModelChat, run_tool_loop

    monkeypatch.setattr(adapters, "DRIVE_MOUNT", tmp_path / "not-mounted")
    # one optimizer step on one row: the rehearsal's code path (4-bit, fp16 AMP, checkpointing) without its 16 rows a
    # step (fp16 matmuls are slow on a CPU, and tool rows are long)
    profile = with_overrides(PROFILES[f"{gpu}-rehearsal"], batch_size=1, grad_accum=1)
    said = []
    found = adapters.quick_train("tools", profile, tmp_path, steps=1, log=said.append)
    assert found.source == "trained" and (found.folder / "manifest.json").is_file(), said
    model = PeftModel.from_pretrained(load_base(profile, log=said.append), found.folder, adapter_name="tools")
    assert type(model.get_base_model().model.layers[0].self_attn.q_proj.base_layer).__name__ == "Linear4bit"
    chat = ModelChat(model, load_tokenizer(profile), adapter="tools", max_new_tokens=4)
    result = run_tool_loop(chat, "Hi", max_steps=1)
    assert result.events  # rendered with the real template's rules and generated
