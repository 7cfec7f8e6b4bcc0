"""Tool calling on chat templates without tool support (TinyLlama's Zephyr) and strict ones (Mistral v0.3)."""

import hashlib
import json
import re

import pytest

from lessons_lib.chat_format import (
    CHAT_TEMPLATES,
    CONTEXT_LENGTHS,
    TemplateCaps,
    call_id,
    capabilities,
    chat_template_text,
    is_call_id,
    prepare,
    signature_text,
    tools_prompt,
    type_text,
    wear_template,
    with_call_ids,
)
from lessons_lib.models import chat_text
from lessons_lib.tools import TOOLS, ToolCall, run_tool_loop, tool_schemas
from lessons_lib.tools.calls import call_text
from lessons_lib.tools.data import tool_examples, tool_sft_rows

SCHEMAS = tool_schemas()
REHEARSALS = ("zephyr", "mistral-v0.3")
TEMPLATES = ("tiny",) + REHEARSALS
CALL = call_text("text_formatter", {"text": "one two three", "width": 7})
RESULT = "one two\nthree"
MALFORMED = '{"tool": "text_formatter", "arguments": {'
# A Gemma-style template (no system role, strict alternation, no tools): a stand-in for the strictest kind.
NO_SYSTEM = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] not in ('user', 'assistant') %}{{ raise_exception('Only user and assistant') }}"
    "{% endif %}{{ '<turn>' + message['role'] + '\n' + message['content'] + '<end>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<turn>assistant\n' }}{% endif %}"
)


def rehearsal_tokenizer(name: str):
    """The tiny tokenizer wearing a real model's chat template ("tiny": its own)."""
    from transformers import AutoTokenizer

    from lessons_lib.paths import TINY_MODEL_DIR

    tok = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    if name != "tiny":
        tok.chat_template = NO_SYSTEM if name == "no-system" else chat_template_text(name)
    return tok


@pytest.fixture(scope="module", params=TEMPLATES)
def tok(request):
    return rehearsal_tokenizer(request.param)


class RenderingModel:
    """Replies from a script and keeps the prompt text each turn was rendered to."""

    def __init__(self, tokenizer, *replies):
        self.tokenizer, self.replies, self.prompts = tokenizer, list(replies), []

    def __call__(self, messages):
        self.prompts.append(chat_text(self.tokenizer, messages, tools=SCHEMAS))
        return self.replies.pop(0)


def test_shipped_templates_are_the_models_own():
    zephyr, mistral = chat_template_text("zephyr"), chat_template_text("mistral-v0.3")
    assert len(zephyr) == 410 and zephyr.startswith("{% for message in messages %}\n")  # 410 chars in the GGUF too
    assert "{{ '<|assistant|>\n'  + message['content'] + eos_token }}" in zephyr and not zephyr.endswith("\n")
    assert mistral.startswith('{%- if messages[0]["role"] == "system" %}') and mistral.endswith("{%- endfor %}\n")
    assert 'raise_exception("Tool call IDs should be alphanumeric strings with length 9!")' in mistral
    assert hashlib.sha256(mistral.encode()).hexdigest()[:16] == "e16746b40344d6c5" and len(mistral) == 3959
    assert hashlib.sha256(zephyr.encode()).hexdigest()[:16] == "66291cf0045c2425"
    with pytest.raises(ValueError, match="choose one of: zephyr, mistral-v0.3"):
        chat_template_text("llama")
    assert CHAT_TEMPLATES == REHEARSALS


@pytest.mark.parametrize(
    "name, caps",
    [
        (
            "tiny",
            TemplateCaps(
                tools=True, tool_calls=True, tool_results=True, call_ids=False, alternation=False, system=True
            ),
        ),
        (
            "zephyr",
            TemplateCaps(
                tools=False, tool_calls=False, tool_results=False, call_ids=False, alternation=False, system=True
            ),
        ),
        (
            "mistral-v0.3",
            TemplateCaps(tools=True, tool_calls=True, tool_results=True, call_ids=True, alternation=True, system=False),
        ),
        (
            "no-system",
            TemplateCaps(
                tools=False, tool_calls=False, tool_results=False, call_ids=False, alternation=True, system=False
            ),
        ),
    ],
)
def test_probes_find_what_each_template_renders(name, caps):
    tok = rehearsal_tokenizer(name)
    assert capabilities(tok) == caps and caps.native == (name == "tiny")


