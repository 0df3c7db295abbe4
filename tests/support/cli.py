"""Running the `sparkplane` command as a user would: a subprocess of the venv's
script, with its own SPARKPLANE_HOME and nothing inherited from the developer's
SPARKPLANE_* environment or ./sparkplane.toml.

Everything is asyncio so a fake engine in the test's event loop keeps answering
while a command runs.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.net import free_port

SPARKPLANE = Path(sys.executable).with_name("sparkplane")
KEY = re.compile(r"sp-[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class CliResult:
    """What one command did."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return (
            f"$ sparkplane {' '.join(self.args)}  -> exit {self.code}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


def cli_env(home: Path, settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a command: the caller's minus SPARKPLANE_*, plus `home`
    and `settings` (names without the prefix, e.g. {"PORT": "8401"})."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKPLANE_")}
    env.update(
        {
            "SPARKPLANE_HOME": str(home),
            "SPARKPLANE_LOG_FORMAT": "json",
            # Wide and plain, so table cells and messages are not wrapped or coloured.
            "COLUMNS": "250",
            "NO_COLOR": "1",
            "TERM": "dumb",
        }
    )
    for key, value in (settings or {}).items():
        env[f"SPARKPLANE_{key.upper()}"] = value
    return env


@dataclass
class Cli:
    """Runs `sparkplane` commands against one home folder."""

    home: Path
    cwd: Path
    settings: dict[str, str] = field(default_factory=dict)

    async def __call__(self, *args: str, timeout: float = 60) -> CliResult:
        """Run `sparkplane ARGS` to completion."""
        process = await asyncio.create_subprocess_exec(
            str(SPARKPLANE),
            *args,
            cwd=self.cwd,
            env=cli_env(self.home, self.settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        return CliResult(args, process.returncode, out.decode(), err.decode())

    async def admin_key(self) -> str | None:
        """An admin key for this home, made once with `sparkplane init` (None when the
        home's settings turn auth off); kept in the home for later calls."""
        if self.settings.get("AUTH_ENABLED", "true").lower() in ("false", "0", "no"):
            return None
        kept = self.home / "test-admin-key"
        if kept.exists():
            return kept.read_text()
        result = await self("init")
        found = KEY.search(result.stdout)
        assert result.code == 0, str(result)
        assert found is not None, str(result)
        self.home.mkdir(parents=True, exist_ok=True)
        kept.write_text(found.group(0))
        return found.group(0)


@dataclass
class Served:
    """A `sparkplane serve` subprocess."""

    process: asyncio.subprocess.Process
    url: str
    client: httpx.AsyncClient
    log: Path

    def signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send the server a signal."""
        self.process.send_signal(sig)

    async def wait(self, timeout: float) -> int:
        """Wait for the process to exit; its exit status."""
        return await asyncio.wait_for(self.process.wait(), timeout)

    def log_text(self) -> str:
        """What the server wrote to stdout and stderr."""
        return self.log.read_text(errors="replace")


@asynccontextmanager
async def serving(
    cli: Cli, *args: str, ready_timeout: float = 60, port: int | None = None
) -> AsyncIterator[Served]:
    """`sparkplane serve ARGS` on a free loopback port, ready when /readyz says 200.

    On exit the process gets SIGTERM (then SIGKILL after 20 s) unless it already ended.
    """
    port = port or free_port()
    key = await cli.admin_key()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    log = cli.cwd / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            str(SPARKPLANE),
            "serve",
            "--port",
            str(port),
            *args,
            cwd=cli.cwd,
            env=cli_env(cli.home, cli.settings),
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
        served = Served(process, url, client, log)
        try:
            await _until_ready(served, ready_timeout)
            yield served
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _until_ready(served: Served, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if served.process.returncode is not None:
            raise AssertionError(
                f"serve exited with {served.process.returncode}:\n{served.log_text()}"
            )
        try:
            if (await served.client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"serve was not ready within {timeout} s:\n{served.log_text()}")
