"""Schema-constrained decoding: the call grammar, token bytes, and generation that can only write valid calls."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lessons_lib.tools import ModelChat, tool_schemas
from lessons_lib.tools.calls import call_text, parse_and_validate
from lessons_lib.tools.constrained import (
    CLOSING_SHARE,
    CallConstraint,
    CallGrammar,
    GrammarError,
    TokenTrie,
    call_pattern,
    constrained_generate,
    token_bytes,
    utf8_prefix_ok,
)
from lessons_lib.tools.data import read_handwritten, tool_examples
from lessons_lib.tools.functions import RULES, TEMPLATE_TYPES, Below, ToolError, text_formatter
from lessons_lib.tools.schemas import schemas_by_name

SCHEMAS = tool_schemas()
GRAMMAR = CallGrammar(SCHEMAS)


def test_every_gold_call_is_a_complete_match_and_each_prefix_is_viable():
    examples = tool_examples(60, "train") + tool_examples(60, "heldout") + read_handwritten()
    for ex in examples:
        text = call_text(ex.tool, ex.arguments).encode()
        assert GRAMMAR.complete(text), text
        cuts = range(1, len(text)) if len(text) < 120 else range(1, len(text), 7)
        assert all(GRAMMAR.viable(text[:cut]) for cut in cuts), text  # cuts inside UTF-8 characters too
        assert not GRAMMAR.complete(text[:-1])


@pytest.mark.parametrize(
    "call",
    [
        '{"tool": "text_formater", "arguments": {"text": "a"}}',  # unknown tool
        '{"tool": "text_formatter", "arguments": {"width": 3}}',  # required text missing
        '{"tool": "text_formatter", "arguments": {"text": "a", "width": "3"}}',  # string for an integer
        '{"tool": "content_validator", "arguments": {"text": "a", "rules": []}}',  # minItems 1: no rule to check
        '{"tool": "text_formatter", "arguments": {"text": "a", "height": 3}}',  # unknown argument
        '{"tool": "text_formatter", "arguments": {"width": 3, "text": "a"}}',  # keys out of schema order
        '{"tool": "text_formatter", "arguments": {"text": ""}}',  # empty free text
        '{"tool": "template_generator", "arguments": {"template_type": "poem", "topic": "x"}}',  # not in enum
        '{"tool": "content_validator", "arguments": {"text": "a", "rules": ["short"]}}',  # not a rule name
        '{"tool": "content_validator", "arguments": {"text": "a", "rules": ["max_length"]}}',  # rule without limit
        '{"tool": "content_validator", "arguments": {"text": "a", "rules": ["non_empty"]}} and more',  # extra text
        '{"tool":"content_validator","arguments":{"text":"a","rules":["non_empty"]}}',  # not the trained spacing
    ],
)
def test_grammar_rejects_calls_that_would_fail_or_that_the_model_never_saw(call):
    assert not GRAMMAR.complete(call.encode())


def test_grammar_and_validator_agree_on_rule_names():
    for rule in [r for r in RULES if r not in ("max_length", "min_words")] + ["max_length:80", "min_words:3"]:
        call = call_text("content_validator", {"text": "x", "rules": [rule]})
        assert GRAMMAR.complete(call.encode()) and parse_and_validate(call, schemas_by_name(SCHEMAS))
    for kind in TEMPLATE_TYPES:
        assert GRAMMAR.complete(call_text("template_generator", {"template_type": kind, "topic": "x"}).encode())
    assert call_pattern(SCHEMAS).startswith(r'\{"tool": (?:"text_formatter", "arguments": ')


def test_invalid_utf8_and_control_characters_are_never_viable():
    start = b'{"tool": "text_formatter", "arguments": {"text": "'
    assert GRAMMAR.viable(start + "Привет".encode()[:3])  # a character cut in half may still be finished
    assert not GRAMMAR.viable(start + b"\xd0\x41")  # ...but not by a byte that cannot continue it
    assert not GRAMMAR.viable(start + b"a\nb")  # a raw newline is not allowed inside a JSON string
    assert GRAMMAR.viable(start + b"a\\nb")
    assert utf8_prefix_ok(b"\xd0") and not utf8_prefix_ok(b"\xd0", final=True)


@settings(max_examples=80, deadline=None)
@given(
    text=st.text(min_size=1, max_size=60).filter(lambda t: t.strip()),
    width=st.one_of(st.none(), st.integers(-3, 999)),
    indent=st.one_of(st.none(), st.integers(-3, 99)),
)
def test_the_grammar_accepts_a_formatter_call_exactly_when_the_formatter_takes_it(text, width, indent):
    arguments = {"text": text} | {k: v for k, v in (("width", width), ("indent", indent)) if v is not None}
    call = call_text("text_formatter", arguments).encode()
    try:
        text_formatter(**arguments)
    except ToolError:
        takes = False
    else:
        takes = True
    assert GRAMMAR.complete(call) == takes, arguments  # indent below width too, though no JSON Schema says it
    if takes:
        assert GRAMMAR.viable(call[: len(call) // 2])


def test_the_indent_below_the_width_is_kept_while_the_call_is_written():
    head = b'{"tool": "text_formatter", "arguments": {"text": "a b", '
    assert GRAMMAR.viable(head + b'"width": 12, "indent": 1')  # 1 may end here or become 11
    assert not GRAMMAR.viable(head + b'"width": 12, "indent": 12')  # ... 12 only grows
    assert not GRAMMAR.viable(head + b'"width": 1, "indent": 4')
    assert GRAMMAR.viable(head + b'"width": 1')  # ... and the width alone may still grow: 1 -> 10
    assert not GRAMMAR.viable(head + b'"indent": 40')  # no width written: the default, 40
    assert GRAMMAR.complete(head + b'"indent": 39}}')
    assert CallGrammar(SCHEMAS, below=()).complete(head + b'"width": 5, "indent": 9}}')  # no rules: schema only
    reversed_schema = {  # the higher argument after the lower one: checked once it is written, or at the end
        "name": "box",
        "parameters": {
            "type": "object",
            "properties": {"low": {"type": "integer"}, "high": {"type": "integer"}},
            "required": ["low"],
        },
    }
    rule = Below("box", "low", "high")  # no default: a call that leaves "high" out is not checked
    grammar = CallGrammar([reversed_schema], below=[rule])
    start = b'{"tool": "box", "arguments": {"low": 7'
    assert grammar.viable(start) and grammar.viable(start + b', "high": 1')  # 1 may still become 10
    assert not grammar.complete(start + b', "high": 7}}') and grammar.complete(start + b', "high": 70}}')
    assert grammar.complete(start + b"}}")


def test_quote_demands_free_text_from_the_request_and_leaves_other_values_alone():
    request = 'Wrap "Ёлка и ель" to 10, please'
    grammar = CallGrammar(SCHEMAS, quote=request)
    assert grammar.complete(call_text("text_formatter", {"text": '"Ёлка и ель"', "width": 10}).encode())
    assert grammar.complete(call_text("text_formatter", {"text": "Ёлка и ель", "width": 10}).encode())
    assert not grammar.complete(call_text("text_formatter", {"text": "Ёлки", "width": 10}).encode())
    assert not grammar.viable(b'{"tool": "text_formatter", "arguments": {"text": "Wrap the')
    assert grammar.complete(call_text("content_validator", {"text": "please", "rules": ["non_empty"]}).encode())


@pytest.mark.parametrize(
    ("value", "may_close", "may_go_on"),
    [
        ("The meeting moved to Friday (at noon).", True, True),  # a whole sentence
        ("The meeting moved to Friday (at noon)", True, True),  # up to its full stop
        ("The meeting moved to Friday (at noon", False, True),  # not inside brackets the request closes
        ("Note", True, True),  # a clause that ends with a colon
        ("# Plan\nBuy milk (soon.", True, True),  # across a line break, to the end
        ("Buy milk (soon.", True, True),  # starting after a line break
        ("The meeting moved", False, True),  # stops inside a clause
        ("The meeting moved to Fri", False, True),  # stops inside a word
        ("he meeting moved to Friday (at noon).", False, False),  # starts inside a word
        (" The meeting moved to Friday (at noon).", False, False),  # starts with a space
        ("", False, True),  # an empty quote
        ('{"id": 7, "ok": 1}', True, True),  # JSON, escaped in the call, to the end of the request
        ('{"id": 7, ', False, True),  # a quote never ends with a space
        ('{"id": 7', False, True),  # nor inside braces the request closes later
        ('{"id', False, True),  # nor inside a quotation the request closes later
        ("(at noon)", True, True),  # brackets closed
        ("Buy milk (soon", True, True),  # a bracket the request never closes may stay open
    ],
)
def test_a_quote_is_a_whole_phrase_of_the_request(value, may_close, may_go_on):
    request = (
        'Wrap my note at 30. Note: The meeting moved to Friday (at noon).\n# Plan\nBuy milk (soon. {"id": 7, "ok": 1}'
    )
    grammar = CallGrammar(SCHEMAS, quote=request)
    call = call_text("content_validator", {"text": value, "rules": ["non_empty"]}).encode()
    assert grammar.complete(call) is may_close
    assert grammar.viable(call[: call.index(b'", "rules"')]) is may_go_on


WHOLE_REQUEST = (
    "Wrap at 30: The ferry leaves at 14:05, weather permitting, and returns at dusk. "
    "Also «Ведро, лопата и грабли» and 'Fennimore's lamp, lit'\nSecond line, no stop"
)


@pytest.mark.parametrize(
    ("value", "formatter", "validator"),
    [
        ("The ferry leaves at 14:05, weather permitting, and returns at dusk.", True, True),  # a sentence
        ("The ferry leaves at 14:05, weather permitting, and returns at dusk", False, True),  # its stop left out
        ("The ferry leaves at 14:05, weather permitting", False, True),  # cut at a comma
        ("The ferry leaves at 14", False, True),  # cut at a colon
        ("Ведро, лопата и грабли", True, True),  # up to a closing quotation mark
        ("Ведро", False, True),
        ("Fennimore's lamp, lit", True, True),  # up to a closing apostrophe, not the one inside a word
        ("Fennimore", False, False),  # an apostrophe inside a word closes no quotation, nor a clause
        ("Second line, no stop", True, True),  # to the end of the request
        ("Second line", False, True),
    ],
)
def test_a_formatter_text_is_whole_where_other_quotes_may_end_at_a_clause(value, formatter, validator):
    grammar = CallGrammar(SCHEMAS, quote=WHOLE_REQUEST)
    assert grammar.complete(call_text("text_formatter", {"text": value, "width": 30}).encode()) is formatter
    assert grammar.complete(call_text("content_validator", {"text": value, "rules": ["non_empty"]}).encode()) is (
        validator
    )
    loose = CallGrammar(SCHEMAS, quote=WHOLE_REQUEST, whole=())
    assert loose.complete(call_text("text_formatter", {"text": value, "width": 30}).encode()) is validator


def test_schemas_the_grammar_cannot_express_get_a_clear_error():
    schema = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"filters": {"type": "object"}}, "required": ["filters"]},
        },
    }
    with pytest.raises(GrammarError, match=r"lookup\.filters: .*type 'object'.*decode without constraints"):
        CallGrammar([schema])


def test_token_bytes_rebuild_texts_exactly(tokenizer):
    pieces = token_bytes(tokenizer)
    for text in ['{"tool": "text_formatter", "arguments": {"text": "Привет, мир", "width": 12}}', "a\n\tb ÿ 🙂"]:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        assert b"".join(pieces[i] for i in ids) == text.encode()
    assert pieces[tokenizer.eos_token_id] is None and pieces[tokenizer.pad_token_id] is None


class SentencePieceVocab:
    """The slice of a Llama/Mistral tokenizer that token_bytes reads: '▁' spaces and '<0xHH>' byte fallback."""

    vocab = ["<unk>", "<s>", "</s>", "▁Hello", "<0xD0>", "<0x9F>", "!", "▁"]
    all_special_ids = [0, 1, 2]
    added_tokens_encoder: dict = {}

    def __len__(self) -> int:
        return len(self.vocab)

    def convert_ids_to_tokens(self, ids):
        return [self.vocab[i] for i in ids]


def test_token_bytes_read_sentencepiece_vocabularies():
    assert token_bytes(SentencePieceVocab()) == [None, None, None, b" Hello", b"\xd0", b"\x9f", b"!", b" "]


@pytest.fixture(scope="module")
def base_model(tiny):
    from lessons_lib.models import load_base

    return load_base(tiny)


def _prompts(tokenizer, requests):
    from lessons_lib.models import chat_text

    return [chat_text(tokenizer, [{"role": "user", "content": r}], tools=SCHEMAS) for r in requests]


def test_constrained_generation_makes_even_the_base_write_valid_calls(base_model, tokenizer):
    requests = [ex.request for ex in tool_examples(9, "heldout", seed=11)]
    prompts = _prompts(tokenizer, requests)
    replies = constrained_generate(base_model, tokenizer, prompts, SCHEMAS, max_new_tokens=96, batch_size=4)
    by_name = schemas_by_name(SCHEMAS)
    for reply in replies:
        call = parse_and_validate(reply, by_name)
        assert reply == call_text(call.name, call.arguments)
    # Phrases run longer than free picks, so the base needs more room to finish its calls when quoting.
    quoted = constrained_generate(base_model, tokenizer, prompts, SCHEMAS, quotes=requests, max_new_tokens=160)
    for request, reply in zip(requests, quoted):
        call = parse_and_validate(reply, by_name)
        assert all(value in request for key, value in call.arguments.items() if key in ("text", "topic")), reply
    with pytest.raises(ValueError, match="one quote"):
        constrained_generate(base_model, tokenizer, prompts, SCHEMAS, quotes=requests[:2])


def test_inside_free_text_the_constraint_allows_exactly_the_tokens_that_keep_the_call_viable(tokenizer):
    """The free-text fast path (cached string ends, phrase continuations) agrees with checking every token."""
    import json

    import torch

    pieces = token_bytes(tokenizer)
    requests = [ex.request for ex in read_handwritten()[::6]]
    heads = [
        '{"tool": "text_formatter", "arguments": {"text": "',
        '{"tool": "template_generator", "arguments": {"template_type": "bug_report", "topic": "',
        '{"tool": "content_validator", "arguments": {"text": "',
    ]
    checked = 0
    for n, request in enumerate(requests):
        quoted = json.dumps(request, ensure_ascii=False)[1:-1]
        for grammar in (CallGrammar(SCHEMAS), CallGrammar(SCHEMAS, quote=request)):
            start = [0, quoted.find(" ") + 1][n % 2]
            for length in (0, 1, 7, len(quoted) - start - 1, len(quoted) - start):
                text = (heads[n % len(heads)] + quoted[start : start + length]).encode()
                if not grammar.viable(text):
                    continue
                ids = tokenizer(text.decode(), add_special_tokens=False)["input_ids"]
                assert b"".join(pieces[i] for i in ids) == text
                allowed = set(CallConstraint(tokenizer, [grammar], 0)(0, torch.tensor(ids))) - {tokenizer.eos_token_id}
                expected = {i for i, piece in enumerate(pieces) if piece and grammar.viable(text + piece)}
                assert allowed == expected, (text, sorted(allowed ^ expected)[:10])
                checked += 1
    assert checked >= 30, checked


def test_at_every_step_of_a_call_the_constraint_allows_exactly_the_viable_tokens(tokenizer):
    """The token trie, the per-structure caches (tested on the structure's shorter text) and the cached UTF-8 check
    of plain tokens give what testing every token's viability gives: at each token of gold calls, for the course's
    tools and for a client tool whose free text has a minLength (where the shorter text would not do)."""
    import torch

    pieces = token_bytes(tokenizer)
    by_tool = {ex.tool: ex for ex in read_handwritten()[::-1]}  # the first request of each tool
    russian = next(ex for ex in read_handwritten() if ex.lang == "ru" and ex.tool == "content_validator")
    client = one_argument_tool({"type": "string", "minLength": 3})
    client["function"]["parameters"]["properties"].update(
        {"n": {"type": "integer", "minimum": 1}, "k": {"enum": ["one", "two"]}}
    )
    cases = [(GRAMMAR, call_text(ex.tool, ex.arguments)) for ex in [*by_tool.values(), russian]]
    client_grammar = CallGrammar([client], below=())
    # twice: the second time every step reads the structure caches the first one filled
    cases += [(client_grammar, '{"tool": "f", "arguments": {"x": "абв", "n": 12, "k": "two"}}')] * 2
    odd_byte = pieces.index("П".encode()[:1])  # a text that ends inside a character
    cases.append((GRAMMAR, '{"tool": "content_validator", "arguments": {"text": "'))
    vocabulary = CallConstraint(tokenizer, [], 0)
    steps = 0
    for grammar, call in cases:
        ids = tokenizer(call, add_special_tokens=False)["input_ids"]
        if call.endswith('"text": "'):
            ids.append(odd_byte)
        row = vocabulary.for_rows([grammar], 0)
        for k in range(len(ids) + 1):
            text = b"".join(pieces[i] for i in ids[:k])
            allowed = set(row(0, torch.tensor(ids[:k], dtype=torch.long))) - {tokenizer.eos_token_id}
            expected = {i for i, piece in enumerate(pieces) if piece and grammar.viable(text + piece)}
            assert allowed == expected, (text, sorted(allowed ^ expected)[:10])
            steps += 1
    assert steps > 100 and client_grammar.least_chars == 3
    for tail in (b"\xd0", b"\xe2\x80", b"a", "П".encode()):  # plain tokens after an unfinished or a whole character
        fitting = [i for i in vocabulary.plain if utf8_prefix_ok(tail + pieces[i])]
        assert vocabulary.plain_fitting(tail) == fitting and fitting, tail


def test_the_token_trie_finds_exactly_the_tokens_a_prefix_test_accepts(tokenizer):
    import regex

    pieces = token_bytes(tokenizer)
    for pattern in (rb"[a-z ]{0,6}", rb'\{"tool": "(?:text|temp)[a-z_]*", ', "(?:При|Пр|[0-9]+)".encode()):
        accepts = lambda text, compiled=regex.compile(pattern): compiled.fullmatch(text, partial=True) is not None  # noqa: E731
        expected = [i for i, piece in enumerate(pieces) if piece and accepts(piece)]
        assert TokenTrie(pieces).accepted(accepts) == expected and expected, pattern
        some = range(0, len(pieces), 3)
        assert TokenTrie(pieces, some).accepted(accepts) == [i for i in expected if i % 3 == 0]


def test_free_text_must_close_when_the_budget_runs_low_so_the_call_can_end(tokenizer):
    """A model that would repeat itself inside a string is made to close it once CLOSING_SHARE of the budget is left."""
    import torch

    open_call = '{"tool": "text_formatter", "arguments": {"text": "skeand.skeand@skeand.com skeand'
    ids = tokenizer(open_call, add_special_tokens=False)["input_ids"]
    budget = int(len(ids) / (1 - CLOSING_SHARE)) + 4  # room left: more than the closing share
    pieces = token_bytes(tokenizer)
    for max_new, closes in ((budget, False), (len(ids) + 2, True), (None, False)):
        rows = CallConstraint(tokenizer, [GRAMMAR], 0, max_new_tokens=max_new)
        allowed = rows(0, torch.tensor(ids))
        ends = [
            i
            for i in allowed
            if i != tokenizer.eos_token_id and not GRAMMAR.open_free_value.search(open_call.encode() + pieces[i])
        ]
        assert ends and (set(ends) == set(allowed)) == closes, (max_new, len(allowed), len(ends))
        assert all(GRAMMAR.viable(open_call.encode() + pieces[i]) for i in allowed)
    listed = '{"tool": "content_validator", "arguments": {"text": "a", "rules": ["is_email"'
    ids = tokenizer(listed, add_special_tokens=False)["input_ids"]
    late, early = (CallConstraint(tokenizer, [GRAMMAR], 0, max_new_tokens=n) for n in (len(ids) + 2, 10 * len(ids)))
    assert [pieces[i] for i in late(0, torch.tensor(ids))] == [b"]"]  # no room for another rule: the array closes
    assert len(early(0, torch.tensor(ids))) > 1


def test_model_chat_constrains_only_replies_to_the_user(base_model, tokenizer, monkeypatch):
    from lessons_lib.tools import loop, run_tool_loop

    constrained_turns = []

    def spy(*args, **kwargs):
        constrained_turns.append(args[2][0])
        return constrained_generate(*args, **kwargs)

    monkeypatch.setattr(loop, "constrained_generate", spy)
    chat = ModelChat(base_model, tokenizer, SCHEMAS, max_new_tokens=96, tool_choice="required")
    result = run_tool_loop(chat, tool_examples(1, "heldout", seed=2)[0].request, max_steps=3)
    assert result.events[0].kind == "call", result.transcript()  # unconstrained, the base never calls a tool
    assert len(constrained_turns) == 1 and constrained_turns[0].endswith("<|assistant|>\n")
    assert [m["role"] for m in result.messages[:3]] == ["user", "assistant", "tool"]
    assert len([e for e in result.events if e.kind in ("call", "answer", "error")]) >= 2  # turn 2 ran, free
    with pytest.raises(ValueError, match="Unknown tool_choice 'always'; use one of: auto, required"):
        ModelChat(base_model, tokenizer, tool_choice="always")


# Issue 15: the grammar's integers follow the schemas' bounds exactly, so what it completes also validates.
import re  # noqa: E402

from lessons_lib.tools.calls import CallError  # noqa: E402
from lessons_lib.tools.constrained import INTEGER_LIMIT, MAX_STRING_CHARS, integer_pattern  # noqa: E402
from lessons_lib.tools.functions import MAX_INDENT, MAX_RULES, MAX_WIDTH  # noqa: E402

BY_NAME = schemas_by_name(SCHEMAS)


@settings(max_examples=300, deadline=None)
@given(low=st.integers(-(10**7), 10**7), span=st.integers(0, 10**7), probe=st.integers(-3 * 10**7, 3 * 10**7))
def test_integer_pattern_matches_exactly_its_range(low, span, probe):
    high = low + span
    pattern = re.compile(integer_pattern(low, high))
    for n in (probe, low - 1, low, low + 1, high - 1, high, high + 1, 0, -1):
        assert (pattern.fullmatch(str(n)) is not None) == (low <= n <= high), (low, high, n)
    assert not any(pattern.fullmatch(text) for text in ("-0", "00", "01", "+1", "1.0", ""))


def test_integer_pattern_without_bounds_is_the_old_six_digits_and_bad_bounds_are_explained():
    pattern = re.compile(integer_pattern())
    assert pattern.fullmatch(str(INTEGER_LIMIT)) and pattern.fullmatch(str(-INTEGER_LIMIT))
    assert not pattern.fullmatch(str(INTEGER_LIMIT + 1))
    with pytest.raises(GrammarError, match="minimum 3 is above maximum 2"):
        integer_pattern(3, 2)


@settings(max_examples=200, deadline=None)
@given(width=st.integers(-INTEGER_LIMIT, 10**7), indent=st.integers(-INTEGER_LIMIT, 10**7))
def test_grammar_and_validator_agree_on_bounded_integers(width, indent):
    call = call_text("text_formatter", {"text": "a", "width": width, "indent": indent})
    try:
        parse_and_validate(call, BY_NAME)
        valid = True
    except CallError:
        valid = False
    assert valid == (1 <= width <= MAX_WIDTH and 0 <= indent <= MAX_INDENT)
    assert GRAMMAR.complete(call.encode()) == (valid and indent < width)  # and the rule no schema states
    assert CallGrammar(SCHEMAS, below=()).complete(call.encode()) == valid


def test_grammar_takes_the_bounds_at_the_edges_and_no_further():
    def ok(arguments):
        return GRAMMAR.complete(call_text("text_formatter", {"text": "a", **arguments}).encode())

    assert ok({"width": MAX_WIDTH, "indent": MAX_INDENT}) and not ok({"width": MAX_WIDTH + 1})
    assert not ok({"width": 10**9}) and not ok({"width": 40, "indent": MAX_INDENT + 1})
    assert GRAMMAR.viable(b'{"tool": "text_formatter", "arguments": {"text": "a", "width": 100')
    assert not GRAMMAR.viable(b'{"tool": "text_formatter", "arguments": {"text": "a", "width": 1001')
    rules = {"text": "a", "rules": ["non_empty"] * MAX_RULES}
    assert GRAMMAR.complete(call_text("content_validator", rules).encode())
    rules["rules"].append("non_empty")
    assert not GRAMMAR.complete(call_text("content_validator", rules).encode())
    assert not GRAMMAR.complete(call_text("content_validator", {"text": "a", "rules": ["max_length:123456"]}).encode())


def test_string_and_array_caps_take_the_tighter_of_schema_and_grammar():
    schema = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {
                "type": "object",
                "properties": {
                    "s": {"type": "string", "maxLength": 3},
                    "xs": {"type": "array", "items": {"type": "integer"}, "maxItems": 2},
                    "n": {"type": "integer", "minimum": 1, "maximum": 12},
                },
                "required": ["s", "xs", "n"],
            },
        },
    }
    grammar = CallGrammar([schema])

    def ok(s, xs, n):
        return grammar.complete(call_text("f", {"s": s, "xs": xs, "n": n}).encode())

    assert ok("abc", [1, 2], 12) and ok("a", [], 1)
    assert not ok("abcd", [1], 5) and not ok("a", [1, 2, 3], 5) and not ok("a", [1], 0) and not ok("a", [1], 13)
    assert f"{{1,{MAX_STRING_CHARS}}}" in call_pattern(SCHEMAS)  # 10000-character texts: the grammar's 400 cap


arguments_strategy = st.fixed_dictionaries(
    {"text": st.text(max_size=20)},
    optional={
        "width": st.one_of(st.integers(), st.booleans(), st.floats(), st.text(max_size=3)),
        "indent": st.integers(-5, 200),
    },
)


@settings(max_examples=200, deadline=None)
@given(arguments=arguments_strategy)
def test_every_call_the_grammar_completes_validates(arguments):
    call = call_text("text_formatter", arguments)
    if GRAMMAR.complete(call.encode()):
        parse_and_validate(call, BY_NAME)


# A reply that copies (a call quoting the request, an answer repeating the result) gets room for the copy.
import json  # noqa: E402
import math  # noqa: E402

from lessons_lib.tools.constrained import COPY_FRAME_TOKENS, REPLY_TOKENS, reply_budgets  # noqa: E402

PARAGRAPH = "Wrap this to 30 columns: " + "The Velmora 3 firmware adds a night mode and fixes the compass drift. " * 6


def test_each_reply_gets_room_for_its_own_copy_unless_a_budget_is_given(tokenizer):
    copy = len(tokenizer(json.dumps(PARAGRAPH)[1:-1], add_special_tokens=False)["input_ids"]) + COPY_FRAME_TOKENS
    need = math.ceil(copy / (1 - CLOSING_SHARE))  # the copy is whole before a constrained call must start closing
    assert copy > REPLY_TOKENS + 50  # the paragraph would not fit the old fixed 128 tokens
    assert reply_budgets(tokenizer, ["Wrap 'hi' to 10.", PARAGRAPH, None]) == [REPLY_TOKENS, need, REPLY_TOKENS]
    assert reply_budgets(tokenizer, []) == []
    assert reply_budgets(tokenizer, [PARAGRAPH, "hi"], 64) == [64, 64]  # a budget you give is the budget


def test_model_chat_and_evaluate_give_a_long_request_room_for_its_quote(tokenizer, monkeypatch):
    from lessons_lib.tools import evaluate, loop
    from lessons_lib.tools.data import ToolExample

    budgets = []

    def spy(model, tok, texts, schemas, quotes=None, max_new_tokens=None, adapter_names=None, batch_size=16):
        budgets.append(max_new_tokens)
        return ['{"tool": "text_formatter", "arguments": {"text": "x"}}'] * len(texts)

    monkeypatch.setattr(loop, "constrained_generate", spy)
    monkeypatch.setattr(evaluate, "constrained_generate", spy)
    monkeypatch.setattr(evaluate, "faithful_generate", lambda m, t, texts, sources, budget, names: ["x"] * len(texts))
    ModelChat(None, tokenizer, tool_choice="required", quote=True)([{"role": "user", "content": PARAGRAPH}])
    ModelChat(None, tokenizer, tool_choice="required", max_new_tokens=50)([{"role": "user", "content": PARAGRAPH}])
    examples = [ToolExample("en", text, "text_formatter", {"text": "x"}, "x", "x") for text in (PARAGRAPH, "Wrap x.")]
    evaluate.evaluate_tools(None, tokenizer, [None], examples=examples, tool_choice="required", quote=True)
    need = reply_budgets(tokenizer, [PARAGRAPH])[0]
    assert budgets == [need, 50, [need, REPLY_TOKENS]]  # each row its own


def test_per_row_budgets_close_each_row_in_its_own_time(base_model, tokenizer):
    from lessons_lib.models import generate_texts

    prompts = _prompts(tokenizer, ["Wrap 'a b c' to 10.", "Wrap 'd e f' to 12."])
    short, long = generate_texts(base_model, tokenizer, prompts, [3, 20])
    assert (
        len(tokenizer(short, add_special_tokens=False)["input_ids"])
        <= 3
        < len(tokenizer(long, add_special_tokens=False)["input_ids"])
    )
    with pytest.raises(ValueError, match="3 budgets for 2 texts"):
        generate_texts(base_model, tokenizer, prompts, [3, 4, 5])
    with pytest.raises(ValueError, match="2 budgets for 1 rows"):
        CallConstraint(tokenizer, [GRAMMAR], 0, max_new_tokens=[5, 6])


# Client schemas: every constraining keyword is kept by the grammar or refused by name, never silently ignored.
from fractions import Fraction  # noqa: E402

from lessons_lib.tools.constrained import NUMBER_DECIMALS, number_pattern  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(
    low=st.integers(-(10**8), 10**8),
    span=st.integers(0, 10**8),
    probe=st.integers(-3 * 10**8, 3 * 10**8),
    decimals=st.integers(0, NUMBER_DECIMALS),
)
def test_number_pattern_matches_exactly_its_range_in_millionths(low, span, probe, decimals):
    high, scale = low + span, 10**NUMBER_DECIMALS
    pattern = re.compile(number_pattern(low, high))
    for micro in (probe, low - 1, low, low + 1, high - 1, high, high + 1, 0):
        value = Fraction(micro, scale)
        step = Fraction(1, 10**decimals)
        value = (value / step).__floor__() * step  # written with `decimals` fraction digits, trailing zeros kept
        whole, part = divmod(abs(value) * 10**decimals, 10**decimals)
        text = ("-" if value < 0 else "") + str(whole) + (f".{int(part):0{decimals}d}" if decimals else "")
        assert (pattern.fullmatch(text) is not None) == (low <= value * scale <= high), (low, high, text)


def one_argument_tool(spec: dict) -> dict:
    """A client's tool `f` with one required argument `x`."""
    return {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {"type": "object", "properties": {"x": spec}, "required": ["x"]},
        },
    }


