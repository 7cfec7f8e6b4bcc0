"""Run the server as a background process: pick a free port, wait until it is healthy, stop it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..i18n import tr
from ..paths import REPO_DIR


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def server_command(profile: str, port: int, host: str = "127.0.0.1", extra: list[str] | None = None) -> list[str]:
    """The command line that starts the server (`python -m lessons_lib.serve ...`)."""
    return [
        sys.executable,
        "-m",
        "lessons_lib.serve",
        "--profile",
        profile,
        "--host",
        host,
        "--port",
        str(port),
        *(extra or []),
    ]


def start_server(
    profile: str = "tiny",
    port: int | None = None,
    host: str = "127.0.0.1",
    extra: list[str] | None = None,
    log_path: str | Path | None = None,
    timeout: float = 120.0,
) -> tuple[subprocess.Popen, str]:
    """Start the server in the background and wait for /health; returns (process, base URL)."""
    port = port or free_port(host)
    env = child_env()
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        server_command(profile, port, host, extra), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO_DIR)
    )
    if log_path:
        log.close()  # the child keeps its own handle
    url = f"http://{host}:{port}"
    wait_until_healthy(url, proc, timeout, log_path)
    return proc, url


def hub_token() -> str | None:
    """This session's Hugging Face token, if any (on Colab also the HF_TOKEN secret)."""
    try:
        import huggingface_hub

        return huggingface_hub.get_token()
    except Exception:  # noqa: BLE001 - no token is a normal state; the child then downloads anonymously
        return None


def child_env() -> dict[str, str]:
    """The server's environment: this one, the repo importable, and the Hub token passed on.

    A Colab secret is readable only from the notebook's kernel, so a gated base (7b) that the child re-checks
    on the Hub needs the token in HF_TOKEN.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_DIR), env.get("PYTHONPATH")]))
    offline = env.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    if not env.get("HF_TOKEN") and not offline:
        token = hub_token()
        if token:
            env["HF_TOKEN"] = token
    return env


def wait_until_healthy(
    url: str, proc: subprocess.Popen | None = None, timeout: float = 120.0, log_path: str | Path | None = None
) -> dict:
    """Poll GET /health until it answers 200; raise with the server's log if it dies or times out."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            code = proc.returncode
            raise RuntimeError(
                tr(
                    en=f"The server exited with code {code} before it was ready.",
                    ru=f"Сервер завершился с кодом {code}, не успев стать готовым к работе.",
                )
                + _tail(log_path)
            )
        try:
            response = httpx.get(f"{url}/health", timeout=2.0)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(
        tr(
            en=f"The server at {url} was not healthy after {timeout:.0f} s.",
            ru=f"Сервер по адресу {url} не был готов к работе и через {timeout:.0f} с.",
        )
        + _tail(log_path)
    )


def stop_server(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    """Ask the server to shut down (SIGINT, like Ctrl-C), kill it if it hangs; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    return proc.returncode


def port_is_open(url: str) -> bool:
    """True when something accepts TCP connections at the URL's host and port."""
    from urllib.parse import urlparse

    parts = urlparse(url)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((parts.hostname, parts.port)) == 0


def _tail(log_path: str | Path | None, lines: int = 30) -> str:
    if not log_path or not Path(log_path).is_file():
        return ""
    text = Path(log_path).read_text(errors="replace").splitlines()[-lines:]
    return tr(en="\nLast lines of the server log:\n", ru="\nПоследние строки журнала сервера:\n") + "\n".join(text)
