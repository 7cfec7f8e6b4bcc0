"""One base, several adapters: mixed batches equal single-adapter runs; wrong names fail clearly; pitfalls are real."""

from __future__ import annotations

import pytest

from lessons_lib.compat import AdapterNameError, load_adapter_checked
from lessons_lib.data import DOMAINS, examples
from lessons_lib.models import generate
from lessons_lib.paths import TINY_ADAPTERS_DIR

MAX_NEW = 48


@pytest.fixture(scope="module")
def prompts():
    """Two held-out prompts from each domain."""
    return [ex.prompt for domain in DOMAINS for ex in examples(domain, 2, "heldout")]


def single_adapter_outputs(model, tokenizer, prompts, name):
    """The whole prompt list through one adapter chosen with set_adapter (or the base via disable_adapter)."""
    if name == "__base__":
        with model.disable_adapter():
            return generate(model, tokenizer, prompts, MAX_NEW)
    model.set_adapter(name, inference_mode=True)
    return generate(model, tokenizer, prompts, MAX_NEW)


def test_mixed_batch_equals_single_adapter_outputs_exactly(course_model, tokenizer, prompts):
    names = ["json", "coding", "support", "__base__", "coding", "json"]
    mixed = generate(course_model, tokenizer, prompts, MAX_NEW, adapter_names=names)
    singles = {name: single_adapter_outputs(course_model, tokenizer, prompts, name) for name in set(names)}
    assert mixed == [singles[name][i] for i, name in enumerate(names)]
    assert len({singles[n][0] for n in singles}) > 1, "adapters should answer the same prompt differently"


def test_set_adapter_changes_active_adapter_and_output(course_model, tokenizer, prompts):
    outputs = {}
    for name in DOMAINS:
        course_model.set_adapter(name, inference_mode=True)
        assert course_model.active_adapter == name
        outputs[name] = generate(course_model, tokenizer, prompts[0], MAX_NEW)
    assert len(set(outputs.values())) == len(DOMAINS)


def test_unknown_adapter_name_is_a_clear_error_and_nothing_changes(course_model, tokenizer, prompts):
    before = generate(course_model, tokenizer, prompts[:2], MAX_NEW, adapter_names=["json", "coding"])
    with pytest.raises(ValueError, match="Json not found"):
        course_model.set_adapter("Json")
    with pytest.raises(ValueError, match="Json"):
        generate(course_model, tokenizer, prompts[:2], MAX_NEW, adapter_names=["Json", "coding"])
    assert course_model.active_adapter == "json"
    assert generate(course_model, tokenizer, prompts[:2], MAX_NEW, adapter_names=["json", "coding"]) == before


def test_path_traversal_in_a_name_is_refused_before_loading(course_model, tokenizer, prompts):
    before = generate(course_model, tokenizer, prompts[:1], MAX_NEW)
    for name in ("../coding", "adapters/coding", "..\\coding"):
        with pytest.raises(AdapterNameError, match="not a path"):
            load_adapter_checked(course_model, TINY_ADAPTERS_DIR / "coding", name)
    assert list(course_model.peft_config) == ["json", "coding", "support"]
    assert generate(course_model, tokenizer, prompts[:1], MAX_NEW) == before


def test_add_adapter_instead_of_load_changes_nothing(course_model, tokenizer, prompts):
    """The course's pitfall: a freshly *added* LoRA has B = 0, so activating it gives the base output."""
    from peft import LoraConfig

    with course_model.disable_adapter():
        base_out = generate(course_model, tokenizer, prompts[:3], MAX_NEW)
    course_model.add_adapter("fresh", LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    course_model.set_adapter("fresh", inference_mode=True)
    assert generate(course_model, tokenizer, prompts[:3], MAX_NEW) == base_out
    course_model.set_adapter("json", inference_mode=True)
    assert generate(course_model, tokenizer, prompts[:3], MAX_NEW) != base_out


def test_injection_is_in_place_and_disable_adapter_restores_the_base(tiny, tokenizer, prompts):
    from peft import PeftModel

    from lessons_lib.models import load_base

    base = load_base(tiny)
    original = generate(base, tokenizer, prompts[:3], MAX_NEW)
    model = PeftModel.from_pretrained(base, TINY_ADAPTERS_DIR / "json", adapter_name="json")
    assert generate(base, tokenizer, prompts[:3], MAX_NEW) == generate(model, tokenizer, prompts[:3], MAX_NEW)
    assert generate(base, tokenizer, prompts[:3], MAX_NEW) != original
    with model.disable_adapter():
        assert generate(model, tokenizer, prompts[:3], MAX_NEW) == original


def test_delete_adapter_frees_its_weights_and_keeps_the_others(course_model, tokenizer, prompts):
    before = generate(course_model, tokenizer, prompts[:2], MAX_NEW, adapter_names=["json", "coding"])
    count = lambda name: sum(p.numel() for n, p in course_model.named_parameters() if f".{name}." in n)  # noqa: E731
    assert count("support") > 0
    course_model.delete_adapter("support")
    assert count("support") == 0 and list(course_model.peft_config) == ["json", "coding"]
    assert generate(course_model, tokenizer, prompts[:2], MAX_NEW, adapter_names=["json", "coding"]) == before


def test_hotswap_replaces_weights_in_place_and_swapping_back_restores(course_model, tokenizer, prompts):
    from peft.utils.hotswap import hotswap_adapter

    json_out = generate(course_model, tokenizer, prompts[:2], MAX_NEW, adapter_names=["json", "json"])
    coding_out = generate(course_model, tokenizer, prompts[:2], MAX_NEW, adapter_names=["coding", "coding"])
    hotswap_adapter(course_model, str(TINY_ADAPTERS_DIR / "coding"), adapter_name="json", torch_device="cpu")
    assert list(course_model.peft_config) == ["json", "coding", "support"] and course_model.active_adapter == "json"
    assert generate(course_model, tokenizer, prompts[:2], MAX_NEW) == coding_out
    hotswap_adapter(course_model, str(TINY_ADAPTERS_DIR / "json"), adapter_name="json", torch_device="cpu")
    assert generate(course_model, tokenizer, prompts[:2], MAX_NEW) == json_out