def test_the_tiny_template_renders_exactly_as_before():
    tok = rehearsal_tokenizer("tiny")
    model = RenderingModel(tok, MALFORMED, CALL, "Done.")
    result = run_tool_loop(model, "wrap it")
    assert result.answer == "Done."
    head = "<|system|>\nTools: text_formatter; template_generator; content_validator<|end|>\n<|user|>\nwrap it<|end|>\n"
    error = result.messages[2]["content"]
    assert model.prompts[2] == (
        head + f"<|assistant|>\n{MALFORMED}<|end|>\n<|tool|>\n{error}<|end|>\n"
        f"<|assistant|>\n{CALL}<|end|>\n<|tool|>\n{RESULT}<|end|>\n<|assistant|>\n"
    )
    for i, prompt in enumerate(model.prompts):  # the same text the template makes of the raw messages
        raw = tok.apply_chat_template(
            result.messages[: 2 * i + 1], tools=SCHEMAS, tokenize=False, add_generation_prompt=True
        )
        assert prompt == raw
    assert (
        chat_text(tok, "hi", system="Be brief.") == "<|system|>\nBe brief.<|end|>\n<|user|>\nhi<|end|>\n<|assistant|>\n"
    )
    messages = result.messages[:5]
    assert prepare(tok, messages, SCHEMAS) == (messages, SCHEMAS)


def test_the_tiny_training_rows_are_unchanged():
    tok = rehearsal_tokenizer("tiny")
    assert tool_sft_rows(6, tokenizer=tok) == tool_sft_rows(6)
    row = tool_sft_rows(1)[1]
    ex = tool_examples(1)[0]
    assert row["prompt"] == [
        {"role": "user", "content": ex.request},
        {"role": "assistant", "content": call_text(ex.tool, ex.arguments)},
        {"role": "tool", "content": ex.result},
    ]


def test_the_second_turn_sees_the_tools_and_the_result(tok):
    model = RenderingModel(tok, CALL, "Done.")
    result = run_tool_loop(model, "wrap it")
    assert [e.kind for e in result.events] == ["call", "result", "answer"]
    second = model.prompts[1]
    assert RESULT in second and all(s["function"]["name"] in second for s in SCHEMAS)
    assert result.messages[1]["tool_calls"][0]["id"] == result.messages[2]["tool_call_id"]
    assert is_call_id(result.calls[0].id)


def test_the_error_path_renders_on_every_template(tok):
    model = RenderingModel(tok, MALFORMED, '{"tool": "shout", "arguments": {}}', CALL, "Fixed.")
    result = run_tool_loop(model, "wrap it", max_steps=5)
    assert result.answer == "Fixed." and [e.kind for e in result.events][:2] == ["error", "error"]
    last = model.prompts[-1]
    assert "not valid JSON" in last and "There is no tool 'shout'" in last and RESULT in last


def test_zephyr_gets_the_schemas_in_a_system_turn_and_the_result_as_a_user_turn():
    tok = rehearsal_tokenizer("zephyr")
    model = RenderingModel(tok, CALL, "Done.")
    run_tool_loop(model, "wrap it")
    second = model.prompts[1]
    assert second.startswith(
        "<|system|>\nYou can call these tools. To call one, reply with only this JSON: "
        '{"tool": "<name>", "arguments": {...}}\nTools:\n'
    )
    assert all(signature_text(schema["function"]) in second for schema in SCHEMAS)
    assert json.dumps(SCHEMAS[0]["function"]["parameters"], ensure_ascii=False) not in second  # no JSON schemas
    assert second.endswith(
        f"<|assistant|>\n{CALL}<|end|>\n<|user|>\nTool result (text_formatter): {RESULT}<|end|>\n<|assistant|>\n"
    )
    assert (
        tok.apply_chat_template([{"role": "user", "content": "x"}], tools=SCHEMAS, tokenize=False)
        == "<|user|>\nx<|end|>\n"
    )  # what happened before: no tools, and no trace of a tool result


