"""`freeze_imports`: full garbage collections skip the libraries' objects, and models are still collected."""

import json
import os
import subprocess
import sys

from lessons_lib.paths import REPO_DIR

# Run in a fresh process: the test worker froze its own imports at session start (conftest.py), as a lesson does.
PROBE = """
import gc, json, sys, time, weakref

from lessons_lib.lesson import setup_lesson
from lessons_lib.models import free_memory, freeze_imports, load_base
from lessons_lib.profiles import PROFILES

def collect_s():
    start = time.perf_counter()
    gc.collect()
    return time.perf_counter() - start

out = {"frozen_before": gc.get_freeze_count(), "peft_before": "peft" in sys.modules}
setup_lesson("02", profile="tiny", log=lambda *a: None)
out["frozen"] = gc.get_freeze_count()
out["peft_after"] = "peft" in sys.modules
out["frozen_s"] = min(collect_s() for _ in range(3))
model = load_base(PROFILES["tiny"])
holder = {"model": model}
holder["holder"] = holder  # a reference cycle: only a collection frees the model
alive = weakref.ref(model)
del model, holder
out["alive_after_del"] = alive() is not None
free_memory()
out["alive_after_free_memory"] = alive() is not None
second = load_base(PROFILES["tiny"])
freeze_imports()  # a rerun setup cell: a model is alive now, so nothing more may be frozen
out["second_model_collectable"] = any(o is second for o in gc.get_objects())  # frozen objects are not listed
gc.unfreeze()
out["tracked_s"] = min(collect_s() for _ in range(3))
print(json.dumps(out))
"""


def test_setup_lesson_freezes_the_imports_once_and_deleted_models_are_still_freed(tmp_path):
    env = dict(os.environ, LESSONS_BUILD=str(tmp_path / "build"), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_DIR))
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, cwd=REPO_DIR, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["frozen_before"] == 0 and not out["peft_before"], out
    assert out["peft_after"] and out["frozen"] > 100_000, out  # torch, transformers, PEFT: ~500k objects
    # A full collection walks only what was made after the freeze (benchmarks/bench_collect.py: 0.24 s -> ~0 s).
    assert out["frozen_s"] < out["tracked_s"] / 20, out
    assert out["alive_after_del"] and not out["alive_after_free_memory"], "free_memory must free a model in a cycle"
    assert out["second_model_collectable"], "a second call must not freeze the model alive then"
