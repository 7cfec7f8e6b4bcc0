"""Bad input to `python -m lessons_lib.serve` (serve, ask, vllm): one `error:` line on stderr, exit code 2 for a usage
error and 1 when the server cannot answer, no traceback, nothing silently ignored, and the options checked before the
model loads (an outside probe's items 1, 4, 5, 6, 10, 11, 17, 18 and 21).

Every command runs in this process; loading the model is replaced by a function that fails the test if it is ever
called, and `ask` talks to a small stand-in server (FakeServer, also used by test_web_page.py), so the file runs in
seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

CYRILLIC = re.compile("[а-яё]{4,}", re.IGNORECASE)


# ------------------------------------------------------------------------------------------------- helpers
def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m lessons_lib.serve ARGS`, run in this process: its exit code and what it printed."""
    from lessons_lib.serve.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code if isinstance(exit_.code, int) else 1
        except KeyboardInterrupt:  # escaped: the real command would print a traceback
            code = -2
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single `error:` line on stderr (no traceback), nothing on stdout."""
    lines = result.stderr.strip().splitlines()
    prefix = "ошибка: " if os.environ.get("LESSONS_LANG") == "ru" else "error: "
    assert len(lines) == 1 and lines[0].startswith(prefix), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == "", result
    return lines[0]


def usage_error(result: subprocess.CompletedProcess) -> str:
    """argparse's usage error: exit code 2, the last stderr line says what is wrong."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr and result.stdout == "", result
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture
def no_loading(monkeypatch):
    """Serving never gets as far as loading the model (or starting uvicorn)."""

    def never(*args, **kwargs):
        raise AssertionError("the model started loading although the options were bad")

    monkeypatch.setattr("lessons_lib.serve.__main__.load_served", never)
    monkeypatch.setattr("lessons_lib.serve.loading.load_served_model", never)


@pytest.fixture
def busy_port():
    """A port something already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


class FakeServer:
    """A stand-in for the course server on 127.0.0.1: each (method, path) answers what `routes` says.

    A route is (status, content type, body); a body that is a list is sent piece by piece and the connection is then
    closed, as a server that stops mid-stream does.
    """

    def __init__(self, routes: dict[tuple[str, str], tuple[int, str, bytes | list[bytes]]]):
        self.routes = routes
        self.requests: list[tuple[str, str, bytes]] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class, bound to this server's routes."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self, method: str) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                fake.requests.append((method, self.path, self.rfile.read(size) if size else b""))
                status, kind, body = fake.routes.get((method, self.path), (404, "text/plain", b"no such route"))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                if isinstance(body, bytes):
                    self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                for piece in body if isinstance(body, list) else [body]:
                    self.wfile.write(piece)
                    self.wfile.flush()

            def do_GET(self) -> None:
                self.answer("GET")

            def do_POST(self) -> None:
                self.answer("POST")

            def log_message(self, *args) -> None:
                pass

        return Handler

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def sse(*events: dict | str) -> list[bytes]:
    """Server-sent events as the server writes them: `data: ...` and a blank line each."""
    return [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events]


def chunk(text: str, adapter: str = "json") -> dict:
    """One streamed piece of an answer."""
    return {"adapter": adapter, "route": None, "choices": [{"index": 0, "delta": {"content": text}}]}


CHAT = ("POST", "/v1/chat/completions")
NOT_FOUND = (404, "application/json", json.dumps({"error": {"message": "Unknown model 'legal'"}}).encode())
BAD_GATEWAY = (502, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>")


# ------------------------------------------------------------------------- serve: checked before loading
@pytest.mark.parametrize(
    "args, said",
    [
        (["--profile", "nope"], "argument --profile: invalid choice: 'nope'"),
        (["vllm", "--profile", "nope"], "argument --profile: invalid choice: 'nope'"),
        (["--router", "foo"], "argument --router: invalid choice: 'foo'"),
        (["--port", "99999"], "argument --port: expected a TCP port: a whole number from 1 to 65535, got '99999'"),
        (["--port", "0"], "from 1 to 65535, got '0'"),
        (["--max-batch", "0"], "argument --max-batch: expected a batch size: a whole number from 1 to 4096, got '0'"),
        (["--window-ms", "-5"], "argument --window-ms: expected milliseconds from 0 to 10000"),
        (["--window-ms", "nan"], "argument --window-ms: expected milliseconds from 0 to 10000"),
        (["--max-body-bytes", "0"], "argument --max-body-bytes: expected a number of bytes"),
    ],
)
def test_serve_refuses_bad_values_as_usage_errors(no_loading, args, said):
    """Before: a bad --profile was a traceback (exit 1), --port 99999 a traceback after the model loaded, and
    --router foo, --max-batch 0 and --window-ms -5 started a (degraded) server."""
    assert said in usage_error(run_cli(*args))


def test_a_bad_profile_in_the_environment_is_one_error_line(no_loading, monkeypatch):
    monkeypatch.setenv("LESSONS_PROFILE", "nope")
    for args in ([], ["vllm"]):
        result = run_cli(*args)
        assert result.returncode == 2
        assert "Unknown profile 'nope'" in one_error_line(result)


@pytest.mark.parametrize(
    "args, said",
    [
        (["--adapters-dir", "/nonexistent"], "error: Adapter folder /nonexistent does not exist"),
        (["--lora-modules", "json"], "error: --lora-modules takes name=path pairs, got 'json'"),
        (["--lora-modules", "json=/nonexistent"], "error: --lora-modules: cannot serve json=/nonexistent: no adapter"),
        (["--work-dir", "/nonexistent"], "error: --work-dir /nonexistent is not a folder"),
    ],
)
def test_serve_refuses_folders_it_cannot_serve_before_loading(no_loading, args, said):
    """Before: tracebacks (exit 1) for the first two; a server with the base only (exit 0) for the third."""
    result = run_cli(*args)
    assert result.returncode == 2
    assert one_error_line(result).startswith(said)


def test_an_adapters_dir_without_adapters_and_two_ways_to_choose_them_are_refused(no_loading, tmp_path):
    result = run_cli("--adapters-dir", str(tmp_path))
    assert result.returncode == 2 and "holds no adapter folder" in one_error_line(result)
    result = run_cli("--adapters-dir", str(tmp_path), "--lora-modules", f"json={tmp_path}")
    assert result.returncode == 2 and "pass one of them" in one_error_line(result)


def test_a_busy_port_is_said_before_the_model_loads(no_loading, busy_port):
    """Before: uvicorn's `[Errno 98] address already in use` (exit 3), after about 10 s of loading."""
    result = run_cli("--port", str(busy_port))
    assert result.returncode == 2
    line = one_error_line(result)
    assert f"port {busy_port} on 127.0.0.1 is already in use" in line and "--port" in line


