"""A small client for the server: `ask()` in Python, and `python -m lessons_lib.serve ask "..." --adapter auto`
(`--stream` prints the answer as it is generated)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..i18n import tr

DEFAULT_URL = os.environ.get("LESSONS_SERVER_URL", "http://127.0.0.1:8000")


class ServerError(RuntimeError):
    """The server answered with an error; the message is the server's own."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


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


def ask(
    prompt: str, adapter: str = "auto", url: str = DEFAULT_URL, max_tokens: int | None = None, timeout: float = 120.0
) -> Reply:
    """Send one user prompt to POST /v1/chat/completions and return the answer."""
    import httpx

    try:
        response = httpx.post(
            f"{url.rstrip('/')}/v1/chat/completions", json=request_body(prompt, adapter, max_tokens), timeout=timeout
        )
    except httpx.ConnectError as err:
        raise no_server(url, err) from err
    data = response.json()
    if response.status_code != 200:
        raise ServerError(response.status_code, data.get("error", {}).get("message", response.text))
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

    start, pieces, adapter_used, route, last = time.perf_counter(), [], adapter, None, {}
    try:
        with httpx.stream(
            "POST",
            f"{url.rstrip('/')}/v1/chat/completions",
            json=request_body(prompt, adapter, max_tokens, stream=True),
            timeout=timeout,
        ) as response:
            if response.status_code != 200:
                data = json.loads(response.read())
                raise ServerError(response.status_code, data.get("error", {}).get("message", response.text))
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                last = json.loads(line.removeprefix("data: "))
                if "error" in last:
                    raise ServerError(500, last["error"]["message"])
                adapter_used, route = last.get("adapter", adapter_used), last.get("route", route)
                piece = last["choices"][0]["delta"].get("content") if last.get("choices") else None
                if piece:
                    pieces.append(piece)
                    on_text(piece)
    except httpx.ConnectError as err:
        raise no_server(url, err) from err
    return Reply(
        text="".join(pieces),
        adapter=adapter_used,
        latency_ms=(time.perf_counter() - start) * 1000,
        route=route,
        raw=last,
    )


def main(args) -> int:
    """The `ask` sub-command: print the answer, then which adapter answered."""
    try:
        if getattr(args, "stream", False):
            reply = ask_streaming(
                args.prompt,
                args.adapter,
                args.url,
                args.max_tokens,
                on_text=lambda piece: print(piece, end="", flush=True),
            )
            print()
        else:
            reply = ask(args.prompt, args.adapter, args.url, args.max_tokens)
            print(reply.text)
    except ServerError as err:
        print(f"error: {err}")
        return 1
    reason = reply.route["reason"] if reply.route else ""
    ms = f"{reply.latency_ms:.0f}"
    print(
        tr(
            en=f"-- answered by {reply.adapter} in {ms} ms{f' (router: {reason})' if reply.route else ''}",
            ru=f"-- ответил {reply.adapter} за {ms} мс{f' (маршрутизатор: {reason})' if reply.route else ''}",
        )
    )
    return 0
