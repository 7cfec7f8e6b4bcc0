"""The course runner's summary: partial runs merge into it instead of erasing other notebooks."""

import json

from lessons_lib.course import count_asserts, write_summary


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


def test_count_asserts_counts_only_code_cells():
    import nbformat

    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("x = 1\nassert x == 1\n  assert True"),
            nbformat.v4.new_markdown_cell("assert in prose"),
        ]
    )
    assert count_asserts(nb) == 2
