"""The rest of the server in Russian: what a learner or an API client reads from serve/ besides the HTTP errors of
test_serve_russian.py — a server that does not start (notebook 06), the engine's refusals and failures, a stream
that times out, adapters left out at load time, the app's own checks, the vLLM hand-off, the serve CLI's profile
reason. Under LESSONS_LANG=ru each is Russian with the same numbers and names; in English each is exactly what it was.

No model is loaded: the engine runs on a stand-in decode loop, the server's loading is replaced, and the vLLM
hand-off reads adapter folders holding only their config (test_vllm_handoff.fake_adapter).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_serve_cli_bad_input import one_error_line
from test_serve_cli_bad_input import run_cli as run_serve
from test_serve_russian import CYRILLIC, ENGLISH_PROSE
from test_vllm_handoff import STORE, fake_adapter
from test_vllm_handoff import run_cli as run_vllm

from lessons_lib.generation import RowResult
from lessons_lib.profiles import PROFILES
from lessons_lib.serve.engine import BatchingEngine, GenerationError, Job, Sampling
from lessons_lib.serve.process import free_port

TINY = PROFILES["tiny"]


@pytest.fixture(params=["en", "ru"])
def lang(request, monkeypatch) -> str:
    """Each test once in English ($LESSONS_LANG unset) and once in Russian."""
    if request.param == "ru":
        monkeypatch.setenv("LESSONS_LANG", "ru")
    else:
        monkeypatch.delenv("LESSONS_LANG", raising=False)
    return request.param


def russian(text: str) -> None:
    """`text` is Russian: Cyrillic words and no English sentence left in it."""
    assert CYRILLIC.search(text) and not ENGLISH_PROSE.search(text), text


# ---------------------------------------------------------------- a server that does not start (notebook 06)
def test_a_server_that_exits_says_so_with_its_log(lang, tmp_path):
    from lessons_lib.serve.process import wait_until_healthy

    log = tmp_path / "server.log"
    log.write_text("loading ...\nerror: port 8000 on 127.0.0.1 is already in use\n")
    dead = SimpleNamespace(poll=lambda: 3, returncode=3)
    with pytest.raises(RuntimeError) as caught:
        wait_until_healthy("http://127.0.0.1:9", dead, 5, log)
    message = str(caught.value)
    tail = "\nloading ...\nerror: port 8000 on 127.0.0.1 is already in use"
    if lang == "en":
        assert message == "The server exited with code 3 before it was ready.\nLast lines of the server log:" + tail
        return
    first, heading, *_ = message.split("\n")
    assert message.endswith(tail) and "кодом 3" in first and heading == "Последние строки журнала сервера:"
    russian(first)


def test_a_server_that_never_gets_healthy_says_where_and_how_long(lang):
    from lessons_lib.serve.process import wait_until_healthy

    url = f"http://127.0.0.1:{free_port()}"  # nobody answers there
    with pytest.raises(TimeoutError) as caught:
        wait_until_healthy(url, None, 0.3)
    message = str(caught.value)
    if lang == "en":
        assert message == f"The server at {url} was not healthy after 0 s."
        return
    assert f"Сервер по адресу {url} " in message and " 0 с." in message
    russian(message.replace(url, "URL"))


def test_notebook_06s_start_server_reports_a_failed_start_in_russian(monkeypatch, tmp_path):
    """The whole path the notebook takes: the child server refuses a busy port and exits; the error says so in
    Russian, its log's lines (the child's own `ошибка:` line) included."""
    from lessons_lib.serve.process import start_server

    monkeypatch.setenv("LESSONS_LANG", "ru")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(RuntimeError) as caught:
            start_server("tiny", port, log_path=tmp_path / "server.log", timeout=120)
    message = str(caught.value)
    assert message.startswith("Сервер завершился с кодом 2"), message
    assert "\nПоследние строки журнала сервера:\n" in message and f"ошибка: порт {port} на 127.0.0.1" in message
    assert "Traceback" not in message, message


# ---------------------------------------------------------------- the engine
def run_alone(engine: BatchingEngine, job: Job) -> str:
    """The GenerationError message the engine answers `job` with."""
    with pytest.raises(GenerationError) as caught:
        engine.submit(job).result(30)
    return str(caught.value)


def a_job(model: str = "base", max_tokens: int = 4, **sampling) -> Job:
    return Job(prompt="p", route_text="p", model=model, max_tokens=max_tokens, sampling=Sampling(**sampling))


@pytest.fixture
def engine():
    """An engine with no model: every job here fails before its rows would reach one."""
    engine = BatchingEngine(None, None, [], router=None)
    yield engine
    engine.close()


def test_the_engines_refusals(lang, engine):
    cases = [
        (
            a_job("auto"),
            "RuntimeError: this server has no router, so model='auto' cannot be answered",
            ("RuntimeError: ", "model='auto'", "маршрутизатора"),
        ),
        (a_job(max_tokens=0), "ValueError: max_tokens must be at least 1, got 0.", ("max_tokens", "получено 0")),
        (a_job(n=0), "ValueError: n must be at least 1, got 0.", ("n должно быть не меньше 1", "получено 0")),
        (a_job(top_logprobs=2), "ValueError: top_logprobs needs logprobs=True.", ("top_logprobs", "logprobs=True")),
    ]
    for job, english, kept in cases:
        message = run_alone(engine, job)
        if lang == "en":
            assert message == f"generation failed: {english}"
        else:
            assert message.startswith("генерация не удалась: ") and all(k in message for k in kept), message
            russian(message)


def test_sampling_check_says_which_setting_to_change(lang):
    messages = []
    for sampling in (Sampling(n=0), Sampling(top_logprobs=2)):
        with pytest.raises(ValueError) as caught:
            sampling.check()
        messages.append(str(caught.value))
    if lang == "en":
        assert messages == ["n must be at least 1, got 0.", "top_logprobs needs logprobs=True."]
    else:
        assert messages == ["n должно быть не меньше 1, а получено 0.", "Для top_logprobs нужен logprobs=True."]


def stand_in_decode(calls: list):
    """A decode loop that streams a piece of every streamed row and then fails, and with batched_lora fails at
    once (a batched path that does not cover the model); otherwise one token per row."""

    def decode_batch(model, tokenizer, requests, batched_lora=None):
        calls.append(len(requests))
        if batched_lora is not None:
            raise NotImplementedError("no stacks for this layer")
        streamed = [r for r in requests if r.on_text is not None]
        for row in streamed:
            row.on_text("Hel", None, None)
        if streamed:
            raise RuntimeError("boom")
        return [RowResult(text="x", finish_reason="length", token_ids=[1], prompt_tokens=2) for _ in requests]

    return decode_batch


def test_a_streamed_job_whose_batch_failed_says_why_it_cannot_be_rerun(lang, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr("lessons_lib.serve.engine.decode_batch", stand_in_decode(calls))
    engine = BatchingEngine(None, None, ["json"], window_ms=500)
    try:
        streamed, plain = a_job("json"), a_job("json")
        streamed.on_delta = lambda delta: None
        engine.submit(streamed), engine.submit(plain)
        with pytest.raises(GenerationError) as caught:
            streamed.future.result(30)
        assert plain.future.result(30).text == "x"
    finally:
        engine.close()
    assert calls[0] == 2, calls  # one batch for both, then the plain job alone
    message = str(caught.value)
    if lang == "en":
        assert message == "generation failed: RuntimeError: its batch failed after part of the answer was streamed"
    else:
        assert message.startswith("генерация не удалась: RuntimeError: ") and "потоком" in message, message
        russian(message)


def test_a_failed_batched_lora_path_says_why_peft_took_over(lang, monkeypatch):
    monkeypatch.setattr("lessons_lib.serve.engine.decode_batch", stand_in_decode([]))
    engine = BatchingEngine(None, None, ["json"], batched_lora=object())
    try:
        assert engine.submit(a_job("json")).result(30).text == "x"
    finally:
        engine.close()
    path = engine.stats["lora_path"]
    why = "NotImplementedError: no stacks for this layer"
    if lang == "en":
        assert path == f"peft (batched LoRA failed: {why})"
    else:
        assert path == f"peft (путь batched LoRA не сработал: {why})"  # "peft" first in both: clients test it


# ---------------------------------------------------------------- a stream that times out
def test_a_stream_without_an_answer_in_time_says_so(lang):
    """The text `chunks` gives its `failure` callback (the app words a timeout itself: app.timed_out)."""
    from lessons_lib.serve.streaming import chunks

    async def body() -> list[bytes]:
        job = SimpleNamespace(cancelled=SimpleNamespace(set=lambda: None))
        failure = lambda err: {"error": {"message": str(err)}}  # noqa: E731
        return [piece async for piece in chunks(asyncio.Queue(), None, job, None, 1, None, 0.05, failure)]

    pieces = asyncio.run(body())
    if lang == "en":
        assert pieces == [b'data: {"error": {"message": "no answer within 0 s"}}\n\n', b"data: [DONE]\n\n"]
    else:
        assert pieces == ['data: {"error": {"message": "нет ответа за 0 с"}}\n\n'.encode(), b"data: [DONE]\n\n"]


# ---------------------------------------------------------------- loading and the app
def test_an_adapter_folder_left_out_at_load_time_is_a_warning(lang, monkeypatch, tmp_path):
    from lessons_lib.serve.loading import load_served_model

    unsafe = tmp_path / "json.old"
    unsafe.mkdir()
    (unsafe / "adapter_config.json").write_text("{}")
    model = SimpleNamespace(eval=lambda: None, config=SimpleNamespace(_name_or_path="stand-in"))
    monkeypatch.setattr("lessons_lib.models.load_base_and_tokenizer", lambda profile, log: (model, None))
    monkeypatch.setattr("lessons_lib.serve.loading.rows_without_saved_modules", lambda model: 0)
    lines: list[str] = []
    served = load_served_model(TINY, tmp_path, router="none", log=lines.append)
    assert served.adapters == [] and len(served.skipped) == 1
    warning = {"en": "WARNING: not served: ", "ru": "ПРЕДУПРЕЖДЕНИЕ: не обслуживается: "}[lang]
    assert lines == [warning + served.skipped[0]] and served.skipped[0].startswith(f"{unsafe}: ")


@pytest.fixture
def served():
    """What create_app needs of a served model, with no model or adapter loaded."""
    from lessons_lib.serve.loading import ServedModel

    return ServedModel(profile=TINY, model=object(), tokenizer=None, folders={}, base_id="stand-in")


def test_create_app_refuses_a_body_limit_below_one_byte(lang, served):
    from lessons_lib.serve.app import create_app

    with pytest.raises(ValueError) as caught:
        create_app(served, max_body_bytes=0)
    expected = {
        "en": "max_body_bytes must be at least 1, got 0.",
        "ru": "max_body_bytes должно быть не меньше 1, а получено 0.",
    }
    assert str(caught.value) == expected[lang]


def test_health_says_the_batched_path_is_off_with_peft_first(lang, served):
    """/health's engine.lora_path keeps its machine-readable first word; the reason in parentheses is for people."""
    from lessons_lib.serve.app import create_app

    app = create_app(served, batched_lora=False)
    try:
        path = app.state.server.health()["engine"]["lora_path"]
    finally:
        app.state.server.close()
    assert path == {"en": "peft (turned off (--lora-path peft))", "ru": "peft (отключён (--lora-path peft))"}[lang]


