"""The batched LoRA path gives PEFT's adapter_names answers, follows adapter changes, and refuses what it can't do.

Logits are compared within atol 5e-5 + rtol 1e-5 (fp32): the batched path folds the scaling into B and sums in
another order, so its logits (magnitude up to ~25) differ from PEFT's by a few fp32 ulps — measured up to 1.4e-5,
the same size as merge_and_unload's difference from the unmerged adapter. A wrong adapter, a missed scaling or a
stale stack moves logits by 1e-2 or more; greedy answers must be identical.
"""

from __future__ import annotations

import re

import pytest
import torch

from lessons_lib.batched_lora import BASE, BatchedLora, NotCovered, covers
from lessons_lib.data import DOMAINS, examples
from lessons_lib.models import chat_text, generate
from lessons_lib.paths import TINY_ADAPTERS_DIR

MAX_NEW = 24
NAMES = ["json", BASE, "coding", "mix_js", "support", "json"]


@pytest.fixture(scope="module")
def prompts():
    """Two held-out prompts from each domain."""
    return [ex.prompt for domain in DOMAINS for ex in examples(domain, 2, "heldout")]


@pytest.fixture
def mixed_model(course_model):
    """The course model plus a weighted 'cat' mix of json and support (a bigger-rank LoRA adapter)."""
    from lessons_lib.mixing import create_weighted_adapter

    create_weighted_adapter(course_model, ["json", "support"], [0.7, 0.5], "mix_js", combination_type="cat")
    return course_model


def same_logits(actual, expected):
    torch.testing.assert_close(actual, expected, atol=5e-5, rtol=1e-5)


