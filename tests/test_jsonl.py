"""The course's JSONL reader: every bad line is an error naming file:line and what to do, never a crash."""

from __future__ import annotations

import json

import pytest

from lessons_lib.jsonl import MAX_DEPTH, DataFileError, json_problem, nesting_depth, read_objects

GOOD = '{"text": "hi", "label": "json"}'


def write(tmp_path, data: bytes | str, name: str = "rows.jsonl"):
    """A data file holding exactly these bytes (str is written as UTF-8)."""
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_good_lines_with_blank_lines_crlf_and_a_bom(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf" + (GOOD + "\r\n\r\n  \n" + GOOD.replace("hi", "\u00e9t\u00e9")).encode())
    rows = read_objects(path, "row")
    assert [n for n, _ in rows] == [1, 4] and rows[1][1]["text"] == "\u00e9t\u00e9"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0c", "\x1e"])
def test_unicode_line_separators_inside_strings_stay_in_their_line(tmp_path, separator):
    """str.splitlines would cut these lines in two (and call both halves invalid JSON); JSON allows them raw."""
    path = write(tmp_path, json.dumps({"text": f"a{separator}b"}, ensure_ascii=False) + "\n" + GOOD + "\n")
    rows = read_objects(path, "row")
    assert [n for n, _ in rows] == [1, 2] and rows[0][1]["text"] == f"a{separator}b"


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_line_is_refused_with_file_and_line(tmp_path, depth):
    path = write(tmp_path, GOOD + "\n" + '{"a": ' + "[" * depth + "]" * depth + "}\n")
    with pytest.raises(DataFileError, match=r"rows\.jsonl:2 nests deeper than 64") as err:
        read_objects(path, "row")
    assert "fix or remove it" in str(err.value)


def test_unclosed_deep_nesting_is_refused_too(tmp_path):
    path = write(tmp_path, "[" * 100_000 + "\n")
    with pytest.raises(DataFileError, match=r"rows\.jsonl:1 nests deeper"):
        read_objects(path, "row")


def test_nesting_up_to_the_limit_is_read_and_brackets_in_strings_do_not_count(tmp_path):
    deep = '{"a": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    brackets = json.dumps({"text": "[[[[{{{{" * 100 + '\\"]]'})
    rows = read_objects(write(tmp_path, deep + "\n" + brackets + "\n"), "row")
    assert len(rows) == 2 and nesting_depth(deep) == MAX_DEPTH and nesting_depth(brackets) == 1
    too_deep = '{"a": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}"
    with pytest.raises(DataFileError, match=":1 nests deeper"):
        read_objects(write(tmp_path, too_deep, "deep.jsonl"), "row")


@pytest.mark.parametrize(
    "data, where",
    [
        (GOOD.encode() + b"\n" + '{"text": "caf\u00e9"}'.encode("cp1252") + b"\n", r"rows\.jsonl:2:14 is not UTF-8"),
        (b'{"text": "\xff"}\n', r"rows\.jsonl:1:11 is not UTF-8"),
        ('{"text": "\u00e9t\u00e9"}\n'.encode("utf-16"), r"rows\.jsonl:1:1 is not UTF-8"),
    ],
)
def test_non_utf8_bytes_name_file_line_column_and_what_to_do(tmp_path, data, where):
    with pytest.raises(DataFileError, match=where) as err:
        read_objects(write(tmp_path, data), "row")
    assert "Save the file as UTF-8" in str(err.value) and "iconv" in str(err.value)


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("not json", r":2 is not valid JSON \(Expecting value at column 1\)"),
        ('{"text": "a"', ":2 is not valid JSON"),
        ('{"text": "a', r":2 is not valid JSON \(Unterminated string starting at column 10\)"),  # before: "at at"
        ("[1, 2]", ":2 must be a row object, got a JSON list"),
        ('"text"', ":2 must be a row object, got a JSON str"),
        ('{"text": "\\ud800"}', ":2 holds an unpaired UTF-16 surrogate"),
        ('{"\\udfff": 1}', ":2 holds an unpaired UTF-16 surrogate"),
        ('{"text": "a\x00b"}', r":2 is not valid JSON \(Invalid control character"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, fragment):
    with pytest.raises(DataFileError, match=r"rows\.jsonl" + fragment):
        read_objects(write(tmp_path, GOOD + "\n" + line + "\n"), "row")


def test_paired_surrogate_escapes_are_text(tmp_path):
    rows = read_objects(write(tmp_path, '{"text": "\\ud83d\\ude00"}\n'), "row")
    assert rows[0][1]["text"] == "\U0001f600"


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(DataFileError, match=r"rows\.jsonl has no rows"):
        read_objects(write(tmp_path, "\n \r\n"), "row")
    with pytest.raises(FileNotFoundError, match="one row object per line"):
        read_objects(tmp_path / "missing.jsonl", "row")


def test_errors_stay_value_errors_for_existing_callers(tmp_path):
    assert issubclass(DataFileError, ValueError)
    with pytest.raises(ValueError, match=r"rows\.jsonl:1"):
        read_objects(write(tmp_path, b"\x80\n"), "row")


@pytest.mark.parametrize(
    "text, alone, placed",
    [
        ('{"a": "b', "Unterminated string", "Unterminated string starting at column 7"),  # before: "starting at at"
        ('{"a": ', "Expecting value", "Expecting value at column 7"),
        ("[1, 2] x", "Extra data", "Extra data at column 8"),
    ],
)
def test_json_problems_read_whole_with_or_without_where(text, alone, placed):
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads(text)
    assert (json_problem(caught.value), json_problem(caught.value, f"column {caught.value.colno}")) == (alone, placed)