# ---------------------------------------------------------------- the serve command line
def test_the_crash_hooks_failure_is_in_the_course_language(lang):
    from lessons_lib.serve.__main__ import crash_hook

    with pytest.raises(RuntimeError) as caught:
        crash_hook("BOOM")([SimpleNamespace(prompt="say BOOM")])
    expected = {"en": "injected failure (prompt contains 'BOOM')", "ru": "искусственный сбой (промпт содержит 'BOOM')"}
    assert str(caught.value) == expected[lang]


def test_a_missing_work_dir_names_notebook_01_as_the_glossary_says(monkeypatch, tmp_path):
    def never(*args, **kwargs):
        raise AssertionError("the model started loading although --work-dir was bad")

    monkeypatch.setattr("lessons_lib.serve.loading.load_served_model", never)
    monkeypatch.setenv("LESSONS_LANG", "ru")
    result = run_serve("--work-dir", str(tmp_path / "nope"), "--port", str(free_port()))
    assert result.returncode == 2
    line = one_error_line(result)
    assert "ноутбук 01 сохранил адаптеры" in line and "блокнот" not in line, line


def test_serve_says_the_profile_was_asked_for_with_the_option(lang, monkeypatch):
    """Before: `python -m lessons_lib.serve --profile tiny` said "asked for in the notebook's parameters cell"."""
    from lessons_lib.serve.loading import ServeOptionError

    def stop(*args, **kwargs):
        raise ServeOptionError("stopped before loading")

    monkeypatch.setattr("lessons_lib.serve.loading.load_served_model", stop)
    result = run_serve("--profile", "tiny", "--port", str(free_port()))
    assert result.returncode == 2, result
    first = result.stdout.splitlines()[0]
    expected = {"en": "profile tiny (asked for with --profile); loading ", "ru": "профиль tiny (задан параметром "}
    assert first.startswith(expected[lang]), first
    assert lang == "en" or first.startswith("профиль tiny (задан параметром --profile); загружается "), first


