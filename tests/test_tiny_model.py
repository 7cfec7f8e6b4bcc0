"""The shipped tiny course model: loads with plain transformers, small, exact tokenizer, sane chat template."""

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lessons_lib import models
from lessons_lib.manifest import TINY_MODEL_ID, base_model_id
from lessons_lib.paths import TINY_MODEL_DIR
from lessons_lib.tiny import corpus

CYRILLIC = "".join(map(chr, range(0x410, 0x450))) + "ёЁ"
TEXT = st.text(alphabet=string.printable + CYRILLIC + "«»—№", max_size=200)


def test_plain_transformers_load():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR)
    assert model.config.model_type == "llama"
    assert base_model_id(model) == TINY_MODEL_ID
    assert tok.pad_token_id != tok.eos_token_id and tok.eos_token == "<|end|>"


def test_fits_the_size_budget():
    total = sum(p.stat().st_size for p in TINY_MODEL_DIR.rglob("*") if p.is_file())
    assert total <= 20 * 1024 * 1024, f"{total / 1e6:.1f} MB"


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_tokenizer_round_trips_exactly(tokenizer, text):
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_round_trip_examples(tokenizer):
    for text in [
        "Hello, Anna Smith! Order 48213.",
        "Здравствуйте, Анна Петрова! Заказ №48213 — «ok».",
        "def f(x):\n    return [x * 3 for x in x]\n\n\tend",
        "  leading and trailing  ",
    ]:
        assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_chat_template_is_prefix_stable_and_ends_with_eos(tokenizer):
    chat = [{"role": "user", "content": "Привет"}, {"role": "assistant", "content": "Hi!"}]
    prompt = tokenizer.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(chat, tokenize=False)
    assert full.startswith(prompt) and full.endswith(tokenizer.eos_token)


def test_pretraining_chat_documents_use_the_template_format(tokenizer):
    import random

    doc = corpus.chat(random.Random(1), "en")
    user = doc.split("<|user|>\n")[1].split("<|end|>")[0]
    answer = doc.split("<|assistant|>\n")[1].split("<|end|>")[0]
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], tokenize=False
    )
    assert rendered == doc


def test_base_model_chats_but_has_no_domain_skill(tokenizer, base):
    answer = models.generate(base, tokenizer, "Say something nice about Paris.", max_new_tokens=40)
    assert answer.strip(), "the base model should answer small talk"


def test_missing_asset_folder_says_what_to_do(monkeypatch, tmp_path, tiny):
    monkeypatch.setattr(models, "TINY_MODEL_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"tiny course model not found.*lessons_lib.tiny build"):
        models.load_base(tiny)