KEPT_CASES = [
    ({"type": "string", "const": "fixed"}, ["fixed", "fixe", "other"]),
    ({"type": "integer", "exclusiveMinimum": 5, "maximum": 7}, [4, 5, 6, 7, 8]),
    ({"type": "integer", "minimum": 5, "exclusiveMinimum": True, "maximum": 7}, [5, 6]),
    ({"type": "integer", "multipleOf": 7, "minimum": 1, "maximum": 30}, [0, 7, 13, 14, 28, 35]),
    ({"type": "integer", "multipleOf": 4, "minimum": -9, "maximum": 9}, [-9, -8, 0, 6, 8, 12]),
    ({"type": "integer", "multipleOf": 1.5, "minimum": 0, "maximum": 10}, [0, 3, 4, 9, 10]),
    ({"type": "number", "minimum": 0.5, "exclusiveMaximum": 0.7}, [0.4, 0.5, 0.55, 0.699999, 0.7, 1]),
    ({"type": "number", "minimum": -1.25, "maximum": 2}, [-1.3, -1.25, -1, 0, 1.999, 2, 2.0001]),
    ({"type": "string", "minLength": 3, "maxLength": 5}, ["ab", "abc", "абв", "abcde", "abcdef", "абвгде"]),
    ({"type": "array", "items": {"enum": ["a", "b", "c"]}, "uniqueItems": True}, [["a", "b"], ["a", "a"], ["c"]]),
    ({"type": "array", "items": {"type": "boolean"}, "uniqueItems": True}, [[True, False], [True, True]]),
    ({"type": "array", "items": {"type": "string", "maxLength": 3}, "uniqueItems": True}, [["a", "ab"], ["ab", "ab"]]),
    (
        {"type": "array", "items": {"type": "string", "pattern": "^(?:ab|abc)$"}, "uniqueItems": True},
        [["ab", "abc"], ["abc", "abc"]],
    ),
    ({"anyOf": [{"type": "string", "maxLength": 2}, {"type": "null"}], "default": None}, ["ab", None, "abc", 3]),
    ({"type": ["integer", "null"], "minimum": 2}, [2, None, 1, "2"]),
    ({"oneOf": [{"type": "string", "enum": ["x"]}, {"type": "integer", "maximum": 3}]}, ["x", 3, "y", 4]),
    ({"type": ["string", "null"], "enum": ["a", "b"]}, ["a", None, "c"]),
]