def test_the_lesson_table_still_says_the_notebooks_parameters_cell(lang, tmp_path):
    from lessons_lib.lesson import Lesson
    from lessons_lib.profiles import choose_profile

    profile, reason = choose_profile("tiny")
    assert reason == "asked for in the notebook's parameters cell"
    assert choose_profile("tiny", asked_in="--profile")[1] == "asked for with --profile"
    rows = Lesson("06_serving", profile, reason, "cpu", "float32", False, tmp_path, None).summary_rows()
    expected = {
        "en": ("profile", "tiny (asked for in the notebook's parameters cell)"),
        "ru": ("профиль", "tiny (задан в ячейке параметров ноутбука)"),
    }
    assert expected[lang] in rows
    with pytest.raises(ValueError, match="asked_in"):
        choose_profile("tiny", asked_in="cell")


# ---------------------------------------------------------------- the vLLM hand-off
def odd_adapters(root: Path) -> dict[str, Path]:
    """One adapter for each reason vLLM refuses one."""
    return {
        "tools": fake_adapter(root / "tools", modules_to_save=["lm_head"]),
        "dora": fake_adapter(root / "dora", use_dora=True),
        "ia3": fake_adapter(root / "ia3", peft_type="IA3"),
        "big": fake_adapter(root / "big", r=1024),
        "odd": fake_adapter(root / "odd", target_modules=["q_proj", "score"]),
    }


