"""Real `sparkplane serve` and `sparkplane agent` processes for the node tests.

The agent runs llama.cpp (llama-cpp-python's server module, one thread, a small
context) on the suite's tiny GGUF, copied into the test's own models folder.
Every process a test starts is stopped when it ends; engines left behind by a
killed agent (the kernel should already have killed them, see
agent/process.py) are found by their model path and killed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cli import Cli, cli_env
from tests.support.net import free_port

SPARKPLANE = Path(sys.executable).with_name("sparkplane")
HEARTBEAT_S = 0.3
LOST_AFTER_S = 2.0
ENGINE = (
    "llamacpp={python} -m llama_cpp.server --model {model} --model_alias {name} "
    "--host {host} --port {port} --n_threads 1 --n_threads_batch 1 --n_ctx 512"
)
# Settings of the server and the CLI in these tests.
SETTINGS = {
    "AUTH_ENABLED": "false",
    "DISCOVER": "false",
    "HEALTH_INTERVAL_S": "0.3",
    "PROBE_TIMEOUT_S": "1",
    "BREAKER_COOLDOWN_S": "0.5",
    "DRAIN_TIMEOUT_S": "1",
    "NODE_HEARTBEAT_S": str(HEARTBEAT_S),
    "NODE_LOST_AFTER_S": str(LOST_AFTER_S),
}


def pids_running(marker: str) -> list[int]:
    """Processes whose command line contains `marker` (an engine's model path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ")[-1][:1]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def kill_all(marker: str) -> None:
    """SIGKILL every process whose command line contains `marker`."""
    for pid in pids_running(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Process:
    """A `sparkplane` subprocess and its log."""

    proc: asyncio.subprocess.Process
    log: Path

    def text(self) -> str:
        """Everything it wrote."""
        return self.log.read_text(errors="replace")

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20) -> None:
        """Signal it and wait; SIGKILL if it lingers."""
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def start(cli: Cli, *args: str, log: Path, env: dict[str, str] | None = None) -> Process:
    """`sparkplane ARGS` in the background, with the test's settings."""
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(SPARKPLANE), *args, cwd=cli.cwd, env=cli_env(cli.home, cli.settings) | (env or {}),
            stdout=out, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    return Process(proc, log)


@dataclass
class Fleet:
    """One server, the CLI pointed at its database, and the agents started."""

    cli: Cli
    url: str
    server: Process
    models: Path
    agents: list[Process]

    @property
    def engine_marker(self) -> str:
        """What only an engine's command line contains: the model file's path."""
        return str((self.models / "tiny.gguf").resolve())

    async def token(self, *args: str) -> str:
        """A fresh join token."""
        result = await self.cli("nodes", "token", *args)
        assert result.code == 0, str(result)
        return next(w for w in result.stdout.split() if w.startswith("spj-"))

    async def agent(
        self, name: str, *args: str, token: str | None = None, port: int | None = None
    ) -> Process:
        """Start `sparkplane agent` for node `name` (not waiting for it to join)."""
        home = self.cli.cwd / f"agent-{name}"
        flags = ["--token", token] if token else []
        process = await start(
            self.cli, "agent", "--server", self.url, *flags, "--name", name,
            "--models", str(self.models), "--home", str(home), "--port", str(port or free_port()),
            "--engine-command", ENGINE, *args,
            log=self.cli.cwd / f"agent-{name}-{len(self.agents)}.log",
        )  # fmt: skip
        self.agents.append(process)
        return process

    async def nodes(self) -> list[dict[str, Any]]:
        """`sparkplane nodes list --json`."""
        result = await self.cli("nodes", "list", "--json")
        assert result.code == 0, str(result)
        nodes: list[dict[str, Any]] = json.loads(result.stdout)
        return nodes

    async def node(self, name: str) -> dict[str, Any] | None:
        """One node as `nodes list --json` shows it."""
        return next((n for n in await self.nodes() if n["name"] == name), None)

    async def devices(self) -> list[dict[str, Any]]:
        """`sparkplane devices list --json`."""
        result = await self.cli("devices", "list", "--json")
        assert result.code == 0, str(result)
        devices: list[dict[str, Any]] = json.loads(result.stdout)
        return devices


async def until(check: Any, timeout: float = 60, every: float = 0.3) -> Any:
    """Await `check()` until it returns something truthy; that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check.__name__}")
        await asyncio.sleep(every)


@asynccontextmanager
async def fleet(
    tmp_path: Path,
    model: Path,
    *,
    database_url: str | None = None,
    extra: dict[str, str] | None = None,
    scheme: str = "http",
) -> AsyncIterator[Fleet]:
    """A running server (and the agents a test starts), all stopped at the end;
    `extra` settings (names without the prefix) go to the server and the CLI."""
    settings = SETTINGS | (extra or {})
    if database_url:
        settings["DATABASE_URL"] = database_url
    cli = Cli(home=tmp_path / "home", cwd=tmp_path, settings=settings)
    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(model, models / "tiny.gguf")
    port = free_port()
    server = await start(cli, "serve", "--port", str(port), log=tmp_path / "serve.log")
    url = f"{scheme}://127.0.0.1:{port}"
    running = Fleet(cli, url, server, models, [])
    try:
        await _until_listening(port, server)
        yield running
    finally:
        for agent in running.agents:
            await agent.stop()
        kill_all(running.engine_marker)
        await server.stop()


async def _until_listening(port: int, server: Process, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if server.proc.returncode is not None:
            raise AssertionError(f"serve exited:\n{server.text()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.3)  # the lifespan (migrations) runs before uvicorn listens
        return
    raise AssertionError(f"serve did not listen within {timeout} s:\n{server.text()}")