@pytest.mark.parametrize("spec, values", KEPT_CASES)
def test_the_grammar_completes_a_client_call_exactly_when_the_validator_takes_it(spec, values):
    tool = one_argument_tool(spec)
    grammar, by_name = CallGrammar([tool], below=()), schemas_by_name([tool])
    verdicts = []
    for value in values:
        call = call_text("f", {"x": value})
        try:
            parse_and_validate(call, by_name)
            valid = True
        except CallError:
            valid = False
        assert grammar.complete(call.encode()) == valid, (spec, value)
        verdicts.append(valid)
    assert True in verdicts and False in verdicts  # each case tells the two apart


@pytest.mark.parametrize(
    "spec, keyword",
    [
        ({"type": "string", "format": "email"}, "format"),
        ({"type": "integer", "multipleOf": 3}, "multipleOf"),
        ({"type": "array", "items": {"type": "integer"}, "contains": {"const": 1}}, "contains"),
        ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems only for strings"),
        ({"type": "string", "pattern": "^[a-z]+$", "maxLength": 4}, "maxLength"),
        ({"type": "string", "not": {"const": "x"}}, "not"),
        ({"allOf": [{"type": "string"}, {"minLength": 2}]}, "allOf; give the argument one type"),
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, "oneOf only when each schema has its own type"),
        ({"type": ["string", "null"], "format": "date"}, "format"),
        ({"type": "array"}, "an array needs `items`"),
    ],
)
def test_a_keyword_the_grammar_would_not_keep_is_refused_by_name(spec, keyword):
    with pytest.raises(GrammarError, match=rf"f\.x.*{keyword}"):
        CallGrammar([one_argument_tool(spec)], below=())
    schema = one_argument_tool({"type": "string"})
    schema["function"]["parameters"]["minProperties"] = 1
    with pytest.raises(GrammarError, match=r"f: .*minProperties on the arguments object"):
        CallGrammar([schema], below=())