def report_lines(report: str) -> list[str]:
    """The report's lines between the LoRAX command and the tool-call note: mapping, left out, skipped, notes."""
    return report.split("\n\n")[2].splitlines()


ENGLISH_LEFT_OUT = [
    "left out of vLLM: tools: modules_to_save ['lm_head']: vLLM only supports modules_to_save being None (merge the "
    "adapter into the base and serve that model, or retrain without modules_to_save)",
    "left out of vLLM: dora: use_dora: vLLM does not support DoRA adapters (merge it into the base, or retrain as "
    "plain LoRA)",
    "left out of vLLM: ia3: peft_type IA3: vLLM's --lora-modules loads LoRA adapters only",
    "left out of vLLM: big: rank 1024 is above vLLM's largest --max-lora-rank (512); retrain smaller",
    "left out of vLLM: odd: target modules ['score']: vLLM's Llama/Mistral models take LoRA only on q_proj, k_proj, "
    "v_proj, o_proj, gate_proj, up_proj, down_proj, embed_tokens, lm_head",
]


def test_every_reason_vllm_refuses_an_adapter(lang, tmp_path):
    from lessons_lib.serve.vllm import handoff_report

    report = handoff_report(odd_adapters(tmp_path), TINY.model_id, skipped=["x: y"])
    lines = report_lines(report)
    nothing = report.split("\n\n")[0].splitlines()[1]
    if lang == "en":
        assert nothing == "# (nothing: vLLM can load none of these adapters; see 'left out' below)"
        assert lines == [
            "model='base'     -> vLLM model='base', LoRAX adapter_id='(none: the base)'",
            "model='auto'     -> vLLM model='(route on the client, then send the chosen name)', LoRAX "
            "adapter_id='(route on the client)'",
            *ENGLISH_LEFT_OUT,
            "skipped: x: y",
        ]
        return
    assert nothing == "# (ничего: vLLM не может загрузить ни один из этих адаптеров; см. «не передан в vLLM» ниже)"
    mapping, left_out, skipped = lines[:2], lines[2:-1], lines[-1]
    assert mapping[0].startswith("model='base'     -> vLLM model='base', LoRAX adapter_id='(")
    assert mapping[1].startswith("model='auto'     -> vLLM model='(") and "LoRAX adapter_id='(" in mapping[1]
    assert skipped == "пропущено: x: y"
    kept = [
        ("tools", "modules_to_save ['lm_head']: ", "modules_to_save = None"),
        ("dora", "use_dora: ", "DoRA"),
        ("ia3", "peft_type IA3: ", "--lora-modules"),
        ("big", "ранг 1024 ", "(512)"),
        ("odd", "целевые модули ['score']: ", "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"),
    ]
    assert len(left_out) == len(kept)
    for line, (name, start, value) in zip(left_out, kept):
        assert line.startswith(f"не передан в vLLM: {name}: {start}") and value in line, line
    for line in lines:
        assert not ENGLISH_PROSE.search(line), line
        assert CYRILLIC.search(line), line


