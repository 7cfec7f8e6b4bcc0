"""The GPU code path on CPU: every notebook alone, in a fresh empty work dir, on each rehearsal profile.

The same runs as `make rehearse` (lessons_lib/rehearse.py), one test each: English on t4-rehearsal, Russian on
7b-rehearsal. Each test is its own xdist unit (conftest.ONE_UNIT_PER_TEST), so on `make test`'s two workers these
notebooks fill in beside the tiny-profile notebooks and the unit tests instead of running as a phase of their own.
"""

import pytest

from lessons_lib import rehearse

PAIRS = [(profile, notebook) for profile in rehearse.REHEARSALS for notebook in rehearse.lessons(profile)]
IDS = [f"{profile}-{notebook.stem}" for profile, notebook in PAIRS]  # conftest.SLOW_FIRST ranks them by these


@pytest.mark.notebook_run
@pytest.mark.parametrize("profile, notebook", PAIRS, ids=IDS)
def test_the_notebook_runs_alone_on_the_gpu_code_path(profile, notebook):
    row = rehearse.run_alone(notebook, profile, rehearse.OUT_DIR / profile, timeout=900)
    where = f"{profile} {row['notebook']} (executed copy in {rehearse.OUT_DIR / profile})"
    assert row["status"] == "ok", f"{where}: {row['status']}"
    assert row["stray lines"] == 0, f"{where}: {row['stray lines']} stray output lines (in the captured output below)"
