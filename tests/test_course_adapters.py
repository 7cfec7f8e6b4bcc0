"""The shipped course adapters specialise: each wins its domain; base and the other adapters do not."""

import pytest

from lessons_lib import data
from lessons_lib.adapters import COURSE_ADAPTERS
from lessons_lib.evaluate import heldout, report, score_all
from lessons_lib.manifest import Manifest
from lessons_lib.models import generate
from lessons_lib.paths import TINY_ADAPTERS_DIR

N = 40


@pytest.fixture(scope="module")
def scores():
    """Held-out rates of base + every adapter on every domain, from one mixed-adapter batch per domain."""
    import torch

    from lessons_lib.adapters import load_with_adapters
    from lessons_lib.env import cpu_threads
    from lessons_lib.models import load_base, load_tokenizer
    from lessons_lib.profiles import PROFILES

    torch.set_num_threads(cpu_threads(2))
    tiny = PROFILES["tiny"]
    model, tok = load_with_adapters(load_base(tiny), tiny), load_tokenizer(tiny)
    names = ["__base__", *COURSE_ADAPTERS]
    table = {}
    for domain in data.DOMAINS:
        items = heldout(domain, N)
        prompts = [ex.prompt for ex in items] * len(names)
        rows = [name for name in names for _ in items]
        outputs = generate(model, tok, prompts, tiny.max_new_tokens, adapter_names=rows, batch_size=40)
        for k, name in enumerate(names):
            table[(name, domain)] = report(domain, score_all(items, outputs[k * N : (k + 1) * N]))
    return table


@pytest.mark.slow
@pytest.mark.parametrize("domain", data.DOMAINS)
def test_adapter_wins_its_domain(scores, domain):
    own = scores[(domain, domain)]
    assert own.valid_rate >= 0.95 and own.correct_rate >= 0.6, own
    for other in ["__base__", *[a for a in COURSE_ADAPTERS if a != domain]]:
        rival = scores[(other, domain)]
        assert rival.correct_rate <= 0.1 and rival.valid_rate <= 0.1, (other, rival)


@pytest.mark.parametrize("name", COURSE_ADAPTERS)
def test_shipped_adapter_folders_are_standard_peft_with_manifest(name):
    folder = TINY_ADAPTERS_DIR / name
    assert {"adapter_config.json", "adapter_model.safetensors", "manifest.json"} <= {p.name for p in folder.iterdir()}
    manifest = Manifest.load(folder)
    assert manifest.domain == name and manifest.profile == "tiny"
    assert manifest.metrics["heldout_correct"] >= 0.6