def test_serve_errors_are_russian(no_loading, ru, tmp_path):
    for args in (["--lora-modules", "json=/nonexistent"], ["--adapters-dir", "/nonexistent"], ["--port", "99999"]):
        result = run_cli(*args)
        assert result.returncode == 2 and CYRILLIC.search(result.stderr.strip().splitlines()[-1]), result.stderr


def test_named_router_or_adapter_that_cannot_load_stops_the_start(monkeypatch, tmp_path):
    """An explicit --router that does not load stops the start before the base loads; a damaged --lora-modules
    adapter stops it too (vLLM refuses both). Before: the server ran without them, exit 0."""
    from lessons_lib.adapters import adapter_dir
    from lessons_lib.profiles import PROFILES
    from lessons_lib.serve import loading

    tiny = PROFILES["tiny"]
    monkeypatch.setattr(loading, "load_router", lambda *a, **k: (None, "the 'learned' router could not be loaded"))
    monkeypatch.setattr("lessons_lib.models.load_base_and_tokenizer", no_base)
    with pytest.raises(loading.ServeOptionError, match="--router learned: the 'learned' router could not be"):
        loading.load_served_model(tiny, router="learned", require_router=True, log=lambda *_: None)
    with pytest.raises(AssertionError, match="base"):  # --router none asks for no router: the base loads
        loading.load_served_model(tiny, router="none", require_router=True, log=lambda *_: None)
    shutil.copytree(adapter_dir("json", tiny), tmp_path / "json")
    (tmp_path / "json" / "adapter_config.json").write_text("{bad")
    with pytest.raises(AssertionError, match="base"):  # the default router may fail: the base loads anyway
        loading.load_served_model(tiny, tmp_path, router="ngram", log=lambda *_: None)
    monkeypatch.undo()
    with pytest.raises(loading.ServeOptionError, match="--lora-modules: cannot serve json"):
        loading.load_served_model(tiny, lora_modules={"json": tmp_path / "json"}, router="none", log=lambda *_: None)


def no_base(*args, **kwargs):
    """Stands in for loading the base."""
    raise AssertionError("the base started loading")


