"""A LESSONS_LANG other than en or ru ends every course CLI with one error line and exit code 2."""

from __future__ import annotations

import importlib

import pytest

CLIS = [
    "lessons_lib.serve.__main__",
    "lessons_lib.tools.__main__",
    "lessons_lib.router.__main__",
    "lessons_lib.quiz.__main__",
    "lessons_lib.course",
    "lessons_lib.natural_eval",
    "lessons_lib.rehearse",
    "lessons_lib.scaffold",
    "lessons_lib.tiny.__main__",
]


@pytest.mark.parametrize("module", CLIS)
@pytest.mark.parametrize("argv", [["--help"], ["vllm", "--help"]], ids=["help", "subcommand"])
def test_an_unknown_language_is_one_error_line_and_exit_code_2(module, argv, monkeypatch, capsys):
    """Before: a ValueError traceback (exit code 1) from every CLI, even for --help."""
    monkeypatch.setenv("LESSONS_LANG", "xx")
    with pytest.raises(SystemExit) as ended:
        importlib.import_module(module).main(argv)
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: LESSONS_LANG is 'xx'; set it to en or ru (export LESSONS_LANG=ru), or unset it for English.\n"