def test_unique_items_are_kept_while_the_call_is_written():
    grammar = CallGrammar(
        [one_argument_tool({"type": "array", "items": {"enum": ["a", "b", "c"]}, "uniqueItems": True})]
    )
    head = b'{"tool": "f", "arguments": {"x": ['
    assert grammar.viable(head + b'"a", "b", "') and grammar.viable(head + b'"a", "b", "c"')
    assert not grammar.viable(head + b'"a", "b", "a"') and not grammar.viable(head + b'"b", "b')
    assert not grammar.viable(head + b'"a", "b", "c", ')  # no fourth value left to write


@pytest.mark.parametrize("item", [{"type": "string", "pattern": "^(?:ab|abc|b)$"}, {"type": "string", "maxLength": 3}])
def test_unique_strings_are_kept_while_the_call_is_written(item):
    """Strings cannot be listed, so the grammar looks ahead: an item may go on while some string it can still become
    has not been written (a seen "ab" may grow into "abc"), and a string equal to a seen one (escapes decoded) ends
    the call's chances."""
    grammar = CallGrammar([one_argument_tool({"type": "array", "items": item, "uniqueItems": True})], below=())
    head = b'{"tool": "f", "arguments": {"x": ['
    assert grammar.viable(head + b'"ab", "') and grammar.viable(head + b'"ab", "ab') and grammar.viable(head + b'"ab",')
    assert not grammar.viable(head + b'"ab", "ab"') and not grammar.viable(head + b'"ab", "abc", "b", "ab"')
    assert grammar.complete(head + b'"ab", "abc", "b"]}}') and not grammar.complete(head + b'"b", "ab", "b"]}}')
    array = {"type": "array", "items": item, "uniqueItems": True}
    four = {"type": "object", "properties": {"x": array, "y": item, "z": item, "n": {"type": "integer"}}}
    later = CallGrammar([{"type": "function", "function": {"name": "f", "parameters": four}}], below=())
    assert later.complete(head + b'], "y": "b", "z": "b", "n": 1}}')  # strings after the array are not its items
    if "pattern" in item:  # every string the pattern allows is written: no fourth item can begin
        assert not grammar.viable(head + b'"ab", "abc", "b", "')
    else:
        assert not grammar.viable(head + b'"a\\u0062", "ab"') and not grammar.viable(head + b'"abc", "abc')


