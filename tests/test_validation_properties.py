"""Property tests (hypothesis) for the input checkers: the training-row checker, the JSONL reader and quiz grading.

Each checker either accepts its input or raises its own ValueError subclass with a message that says where;
no input makes it crash with anything else (TypeError, KeyError, RecursionError, UnicodeDecodeError...).
"""

from __future__ import annotations

import ast
import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lessons_lib.jsonl import DataFileError, read_objects
from lessons_lib.train import KNOWN_ROLES, ROLE_MARKERS, DataError, check_rows

CHECKS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------- strategies
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
JSON_LIKE = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
ROLES = st.sampled_from(KNOWN_ROLES) | st.sampled_from(["robot", "human", "gpt", "", "USER"]) | JSON_LIKE
TEXT = st.text(min_size=1, max_size=30) | st.sampled_from(ROLE_MARKERS).map(lambda m: f"say {m} now") | st.just("  ")
CONTENT = TEXT | JSON_LIKE | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}), max_size=2)
CALLS = (
    st.lists(
        st.fixed_dictionaries(
            {"function": st.fixed_dictionaries({"name": st.text(max_size=10) | JSON_LIKE, "arguments": JSON_LIKE})}
        ),
        max_size=2,
    )
    | JSON_LIKE
)
MESSAGE = st.fixed_dictionaries({"role": ROLES, "content": CONTENT}, optional={"tool_calls": CALLS}) | JSON_LIKE
CHAT_ROW = st.fixed_dictionaries(
    {},
    optional={
        "prompt": st.lists(MESSAGE, max_size=4) | JSON_LIKE,
        "completion": st.lists(MESSAGE, max_size=3) | JSON_LIKE,
        "messages": JSON_LIKE,
        "tools": JSON_LIKE,
    },
)
ROWS = st.lists(CHAT_ROW | JSON_LIKE, min_size=1, max_size=4)

PLAIN = st.text(min_size=1, max_size=40).filter(lambda t: t.strip() and not any(m in t for m in ROLE_MARKERS))


def _good_row(user: str, answer: str, system: str | None) -> dict:
    prompt = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": answer}]}


GOOD_ROWS = st.lists(st.builds(_good_row, PLAIN, PLAIN, st.none() | PLAIN), min_size=1, max_size=5)


# ---------------------------------------------------------------- the row checker
def _invariants_hold(rows) -> None:
    """What an accepted row set guarantees: known roles, text content, a completion that is the assistant's answer."""
    for row in rows:
        prompt, completion = row["prompt"], row["completion"]
        assert completion and all(m["role"] == "assistant" for m in completion)
        assert prompt[-1]["role"] in ("user", "tool") and any(m["role"] == "user" for m in prompt)
        for message in prompt + completion:
            assert message["role"] in KNOWN_ROLES
            content = message.get("content")
            if message.get("tool_calls"):
                assert content is None or isinstance(content, str)
            else:
                assert isinstance(content, str) and content.strip()
            if isinstance(content, str):
                assert not any(marker in content for marker in ROLE_MARKERS)


@CHECKS
@given(ROWS)
def test_row_checker_accepts_or_raises_data_error_naming_a_row(rows):
    try:
        check_rows(rows)
    except DataError as err:
        assert re.match(r"Row \d+ ", str(err)), str(err)
    else:
        _invariants_hold(rows)


@CHECKS
@given(JSON_LIKE)
def test_row_checker_on_any_json_value_as_the_whole_set(rows):
    try:
        check_rows(rows)
    except DataError:
        pass
    else:
        _invariants_hold(rows)


@CHECKS
@given(GOOD_ROWS)
def test_well_formed_rows_always_pass(rows):
    check_rows(rows)


@CHECKS
@given(GOOD_ROWS, st.data())
def test_a_role_marker_anywhere_is_named_with_its_row(rows, data):
    index = data.draw(st.integers(0, len(rows) - 1))
    marker = data.draw(st.sampled_from(ROLE_MARKERS))
    part = data.draw(st.sampled_from(["prompt", "completion"]))
    message = rows[index][part][-1]
    cut = data.draw(st.integers(0, len(message["content"])))
    message["content"] = message["content"][:cut] + marker + message["content"][cut:]
    with pytest.raises(DataError, match=rf"^Row {index} {part} message \d+ contains the role marker") as err:
        check_rows(rows)
    named = re.search(r"role marker ('[^']+')", str(err.value)).group(1)
    assert named == repr(marker) or ast.literal_eval(named) in message["content"]  # a marker the insertion completed


# ---------------------------------------------------------------- the JSONL reader
@pytest.fixture(scope="module")
def data_file():
    """One file path reused by every example (hypothesis and function-scoped tmp_path do not mix)."""
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder) / "data.jsonl"


@CHECKS
@given(
    st.lists(
        st.binary(max_size=60)
        | st.sampled_from(
            [b"[" * 5000, b"\xef\xbb\xbf{}", b'{"a": "\\ud800"}', b"{}\r", b"\xff\xfe{", b'{"a": [1, {"b": null}]}']
        ),
        max_size=6,
    )
)
def test_jsonl_reader_on_arbitrary_bytes_names_file_and_line(data_file, lines):
    data_file.write_bytes(b"\n".join(lines))
    try:
        rows = read_objects(data_file, "row")
    except DataFileError as err:
        message = str(err)
        assert message.startswith(str(data_file))
        assert re.match(re.escape(str(data_file)) + r":\d+", message) or message.endswith("per line.")
    else:
        assert rows and all(isinstance(row, dict) for _, row in rows)
        assert [n for n, _ in rows] == sorted({n for n, _ in rows})


FINITE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)


@CHECKS
@given(st.lists(st.dictionaries(st.text(max_size=8), FINITE, max_size=4), min_size=1, max_size=5), st.booleans())
def test_jsonl_reader_round_trips_what_json_dumps_writes(data_file, rows, ascii_only):
    data_file.write_text("\n".join(json.dumps(row, ensure_ascii=ascii_only) for row in rows) + "\n", encoding="utf-8")
    assert [row for _, row in read_objects(data_file, "row")] == rows


# ---------------------------------------------------------------- quiz answers
def _question():
    from lessons_lib.quiz.bank import parse_bank

    choice = {"text": {"en": "x", "ru": "x"}, "correct": False, "explain": {"en": "y", "ru": "y"}}
    data = {
        "notebook": "99",
        "title": {"en": "t", "ru": "t"},
        "self_check": [{"en": "s", "ru": "s"}],
        "questions": [
            {
                "id": "q",
                "kind": "multi",
                "prompt": {"en": "p", "ru": "p"},
                "choices": [{**choice, "correct": True}, choice, {**choice, "correct": True}, choice],
            }
        ],
    }
    return parse_bank(data, Path("mem.json")).questions[0]


@CHECKS
@given(JSON_LIKE | st.lists(st.integers(-6, 6), max_size=6) | st.integers(-6, 6))
def test_grading_accepts_indices_or_raises_answer_error(answer):
    from lessons_lib.quiz import grade
    from lessons_lib.quiz.grading import AnswerError

    question = _question()
    try:
        result = grade(question, answer)
    except AnswerError as err:
        assert "'q'" in str(err)
    else:
        assert all(type(i) is int and 0 <= i < 4 for i in result.picked)
        assert 0.0 <= result.score <= 1.0
