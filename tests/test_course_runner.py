"""The course runner: partial runs merge into its summary instead of erasing other notebooks; its terminal shows
real warnings from cells but not ipykernel's "running over TCP without encryption" line."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lessons_lib import course
from lessons_lib.course import count_asserts, failure_line, run_all, run_in_child, write_summary


def test_partial_run_keeps_the_other_notebooks(tmp_path):
    path = tmp_path / "course_summary.json"
    write_summary(
        path,
        [
            {"notebook": "01_a.ipynb", "seconds": 10.0, "asserts": 3, "status": "ok"},
            {"notebook": "02_b.ipynb", "seconds": 5.0, "asserts": 4, "status": "ok"},
        ],
    )
    summary = write_summary(path, [{"notebook": "02_b.ipynb", "seconds": 7.5, "asserts": 4, "status": "ok"}])
    assert [r["notebook"] for r in summary["notebooks"]] == ["01_a.ipynb", "02_b.ipynb"]
    assert summary["total_seconds"] == 17.5
    assert json.loads(path.read_text()) == summary


def test_unreadable_summary_is_replaced(tmp_path):
    path = tmp_path / "course_summary.json"
    path.write_text("{not json")
    summary = write_summary(path, [{"notebook": "03_c.ipynb", "seconds": 1.0, "asserts": 3, "status": "ok"}])
    assert [r["notebook"] for r in summary["notebooks"]] == ["03_c.ipynb"]


def test_a_failure_is_reported_by_its_last_line_without_terminal_colours():
    err = Exception("Cell In[24], line 18\n---> 18 assert x\n\x1b[0;31mAssertionError\x1b[0m: too low\n")
    assert failure_line(err) == "AssertionError: too low"


def test_notebooks_run_side_by_side_and_rows_come_back_in_lesson_order(monkeypatch, tmp_path, capsys):
    running, started, most, lock, threads = set(), [], [0], threading.Lock(), set()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(course.os, "cpu_count", lambda: 2)

    def run_in_child(path, out_dir, timeout=900, env=None):
        threads.add(env["OMP_NUM_THREADS"])
        with lock:
            running.add(path.name)
            started.append(path.name[:2])
            most[0] = max(most[0], len(running))
        time.sleep(1.0 if path.name.startswith("03") else 0.05)  # started first, ends last
        with lock:
            running.discard(path.name)
        return {"notebook": path.name, "seconds": 1.0, "asserts": 1, "stray lines": 0, "status": "ok"}

    monkeypatch.setattr(course, "run_in_child", run_in_child)
    paths = [Path(f"{n:02d}_lesson.ipynb") for n in (1, 2, 3)]
    rows = run_all(paths, tmp_path, jobs=2)
    assert [r["notebook"] for r in rows] == [p.name for p in paths] and most[0] == 2
    assert set(started[:2]) == {"03", "02"} and started[2] == "01", "the last lessons (the longest) start first"
    printed = capsys.readouterr().out
    assert printed.index("01_lesson.ipynb: ok") < printed.index("03_lesson.ipynb: ok"), "printed as each one ends"
    assert threads == {"1"}, "two kernels on 2 CPUs: one torch thread each"


@pytest.mark.parametrize(
    "cpus, jobs, given, threads",
    [(2, 2, None, "1"), (8, 2, None, "4"), (2, 3, None, "1"), (4, 1, None, "4"), (8, 2, "3", "3"), (8, 2, " ", "4")],
)
def test_side_by_side_children_share_the_cpus_unless_told(monkeypatch, cpus, jobs, given, threads):
    """Before: each child's torch took every CPU; on 2 CPUs two notebooks crawled (03's mix sweep 7 s -> 323 s)."""
    monkeypatch.setattr(course.os, "cpu_count", lambda: cpus)
    env = {"PATH": "/bin"} if given is None else {"PATH": "/bin", "OMP_NUM_THREADS": given}
    assert course.job_env(jobs, env) == {"PATH": "/bin", "OMP_NUM_THREADS": threads}


def test_a_notebook_whose_runner_dies_is_a_failed_row_not_a_stalled_run(tmp_path):
    row = run_in_child(tmp_path / "09_missing.ipynb", tmp_path / "out", timeout=60)
    assert row["notebook"] == "09_missing.ipynb" and row["asserts"] == 0
    assert row["status"].startswith("FAILED: runner exited 1: ") and "09_missing.ipynb" in row["status"], row


def test_count_asserts_counts_only_code_cells():
    import nbformat

    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("x = 1\nassert x == 1\n  assert True"),
            nbformat.v4.new_markdown_cell("assert in prose"),
        ]
    )
    assert count_asserts(nb) == 2


# ---------------------------------------------------------------- the terminal of `make course`
RUN = """
import json, sys
from pathlib import Path
from lessons_lib import course
if sys.argv[2] == "unencrypted":  # the control: what the runner did before
    from traitlets.config import Config
    course.kernel_config = Config
print(json.dumps(course.run_notebook(Path(sys.argv[1]), Path(sys.argv[1]).parent / "out", 120)))
"""


def run_course_notebook(tmp_path, how: str) -> subprocess.CompletedProcess:
    import nbformat

    path = tmp_path / "throwaway.ipynb"
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("print(1)"),
            nbformat.v4.new_code_cell("import warnings\nwarnings.warn('a real warning from a cell')"),
        ]
    )
    nbformat.write(nb, path)
    return subprocess.run(
        [sys.executable, "-c", RUN, str(path), how], capture_output=True, text=True, timeout=300, check=True
    )


def test_course_runner_terminal_has_no_unencrypted_kernel_notice_but_keeps_real_warnings(tmp_path):
    control = run_course_notebook(tmp_path, "unencrypted")
    assert "without encryption" in control.stderr  # ipykernel 7.4 logs it for every unencrypted kernel
    done = run_course_notebook(tmp_path, "course")
    assert "without encryption" not in done.stderr + done.stdout
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok" and result["stray lines"] == 1
    assert "stray output in throwaway.ipynb, cell 1: " in done.stdout and "UserWarning: a real warning" in done.stdout


def test_a_course_run_starts_from_an_empty_work_dir_unless_asked_to_keep_it(tmp_path, monkeypatch):
    """A second `make course` trains notebook 01 again instead of resuming the first run's finished checkpoint."""
    from lessons_lib import course, paths

    monkeypatch.setattr(paths, "WORK_ROOT", tmp_path / "work")
    old = tmp_path / "work" / "tiny" / "runs" / "json-1" / "checkpoints" / "checkpoint-30"
    old.mkdir(parents=True)
    (old / "trainer_state.json").write_text("{}")
    assert course.fresh_work_dir("tiny") == tmp_path / "work" / "tiny"
    assert (tmp_path / "work" / "tiny").is_dir() and not any((tmp_path / "work" / "tiny").iterdir())

    ran = []
    monkeypatch.setattr(course, "run_all", lambda notebooks, out_dir, jobs: ran.append(len(notebooks)) or [])
    monkeypatch.setattr(course, "write_summary", lambda *a: {})
    monkeypatch.setenv("LESSONS_PROFILE", "tiny")
    old.mkdir(parents=True)
    assert course.main(["run", "--only", "01", "--keep-work"]) == 0 and old.is_dir(), "--keep-work keeps it"
    assert course.main(["run", "--only", "01"]) == 0 and not old.exists()
    assert ran == [1, 1]
