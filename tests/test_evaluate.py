"""Metrics: each domain's scorer accepts right answers and rejects near misses for the right reason."""

from lessons_lib.data import examples
from lessons_lib.evaluate import format_table, report, run_code_check, score_coding, score_json, score_support


def test_json_scoring():
    expected = {"fields": {"name": "Anna Smith", "age": 31}}
    assert score_json('{"name": "Anna Smith", "age": 31}', expected).correct
    assert score_json('```json\n{"name": "Anna Smith", "age": 31}\n```', expected).correct
    wrong = score_json('{"name": "Anna Smyth", "age": 31}', expected)
    assert wrong.valid and not wrong.correct and "name" in wrong.reason
    assert not score_json('{"name": "Anna Smith", "age": 31', expected).valid
    assert not score_json("[1, 2]", expected).valid


def test_coding_scoring_runs_the_function():
    expected = {"function": "scale_x", "tests": [[[[1, 2]], [3, 6]]]}
    assert score_coding("def scale_x(v):\n    return [x * 3 for x in v]", expected).correct
    wrong = score_coding("def scale_x(v):\n    return [x + 3 for x in v]", expected)
    assert wrong.valid and not wrong.correct
    assert not score_coding('{"name": "x"}', expected).valid  # JSON parses as Python but defines nothing
    assert not score_coding("def broken(:\n", expected).valid


def test_coding_check_has_a_time_limit():
    passed, reason = run_code_check("def f(x):\n    while True: pass", "f", [[[1], 1]], timeout=1.0)
    assert not passed and "timed out" in reason


def test_support_scoring_needs_structure_and_details():
    ex = examples("support", 1, "heldout")[0]
    assert score_support(ex.response, ex.expected).correct
    no_steps = "\n".join(line for line in ex.response.splitlines() if not line[:1].isdigit())
    assert "steps" in score_support(no_steps, ex.expected).reason
    other_name = ex.response.replace(ex.expected["name"], "Someone Else")
    verdict = score_support(other_name, ex.expected)
    assert verdict.valid and not verdict.correct


def test_report_and_table():
    ex = examples("json", 2)
    from lessons_lib.evaluate import score_all

    rep = report("json", score_all(ex, [ex[0].response, "nope"]))
    assert (rep.n, rep.valid_rate, rep.correct_rate) == (2, 0.5, 0.5)
    table = format_table([rep.row("json")])
    assert "valid" in table.splitlines()[0] and "0.5" in table
