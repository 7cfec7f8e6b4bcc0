"""Train requests composed in many voices: copyable arguments, no leftovers, train only; the hand-written dev sets."""

import random
import re

import pytest

from lessons_lib.tools import data, voices
from lessons_lib.tools.data import (
    DEV2_HANDWRITTEN_PATH,
    DEV_HANDWRITTEN_PATH,
    HELDOUT_HEADS,
    read_handwritten,
    tool_examples,
)
from lessons_lib.tools.functions import TOOLS

PLACEHOLDER = re.compile(r"\{(text|w|n|sp|P|V|v|L|T|obj|s|ids|topic|about|how)\}")


@pytest.fixture
def voiced_examples(monkeypatch) -> list:
    """900 train examples with every request composed in many voices."""
    monkeypatch.setattr(data, "VOICED_SHARE", 1.0)
    return tool_examples(900, "train", seed=3)


def numbers_of(ex) -> list[str]:
    """The numbers a request must state: width and indent, or the rules' limits."""
    if ex.tool == "text_formatter":
        return [str(ex.arguments["width"]), str(ex.arguments["indent"])]
    if ex.tool == "content_validator":
        return [rule.split(":")[1] for rule in ex.arguments["rules"] if ":" in rule]
    return []


def test_voiced_requests_hold_their_arguments_verbatim_and_no_placeholder(voiced_examples):
    examples = voiced_examples
    assert {(ex.tool, ex.lang) for ex in examples} == {(t, lang) for t in TOOLS for lang in ("en", "ru")}
    for ex in examples:
        span = ex.arguments.get("text", ex.arguments.get("topic"))
        assert span in ex.request, ex
        assert not PLACEHOLDER.search(ex.request), ex.request
        for number in numbers_of(ex):
            assert re.search(rf"(?<!\d){number}(?!\d)", ex.request) or (
                number == "0" and ex.tool == "text_formatter"
            ), ex
        assert TOOLS[ex.tool](**ex.arguments) == ex.result


def test_voices_vary_the_layout_and_the_numbers_go_past_the_templates_ranges(voiced_examples):
    examples = voiced_examples
    requests = [ex.request for ex in examples]
    assert len(set(requests)) == len(requests)
    formatter = [ex for ex in examples if ex.tool == "text_formatter"]
    assert any(ex.request.startswith(ex.arguments["text"]) for ex in formatter)  # the text first
    assert any(ex.request.endswith(ex.arguments["text"]) for ex in formatter)  # the text last
    assert max(ex.arguments["width"] for ex in formatter) > 40 and 8 in {ex.arguments["indent"] for ex in formatter}
    assert any(ex.arguments["text"].count(". ") for ex in formatter)  # two sentences, the full stops inside
    zero = [ex for ex in formatter if ex.arguments["indent"] == 0 and ex.lang == "en"]
    assert any(re.search(r"no indent|without indentation", ex.request) for ex in zero)


def test_voiced_requests_start_like_no_heldout_phrasing_and_dev_and_heldout_draw_none(voiced_examples, monkeypatch):
    for ex in voiced_examples:
        assert not ex.request.lower().startswith(HELDOUT_HEADS[ex.lang]), ex.request
    with_voices = {split: tool_examples(90, split) for split in ("dev", "heldout", "train")}
    monkeypatch.setattr(data, "VOICED_SHARE", 0.0)
    without = {split: tool_examples(90, split) for split in ("dev", "heldout", "train")}
    assert with_voices["dev"] == without["dev"] and with_voices["heldout"] == without["heldout"]
    assert with_voices["train"] != without["train"]


def test_russian_questions_ask_with_an_infinitive():
    rng = random.Random(0)
    fill = {"name": "Лина Корова", "town": "Мирск", "item": "чайник"}
    asked = [voices.template_request(rng, "ru", "email", fill)[0] for _ in range(400)]
    questions = [r for r in asked if r.startswith("Можешь ")]
    assert questions and all(r.split()[1].endswith("ть") and r.endswith("?") for r in questions), questions[:3]
    assert (
        voices._spaces("ru", 1) == "пробел"
        and voices._spaces("ru", 3) == "пробела"
        and voices._spaces("ru", 8) == "пробелов"
    )
    assert voices._spaces("en", 1) == "space" and voices._spaces("en", 4) == "spaces"


@pytest.mark.parametrize("path, per_group", [(DEV_HANDWRITTEN_PATH, 15), (DEV2_HANDWRITTEN_PATH, 8)])
def test_dev_handwritten_sets_are_natural_copyable_and_apart_from_heldout(path, per_group):
    dev, held = read_handwritten(path), read_handwritten()
    counts = {(ex.tool, ex.lang): 0 for ex in dev}
    for ex in dev:
        counts[ex.tool, ex.lang] += 1
    assert len(counts) == 6 and set(counts.values()) == {per_group}, counts
    assert not {ex.request for ex in dev} & {ex.request for ex in held}
    assert not {ex.request for ex in dev} & {ex.request for ex in tool_examples(600, "train")}
    for ex in dev:
        span = ex.arguments.get("text", ex.arguments.get("topic"))
        assert span in ex.request, ex  # quoting can reach every gold argument
        assert ex.tool != "template_generator" or ex.arguments["language"] == ex.lang


def test_the_two_dev_sets_share_no_request():
    first, second = read_handwritten(DEV_HANDWRITTEN_PATH), read_handwritten(DEV2_HANDWRITTEN_PATH)
    assert not {ex.request for ex in first} & {ex.request for ex in second}


SET_SIZES = {"dev-handwritten": 90, "dev2-handwritten": 48, "handwritten": 60}


@pytest.mark.parametrize("data_name", sorted(SET_SIZES))
def test_evaluate_reads_every_handwritten_set_by_name(data_name):
    from lessons_lib.tools.__main__ import requests_for

    assert len(requests_for(data_name, None)) == SET_SIZES[data_name]


def test_voiced_lines_keep_room_past_the_indent_and_every_shipped_row_fits_the_tiny_context(
    voiced_examples, monkeypatch
):
    from lessons_lib.models import load_tokenizer
    from lessons_lib.profiles import PROFILES
    from lessons_lib.tools.adapter import ANSWER_EVERY, TRAIN_REQUESTS, rendered_length
    from lessons_lib.tools.data import MIN_LINE, tool_sft_rows

    formatter = [ex for ex in voiced_examples if ex.tool == "text_formatter"]
    assert min(ex.arguments["width"] - ex.arguments["indent"] for ex in formatter) >= MIN_LINE
    monkeypatch.undo()  # the shipped recipe's own share of voiced requests
    tok = load_tokenizer(PROFILES["tiny"])
    rows = tool_sft_rows(TRAIN_REQUESTS, answer_every=ANSWER_EVERY, tokenizer=tok)
    longest = max(rendered_length(row, tok) for row in rows)
    assert longest <= tok.model_max_length == 512, longest  # measured 448: no row runs past the model's positions
