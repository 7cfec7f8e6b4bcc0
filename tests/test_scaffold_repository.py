"""One place for the repository: pyproject's [tool.lessons_lib] drives every badge, the clone cell and the README."""

import json
import shutil

import pytest
import tomllib

from lessons_lib import scaffold
from lessons_lib.paths import REPO_DIR

FORK = scaffold.Repository("someone/fork-lab", "dev")


def _changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """(old, new) pairs of the lines that differ; both texts must have the same number of lines."""
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new)
    return [(a, b) for a, b in zip(old, new) if a != b]


@pytest.fixture
def tree(tmp_path):
    """A copy of what the scaffold reads and writes: sources, pyproject.toml, README.md."""
    shutil.copytree(REPO_DIR / "notebooks" / "src", tmp_path / "notebooks" / "src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_DIR / name, tmp_path / name)
    return tmp_path


def test_pyproject_table_is_the_one_place():
    table = tomllib.loads((REPO_DIR / "pyproject.toml").read_text())["tool"]["lessons_lib"]
    assert scaffold.read_repository() == scaffold.Repository(table["github_repo"], table["branch"])
    assert (table["github_repo"], table["branch"]) == (scaffold.GITHUB_REPO, scaffold.BRANCH)


@pytest.mark.parametrize("source", scaffold.sources(), ids=lambda p: p.stem)
def test_another_repo_changes_every_badge_and_the_clone_cell_and_nothing_else(source):
    ours, theirs = scaffold.notebook_for(source), scaffold.notebook_for(source, FORK)
    assert ours["cells"][2:] == theirs["cells"][2:]
    assert ours["metadata"] == theirs["metadata"]
    badge = theirs["cells"][0]["source"]
    assert f"({FORK.colab_url(f'notebooks/{source.stem}.ipynb')})" in badge
    assert "github/someone/fork-lab/blob/dev/notebooks/" in badge
    assert badge != ours["cells"][0]["source"]
    changed = _changed_lines(ours["cells"][1]["source"], theirs["cells"][1]["source"])
    assert len(changed) == 2, changed  # the clone command: its --branch value and its URL
    assert '"--branch", "dev",' in changed[0][1] and '"https://github.com/someone/fork-lab", REPO' in changed[1][1]


def test_build_with_repo_records_it_and_rewrites_notebooks_and_readme_badges(tree):
    assert scaffold.main(["build"], root=tree) == 0
    notebooks = {p.name: p.read_text() for p in (tree / "notebooks").glob("*.ipynb")}
    readme = (tree / "README.md").read_text()
    pyproject = (tree / "pyproject.toml").read_text()
    assert len(notebooks) == len(scaffold.sources()) >= 6

    assert scaffold.main(["build", "--repo", FORK.name, "--branch", FORK.branch], root=tree) == 0
    assert scaffold.read_repository(tree / "pyproject.toml") == FORK
    assert [new for _, new in _changed_lines(pyproject, (tree / "pyproject.toml").read_text())] == [
        'github_repo = "someone/fork-lab"',
        'branch = "dev"',
    ]
    readme_changes = _changed_lines(readme, (tree / "README.md").read_text())
    assert len(readme_changes) == readme.count("https://colab.research.google.com/github/") >= 6
    for old, new in readme_changes:
        ours = f"github/{scaffold.GITHUB_REPO}/blob/{scaffold.BRANCH}/"
        assert new == old.replace(ours, "github/someone/fork-lab/blob/dev/")
    for name in notebooks:
        fork_nb = json.loads((tree / "notebooks" / name).read_text())
        assert FORK.colab_url(f"notebooks/{name}") in fork_nb["cells"][0]["source"]
        assert fork_nb["cells"][1]["source"] == scaffold.setup_source(FORK)
        ru_nb = json.loads((tree / "notebooks" / "ru" / name).read_text())
        assert FORK.colab_url(f"notebooks/ru/{name}") in ru_nb["cells"][0]["source"]
        assert ru_nb["cells"][1]["source"] == scaffold.setup_source(FORK, lang="ru")
    # In sync (untranslated cells, which `check` also reports, are tests/test_russian_edition.py's business).
    assert scaffold.build(check=True, root=tree) == []

    assert scaffold.main(["build", "--repo", scaffold.GITHUB_REPO, "--branch", scaffold.BRANCH], root=tree) == 0
    assert {p.name: p.read_text() for p in (tree / "notebooks").glob("*.ipynb")} == notebooks
    assert (tree / "README.md").read_text() == readme and (tree / "pyproject.toml").read_text() == pyproject


def test_check_reports_readme_badges_that_point_elsewhere(tree, capsys):
    scaffold.main(["build"], root=tree)
    readme = tree / "README.md"
    readme.write_text(readme.read_text().replace(f"github/{scaffold.GITHUB_REPO}/", "github/old-owner/old-name/", 1))
    assert scaffold.main(["check"], root=tree) == 1
    assert "README.md: out of sync" in capsys.readouterr().out


@pytest.mark.parametrize(
    "name, branch",
    [
        ("no-slash", "main"),
        ("a/b/c", "main"),
        ("has space/x", "main"),
        ("owner/name", "bad..branch"),
        ("owner/name", "-x"),
        ("owner/name", "x y"),
    ],
)
def test_malformed_repository_or_branch_is_refused(name, branch):
    with pytest.raises(ValueError):
        scaffold.Repository(name, branch)


def test_cli_refuses_a_bad_repo_without_touching_pyproject(tree, capsys):
    before = (tree / "pyproject.toml").read_text()
    with pytest.raises(SystemExit):
        scaffold.main(["build", "--repo", "not a repo"], root=tree)
    assert (tree / "pyproject.toml").read_text() == before
    assert "owner/name" in capsys.readouterr().err