def test_a_min_length_string_may_close_only_once_long_enough(tokenizer):
    """The free-text fast path caches which tokens end a string; with minLength that depends on its length."""
    import torch

    grammar = CallGrammar([one_argument_tool({"type": "string", "minLength": 4})], below=())
    pieces = token_bytes(tokenizer)
    for value, may_close in (("ab", False), ("абв", False), ("abcd", True), ("абвгд", True)):
        text = '{"tool": "f", "arguments": {"x": "' + value
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        allowed = set(CallConstraint(tokenizer, [grammar], 0)(0, torch.tensor(ids)))
        expected = {i for i, piece in enumerate(pieces) if piece and grammar.viable(text.encode() + piece)}
        assert allowed - {tokenizer.eos_token_id} == expected
        assert grammar.complete((text + '"}}').encode()) == may_close
        assert any(pieces[i] and pieces[i].startswith(b'"') for i in allowed) == may_close


@pytest.mark.parametrize(
    "spec, value, message",
    [
        ({"type": "string", "const": "fixed"}, "other", "Argument 'x' is 'other'; it must be 'fixed'."),
        ({"type": "integer", "exclusiveMinimum": 5}, 5, "Argument 'x' is 5; it must be above 5."),
        ({"type": "number", "maximum": 1, "exclusiveMaximum": True}, 1, "Argument 'x' is 1; it must be below 1."),
        ({"type": "integer", "multipleOf": 7}, 13, "Argument 'x' is 13; it must be a multiple of 7."),
        ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, ["a", "b", "a"], "lists 'a' twice"),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, "x", "it must match one of the 2 schemas its anyOf"),
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 3, "exactly one of the 2 schemas its oneOf lists"),
    ],
)
def test_the_validator_explains_each_kept_keyword(spec, value, message):
    with pytest.raises(CallError, match=re.escape(message)):
        parse_and_validate(call_text("f", {"x": value}), schemas_by_name([one_argument_tool(spec)]))