# ------------------------------------------------------------------------------------------------------ ask
@pytest.mark.parametrize(
    "args, said",
    [
        (["hi", "--url", "notaurl"], "argument --url: expected the server's address as http://HOST:PORT"),
        (["hi", "--url", "ftp://127.0.0.1:8000"], "argument --url: expected the server's address"),
        (["", "--url", "http://127.0.0.1:1"], "argument prompt: the prompt is empty"),
        (["  ", "--url", "http://127.0.0.1:1"], "argument prompt: the prompt is empty"),
        (["hi", "--max-tokens", "0"], "argument --max-tokens: expected a whole number of tokens, at least 1"),
        (["hi", "--max-tokens", "-3"], "argument --max-tokens: expected a whole number of tokens, at least 1"),
    ],
)
def test_ask_usage_errors_exit_2_before_sending(args, said):
    """Before: `--url notaurl` was an httpx.UnsupportedProtocol traceback; an empty prompt and --max-tokens 0 were
    sent and came back as HTTP 400 (exit 1)."""
    assert said in usage_error(run_cli("ask", *args))


def test_ask_errors_go_to_stderr_and_exit_1():
    """Before: `error: ...` went to stdout, so `ask ... > answer.txt` wrote the error into the answer file."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here
    result = run_cli("ask", "hi", "--url", f"http://127.0.0.1:{port}")
    assert result.returncode == 1 and f"error: no server at http://127.0.0.1:{port}" in one_error_line(result)
    with FakeServer({CHAT: NOT_FOUND}) as server:
        for stream in ([], ["--stream"]):
            result = run_cli("ask", "hi", "--adapter", "legal", "--url", server.url, *stream)
            assert result.returncode == 1 and one_error_line(result) == "error: HTTP 404: Unknown model 'legal'"


def test_a_non_json_error_page_is_reported_as_its_status(ru):
    """A proxy's HTML 502 is an error line with the status, not a JSONDecodeError traceback (and Russian)."""
    with FakeServer({CHAT: BAD_GATEWAY}) as server:
        for stream in ([], ["--stream"]):
            result = run_cli("ask", "hi", "--url", server.url, *stream)
            assert result.returncode == 1
            assert one_error_line(result) == "ошибка: HTTP 502 (ответ сервера): 502 Bad Gateway"


def test_a_stream_cut_off_before_done_is_an_error_not_an_answer():
    with FakeServer({CHAT: (200, "text/event-stream", sse(chunk("Hel"), chunk("lo")))}) as server:
        result = run_cli("ask", "hi", "--url", server.url, "--stream")
    assert result.returncode == 1
    assert result.stdout == "Hello\n"  # the part that came, its line ended; no "answered by" footer
    assert "the answer from" in result.stderr and "was cut off" in result.stderr and "Traceback" not in result.stderr


def test_ask_takes_an_openai_base_url_ending_in_v1():
    """Before: `--url http://host:8000/v1` asked for /v1/v1/chat/completions (a 404)."""
    done = sse(chunk("ok"), "[DONE]")
    with FakeServer({CHAT: (200, "text/event-stream", done)}) as server:
        result = run_cli("ask", "hi", "--url", server.url + "/v1/", "--stream")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("ok\n-- answered by json") and server.requests[0][1] == CHAT[1]


def test_ctrl_c_while_streaming_exits_130_without_a_traceback(monkeypatch):
    """Before: a KeyboardInterrupt traceback from sock.recv."""
    from lessons_lib.serve import client

    def interrupted(*args, on_text, **kwargs):
        on_text("half an ans")
        raise KeyboardInterrupt

    monkeypatch.setattr(client, "ask_streaming", interrupted)
    result = run_cli("ask", "hi", "--url", "http://127.0.0.1:1", "--stream")
    assert result.returncode == 130
    assert result.stdout == "half an ans\n" and "Traceback" not in result.stderr and "error" not in result.stderr


def test_the_python_ask_turns_transport_errors_into_server_errors():
    from lessons_lib.serve.client import ServerError, ask

    with pytest.raises(ServerError, match="no answer from notaurl"):
        ask("hi", url="notaurl")


# ----------------------------------------------------------------------------------------------------- help
def test_help_names_the_sub_commands_and_describes_every_option():
    """Before: `serve --help` named ask and vllm in a sentence only; ask's --url/--max-tokens and vllm's
    --profile/--adapters-dir/--work-dir had no help."""
    text = " ".join(run_cli("--help").stdout.split())
    assert "python -m lessons_lib.serve ask PROMPT" in text and "python -m lessons_lib.serve vllm" in text
    assert "--port PORT TCP port, 1 to 65535" in text and "--max-batch MAX_BATCH most requests in one batch" in text
    ask = " ".join(run_cli("ask", "--help").stdout.split())
    assert "--url URL the server's address" in ask and "--max-tokens MAX_TOKENS most tokens to generate" in ask
    assert "Errors go to stderr" in ask
    vllm = " ".join(run_cli("vllm", "--help").stdout.split())
    assert "--adapters-dir DIR every PEFT adapter folder in DIR" in vllm and "--work-dir DIR where notebook 01" in vllm
    assert "$LESSONS_PROFILE" in vllm
