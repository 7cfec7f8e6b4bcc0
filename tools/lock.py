"""Write requirements-lock.txt: exact versions, from this venv, of everything requirements*.txt pull in.

Run by `make lock`. torch is left out (the Makefile installs TORCH_SPEC), as is this project itself;
packages in the venv that no requirement reaches (tools someone installed by hand) are left out too.
"""

from __future__ import annotations

import importlib.metadata as md
import platform
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt")
LEFT_OUT = {"torch", "lessons-lib"}


def top_level(files: tuple[str, ...]) -> list[Requirement]:
    """The requirements listed in `files` (comments and blank lines skipped)."""
    lines = (line.split(" #")[0].strip() for name in files for line in Path(name).read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith(("#", "-"))]


def applies(requirement: Requirement, extras: set[str]) -> bool:
    """True when the requirement's marker holds here, for one of the extras asked for (or none)."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in extras | {""})


def closure(requirements: list[Requirement]) -> dict[str, str]:
    """{name: installed version} of the requirements and everything they depend on, as installed here."""
    pinned: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [r for r in requirements if applies(r, set())]
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        pinned[key[0]] = installed_version(requirement)
        depends = map(Requirement, md.requires(requirement.name) or [])
        todo += [dep for dep in depends if applies(dep, set(requirement.extras))]
    return pinned


def installed_version(requirement: Requirement) -> str:
    """The version installed here; exits saying what to do when it is missing or outside the requirement's range."""
    try:
        version = md.version(requirement.name)
    except md.PackageNotFoundError:
        sys.exit(f"{requirement.name} is required but not installed in {sys.prefix}: run `make venv` first.")
    if not requirement.specifier.contains(version, prereleases=True):
        sys.exit(
            f"{requirement.name} {version} in {sys.prefix} is outside the range `{requirement}`: lock from a venv "
            "that follows requirements*.txt (`make test-latest`, then `make lock VENV=.venv-latest`)."
        )
    return version


def lock_text(pinned: dict[str, str]) -> str:
    """The lock file: a header saying where it came from, then one `name==version` per line."""
    header = [
        f"# Exact versions for `make venv` and CI (pip install -c {Path(sys.argv[1]).name}); written by `make lock`.",
        f"# From a venv on Python {platform.python_version()}, {platform.system()} {platform.machine()}; "
        "torch is pinned by TORCH_SPEC in the Makefile.",
        "# Colab and other installs use the ranges in requirements*.txt, not this file.",
    ]
    return (
        "\n".join(header + [f"{name}=={version}" for name, version in sorted(pinned.items()) if name not in LEFT_OUT])
        + "\n"
    )


def main() -> None:
    """Write the lock file named on the command line."""
    Path(sys.argv[1]).write_text(lock_text(closure(top_level(REQUIREMENT_FILES))))


if __name__ == "__main__":
    main()