@settings(max_examples=100, deadline=None)
@given(chosen=st.lists(st.booleans(), min_size=9, max_size=9), swap=st.booleans())
def test_a_tool_with_many_optional_arguments_takes_any_of_them_in_schema_order(chosen, swap):
    """Before: more than 6 optional arguments was a GrammarError (the pattern listed every subset of them)."""
    names = [f"o{i}" for i in range(4)] + ["need"] + [f"p{i}" for i in range(4)]
    properties = {name: {"type": "integer", "minimum": 0, "maximum": 9} for name in names}
    tool = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "properties": properties, "required": ["need"]}},
    }
    grammar = CallGrammar([tool], below=())
    written = [name for name, keep in zip(names, chosen) if keep or name == "need"]
    if swap and len(written) > 1:
        written[0], written[-1] = written[-1], written[0]  # out of schema order
    call = call_text("f", {name: 1 for name in written})
    in_order = written == [n for n in names if n in written]
    assert grammar.complete(call.encode()) == in_order
    assert not grammar.complete(call_text("f", {n: 1 for n in written if n != "need"}).encode())


def test_required_names_a_property_the_schema_defines():
    tool = one_argument_tool({"type": "string"})
    tool["function"]["parameters"]["required"] = ["x", "y"]
    with pytest.raises(GrammarError, match="required lists y, which properties does not define"):
        CallGrammar([tool], below=())
