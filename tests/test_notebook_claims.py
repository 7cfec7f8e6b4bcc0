"""Errors the notebooks print on purpose speak the learner's language: Russian with LESSONS_LANG=ru."""

from __future__ import annotations

import json
import re

import pytest
from test_compat import JSON_DIR, OTHER_ID, copy_adapter, make_other_base_adapter
from test_mixing import _rank_pattern_model

from lessons_lib.compat import BaseMismatchError, check_adapter
from lessons_lib.manifest import Manifest
from lessons_lib.mixing import RankMismatchError, StaleModelError, SvdDtypeError, create_weighted_adapter

CYRILLIC = re.compile("[а-яё]{4,}", re.IGNORECASE)


def assert_russian(message: str, english: str) -> None:
    """The message is Russian prose (no English sentence from its English twin)."""
    assert CYRILLIC.search(message) and english not in message, message


def _other_fingerprint(tmp_path):
    return make_other_base_adapter(tmp_path / "other"), "other"


def _no_record(tmp_path):
    folder = make_other_base_adapter(tmp_path / "other", with_manifest=False)
    cfg = json.loads((folder / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = None
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    return folder, "other"


def _other_id(tmp_path):
    folder = copy_adapter(JSON_DIR, tmp_path / "json")
    manifest = Manifest.load(folder)
    manifest.base_model = "someone/finetuned-variant"
    manifest.save(folder)
    return folder, "json"


@pytest.mark.parametrize("make", [_other_fingerprint, _no_record, _other_id])
def test_base_mismatch_is_russian(base, tmp_path, ru, make):
    folder, name = make(tmp_path)
    with pytest.raises(BaseMismatchError) as err:
        check_adapter(base, folder, name)
    assert_russian(str(err.value), "Load the base")
    assert "Загрузите базовую модель" in str(err.value)


def test_base_mismatch_stays_english_without_ru(base, tmp_path, monkeypatch):
    monkeypatch.delenv("LESSONS_LANG", raising=False)
    with pytest.raises(BaseMismatchError, match=f"trained on base '{OTHER_ID}'.*Load the base"):
        check_adapter(base, make_other_base_adapter(tmp_path / "other"), "other")


def test_rank_mismatch_is_russian(tiny, ru):
    model = _rank_pattern_model(tiny, [{"v_proj": 4}, {}])
    with pytest.raises(RankMismatchError, match=r"'cat'.*'svd'") as err:
        create_weighted_adapter(model, ["a", "b"], [1, 1], "mix", "ties")
    assert_russian(str(err.value), "element-wise")


def test_svd_dtype_is_russian(course_model, ru):
    course_model.half()
    with pytest.raises(SvdDtypeError, match="fp32.*'cat'") as err:
        create_weighted_adapter(course_model, ["json", "coding"], [1, 1], "mix", "svd")
    assert_russian(str(err.value), "does not support")


def test_stale_model_is_russian(course_model, ru):
    course_model.merge_and_unload(adapter_names=["json"])
    with pytest.raises(
        StaleModelError, match=r"set_adapter\('coding'\) отклонён: merge_and_unload\(\) вшил json"
    ) as err:
        course_model.set_adapter("coding")
    assert_russian(str(err.value), "cannot switch adapters")


def test_stray_lines_flag_warnings_raw_logs_and_frozen_bars_only():
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    from lessons_lib.course import stray_lines

    bar = {"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "  0%|          | 0/8 [00:00<?"}
    nb = new_notebook(
        cells=[
            new_markdown_cell("A FutureWarning: in prose is not output."),
            new_code_cell(
                "train()",
                outputs=[
                    new_output("stream", name="stdout", text="loss by step: 1: 10.84 · 2: 7.91\n"),
                    new_output("stream", name="stderr", text="x.py:3: FutureWarning: `is_gradient_checkpointing` is\n"),
                    new_output("stream", name="stdout", text="{'loss': 10.84, 'grad_norm': 3.2, 'epoch': 0.1}\n"),
                    new_output("display_data", data=bar),
                    new_output("display_data", data={"text/markdown": "- B. the Warning: can be ignored"}),
                    new_output("stream", name="stderr", text="Failed to load CPU gemm_4bit_forward from kernels\n"),
                    new_output(
                        "stream",
                        name="stderr",
                        text="router: 0%|  | 0/6 [00:00<?]\rrouter: 100%|##| 6/6 [00:01<00:00]\n",
                    ),
                    new_output(
                        "stream", name="stderr", text="data:  0%|  | 0/9 [00:00<?]\rdata: 33%|#  | 3/9 [00:01<00:02]\n"
                    ),
                ],
            ),
            new_code_cell(  # a bar redrawn across outputs (as a kernel sends it): Jupyter shows the joined stream
                "train_router()",
                outputs=[
                    new_output("stream", name="stderr", text="bar:   0%|  | 0/4 [00:00<?]"),
                    new_output("stream", name="stderr", text="\rbar:  50%|# | 2/4 [00:01<00:01]"),
                    new_output("stream", name="stderr", text="\rbar: 100%|##| 4/4 [00:02<00:00]\n"),
                ],
            ),
        ]
    )
    nbformat.validate(nb)
    lines = stray_lines(nb)
    assert [line.split(": ", 1)[0] for line in lines] == ["cell 1"] * 5, lines  # a bar that reached 100% is fine
    assert "FutureWarning" in lines[0] and "{'loss'" in lines[1] and "0/8" in lines[2] and "Failed" in lines[3]
    assert "3/9" in lines[4]  # a text bar shows its last redraw, here stuck at 33%


QUIET_PROBE = """
import logging, sys, warnings
if sys.argv[1] == "quiet":
    from lessons_lib.lesson import quiet_library_notices
    quiet_library_notices()
import peft  # imports bitsandbytes, whose CPU backend may log a kernel notice
warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)
logging.getLogger("transformers.trainer_utils").warning("mtime may not be reliable on this filesystem")
import os
sys.stderr.flush()
os._exit(0)  # everything to check is on stderr now; skip the 2 s teardown of torch, PEFT and bitsandbytes
"""


def test_setup_silences_the_library_notices_learners_saw():
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    probes = {  # both at once: each spends its time importing PEFT
        mode: subprocess.Popen(
            [sys.executable, "-c", QUIET_PROBE, mode],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        for mode in ("loud", "quiet")
    }
    loud, quiet = (probes[mode].communicate(timeout=300)[1] for mode in ("loud", "quiet"))
    assert "is_gradient_checkpointing" in loud and "mtime may not be reliable" in loud, loud
    for notice in ("is_gradient_checkpointing", "mtime may not be reliable", "Failed to load CPU gemm_4bit_forward"):
        assert notice not in quiet, quiet