def encode(tokenizer, prompts):
    return tokenizer(
        [chat_text(tokenizer, p) for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False
    )


def peft_logits(model, batch, names):
    with torch.no_grad():
        return model(**batch, adapter_names=list(names)).logits


def batched_logits(batched, batch, names):
    with torch.no_grad(), batched.rows(names):
        return batched.model(**batch).logits


@pytest.mark.parametrize("masked_max", [-1, 10**6], ids=["gather per row", "mask every row"])
def test_mixed_batch_logits_equal_peft(mixed_model, tokenizer, prompts, monkeypatch, masked_max):
    """Both ways of applying several adapters (chosen by tokens per row), on prompts and on one-token steps."""
    import lessons_lib.batched_lora as module

    monkeypatch.setattr(module, "MASKED_MAX", masked_max)
    batched = BatchedLora(mixed_model)
    assert batched.covers() == (True, "")
    batch = encode(tokenizer, prompts)
    step = {key: value[:, -1:] for key, value in batch.items()}  # one token per row, like a decoding step
    for names in (NAMES, ["coding"] * 6, [BASE] * 6, ["mix_js", BASE] * 3, ["json", "coding", "support"] * 2):
        for inputs in (batch, step):
            same_logits(batched_logits(batched, inputs, names), peft_logits(mixed_model, inputs, names))
    assert batched.builds == 1  # one stack for every batch above
    assert set(batched.adapters) == {"json", "coding", "support", "mix_js"}


def test_greedy_answers_equal_peft(mixed_model, tokenizer, prompts):
    batched = BatchedLora(mixed_model)
    expected = generate(mixed_model, tokenizer, prompts, MAX_NEW, adapter_names=NAMES)
    assert generate(mixed_model, tokenizer, prompts, MAX_NEW, adapter_names=NAMES, batched_lora=batched) == expected
    with batched.rows(NAMES):  # HF generate keeps every row to the end, so one rows() context covers it
        enc = encode(tokenizer, prompts)
        out = mixed_model.generate(**enc, max_new_tokens=MAX_NEW, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    hf = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert hf == expected
    assert len(set(expected)) > 3  # the rows really answer differently


def test_no_peft_adapter_loop_runs_inside_rows(course_model, tokenizer, prompts, monkeypatch):
    from peft.tuners.lora.layer import Linear

    calls = []
    monkeypatch.setattr(Linear, "_mixed_batch_forward", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(Linear, "forward", lambda *a, **k: calls.append(1))
    with BatchedLora(course_model).rows(NAMES[:3] * 2):
        course_model(**encode(tokenizer, prompts))
    assert calls == []


def test_partial_targets_and_different_ranks(course_model, tokenizer, prompts):
    """An adapter on q_proj/v_proj only, rank 4, random B: rows see it only where it exists; ranks are padded."""
    from peft import LoraConfig

    course_model.add_adapter(
        "qv", LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    course_model.eval()
    batched = BatchedLora(course_model)
    names = ["qv", "json", BASE, "qv", "support", "coding"]
    batch = encode(tokenizer, prompts)
    same_logits(batched_logits(batched, batch, names), peft_logits(course_model, batch, names))
    same_logits(batched_logits(batched, batch, ["qv"] * 6), peft_logits(course_model, batch, ["qv"] * 6))


def test_rebuilds_after_load_delete_mix_and_scale(course_model, tokenizer, prompts):
    from lessons_lib.mixing import create_weighted_adapter

    batched = BatchedLora(course_model)
    batch = encode(tokenizer, prompts[:3])
    names = ["json", "coding", "support"]
    before = batched_logits(batched, batch, names)
    assert batched.builds == 1
    course_model.delete_adapter("support")
    with pytest.raises(ValueError, match=r"Unknown adapter\(s\) \['support'\]"):
        batched_logits(batched, batch, names)
    assert batched.builds == 2
    course_model.load_adapter(TINY_ADAPTERS_DIR / "support", adapter_name="support")
    same_logits(batched_logits(batched, batch, names), before)
    create_weighted_adapter(course_model, ["json", "coding"], [1.0, 0.5], "mix_jc", combination_type="cat")
    mix = ["mix_jc", "json", BASE]
    same_logits(batched_logits(batched, batch, mix), peft_logits(course_model, batch, mix))
    builds = batched.builds
    for layer in [m for m in course_model.modules() if hasattr(m, "set_scale") and "json" in m.scaling]:
        layer.set_scale("json", 0.5)
    same_logits(batched_logits(batched, batch, mix), peft_logits(course_model, batch, mix))
    assert batched.builds == builds + 1


def test_weights_changed_behind_autograd_need_refresh(course_model, tokenizer, prompts):
    """hotswap_adapter writes through .data (no version bump): refresh() picks that up."""
    from peft.utils.hotswap import hotswap_adapter

    batched = BatchedLora(course_model)
    batch = encode(tokenizer, prompts[:2])
    batched_logits(batched, batch, ["json", "json"])
    hotswap_adapter(course_model, str(TINY_ADAPTERS_DIR / "coding"), adapter_name="json", torch_device="cpu")
    batched.refresh()
    same_logits(batched_logits(batched, batch, ["json", BASE]), peft_logits(course_model, batch, ["coding", BASE]))
    with torch.no_grad():  # an in-place update autograd sees (an optimizer step) is picked up without refresh
        next(m for m in course_model.modules() if hasattr(m, "lora_B")).lora_B["json"].weight.mul_(3.0)
    same_logits(batched_logits(batched, batch, ["json", BASE]), peft_logits(course_model, batch, ["json", BASE]))


def test_rows_restore_the_forwards_even_on_error(course_model, tokenizer, prompts):
    layers = [m for m in course_model.modules() if hasattr(m, "lora_A") and hasattr(m, "base_layer")]
    marker = lambda *a, **k: "kept"  # noqa: E731 - a forward someone else installed before us
    layers[0].forward = marker
    batched = BatchedLora(course_model)
    with pytest.raises(RuntimeError, match="boom"), batched.rows(["json"]):
        assert all("forward" in layer.__dict__ for layer in layers)
        raise RuntimeError("boom")
    assert layers[0].__dict__["forward"] is marker
    assert all("forward" not in layer.__dict__ for layer in layers[1:])
    del layers[0].forward
    batch = encode(tokenizer, prompts[:2])
    course_model.set_adapter("coding", inference_mode=True)
    with torch.no_grad():
        same_logits(course_model(**batch).logits, peft_logits(course_model, batch, ["coding"] * 2))


def test_bad_use_is_a_clear_error(course_model, tokenizer, prompts):
    batched = BatchedLora(course_model)
    batch = encode(tokenizer, prompts[:2])
    with pytest.raises(ValueError, match=r"Unknown adapter\(s\) \['Json'\]"):
        batched_logits(batched, batch, ["Json", "coding"])
    with pytest.raises(ValueError, match="given 3 adapter names but a forward got 2 rows"):
        batched_logits(batched, batch, ["json", "coding", BASE])
    with pytest.raises(ValueError, match="empty"):
        batched_logits(batched, batch, [])
    with pytest.raises(ValueError, match="Do not pass adapter_names"), torch.no_grad(), batched.rows(["json", "json"]):
        course_model(**batch, adapter_names=["json", "json"])
    with pytest.raises(RuntimeError, match="nested"), batched.rows(["json"]), batched.rows(["json"]):
        pass
    course_model.train()
    with pytest.raises(NotCovered, match="training mode"):
        batched_logits(batched, batch, ["json", "coding"])
    course_model.eval()
    with course_model.disable_adapter(), pytest.raises(NotCovered, match="disabled"):
        batched_logits(batched, batch, ["json", "coding"])
    course_model.base_model.merge_adapter(["json"])
    with pytest.raises(NotCovered, match="merged"):
        batched_logits(batched, batch, ["json", "coding"])


@pytest.mark.parametrize(
    "config, reason",
    [
        (dict(use_dora=True), "LoRA variant .DoraLinearVariant"),
        (dict(lora_bias=True), "lora_bias=True"),
        (dict(target_modules=["embed_tokens"]), r"lora\.layer\.Embedding, not a plain LoRA Linear"),
    ],
    ids=["DoRA", "lora_bias", "Embedding"],
)
def test_falls_back_with_a_reason(course_model, tokenizer, config, reason):
    from peft import LoraConfig

    course_model.add_adapter("odd", LoraConfig(**{"r": 4, "target_modules": ["q_proj"], **config}))
    course_model.eval()
    ok, why = covers(course_model)
    assert not ok and re.search(reason, why), why
    with pytest.raises(NotCovered, match="Use PEFT's adapter_names= path"), BatchedLora(course_model).rows(["json"]):
        pass


def test_modules_to_save_copies_per_row(course_model, tokenizer, prompts):
    """The tools adapter trains its own lm_head (modules_to_save): its rows use that copy, the others the original,
    exactly as each adapter alone computes (PEFT's mixed batch, patched by the server the same way)."""
    from lessons_lib.serve.loading import rows_without_saved_modules

    course_model.load_adapter(TINY_ADAPTERS_DIR / "tools", adapter_name="tools")
    course_model.eval()
    rows_without_saved_modules(course_model)
    batched = BatchedLora(course_model)
    assert batched.covers() == (True, "")
    batch = encode(tokenizer, prompts)
    step = {key: value[:, -1:] for key, value in batch.items()}
    for names in (["tools", "json", BASE, "tools", "coding", "support"], ["tools"] * 6, ["json"] * 6):
        for inputs in (batch, step):
            same_logits(batched_logits(batched, inputs, names), peft_logits(course_model, inputs, names))
    alone = peft_logits(course_model, batch, ["tools"] * 6)
    assert (alone - peft_logits(course_model, batch, ["json"] * 6)).abs().max() > 1e-2  # the copy really differs


def test_a_4bit_base_falls_back(tiny):
    """bitsandbytes' 4-bit layers run on this CPU: PEFT wraps them in its bnb LoRA class, which is not covered."""
    pytest.importorskip("bitsandbytes")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from lessons_lib.models import gpu_like_4bit, model_source

    base = AutoModelForCausalLM.from_pretrained(
        model_source(tiny), device_map={"": "cpu"}, quantization_config=BitsAndBytesConfig(load_in_4bit=True)
    )
    model = PeftModel.from_pretrained(gpu_like_4bit(base), TINY_ADAPTERS_DIR / "json", adapter_name="json").eval()
    ok, why = covers(model)
    assert not ok and "bnb.Linear4bit, not a plain LoRA Linear" in why, why


def test_covers_needs_lora_adapters(base):
    assert covers(base) == (False, "the model is not a PeftModel with adapters loaded")
