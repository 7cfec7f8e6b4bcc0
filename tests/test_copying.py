"""Copy-aware decoding: a prompt word the answer has begun to repeat is nudged to come out whole and exact."""

import pytest

from lessons_lib.copying import (
    COPY_BIAS,
    CopyBias,
    RequestedNames,
    copy_ends,
    ends_word,
    prompt_source,
    requested_names,
    starts_word,
)
from lessons_lib.models import generate

SOURCE = "Customer Osric Blackwood wrote: 'order 80442, d.achter@fjordmail.net'. Call double_rations(xs)."


@pytest.fixture(scope="module")
def nudge(tokenizer):
    return CopyBias(tokenizer)


def spelled(nudge, ids):
    return {nudge.pieces[i] for i in ids}


def test_words_start_after_spaces_quotes_and_brackets_and_end_before_them():
    data = SOURCE.encode()
    assert starts_word(data, 0) and starts_word(data, data.index(b"Osric")) and starts_word(data, data.index(b"order"))
    assert not starts_word(data, data.index(b"wood")) and not starts_word(data, data.index(b"rations"))
    assert ends_word(data, data.index(b" wrote")) and ends_word(data, data.index(b":")) and ends_word(data, len(data))
    assert ends_word(data, data.index(b". Call"))  # a full stop before a space ends a word...
    assert not ends_word(data, data.index(b".achter")) and not ends_word(data, data.index(b".net"))  # ...inside not


@pytest.mark.parametrize(
    "answer, rest",
    [
        ("Hello, Osric Black", "wood"),  # a name cut short
        ('{"email": "d.ach', "ter@fjordmail.net"),  # an e-mail runs through . and @
        ("def double_", "rations(xs)"),  # an identifier runs through _ and its call
        ("Hello, Osr", "ic"),
    ],
)
def test_the_tokens_that_spell_the_rest_of_the_word_get_the_bias(nudge, answer, rest):
    source = SOURCE.encode()
    remainder = source[source.index(rest.encode()) :]
    got = nudge.nudges(answer.encode(), source)
    assert set(got.values()) == {COPY_BIAS}
    assert spelled(nudge, got) == {p for p in nudge.pieces if p and remainder.startswith(p)}
    assert rest.encode()[:1] in {p[:1] for p in spelled(nudge, got)}


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "Hello, Osric Blackwood",  # the word is whole: nothing to nudge
        "Hello, Osric",  # "Osric" ends here in the source, so the answer may stop copying
        "Hello, Zebedee Qu",  # "Qu" starts no word of the source
        "Hello, Zebedee Quill ",  # between words, after words the source does not have
        "The ack",  # "ack" is inside a source word, not at its start
    ],
)
def test_no_copy_in_progress_nudges_nothing(nudge, answer):
    assert nudge.nudges(answer.encode(), SOURCE.encode()) is None


def test_a_copied_phrase_goes_on_into_the_next_word_once_the_answer_writes_the_space(nudge):
    source = SOURCE.encode()
    assert nudge.nudges(b"Dear Osric Blackwood", source) is None  # the word is whole: the model may stop here
    got = nudge.nudges(b"Dear Osric Blackwood ", source)  # it went on, as the source does
    assert spelled(nudge, got) == {p for p in nudge.pieces if p and source[source.index(b"wrote") :].startswith(p)}


def test_the_longest_matching_tail_decides_where_the_copy_stands():
    source = b"Ada Lovelace met Ada Lovecraft"
    assert sorted(copy_ends(b"Dear Ada Love", source)) == [8, 25]
    assert copy_ends(b"Dear Ada Lovec", source) == [source.index(b"raft")]


def test_rows_without_a_source_and_a_zero_bias_are_left_alone(nudge, tokenizer):
    import torch

    ids = torch.tensor(tokenizer("Hello, Osric Black", add_special_tokens=False)["input_ids"])
    assert nudge.for_rows([SOURCE], 0)(0, ids) is not None
    assert nudge.for_rows([None], 0)(0, ids) is None
    assert nudge.for_rows([SOURCE], 0, bias=0.0)(0, ids) is None


def test_a_negative_bias_is_refused_with_what_to_pass(tokenizer, course_model):
    with pytest.raises(ValueError, match=r"copy bias must be >= 0 \(0 turns it off; copying.COPY_BIAS = 6.0\)"):
        CopyBias(tokenizer, bias=-1.0)
    with pytest.raises(ValueError, match="copy bias must be >= 0"):
        generate(course_model, tokenizer, "Hi", 4, copy_bias=-2.0)


