"""Re-run every `@pytest.mark.widgets` test under ipywidgets 7.7.1, the version Google Colab ships.

The pinned packages are installed once with pip into build/ipywidgets7 (gitignored; needs PyPI the first
time) and put first on PYTHONPATH of a pytest subprocess that runs `pytest -m widgets` on the files marking
such tests. A plugin in that subprocess (tests/ipywidgets7_plugin.py) refuses to start unless ipywidgets 7.7.1
is what imports, and reports every outcome back. Set $IPYWIDGETS7_DIR to use a folder prepared by hand (e.g. offline).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lessons_lib.paths import BUILD_DIR, REPO_DIR

IPYWIDGETS_VERSION = "7.7.1"
# ipywidgets 7.7.1 and the pins its metadata asks for; ipython_genutils is imported by ipywidgets 7 but is not
# in a current Jupyter stack. Installed with --no-deps: ipykernel, traitlets and IPython come from the venv.
PINS = (
    f"ipywidgets=={IPYWIDGETS_VERSION}",
    "widgetsnbextension~=3.6.0",
    "jupyterlab_widgets~=1.1",
    "ipython_genutils~=0.2.0",
)
TESTS_DIR = Path(__file__).resolve().parent
THIS_FILE = Path(__file__).resolve()
PIP_TIMEOUT_S = 300
RUN_TIMEOUT_S = 900


def _target() -> Path:
    return Path(os.environ.get("IPYWIDGETS7_DIR") or BUILD_DIR / "ipywidgets7")


def _installed(folder: Path) -> bool:
    """Whether `folder` already holds exactly the pinned packages."""
    stamp = folder / "PINS.txt"
    return (
        stamp.is_file()
        and stamp.read_text().split() == list(PINS)
        and (folder / f"ipywidgets-{IPYWIDGETS_VERSION}.dist-info").is_dir()
    )


def _install(folder: Path) -> None:
    """pip-install the pins into `folder` (atomically, so a broken install is never reused)."""
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-input",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-compile",
        "--target",
        str(tmp),
        *PINS,
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        done = None
    if done is None or done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        said = f"timed out after {PIP_TIMEOUT_S} s" if done is None else (done.stderr or done.stdout)[-2000:]
        pytest.fail(
            f"Could not install ipywidgets {IPYWIDGETS_VERSION} (Colab's version) for the widget "
            f"compatibility run: pip needs to reach PyPI once, then {folder} is reused.\n"
            f"Fix: allow access to PyPI, or prepare the folder yourself and point IPYWIDGETS7_DIR at it:\n"
            f"  {sys.executable} -m pip install --no-deps --target {folder} {' '.join(PINS)}\n"
            f"command: {' '.join(cmd)}\npip said:\n{said}",
            pytrace=False,
        )
    (tmp / "PINS.txt").write_text("\n".join(PINS) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    try:
        tmp.rename(folder)
    except OSError:  # another run finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def ipywidgets7() -> Path:
    """A folder holding ipywidgets 7.7.1 and its pinned companions, installed on first use."""
    folder = _target()
    if not _installed(folder):
        if os.environ.get("IPYWIDGETS7_DIR"):
            pytest.fail(
                f"IPYWIDGETS7_DIR={folder} does not hold the pinned packages {PINS} (with a PINS.txt "
                f"listing them); unset it to let the test install them into {BUILD_DIR / 'ipywidgets7'}.",
                pytrace=False,
            )
        folder.parent.mkdir(parents=True, exist_ok=True)
        _install(folder)
    assert _installed(folder)
    return folder.resolve()


def _env(folder: Path, **extra: str) -> dict[str, str]:
    """The current environment with the ipywidgets 7 folder (then tests/, for the plugin) first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(folder), str(TESTS_DIR), str(REPO_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env.update(extra)
    return env


def test_core_widgets_work_under_ipywidgets7(ipywidgets7):
    """Every core widget the course uses builds, observes and clicks under 7.7.1 with this venv's ipykernel."""
    script = """
import ipywidgets as w
seen = []
d = w.Dropdown(options=["base", "json"], value="base", description="Adapter")
d.observe(lambda change: seen.append(change["new"]), names="value")
d.value = "json"
b = w.Button(description="Go")
b.on_click(lambda _: seen.append("click"))
b.click()
s = w.FloatSlider(min=0.0, max=1.0, step=0.1, value=0.5)
s.value = 0.7
label, html = w.Label(value="x"), w.HTML(value="<b>y</b>")
box = w.VBox([w.HBox([d, b]), w.Text(value="t"), w.Textarea(value="a", layout=w.Layout(width="95%")), s, label, html])
assert seen == ["json", "click"] and abs(s.value - 0.7) < 1e-9 and len(box.children) == 6
print("OK", w.__version__, w.__file__)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=_env(ipywidgets7), cwd=REPO_DIR
    )
    assert done.returncode == 0, done.stderr[-3000:]
    version, where = done.stdout.split()[1:3]
    assert version == IPYWIDGETS_VERSION and Path(where).resolve().is_relative_to(ipywidgets7)


def widget_test_files() -> list[str]:
    """The test files that mark tests `widgets` (collecting only these saves importing the rest of the suite)."""
    return [
        str(p.relative_to(REPO_DIR))
        for p in sorted(TESTS_DIR.glob("test_*.py"))
        if p != THIS_FILE and "mark.widgets" in p.read_text(encoding="utf-8")
    ]


def test_widget_tests_pass_under_ipywidgets7(ipywidgets7, tmp_path):
    """`pytest -m widgets` on the widget test files in a subprocess, ipywidgets 7.7.1 first on the path: all pass."""
    report_path = tmp_path / "report.json"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *widget_test_files(),
        "-m",
        "widgets",
        "-p",
        "ipywidgets7_plugin",
        "-p",
        "no:cacheprovider",
        f"--ignore={THIS_FILE.relative_to(REPO_DIR)}",
        "-q",
        "-rfEs",
    ]
    env = _env(
        ipywidgets7,
        IPYWIDGETS7_EXPECT=IPYWIDGETS_VERSION,
        IPYWIDGETS7_DIR=str(ipywidgets7),
        IPYWIDGETS7_REPORT=str(report_path),
    )
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env, cwd=REPO_DIR)
    output = (done.stdout + done.stderr)[-6000:]
    assert f"IPYWIDGETS_VERSION={IPYWIDGETS_VERSION}" in done.stdout, output
    assert report_path.is_file(), output
    report = json.loads(report_path.read_text())
    assert report["ipywidgets"] == IPYWIDGETS_VERSION, report
    assert Path(report["file"]).resolve().is_relative_to(ipywidgets7), report
    assert report["failed"] == [], f"widget tests failing under ipywidgets {IPYWIDGETS_VERSION}:\n{output}"
    assert report["skipped"] == [], f"widget tests must run, not skip, under ipywidgets {IPYWIDGETS_VERSION}:\n{output}"
    assert done.returncode == 0, output
    assert any("test_switcher.py::" in node for node in report["passed"]), report
    assert not any("test_ipywidgets7.py" in node for node in report["passed"]), "the harness re-collected itself"
