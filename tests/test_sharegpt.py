"""ShareGPT/FineTome conversion: valid rows convert, malformed rows are reported, never silently dropped."""
import json

import pytest

from lessons_lib.sharegpt import MalformedRowsError, load_finetome, sharegpt_to_messages, to_prompt_completion

GOOD = {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"},
                          {"from": "gpt", "value": "Hello!"}]}


def test_roles_are_mapped():
    conv = sharegpt_to_messages([GOOD])
    assert conv.messages == [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                              {"role": "assistant", "content": "Hello!"}]]
    assert to_prompt_completion(conv.messages[0])["completion"] == [{"role": "assistant", "content": "Hello!"}]


@pytest.mark.parametrize("row, problem", [
    ({"conversations": [{"from": "human", "value": "Hi"}]}, "no assistant"),
    ({"conversations": [{"from": "bot", "value": "Hi"}]}, "unknown role 'bot'"),
    ({"conversations": [{"from": "human", "value": "  "}, {"from": "gpt", "value": "x"}]}, "empty value"),
    ({"text": "plain"}, "no 'conversations' list"),
    ("just a string", "expected a dict"),
])
def test_malformed_rows_raise_with_count_and_first_row(row, problem):
    with pytest.raises(MalformedRowsError, match=rf"1 malformed row\(s\); first is row 1: .*{problem}"):
        sharegpt_to_messages([GOOD, row, GOOD])


def test_skip_mode_reports_what_it_dropped():
    conv = sharegpt_to_messages([GOOD, {"text": "x"}, GOOD, {"conversations": []}], on_error="skip")
    assert len(conv.messages) == 2
    assert [i for i, _ in conv.skipped] == [1, 3]
    assert "2 conversations converted, 2 skipped; first skipped: row 1" in conv.summary()


def test_finetome_loader_reads_a_local_file_of_the_same_shape(tmp_path):
    path = tmp_path / "finetome.jsonl"
    rows = [dict(GOOD, source="x", score=4.5)] * 3 + [{"conversations": [{"from": "human", "value": "?"}],
                                                       "source": "x", "score": 1.0}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    usable, conv = load_finetome(4, path=path)
    assert len(usable) == 3 and len(conv.skipped) == 1
    assert usable[0]["prompt"][-1] == {"role": "user", "content": "Hi"}


def test_prompt_completion_split_needs_an_answer_and_a_question():
    with pytest.raises(MalformedRowsError, match="no assistant turn"):
        to_prompt_completion([{"role": "user", "content": "Hi"}])
    with pytest.raises(MalformedRowsError, match="no user turn"):
        to_prompt_completion([{"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "Hi"}])
    multi = [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"},
             {"role": "user", "content": "And 2+2?"}, {"role": "assistant", "content": "4"}]
    split = to_prompt_completion(multi)
    assert split == {"prompt": multi[:3], "completion": [multi[3]]}
