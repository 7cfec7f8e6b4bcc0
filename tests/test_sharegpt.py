"""ShareGPT/FineTome conversion: valid rows convert, malformed rows are reported, never silently dropped."""

import json

import pytest

from lessons_lib.sharegpt import (
    FINETOME_ID,
    MalformedRowsError,
    load_finetome,
    sharegpt_to_messages,
    stream_finetome,
    to_prompt_completion,
)

GOOD = {
    "conversations": [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "Hi"},
        {"from": "gpt", "value": "Hello!"},
    ]
}


def test_roles_are_mapped():
    conv = sharegpt_to_messages([GOOD])
    assert conv.messages == [
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
        ]
    ]
    assert to_prompt_completion(conv.messages[0])["completion"] == [{"role": "assistant", "content": "Hello!"}]


@pytest.mark.parametrize(
    "row, problem",
    [
        ({"conversations": [{"from": "human", "value": "Hi"}]}, "no assistant"),
        ({"conversations": [{"from": "bot", "value": "Hi"}]}, "unknown role 'bot'"),
        ({"conversations": [{"from": "human", "value": "  "}, {"from": "gpt", "value": "x"}]}, "empty value"),
        ({"text": "plain"}, "no 'conversations' list"),
        ("just a string", "expected a dict"),
    ],
)
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
    rows = [dict(GOOD, source="x", score=4.5)] * 3 + [
        {"conversations": [{"from": "human", "value": "?"}], "source": "x", "score": 1.0}
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    usable, conv = load_finetome(4, path=path)
    assert len(usable) == 3 and len(conv.skipped) == 1
    assert usable[0]["prompt"][-1] == {"role": "user", "content": "Hi"}


def test_prompt_completion_split_needs_an_answer_and_a_question():
    with pytest.raises(MalformedRowsError, match="no assistant turn"):
        to_prompt_completion([{"role": "user", "content": "Hi"}])
    with pytest.raises(MalformedRowsError, match="no user turn"):
        to_prompt_completion([{"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "Hi"}])
    multi = [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "And 2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    split = to_prompt_completion(multi)
    assert split == {"prompt": multi[:3], "completion": [multi[3]]}


class FakeStream:
    """A streamed split: counts the rows actually read, the way a download would."""

    def __init__(self, rows: list[dict]):
        self.rows, self.read = rows, 0

    def take(self, n: int):
        for row in self.rows[:n]:
            self.read += 1
            yield row


@pytest.fixture
def hub(monkeypatch):
    """datasets.load_dataset replaced by a 1000-row FineTome stream; records how it was called."""
    calls, stream = [], FakeStream([dict(GOOD, source="x", score=4.5)] * 1000)

    def load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return stream

    monkeypatch.setattr("datasets.load_dataset", load_dataset)
    return calls, stream


def test_finetome_is_streamed_not_downloaded_whole(hub, capsys):
    calls, stream = hub
    rows = stream_finetome(5)
    assert calls == [((FINETOME_ID,), {"split": "train", "streaming": True})]
    assert len(rows) == 5 and stream.read == 5
    bar = capsys.readouterr().err
    assert FINETOME_ID in bar and "5/5" in bar, "a visible progress bar, even with the Hub's own bars off"


def test_finetome_loader_streams_from_the_hub(hub, capsys):
    usable, conv = load_finetome(3, progress=False)
    assert len(usable) == 3 and conv.summary().startswith("3 conversations converted")
    assert hub[1].read == 3 and capsys.readouterr().err == ""


def test_stream_uses_the_real_iterable_dataset_api(monkeypatch, tmp_path):
    import datasets

    path = tmp_path / "finetome.jsonl"
    path.write_text("\n".join(json.dumps(dict(GOOD, score=float(i))) for i in range(10)))
    real = datasets.load_dataset
    monkeypatch.setattr("datasets.load_dataset", lambda name, **kw: real("json", data_files=str(path), **kw))
    rows = stream_finetome(4, progress=False)
    assert [r["score"] for r in rows] == [0.0, 1.0, 2.0, 3.0] and rows[0]["conversations"] == GOOD["conversations"]
