"""Faithful final answers: once an answer repeats the tool's result, the guard keeps the repeat exact."""

import pytest
import torch

from lessons_lib.tools.faithful import CopyGuard, copy_in_progress, faithful_generate, may_stop

RESULT = "  The meeting moved to Friday at\n  noon. Bring the slides."


@pytest.fixture(scope="module")
def guard(tokenizer):
    return CopyGuard(tokenizer, [], 0)


def texts_of(guard, ids):
    return {guard.pieces[i] for i in ids if guard.pieces[i] is not None}


def test_no_copy_in_progress_leaves_every_token_and_the_end(guard):
    for answer in (b"", b"Here is the formatted text:", b"Here is the text:\nSomething else"):
        assert guard.allowed(answer, RESULT.encode()) is None  # None: any token, the end of the answer too


@pytest.mark.parametrize(
    "answer, rest",
    [
        ("Here is the formatted text:\n  The meeting moved to F", "riday at\n  noon."),  # a long enough piece
        ("Here is the formatted text:\n  Th", "e meeting"),  # a line that begins like the result
        ("Done.\nThe me", "eting moved"),  # the result's indent is not part of the match
    ],
)
def test_a_copy_in_progress_may_only_go_on_copying(guard, tokenizer, answer, rest):
    source = RESULT.encode()
    remainder = source[source.index(rest.encode()) :]
    allowed = guard.allowed(answer.encode(), source)
    assert tokenizer.eos_token_id not in allowed
    assert texts_of(guard, allowed) == {p for p in guard.pieces if p and remainder.startswith(p)}


def test_the_copy_is_free_again_where_a_sentence_or_a_string_of_the_result_ends(guard):
    source = RESULT.encode()
    assert may_stop(source, source.index(b"noon.") + 5) and may_stop(source, len(source))
    assert not may_stop(source, source.index(b"Friday") + 3)
    answer = b"Here:\n  The meeting moved to Friday at\n  noon."
    assert guard.allowed(answer, source) is None
    verdict = b'{"ok": true, "passed": ["is_email"], "failed": []}'
    assert guard.allowed(b"All checks passed: is_email", verdict) is None
    longer = b'{"ok": true, "passed": ["no_trailing_spaces"], "failed": []}'
    assert guard.allowed(b"All checks passed: no_trailing_sp", longer) is not None  # inside the string: held


def test_a_short_shared_word_does_not_start_a_copy():
    assert copy_in_progress(b"Here is the", b"Is the train late? It is the 9:15.") == []
    assert copy_in_progress(b"Here is the tr", b"Is the train late?") == []  # 6 bytes from a word start: too short
    assert copy_in_progress(b"Here is the train", b"Is the train late?") == [len(b"Is the train")]  # 9: held
    assert copy_in_progress(b"Here is xthe train", b"Is the train late?") == []  # not from a word start


def test_a_line_copy_starts_only_once(guard):
    source = b"### Instruction:\nsort a list\n\n### Input:\n"
    answer = b"Here:\n### Instruction:\nsort a list\n\n### I"
    ends = copy_in_progress(answer, source)
    assert ends == [source.index(b"### Input") + 5]  # the second "### " goes on from "Input", not from the start


def test_faithful_generate_repeats_the_result_exactly_where_free_decoding_slips(base, tokenizer):
    from peft import PeftModel

    from lessons_lib.models import chat_text
    from lessons_lib.paths import TINY_ADAPTERS_DIR
    from lessons_lib.tools.calls import call_text
    from lessons_lib.tools.data import answer_prompt, read_handwritten
    from lessons_lib.tools.loop import complete, result_text
    from lessons_lib.tools.schemas import tool_schemas

    model = PeftModel.from_pretrained(base, TINY_ADAPTERS_DIR / "tools", adapter_name="tools")
    examples = [ex for ex in read_handwritten() if ex.tool == "text_formatter"][:10]
    texts = [
        chat_text(tokenizer, answer_prompt(ex, call_text(ex.tool, ex.arguments), ex.result), tools=tool_schemas())
        for ex in examples
    ]
    sources = [result_text(ex.result) for ex in examples]
    with torch.no_grad():
        free = complete(model, tokenizer, texts, 96, ["tools"] * len(texts))
        guarded = faithful_generate(model, tokenizer, texts, sources, 96, ["tools"] * len(texts))
    exact = lambda answers: sum(ex.result in a for ex, a in zip(examples, answers))  # noqa: E731
    assert exact(guarded) >= exact(free) + 3, (free, guarded)
    assert exact(guarded) >= 7, guarded
    with pytest.raises(ValueError, match="pass one source"):
        faithful_generate(model, tokenizer, texts, sources[:1])


def test_model_chat_quotes_the_request_in_the_call_and_the_result_in_the_answer(base, tokenizer):
    from peft import PeftModel

    from lessons_lib.paths import TINY_ADAPTERS_DIR
    from lessons_lib.tools.loop import ModelChat, run_tool_loop

    with pytest.raises(ValueError, match='pass tool_choice="required" with it'):
        ModelChat(base, tokenizer, quote=True)
    model = PeftModel.from_pretrained(base, TINY_ADAPTERS_DIR / "tools", adapter_name="tools")
    chat = ModelChat(model, tokenizer, adapter="tools", max_new_tokens=96, tool_choice="required", quote=True)
    request = "Wrap this at 20 characters, no indent: Our office in Oslo is closed on Monday."
    run = run_tool_loop(chat, request, max_steps=3)
    call = run.calls[0]
    assert call.name == "text_formatter" and call.arguments["text"] in request, run.transcript()
    assert run.answer is not None and run.results[0] in run.answer, run.transcript()
