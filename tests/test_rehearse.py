"""The rehearsal runner: every (profile, notebook) pair once, the last lessons started first, rows in lesson order."""

import json
import threading

import pytest

from lessons_lib import rehearse

PROFILES = ["t4-rehearsal", "7b-rehearsal"]


def fake_runs(monkeypatch, tmp_path, failing=("7b-rehearsal", "03")):
    """Replace the notebook runs with instant ones (one pair fails); returns the pairs in the order they started."""
    started, lock = [], threading.Lock()

    def run_alone(path, profile, out_dir, timeout, jobs):
        name = str(path.relative_to(rehearse.NOTEBOOKS))  # as the real one names its row
        with lock:
            started.append((profile, name))
        status = "FAILED: AssertionError" if (profile, path.name[:2]) == failing else "ok"
        return {"profile": profile, "notebook": name, "seconds": 0.0, "asserts": 1, "status": status}

    monkeypatch.setattr(rehearse, "run_alone", run_alone)
    monkeypatch.setattr(rehearse, "OUT_DIR", tmp_path)
    return started


def test_the_last_lessons_start_first_and_rows_come_back_in_lesson_order(monkeypatch, tmp_path):
    started = fake_runs(monkeypatch, tmp_path)
    names = sorted(p.name for p in rehearse.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert len(names) == 6
    rows = rehearse.rehearse(PROFILES, jobs=1)
    editions = {"t4-rehearsal": "", "7b-rehearsal": "ru/"}  # the Russian edition runs on 7b
    assert [(r["profile"], r["notebook"]) for r in rows] == [(p, editions[p] + n) for p in PROFILES for n in names]
    assert started == [(p, editions[p] + n) for n in reversed(names) for p in PROFILES]


def test_a_failed_notebook_is_reported_and_the_others_still_run(monkeypatch, tmp_path, capsys):
    fake_runs(monkeypatch, tmp_path)
    assert rehearse.main(["--profiles", *PROFILES, "--only", "02", "03", "--jobs", "2"]) == 1
    out = capsys.readouterr().out
    assert out.strip().endswith("rehearsal: 3/4 notebooks ok"), out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["status"] for r in summary] == ["ok", "ok", "ok", "FAILED: AssertionError"]


def test_lessons_that_match_no_notebook_are_a_usage_error_before_anything_runs(monkeypatch, tmp_path, capsys):
    started = fake_runs(monkeypatch, tmp_path)
    assert rehearse.main(["--profiles", *PROFILES, "--only", "03", "09"]) == 2
    assert rehearse.main(["--profiles", "t4-rehearsal", "--jobs", "0"]) == 2
    assert rehearse.main(["--profiles", "t4-rehearsal", "--timeout", "-1"]) == 2  # before: ran with no time limit
    err = capsys.readouterr().err
    assert "--timeout must be at least 1 (seconds per notebook), not -1" in err, err
    assert "--only 09: no such lesson" in err and "the lessons are 01, 02, 03, 04, 05, 06" in err, err
    assert "--jobs must be at least 1" in err, err
    assert started == [], "nothing ran"
    assert rehearse.main(["--profiles", "t4-rehearsal", "--only", "2"]) == 0, "'2' means lesson 02, as in course run"
    assert started == [("t4-rehearsal", "02_load_and_switch.ipynb")]


@pytest.mark.parametrize("name", PROFILES)
def test_a_rehearsals_4bit_layers_multiply_in_fp32_kernels_and_round_as_a_gpu(name, monkeypatch):
    """bitsandbytes' CPU product multiplied fp16/bf16 matrices, ~10x slower than fp32 on CPUs without half-precision
    units; now the same values (weights dequantized to the compute dtype, sums in fp32) go through fp32 kernels, and
    every output equals the GPU-style reference bit for bit."""
    pytest.importorskip("bitsandbytes")
    import torch
    from bitsandbytes.functional import dequantize_4bit

    from lessons_lib.models import load_base
    from lessons_lib.profiles import get_profile

    profile = get_profile(name)
    half = profile.torch_dtype()
    layer = load_base(profile, log=lambda *_: None).model.layers[0].mlp.down_proj  # 512 -> 192, 4-bit NF4
    x = torch.randn(64, layer.in_features, generator=torch.Generator().manual_seed(0)).to(half)
    weight = dequantize_4bit(layer.weight.data, layer.weight.quant_state).to(half)
    reference = torch.nn.functional.linear(x.float(), weight.float()).to(half)
    seen, linear = [], torch.nn.functional.linear
    monkeypatch.setattr(
        torch.nn.functional, "linear", lambda a, w, b=None: seen.append((a.dtype, w.dtype)) or linear(a, w, b)
    )
    with torch.no_grad():
        out = layer(x)
    assert seen == [(torch.float32, torch.float32)], seen
    assert out.dtype == half and torch.equal(out, reference)
