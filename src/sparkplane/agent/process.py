"""One engine process: started on a free port, health-waited, logged, restarted
with backoff when it crashes, stopped on request or when the agent stops.

    starting -> running -> (crash) restarting -> starting -> running ...
    any state -> stopped (asked to stop)
    starting -> failed (the command cannot be run at all)

Children run in a session of their own (a Ctrl-C on the agent's terminal does
not reach them; the agent stops them in order) and, on Linux, are killed by
the kernel if the agent itself dies, so a killed agent leaves no engine behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import structlog

from sparkplane.agent.engines import Engine, command_line, environment
from sparkplane.agent.logfile import RotatingLog
from sparkplane.agent.protocol import DeploymentSpec, DeploymentStatus, State

log = structlog.get_logger("sparkplane.agent")


@dataclass(frozen=True)
class Timing:
    """How long to wait for health, and how restarts back off."""

    startup_s: float = 600.0
    backoff_first_s: float = 1.0
    backoff_max_s: float = 60.0
    # Running this long resets the backoff: the next crash restarts at once again.
    stable_s: float = 60.0
    stop_s: float = 10.0
    poll_s: float = 0.25


def free_port(host: str) -> int:
    """A TCP port nothing listens on at `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# Run before the engine, in its process: ask the kernel for SIGKILL when the agent
# dies (kept across exec), then become the engine. A launcher rather than a
# preexec_fn, which is not safe in a process with threads (the agent reads
# hardware in worker threads). If the agent died before the request took, exit.
_LAUNCH = (
    "import ctypes, os, sys\n"
    "ctypes.CDLL(None).prctl(1, 9)\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def launcher(argv: list[str]) -> list[str]:
    """`argv` started so that it dies with this process (on Linux; as is elsewhere)."""
    if not sys.platform.startswith("linux"):
        return argv
    return [sys.executable, "-c", _LAUNCH, str(os.getpid()), *argv]


class EngineProcess:
    """Supervises one deployment's engine process."""

    def __init__(
        self,
        spec: DeploymentSpec,
        engine: Engine,
        *,
        host: str,
        log_dir: Path,
        http: aiohttp.ClientSession,
        on_change: Callable[[], None] = lambda: None,
        timing: Timing | None = None,
    ) -> None:
        self.spec = spec
        self.engine = engine
        self.host = host
        self.log = RotatingLog(log_dir / f"{spec.name}-{spec.id[:8]}.log")
        self._http = http
        self._on_change = on_change
        self.timing = timing or Timing()
        self.port = spec.port or free_port(_probe_host(host))
        self.created = time.monotonic()
        self.state: State = "starting"
        self.restarts = 0
        self.error: str | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        """The engine's process id while it runs."""
        p = self._process
        return p.pid if p is not None and p.returncode is None else None

    def status(self) -> DeploymentStatus:
        """The deployment as the agent reports it."""
        return DeploymentStatus(
            id=self.spec.id,
            state=self.state,
            port=self.port,
            pid=self.pid,
            restarts=self.restarts,
            error=self.error,
        )

    def start(self) -> None:
        """Start supervising (inside the running event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"engine-{self.spec.name}")

    async def stop(self) -> None:
        """Stop the engine for good: SIGTERM, then SIGKILL after `stop_s`."""
        self._stopping = True
        await self._terminate()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.log.close()
        self._set("stopped")

    def _set(self, state: State, error: str | None = None) -> None:
        changed = state != self.state or error != self.error
        self.state, self.error = state, error
        if changed:
            log.info("deployment_state", action="agent.deployment", deployment=self.spec.name,
                     state=state, port=self.port, error=error)  # fmt: skip
            self._on_change()

    async def _supervise(self) -> None:
        backoff = self.timing.backoff_first_s
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._run_once()
            except OSError as exc:
                # The command itself cannot run (no such program): restarting cannot help.
                self._set("failed", f"cannot start {self.engine.name}: {exc}")
                return
            if self._stopping:
                return
            if time.monotonic() - started >= self.timing.stable_s:
                backoff = self.timing.backoff_first_s
            self.restarts += 1
            self._set("restarting", self.error)
            log.warning("engine_restarting", action="agent.restart", deployment=self.spec.name,
                        restarts=self.restarts, backoff_s=backoff)  # fmt: skip
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.timing.backoff_max_s)

    async def _run_once(self) -> None:
        """Start the engine, wait for health, then wait for it to exit."""
        argv = command_line(self.engine, self.spec, self.host, self.port)
        env = {**os.environ, **environment(self.engine, self.spec, self.host, self.port)}
        self.log.write(f"\n=== sparkplane agent: starting {' '.join(argv)} ===\n".encode())
        self._set("starting", self.error)
        if shutil.which(argv[0], path=env.get("PATH")) is None:
            raise FileNotFoundError(f"no program {argv[0]!r} on PATH")
        process = await asyncio.create_subprocess_exec(
            *launcher(argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self._process = process
        reader = asyncio.create_task(self._copy_output(process), name=f"log-{self.spec.name}")
        try:
            if await self._wait_healthy(process):
                self._set("running")
            code = await process.wait()
            if not self._stopping:
                self.error = f"engine exited with status {code}"
                self.log.write(f"=== sparkplane agent: {self.error} ===\n".encode())
        finally:
            await self._terminate()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self._process = None

    async def _wait_healthy(self, process: asyncio.subprocess.Process) -> bool:
        url = f"http://{_probe_host(self.host)}:{self.port}{self.engine.health_path}"
        deadline = time.monotonic() + self.timing.startup_s
        while process.returncode is None and time.monotonic() < deadline:
            try:
                async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return True
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(self.timing.poll_s)
        if process.returncode is None:
            self.error = f"no answer at {self.engine.health_path} within {self.timing.startup_s} s"
            await self._terminate()
        return False

    async def _copy_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            self.log.write(chunk)

    async def _terminate(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        # The whole session: an engine's own workers (vLLM's) go with it.
        _signal_group(process, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), self.timing.stop_s)
        except TimeoutError:
            _signal_group(process, signal.SIGKILL)
            await process.wait()


def _signal_group(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)


def _probe_host(host: str) -> str:
    """Where to reach a server bound to `host` from this machine."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
