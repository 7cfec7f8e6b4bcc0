"""Shared fixtures: the tiny profile, its base model and tokenizer, the course adapters, the language (ru, en)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from lessons_lib.profiles import PROFILES  # noqa: E402


@pytest.fixture
def ru(monkeypatch):
    """The course speaks Russian for this test (LESSONS_LANG=ru)."""
    monkeypatch.setenv("LESSONS_LANG", "ru")


@pytest.fixture
def en(monkeypatch):
    """The course speaks English for this test (LESSONS_LANG unset, whatever the shell set)."""
    monkeypatch.delenv("LESSONS_LANG", raising=False)


@pytest.fixture(scope="session")
def tiny():
    """The tiny profile."""
    import torch

    from lessons_lib.env import cpu_threads

    torch.set_num_threads(cpu_threads(2))
    return PROFILES["tiny"]


@pytest.fixture(scope="session")
def tokenizer(tiny):
    """The tiny model's tokenizer (left padding, pad != eos)."""
    from lessons_lib.models import load_tokenizer

    return load_tokenizer(tiny)


@pytest.fixture
def base(tiny):
    """A fresh tiny base model (0.05 s to load, so each test gets its own)."""
    from lessons_lib.models import load_base

    return load_base(tiny)


CRASH_MARKER = "CRASH-THIS-REQUEST"  # the course server's fault hook fails any batch holding a prompt with this text


@pytest.fixture(scope="session")
def course_server(tmp_path_factory):
    """The real server (`python -m lessons_lib.serve`) on the tiny profile, with a fault hook for the 500 tests.

    One per worker: test_serve.py and test_openai_clients.py share it (and run on one worker, see
    SHARED_SCOPES), since starting it costs ~5 s of CPU. Tests that read /health counters compare before/after.
    """
    from lessons_lib.serve.process import port_is_open, start_server, stop_server

    log = tmp_path_factory.mktemp("course-server") / "server.log"
    proc, url = start_server("tiny", extra=["--crash-on", CRASH_MARKER], log_path=log, timeout=180)
    yield url
    code = stop_server(proc)
    assert proc.poll() is not None, "the server process is still running after stop_server"
    assert not port_is_open(url), f"something still listens at {url} after the server stopped (exit code {code})"


@pytest.fixture(scope="session")
def composed_log(tmp_path_factory) -> Path:
    """Where `composed_server` writes its log."""
    return tmp_path_factory.mktemp("composed") / "server.log"


@pytest.fixture(scope="session")
def composed_server(composed_log):
    """The shipped course composition served with --config (`assets/compositions/course.toml`); one per worker,
    shared by test_composition.py and test_web_page.py (see SHARED_SCOPES)."""
    from test_composition import COURSE, start_composed

    from lessons_lib.serve.process import port_is_open, stop_server

    proc, url = start_composed(COURSE, composed_log)
    yield url
    stop_server(proc)
    assert not port_is_open(url), f"something still listens at {url} after the server stopped"


@pytest.fixture
def course_model(base, tiny):
    """A PeftModel with the shipped json, coding and support adapters loaded, json active."""
    from lessons_lib.adapters import load_with_adapters

    return load_with_adapters(base, tiny)


# The files that take longest on 2 CPUs, slowest first. With `--dist loadfile` each file runs whole on one worker,
# and xdist hands files out by test count (few-test files last), so a slow file picked up last bounds the wall
# time; handing the slow ones out first lets the many quick files fill in around them. Order only: nothing is skipped.
SLOW_FILES_FIRST = (  # seconds each took (`--durations=0`, 2 CPUs, 2 workers)
    "test_natural_manifests.py",  # 93
    "05_tools.ipynb",  # 63
    "test_russian_edition.py",  # 42
    "02_load_and_switch.ipynb",  # 42
    "test_openai_clients.py",  # 40 with test_serve.py, its shared scope
    "test_tools_adapter.py",  # 32
    "test_natural_eval.py",  # 31
    "03_merge_and_mix.ipynb",  # 28
    "06_deploy.ipynb",  # 27
    "01_fine_tune.ipynb",  # 27
    "test_benchmarks.py",  # 26
    "04_router.ipynb",  # 24
    "test_train.py",  # 23
    "test_ipywidgets7.py",  # 21
    "test_train_resume.py",  # 19
    "test_course_retraining.py",  # 19
    "test_serve_limits.py",  # 17
    "test_course_adapters.py",  # 17
    "test_storage.py",  # 17
    "test_web_page.py",  # 15 with test_composition.py
    "test_tools_constrained.py",  # 15
    "test_serve_engine.py",  # 13
    "test_mixing.py",  # 13
    "test_notebook_claims.py",  # 13
)


# Files that share a session fixture too costly to build twice run as one xdist scope (so on one worker).
SHARED_SCOPES = {"test_openai_clients.py": "test_serve.py", "test_web_page.py": "test_composition.py"}


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, except that the files in SHARED_SCOPES run together on one worker."""
    if config.getoption("dist", None) != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedScopeScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            folder, _, name = scope.rpartition("/")
            return f"{folder}/{SHARED_SCOPES[name]}" if name in SHARED_SCOPES else scope

    return SharedScopeScheduling(config, log)


def pytest_sessionstart(session):
    """Hide the libraries' objects from full garbage collections before any test makes a model (as a lesson does);
    not in xdist's controller, which runs no test and would import the stack for nothing."""
    if session.config.getoption("numprocesses", None) and not hasattr(session.config, "workerinput"):
        return
    from lessons_lib.models import freeze_imports

    freeze_imports()


def pytest_configure(config):
    """Keep the collection order below when xdist schedules files (its default reorders them by test count)."""
    if getattr(config.option, "loadscopereorder", None) is not None:
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    """Move the slow files to the front, keeping every file's tests together and in their own order."""
    rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