def test_mistral_gets_ids_alternation_and_its_own_tool_format():
    tok = rehearsal_tokenizer("mistral-v0.3")
    model = RenderingModel(tok, MALFORMED, CALL, "Done.")
    result = run_tool_loop(model, "wrap it")
    with pytest.raises(Exception, match="alternate"):  # the raw conversation breaks the template's rules
        tok.apply_chat_template(result.messages, tools=SCHEMAS, tokenize=False)
    with pytest.raises(Exception, match="Tool call IDs should be alphanumeric strings with length 9"):
        tok.apply_chat_template(tool_examples(1)[0].messages(), tools=SCHEMAS, tokenize=False)
    last = model.prompts[-1]
    ids = re.findall(r'"id": "([^"]*)"', last)
    assert ids and all(is_call_id(i) for i in ids) and re.findall(r'"call_id": "([^"]*)"', last) == ids
    assert last.startswith("<s>[INST] wrap it[/INST]") and "[AVAILABLE_TOOLS] [" in last
    assert "[TOOL_CALLS] [" in last and last.endswith(f'"call_id": "{ids[0]}"}}[/TOOL_RESULTS]')
    messages, tools = prepare(tok, result.messages[:5], SCHEMAS)
    plain = [m["role"] for m in messages if m["role"] != "tool" and not m.get("tool_calls")]
    assert plain == ["user", "assistant", "user"] and tools == SCHEMAS
    assert chat_text(tok, "U", system="S") == "<s>[INST] S\n\nU[/INST]"  # as the template itself puts it
    assert "[INST] S\n\nwrap it[/INST]" in chat_text(tok, result.messages[:5], system="S")  # kept after a result


def test_templates_without_a_system_role_get_everything_in_the_first_user_turn():
    tok = rehearsal_tokenizer("no-system")
    model = RenderingModel(tok, MALFORMED, CALL, "Done.")
    run_tool_loop(model, "wrap it")
    last = model.prompts[-1]
    assert last.startswith("<s><turn>user\nYou can call these tools.") and "\n\nwrap it<end>" in last
    assert f"<turn>user\nTool result (text_formatter): {RESULT}<end>\n<turn>assistant\n" in last


def test_call_ids_are_deterministic_and_results_follow_renamed_calls():
    assert call_id("a", {"x": 1}, 1) == call_id("a", {"x": 1}, 1) != call_id("a", {"x": 1}, 2)
    assert is_call_id(call_id("a", {}, 1)) and not is_call_id("call_0123456") and not is_call_id(None)
    calls = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"type": "function", "id": "call_a", "function": {"name": "a", "arguments": "{}"}},
            {"type": "function", "function": {"name": "b", "arguments": {}}},
        ],
    }
    messages = [
        {"role": "user", "content": "go"},
        calls,
        {"role": "tool", "content": "A", "tool_call_id": "call_a"},
        {"role": "tool", "content": "B"},
    ]
    out = with_call_ids(messages)
    first, second = (c["id"] for c in out[1]["tool_calls"])
    assert is_call_id(first) and is_call_id(second) and first != second
    assert [m["tool_call_id"] for m in out[2:]] == [first, second]
    assert messages[1]["tool_calls"][0]["id"] == "call_a"  # the input is not modified


