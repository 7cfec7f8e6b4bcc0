"""The Colab setup cell installs only what Colab lacks, checked with pip's resolver against Colab's own versions.

How: a throwaway venv gets, for every package in tests/data/colab_preinstalled.txt, a stub `.dist-info` (name and
version, no dependencies), so pip sees Colab's versions as installed. `pip --python <venv> install --dry-run --report`
then runs the setup cell's own arguments. Like on Colab, pip keeps an installed version whenever it satisfies the
requirements and reports everything it would install or replace. Only metadata is fetched, and the torch stub
satisfies every torch requirement, so no torch wheel is downloaded. The stubs declare no dependencies (Colab's
packages are consistent there): anything a new package needs that Colab lacks shows up as one more install.
Markers and Requires-Python are evaluated for this interpreter, not Colab's Python 3.12. Needs PyPI.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lessons_lib import scaffold
from lessons_lib.paths import REPO_DIR

PREINSTALLED_FILE = Path(__file__).parent / "data" / "colab_preinstalled.txt"
# What the setup cell may add to Colab: nothing else, and nothing already there in another version.
ALLOWED_NEW = {"lessons-lib", "trl", "bitsandbytes"}
NETWORK_ERRORS = re.compile(
    r"NewConnectionError|Failed to establish|Temporary failure in name resolution|"
    r"Name or service not known|Network is unreachable|Max retries exceeded|ConnectError|"
    r"Could not fetch URL|ProxyError|timed out",
    re.I,
)


def preinstalled() -> dict[str, str]:
    """Colab's preinstalled versions by canonical name."""
    pins = {}
    for line in PREINSTALLED_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


@pytest.fixture(scope="module")
def colab_env(tmp_path_factory) -> Path:
    """The python of an empty venv whose only 'installed' packages are stubs of Colab's versions."""
    root = tmp_path_factory.mktemp("colab") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = next(root.glob("lib/python3*/site-packages"))
    for name, version in preinstalled().items():
        dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return root / "bin" / "python"


def resolve(python: Path, args: list[str], report: Path) -> dict[str, str]:
    """What `pip install args` would install or replace in that environment: {canonical name: version}."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--dry-run",
        "--quiet",
        "--no-input",
        "--disable-pip-version-check",
        "--retries",
        "1",
        "--timeout",
        "20",
        "--report",
        str(report),
        *args,
    ]
    done = subprocess.run(command, cwd=REPO_DIR, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        if NETWORK_ERRORS.search(output):
            pytest.fail(
                "pip could not reach the package index: this test resolves against PyPI (CI reaches it).\n"
                + output[-2000:]
            )
        pytest.fail(f"pip could not resolve {' '.join(args)} against Colab's versions:\n{output[-3000:]}")
    installs = json.loads(report.read_text())["install"]
    return {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}


def replaced(installs: dict[str, str]) -> dict[str, str]:
    """Preinstalled packages the install would touch, as 'old -> new'."""
    pins = preinstalled()
    return {name: f"{pins[name]} -> {version}" for name, version in installs.items() if name in pins}


def test_setup_cell_runs_the_install_checked_here():
    setup = scaffold.setup_source()
    assert '"install", "-q", "-r", f"{REPO}/requirements-colab.txt",' in setup and '"-e", REPO]' in setup


def test_setup_cell_installs_only_what_colab_lacks(colab_env, tmp_path):
    installs = resolve(colab_env, ["-r", "requirements-colab.txt", "-e", str(REPO_DIR)], tmp_path / "report.json")
    assert not replaced(installs), f"the setup cell would replace Colab's packages: {replaced(installs)}"
    assert set(installs) == ALLOWED_NEW, f"installs {sorted(installs)}; allowed: {sorted(ALLOWED_NEW)}"


def test_the_check_sees_an_upgrade(colab_env, tmp_path):
    installs = resolve(colab_env, ["trl==1.16.0"], tmp_path / "report.json")
    assert {"datasets", "pyarrow"} <= set(replaced(installs)), "trl 1.16 needs datasets>=4.7 and pyarrow>=21"


def _requirement(path: Path, name: str) -> Requirement:
    lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
    found = [Requirement(ln) for ln in lines if ln and canonicalize_name(Requirement(ln).name) == name]
    assert len(found) == 1, f"{path.name} must name {name} once"
    return found[0]


def test_local_and_colab_installs_agree_on_trl():
    colab, local = (_requirement(REPO_DIR / f, "trl") for f in ("requirements-colab.txt", "requirements.txt"))
    assert colab.specifier == local.specifier


def test_preinstalled_file_names_the_stack_the_course_relies_on():
    text = PREINSTALLED_FILE.read_text()
    assert text.startswith("#") and "backend-info" in text
    pins = preinstalled()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == len(pins), "one line per package"
    for name in ("torch", "transformers", "peft", "accelerate", "datasets", "pyarrow", "ipywidgets", "numpy"):
        assert name in pins
    assert not ALLOWED_NEW & set(pins)
