"""A small client for the server: `ask()` in Python, and `python -m lessons_lib.serve ask "..." --adapter auto`
(`--stream` prints the answer as it is generated)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..cli import error_line
from ..i18n import tr

DEFAULT_URL = os.environ.get("LESSONS_SERVER_URL", "http://127.0.0.1:8000")


class ServerError(RuntimeError):
    """The server answered with an error (the message is the server's own), or no answer came."""

    def __init__(self, status: int, message: str):
        shown = tr(en=f"HTTP {status}: {message}", ru=f"HTTP {status} (ответ сервера): {message}")
        super().__init__(shown if status else message)
        self.status = status


def usage_error(en: str, ru: str) -> argparse.ArgumentTypeError:
    """An argparse usage error in the course language."""
    return argparse.ArgumentTypeError(tr(en=en, ru=ru))


def server_url(text: str) -> str:
    """argparse type: the server's address, http(s)://host[:port]; an OpenAI base_url's trailing /v1 is dropped."""
    url = text.strip().rstrip("/")
    url = url.removesuffix("/v1").rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest:
        raise usage_error(
            en=f"expected the server's address as http://HOST:PORT (e.g. {DEFAULT_URL}), got {text!r}",
            ru=f"нужен адрес сервера вида http://ХОСТ:ПОРТ (например, {DEFAULT_URL}), а получено {text!r}",
        )
    return url


def max_tokens(text: str) -> int:
    """argparse type: how many tokens to generate, at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise usage_error(
            en=f"expected a whole number of tokens, at least 1, got {text!r}",
            ru=f"нужно целое число токенов, не меньше 1, а получено {text!r}",
        )
    return value


def prompt_text(text: str) -> str:
    """argparse type: a prompt with some text in it."""
    if not text.strip():
        raise usage_error(
            en='the prompt is empty: type what to ask, e.g. ask "Extract the order as JSON: ..."',
            ru='промпт пуст: напишите, о чём спросить, например ask "Extract the order as JSON: ..."',
        )
    return text


@dataclass(frozen=True)
class Reply:
    """One answer and who gave it."""

    text: str
    adapter: str
    latency_ms: float
    route: dict | None
    raw: dict


def request_body(prompt: str, adapter: str, max_tokens: int | None, stream: bool = False) -> dict:
    """The chat request for one user prompt."""
    body = {"model": adapter, "messages": [{"role": "user", "content": prompt}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body["stream"] = True
    return body


def no_server(url: str, err: Exception) -> ServerError:
    """The error for a URL where no server listens, with the command that starts one."""
    command = "`python -m lessons_lib.serve --profile tiny --port 8000`"
    return ServerError(
        0,
        tr(
            en=f"no server at {url} ({err}). Start one with {command}.",
            ru=f"по адресу {url} нет сервера ({err}). Запустите его командой {command}.",
        ),
    )


def transport_error(url: str, err: Exception) -> ServerError:
    """The error for a request that got no (complete) answer: no server, a bad URL, a timeout, a dropped line."""
    import httpx

    if isinstance(err, httpx.ConnectError):
        return no_server(url, err)
    kind = type(err).__name__
    return ServerError(
        0,
        tr(
            en=f"no answer from {url} ({kind}: {err}). Check the address (e.g. {DEFAULT_URL}) and that the "
            "server is running.",
            ru=f"нет ответа от {url} ({kind}: {err}). Проверьте адрес (например, {DEFAULT_URL}) и что сервер запущен.",
        ),
    )


def chat_url(url: str) -> str:
    """POST /v1/chat/completions under `url` (a server address, or an OpenAI base_url ending in /v1)."""
    return f"{url.rstrip('/').removesuffix('/v1').rstrip('/')}/v1/chat/completions"


def error_of(status: int, body: bytes | str) -> ServerError:
    """The server's error message from an error response (JSON as this server sends it, else its words)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        words = re.sub(r"<[^>]*>", " ", text).split()  # a proxy's HTML error page: its words
        message = " ".join(words)[:300] or tr(en="(no message)", ru="(без сообщения)")
    return ServerError(status, message)


def cut_off(url: str) -> ServerError:
    """The error for a stream that ended before `data: [DONE]`."""
    return ServerError(
        0,
        tr(
            en=f"the answer from {url} was cut off: the stream ended before [DONE] (did the server stop?)",
            ru=f"ответ от {url} оборвался: поток закончился без [DONE] (сервер остановился?)",
        ),
    )


def ask(
    prompt: str, adapter: str = "auto", url: str = DEFAULT_URL, max_tokens: int | None = None, timeout: float = 120.0
) -> Reply:
    """Send one user prompt to POST /v1/chat/completions and return the answer."""
    import httpx

    try:
        response = httpx.post(chat_url(url), json=request_body(prompt, adapter, max_tokens), timeout=timeout)
    except (httpx.HTTPError, httpx.InvalidURL) as err:
        raise transport_error(url, err) from err
    if response.status_code != 200:
        raise error_of(response.status_code, response.content)
    try:
        data = response.json()
    except ValueError as err:
        raise error_of(response.status_code, response.content) from err
    return Reply(
        text=data["choices"][0]["message"]["content"],
        adapter=data["adapter"],
        latency_ms=data["timing"]["latency_ms"],
        route=data.get("route"),
        raw=data,
    )


def ask_streaming(
    prompt: str,
    adapter: str = "auto",
    url: str = DEFAULT_URL,
    max_tokens: int | None = None,
    on_text: Callable[[str], None] = print,
    timeout: float = 120.0,
) -> Reply:
    """Like `ask`, with stream=true: `on_text` gets each piece of the answer as it arrives (SSE chunks)."""
    import httpx

    start, pieces, adapter_used, route, last, finished = time.perf_counter(), [], adapter, None, {}, False
    try:
        with httpx.stream(
            "POST", chat_url(url), json=request_body(prompt, adapter, max_tokens, stream=True), timeout=timeout
        ) as response:
            if response.status_code != 200:
                raise error_of(response.status_code, response.read())
            for line in response.iter_lines():
                if line == "data: [DONE]":
                    finished = True
                    break
                if not line.startswith("data: "):
                    continue
                last = json.loads(line.removeprefix("data: "))
                if "error" in last:
                    raise ServerError(500, last["error"]["message"])
                adapter_used, route = last.get("adapter", adapter_used), last.get("route", route)
                piece = last["choices"][0]["delta"].get("content") if last.get("choices") else None
                if piece:
                    pieces.append(piece)
                    on_text(piece)
    except (httpx.HTTPError, httpx.InvalidURL) as err:
        raise transport_error(url, err) from err
    if not finished:
        raise cut_off(url)
    return Reply(
        text="".join(pieces),
        adapter=adapter_used,
        latency_ms=(time.perf_counter() - start) * 1000,
        route=route,
        raw=last,
    )


def main(args) -> int:
    """The `ask` sub-command: print the answer, then which adapter answered; errors to stderr (exit 1), Ctrl-C 130."""
    streamed: list[str] = []
    try:
        reply = answer(args, streamed)
    except ServerError as err:
        end_line(streamed)
        print(error_line(str(err)), file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        end_line(streamed)
        return 130
    print(footer(reply))
    return 0


def answer(args, streamed: list[str]) -> Reply:
    """Ask as the command line says; a streamed answer is printed as it comes (its pieces kept in `streamed`)."""
    if not getattr(args, "stream", False):
        reply = ask(args.prompt, args.adapter, args.url, args.max_tokens)
        print(reply.text)
        return reply

    def show(piece: str) -> None:
        streamed.append(piece)
        print(piece, end="", flush=True)

    reply = ask_streaming(args.prompt, args.adapter, args.url, args.max_tokens, on_text=show)
    print()
    return reply


def end_line(streamed: list[str]) -> None:
    """End a half-printed streamed answer with a newline, so that the shell prompt starts on its own line."""
    if streamed:
        print(flush=True)


def footer(reply: Reply) -> str:
    """The line after the answer: which adapter answered, how fast, and the router's reason."""
    reason = reply.route["reason"] if reply.route else ""
    ms = f"{reply.latency_ms:.0f}"
    return tr(
        en=f"-- answered by {reply.adapter} in {ms} ms{f' (router: {reason})' if reply.route else ''}",
        ru=f"-- ответил {reply.adapter} за {ms} мс{f' (маршрутизатор: {reason})' if reply.route else ''}",
    )