@pytest.mark.parametrize("name", REHEARSALS)
def test_training_rows_render_with_the_result_and_match_the_loop(name):
    from trl.data_utils import apply_chat_template

    tok = rehearsal_tokenizer(name)
    rows = tool_sft_rows(6, tokenizer=tok)
    examples = tool_examples(6)
    for i, row in enumerate(rows):
        tools = json.loads(row["tools"])
        rendered = apply_chat_template({"prompt": row["prompt"], "completion": row["completion"]}, tok, tools=tools)
        full = tok.apply_chat_template(row["prompt"] + row["completion"], tools=tools, tokenize=False)
        assert full.startswith(rendered["prompt"]) and rendered["completion"].strip()
        ex = examples[i // 2]
        if i % 2:  # an answer row: the tool's result is in the prompt, the final answer is the completion
            assert (ex.result if isinstance(ex.result, str) else json.dumps(ex.result, ensure_ascii=False)) in rendered[
                "prompt"
            ]
            assert rendered["completion"].lstrip().startswith(ex.final[:20])
            model = RenderingModel(tok, call_text(ex.tool, ex.arguments), ex.final)
            run_tool_loop(model, ex.request)
            assert model.prompts[1] == rendered["prompt"]  # trained on exactly what the loop shows
        else:
            assert call_text(ex.tool, ex.arguments) in rendered["completion"]
    assert all(row["tools"] == "null" for row in rows) == (name == "zephyr")


@pytest.mark.parametrize("name", REHEARSALS)
def test_schema_constrained_model_chat_works_on_rehearsal_templates(name, tiny):
    from peft import PeftModel

    from lessons_lib.models import load_base, load_tokenizer
    from lessons_lib.paths import TINY_ADAPTERS_DIR
    from lessons_lib.tools import ModelChat
    from lessons_lib.tools.calls import parse_and_validate
    from lessons_lib.tools.schemas import schemas_by_name

    model = PeftModel.from_pretrained(load_base(tiny), TINY_ADAPTERS_DIR / "tools", adapter_name="tools")
    tok = load_tokenizer(tiny)
    tok.chat_template = chat_template_text(name)
    chat = ModelChat(model, tok, SCHEMAS, adapter="tools", max_new_tokens=96, tool_choice="required")
    result = run_tool_loop(chat, tool_examples(1, "heldout", seed=2)[0].request, max_steps=2)
    assert result.events[0].kind == "call", result.transcript()
    reply = result.messages[1]["tool_calls"][0]["function"]
    assert parse_and_validate(call_text(reply["name"], reply["arguments"]), schemas_by_name(SCHEMAS))
    assert len(result.events) >= 3  # turn 2 rendered and ran


def test_tool_call_messages_carry_their_id():
    assert ToolCall("a", {}, "abc123def").as_message()["tool_calls"][0]["id"] == "abc123def"
    assert "id" not in ToolCall("a", {}).as_message()["tool_calls"][0]
    assert ToolCall("a", {}, "abc123def") == ToolCall("a", {})  # ids do not make calls differ


def test_tools_prompt_reads_like_the_docstrings_in_half_the_tokens():
    tok = rehearsal_tokenizer("tiny")
    text = tools_prompt(SCHEMAS)
    assert text.splitlines()[:2] == [
        'You can call these tools. To call one, reply with only this JSON: {"tool": "<name>", "arguments": {...}}',
        "Tools:",
    ]
    assert signature_text(SCHEMAS[1]["function"]).splitlines()[0] == (
        'template_generator(template_type: "instruction"|"email"|"bug_report"|"meeting_notes", topic: str, '
        'language: "en"|"ru" (optional)): Fill a text template (instruction/input/response prompt, e-mail, bug '
        "report, meeting notes) with a topic."
    )
    for schema in SCHEMAS:  # every argument and its description survive
        for name, spec in schema["function"]["parameters"]["properties"].items():
            assert f"    {name}: {spec['description']}" in text
    assert "rules: list[str]" in text and "max_length:N, min_words:N" in text
    as_json = len(tok(json.dumps(SCHEMAS, ensure_ascii=False))["input_ids"])
    assert len(tok(text)["input_ids"]) < 0.6 * as_json
    assert tools_prompt(list(TOOLS.values())) == text  # plain functions give the same text as their schemas


@pytest.mark.parametrize(
    "spec, text",
    [
        ({"type": "integer"}, "int"),
        ({"type": ["string", "null"]}, "str|None"),
        ({"type": "array", "items": {"type": "integer"}}, "list[int]"),
        ({"enum": [1, 2]}, "1|2"),
        ({}, "any"),
    ],
)
def test_schema_types_read_as_python(spec, text):
    assert type_text(spec) == text


def test_a_rehearsal_tokenizer_declares_the_real_context_and_drops_the_position_notice(caplog):
    import logging

    tok = wear_template(rehearsal_tokenizer("tiny"), "mistral-v0.3")
    assert tok.model_max_length == CONTEXT_LENGTHS["mistral-v0.3"] == 32768 and "[AVAILABLE_TOOLS]" in tok.chat_template
    wear_template(tok, "zephyr")
    logger = logging.getLogger("transformers.generation.stopping_criteria")
    assert sum(type(f).__name__ == "_PastPositions" for f in logger.filters) == 1  # added once
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning(
            "This is a friendly reminder - the current text generation call has exceeded the model's "
            "predefined maximum length (512)."
        )
        logger.warning("another notice")
    assert [r.getMessage() for r in caplog.records] == ["another notice"]