def test_the_handoff_refusals_are_in_the_course_language(lang, tmp_path):
    from lessons_lib.serve.vllm import handoff, read_adapters, vllm_command, vllm_max_lora_rank

    tools = fake_adapter(tmp_path / "tools", modules_to_save=["lm_head"])
    messages = []
    for refused in (
        lambda: vllm_command(TINY.model_id, []),
        lambda: vllm_command(TINY.model_id, read_adapters({"tools": tools})),
        lambda: vllm_max_lora_rank(1024),
        lambda: handoff({}, TINY.model_id),
    ):
        with pytest.raises(ValueError) as caught:
            refused()
        messages.append(str(caught.value))
    if lang == "en":
        assert messages == [
            "No adapters to serve: pass at least one adapter folder vLLM can load.",
            f"vLLM would refuse adapter 'tools': {ENGLISH_LEFT_OUT[0].split(': ', 2)[2]}. Leave it out "
            "(split_for_vllm).",
            "LoRA rank 1024 is above vLLM's largest --max-lora-rank (512).",
            "No adapters to hand off: pass at least one adapter folder.",
        ]
        return
    assert "'tools'" in messages[1] and "modules_to_save ['lm_head']" in messages[1] and "split_for_vllm" in messages[1]
    assert "1024" in messages[2] and "(512)" in messages[2]
    for message in messages:
        russian(message)


def test_the_cli_hand_off_notes_every_setting_vllm_does_not_use(lang, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        '[base]\nprofile = "tiny"\n'
        f'[adapters.json]\npath = "{STORE.resolve() / "json"}"\nprecision = "fp16"\nweight = 0.5\n'
        f'[adapters.tools]\npath = "{STORE.resolve() / "tools"}"\n[mixes]\nboth = {{ json = 1, tools = 1 }}\n'
        '[router]\nkind = "ngram"\n'
        "[server]\nmax_batch = 8\nwindow_ms = 5.0\nmax_body_bytes = 5000\n"
    )
    result = run_vllm("--config", str(config))
    assert result.returncode == 0, result.stderr
    lines = report_lines(result.stdout)
    if lang == "en":
        assert lines[3:] == [
            ENGLISH_LEFT_OUT[0],
            "note: json: weight 0.5 in the composition; vLLM serves adapters as trained (weight 1): merge a scaled "
            "copy to keep it",
            "note: json: precision fp16 in the composition; vLLM loads every adapter in one dtype (--lora-dtype, "
            "default the base model's), not per adapter",
            "note: mix 'both': vLLM has no weighted mixes; send one adapter's name, or merge the mix into a new "
            "adapter (notebook 03)",
            "note: server.max_batch = 8 in the composition: vLLM schedules its own batches (its nearest setting is "
            "--max-num-seqs; add it to cap them)",
            "note: server.window_ms = 5.0 in the composition: vLLM batches continuously and has no gathering window",
            "note: server.max_body_bytes = 5000 in the composition: vLLM has no request size limit (put a reverse "
            "proxy with a body limit in front of it)",
            "note: router 'ngram': vLLM has no model='auto'; route on the client and send the chosen name",
        ]
        return
    starts = [
        "не передан в vLLM: tools: modules_to_save ['lm_head']: ",
        "примечание: json: вес 0.5 ",
        "примечание: json: точность fp16 ",
        "примечание: смесь 'both': ",
        "примечание: server.max_batch = 8 в композиции: ",
        "примечание: server.window_ms = 5.0 в композиции: ",
        "примечание: server.max_body_bytes = 5000 в композиции: ",
        "примечание: маршрутизатор 'ngram': ",
    ]
    assert len(lines[3:]) == len(starts), lines
    for line, start in zip(lines[3:], starts):
        assert line.startswith(start), line
        russian(line)
    assert "--max-num-seqs" in lines[7] and "--lora-dtype" in lines[5] and "model='auto'" in lines[10]
    assert "(ноутбук 03)" in lines[6]


def test_the_russian_hand_off_keeps_the_commands_as_they_are(monkeypatch):
    """Commands, their options and the JSON entries are the same in both languages."""
    monkeypatch.delenv("LESSONS_LANG", raising=False)
    english = run_vllm("--profile", "tiny", "--adapters-dir", str(STORE)).stdout.split("\n\n")
    monkeypatch.setenv("LESSONS_LANG", "ru")
    russian_out = run_vllm("--profile", "tiny", "--adapters-dir", str(STORE)).stdout.split("\n\n")
    assert russian_out[:2] == english[:2]  # the vLLM and LoRAX commands
    assert russian_out[2] != english[2] and russian_out[3] != english[3]  # the mapping, left out, and the tool note
