"""Machine facts: thread count honours OMP_NUM_THREADS on shared machines."""

from lessons_lib.env import cpu_threads


def test_cpu_threads_follows_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_threads() == 1


def test_cpu_threads_without_omp_is_capped_by_limit(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert cpu_threads(limit=4) == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "not-a-number")
    assert cpu_threads(limit=2) == 2