def test_the_copy_source_is_the_prompt_or_the_users_messages():
    assert prompt_source("Order 5, please") == "Order 5, please"
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi, I'm Ada."},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Order 7."},
    ]
    assert prompt_source(chat) == "Hi, I'm Ada.\nOrder 7."


def test_a_slipped_name_comes_out_exact_with_the_copy_bias(course_model, tokenizer):
    # The shipped support adapter retypes this made-up first name with a slip; nudged, it copies it exactly.
    prompt = "Hello, this is Evangeline Strathmore. Order 77120 never came."
    plain, nudged = (
        generate(course_model, tokenizer, [prompt], 24, adapter_names=["support"], copy_bias=bias)[0]
        for bias in (0.0, COPY_BIAS)
    )
    assert "Evangeline Strathmore" not in plain and plain.startswith("Hello, Eva")
    assert nudged.startswith("Hello, Evangeline Strathmore!")


def test_answers_that_copy_nothing_are_unchanged(course_model, tokenizer):
    prompts = ["What is 2 + 2?", "Write a haiku about rain."]
    names = ["json", "coding"]
    assert generate(course_model, tokenizer, prompts, 16, adapter_names=names, copy_bias=COPY_BIAS) == generate(
        course_model, tokenizer, prompts, 16, adapter_names=names
    )


def test_a_row_nudge_reads_the_generated_ids_the_serving_engine_passes(nudge, tokenizer):
    ids = tokenizer("Hello, Osric Black", add_special_tokens=False)["input_ids"]
    row = nudge.for_rows([], 0).row(SOURCE)
    assert row(ids) == nudge.nudges(b"Hello, Osric Black", SOURCE.encode()) is not None
    assert row([]) is None and nudge.for_rows([], 0, bias=0.0).row(SOURCE)(ids) is None


def test_requested_names_are_identifiers_with_an_underscore_or_a_call():
    source = b"Could you implement `only_adults(ages_list)` in Python? Or stutter(s), __init__ and Python_3."
    assert requested_names(source) == {b"only_adults", b"ages_list", b"stutter", b"Python_3"}
    assert requested_names(b"Write a function that doubles every number.") == set()


@pytest.mark.parametrize(
    "answer, rests",
    [
        (b"def", {b" only_adults(", b" ages_list("}),  # the name's space may come with its first token
        (b"def ", {b"only_adults(", b"ages_list("}),
        (b"x = 1\n    def only_ad", {b"ults("}),
        (b"def only_adults", {b"("}),
    ],
)
def test_a_def_name_may_only_go_on_spelling_a_requested_name(tokenizer, answer, rests):
    hook = RequestedNames(tokenizer)
    allowed = hook.allowed(answer, b"Could you implement `only_adults(ages_list)`?")
    assert allowed and {i for rest in rests for i in hook.spelling(rest, beyond=True)} == set(allowed)
    assert all(any(r.startswith(hook.pieces[i]) or hook.pieces[i].startswith(r) for r in rests) for i in allowed)


@pytest.mark.parametrize(
    "answer, source",
    [
        (b"def implement", b"Could you implement `only_adults(ages_list)`?"),  # off every name: left free
        (b"def only_adults(", b"Could you implement `only_adults(ages_list)`?"),  # the name is done
        (b"return x", b"Could you implement `only_adults(ages_list)`?"),
        (b"def ", b"Write a function that doubles every number."),  # the request names nothing
        (b"definitely", b"Call only_adults(xs)."),
    ],
)
def test_outside_a_def_name_or_without_requested_names_the_answer_is_free(tokenizer, answer, source):
    assert RequestedNames(tokenizer).allowed(answer, source) is None


def test_the_coding_adapter_defines_the_function_the_request_names(course_model, tokenizer):
    # Greedy, the shipped coding adapter makes up a name here ("def imic("); constrained, it takes the requested one.
    prompt = "Could you implement `only_adults(ages_list)` in Python? Keep just the values above 17."
    plain, named = (
        generate(course_model, tokenizer, [prompt], 40, adapter_names=["coding"], requested_names=on)[0]
        for on in (False, True)
    )
    assert not plain.startswith("def only_adults(") and named.startswith("def only_adults(")
