"""A small client for the server: `ask()` in Python, and `python -m lessons_lib.serve ask "..." --adapter auto`."""
from __future__ import annotations

import os
from dataclasses import dataclass

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


def ask(prompt: str, adapter: str = "auto", url: str = DEFAULT_URL, max_tokens: int | None = None,
        timeout: float = 120.0) -> Reply:
    """Send one user prompt to POST /v1/chat/completions and return the answer."""
    import httpx

    body = {"model": adapter, "messages": [{"role": "user", "content": prompt}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    try:
        response = httpx.post(f"{url.rstrip('/')}/v1/chat/completions", json=body, timeout=timeout)
    except httpx.ConnectError as err:
        raise ServerError(0, f"no server at {url} ({err}). Start one with "
                             "`python -m lessons_lib.serve --profile tiny --port 8000`.") from err
    data = response.json()
    if response.status_code != 200:
        raise ServerError(response.status_code, data.get("error", {}).get("message", response.text))
    return Reply(text=data["choices"][0]["message"]["content"], adapter=data["adapter"],
                 latency_ms=data["timing"]["latency_ms"], route=data.get("route"), raw=data)


def main(args) -> int:
    """The `ask` sub-command: print the answer, then which adapter answered."""
    try:
        reply = ask(args.prompt, args.adapter, args.url, args.max_tokens)
    except ServerError as err:
        print(f"error: {err}")
        return 1
    print(reply.text)
    why = f" (router: {reply.route['reason']})" if reply.route else ""
    print(f"-- answered by {reply.adapter} in {reply.latency_ms:.0f} ms{why}")
    return 0
