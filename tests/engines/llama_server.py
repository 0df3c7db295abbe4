"""Run a real llama.cpp server (llama-cpp-python's `llama_cpp.server`) for tests.

    server = LlamaServer(model_path, alias="tiny-llama")
    server.start()                 # returns once /v1/models answers
    client = openai.OpenAI(base_url=server.base_url, api_key="unused")
    server.stop(kill=True)         # SIGKILL: what a crashed engine looks like
    server.restart()               # same port, so clients can reconnect
    server.close()                 # stop and delete the log

The server listens on a free loopback port, runs single-threaded with a small
context (the suite shares two cores) and writes its output to a log file, not to
the test output; the tail of that log is part of every start-up error.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

_LAUNCHER = Path(__file__).with_name("_launch.py")
_LOG_TAIL_BYTES = 4000


class EngineError(RuntimeError):
    """The engine did not start, or died while starting; the message has its log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LlamaServer:
    """One `llama_cpp.server` process serving one GGUF model under one alias."""

    def __init__(
        self,
        model: Path,
        alias: str,
        *,
        embedding: bool = False,
        n_ctx: int = 512,
        n_threads: int = 1,
        api_key: str | None = None,
        interrupt_requests: bool = False,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        """Describe the server; nothing runs until `start()`.

        `interrupt_requests` is off by default, unlike llama_cpp.server's own
        default: with it on, a new request cuts a running stream short, which
        would make concurrent requests through a gateway look broken.
        """
        self.model = Path(model)
        self.alias = alias
        self.port = port if port is not None else free_port()
        self.startup_timeout = startup_timeout
        self._auth_headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._args = [
            "--model", str(self.model),
            "--model_alias", alias,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(n_ctx),
            "--n_threads", str(n_threads),
            "--n_threads_batch", str(n_threads),
            "--embedding", str(embedding).lower(),
            "--interrupt_requests", str(interrupt_requests).lower(),
            *(["--api_key", api_key] if api_key is not None else []),
            *extra_args,
        ]  # fmt: skip
        fd, log_name = tempfile.mkstemp(prefix=f"llama-server-{alias}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log_name)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Root URL, e.g. http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI base URL, e.g. http://127.0.0.1:PORT/v1."""
        return f"{self.url}/v1"

    @property
    def pid(self) -> int | None:
        """Process id of the running server, None when stopped."""
        return self._process.pid if self.is_running() and self._process else None

    def is_running(self) -> bool:
        """Whether the server process exists (it may still be loading)."""
        return self._process is not None and self._process.poll() is None

    def is_ready(self, timeout: float = 1.0) -> bool:
        """Whether the server answers GET /v1/models now."""
        request = urllib.request.Request(f"{self.base_url}/models", headers=self._auth_headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return bool(response.status == 200)
        except (OSError, http.client.HTTPException):
            return False

    def start(self, *, wait: bool = True) -> Self:
        """Start the process and (unless `wait=False`) wait until it serves.

        Raises `EngineError` if it cannot. Starting several servers with
        `wait=False` and then calling `wait_ready()` on each overlaps their loading.
        """
        if self.is_running():
            raise EngineError(f"{self.alias} is already running on port {self.port}")
        with self.log_path.open("ab") as log:
            log.write(f"\n=== starting {self.alias} on port {self.port} ===\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [sys.executable, str(_LAUNCHER), str(os.getpid()), *self._args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Block until the server answers; on death or timeout raise `EngineError` with its log."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                code = self._process.returncode if self._process else None
                raise EngineError(f"{self.alias} exited with code {code}:\n{self.log_tail()}")
            if self.is_ready():
                return
            time.sleep(0.05)
        self.stop(kill=True)
        raise EngineError(
            f"{self.alias} did not answer on port {self.port} within "
            f"{self.startup_timeout:.0f}s:\n{self.log_tail()}"
        )

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM and wait, or SIGKILL at once (`kill=True`, a crash)."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, *, kill: bool = False) -> Self:
        """Stop (if running) and start again on the same port."""
        self.stop(kill=kill)
        return self.start()

    def ensure_running(self) -> Self:
        """Restart the server unless it is alive and answering (after a test killed it)."""
        if self.is_running() and self.is_ready(timeout=5.0):
            return self
        return self.restart(kill=True)

    def log_tail(self, limit: int = _LOG_TAIL_BYTES) -> str:
        """The last `limit` bytes of the server's log."""
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return "(no log)"
        return data[-limit:].decode(errors="replace")

    def close(self) -> None:
        """Stop the server and delete its log."""
        self.stop()
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"LlamaServer({self.alias!r}, port={self.port}, {state})"
