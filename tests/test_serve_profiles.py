"""Serving on any profile: cross-talk told from kernel noise, adapters named on the command line, the Hub token
passed to the server process."""

from __future__ import annotations

import shutil

import pytest

from lessons_lib.serve.crosstalk import CROSS_TALK, NOISE, SAME, classify, cross_talk_report

REFERENCES = {
    ("p1", "json"): '{"a": 1}',
    ("p1", "support"): "Hello!",
    ("p1", "base"): "Hi.",
    ("p2", "json"): "same",
    ("p2", "support"): "same",
    ("p2", "base"): "same",
}


def test_classify_tells_cross_talk_from_noise():
    assert classify('{"a": 1}', '{"a": 1}', ["Hello!"]) == SAME
    assert classify("Hello!", '{"a": 1}', ["Hello!"]) == CROSS_TALK
    assert classify('{"a": 2}', '{"a": 1}', ["Hello!"]) == NOISE


def test_report_counts_verdicts_and_telling_requests():
    report = cross_talk_report(
        ['{"a": 1}', "Hi.", '{"b"', "same"], ["p1", "p1", "p1", "p2"], ["json", "support", "base", "json"], REFERENCES
    )
    assert report.verdicts == (SAME, CROSS_TALK, NOISE, SAME)
    assert report.telling == 3  # on p2 every adapter answers alike: cross-talk there would be invisible
    assert report.same_share == 0.5
    assert "1 another adapter's answer (cross-talk)" in report.summary() and "3/4 requests" in report.summary()
    with pytest.raises(KeyError, match="coding"):
        cross_talk_report(["x"], ["p1"], ["coding"], REFERENCES)
    with pytest.raises(ValueError, match="one prompt and adapter per answer"):
        cross_talk_report(["x", "y"], ["p1"], ["json"], REFERENCES)


def test_lora_modules_name_exactly_the_folders_served(tmp_path, tiny):
    from lessons_lib.adapters import adapter_dir
    from lessons_lib.serve.__main__ import serve_parser
    from lessons_lib.serve.loading import find_adapter_folders, parse_lora_modules

    shutil.copytree(adapter_dir("json", tiny), tmp_path / "somewhere" / "j")
    (tmp_path / "empty").mkdir()
    args = serve_parser().parse_args(
        [
            "--profile",
            "t4-rehearsal",
            "--lora-modules",
            f"json={tmp_path / 'somewhere/j'}",
            f"support={tmp_path / 'empty'}",
            f"bad.name={tmp_path / 'somewhere/j'}",
        ]
    )
    modules = parse_lora_modules(args.lora_modules)
    found, skipped = find_adapter_folders(tiny, lora_modules=modules)
    assert found == {"json": tmp_path / "somewhere" / "j"}
    assert len(skipped) == 2 and "adapter_config.json" in skipped[0] and "bad.name" in skipped[1]
    with pytest.raises(ValueError, match="name=path"):
        parse_lora_modules(["json"])
    with pytest.raises(ValueError, match="names 'x' twice"):  # before: the second silently replaced the first
        parse_lora_modules([f"x={tmp_path / 'j'}", f"x={tmp_path / 'c'}"])


def test_server_process_gets_the_hub_token_unless_offline(monkeypatch):
    from lessons_lib.serve import process

    monkeypatch.setattr(process, "hub_token", lambda: "hf_test")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    env = process.child_env()
    assert env["HF_TOKEN"] == "hf_test" and str(process.REPO_DIR) in env["PYTHONPATH"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_TOKEN" not in process.child_env()
    monkeypatch.setenv("HF_TOKEN", "hf_own")
    assert process.child_env()["HF_TOKEN"] == "hf_own"


def test_rehearsal_profiles_are_accepted_by_the_server_cli():
    from lessons_lib.profiles import choose_profile
    from lessons_lib.serve.__main__ import serve_parser

    for name in ("t4-rehearsal", "7b-rehearsal"):
        args = serve_parser().parse_args(["--profile", name])
        assert choose_profile(args.profile)[0].rehearsal_of == name.split("-")[0]
