"""pytest plugin loaded by tests/test_ipywidgets7.py inside its subprocess: proves which ipywidgets ran.

At start-up it refuses to run unless `ipywidgets` imports as the version in $IPYWIDGETS7_EXPECT from the folder
in $IPYWIDGETS7_DIR; at the end it writes that version, the module's file and every test outcome to the JSON
file named by $IPYWIDGETS7_REPORT, so the parent test can assert on them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

_outcomes: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}


def pytest_configure(config) -> None:
    """Stop the run before any test if the wrong ipywidgets would be used."""
    import ipywidgets

    expected, folder = os.environ["IPYWIDGETS7_EXPECT"], Path(os.environ["IPYWIDGETS7_DIR"]).resolve()
    where = Path(ipywidgets.__file__).resolve()
    if ipywidgets.__version__ != expected or folder not in where.parents:
        raise pytest.UsageError(
            f"expected ipywidgets {expected} from {folder}, but imported "
            f"{ipywidgets.__version__} from {where}; check PYTHONPATH"
        )


def pytest_terminal_summary(terminalreporter) -> None:
    """Say which ipywidgets ran (shown even with -q)."""
    import ipywidgets

    terminalreporter.write_line(f"IPYWIDGETS_VERSION={ipywidgets.__version__} FROM {ipywidgets.__file__}")


def pytest_runtest_logreport(report) -> None:
    """Record each test's outcome (a failure in setup or teardown counts as failed)."""
    if report.when == "call" or report.outcome != "passed":
        bucket = _outcomes[report.outcome if report.outcome in _outcomes else "failed"]
        if report.nodeid not in bucket:
            bucket.append(report.nodeid)


def pytest_collectreport(report) -> None:
    """A module that cannot even be collected counts as a failure."""
    if report.failed:
        _outcomes["failed"].append(report.nodeid or "<collection>")


def pytest_sessionfinish(session, exitstatus) -> None:
    """Write the report the parent test reads."""
    import ipywidgets

    session.config._ipywidgets7_status = int(exitstatus)

    path = os.environ.get("IPYWIDGETS7_REPORT")
    if path:
        Path(path).write_text(
            json.dumps(
                {
                    "ipywidgets": ipywidgets.__version__,
                    "file": ipywidgets.__file__,
                    "exitstatus": int(exitstatus),
                    **_outcomes,
                },
                indent=1,
            )
        )


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    """Exit with pytest's status without the interpreter's teardown of torch, PEFT and bitsandbytes (~2 s)."""
    import sys

    status = getattr(config, "_ipywidgets7_status", None)
    if status is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
