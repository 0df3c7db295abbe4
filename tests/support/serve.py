"""`sparkplane serve` as a real process, for tests that kill or multiply it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.support.net import free_port

SPARKPLANE = str(Path(sys.executable).parent / "sparkplane")


@dataclass
class Served:
    """A running `sparkplane serve`."""

    proc: asyncio.subprocess.Process
    url: str
    port: int
    log: Path

    async def kill(self) -> None:
        """SIGKILL: no drain, no cleanup."""
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            await self.kill()


async def serve(home: Path, env: dict[str, str] | None = None, port: int | None = None) -> Served:
    """Start `sparkplane serve` (auth off, loopback) and wait until it is ready."""
    port = port or free_port()
    full_env = {
        **os.environ,
        "SPARKPLANE_HOME": str(home),
        "SPARKPLANE_AUTH_ENABLED": "false",
        "SPARKPLANE_LOG_FORMAT": "json",
        "SPARKPLANE_HEALTH_INTERVAL_S": "0.3",
        "SPARKPLANE_DRAIN_TIMEOUT_S": "1",
        **(env or {}),
    }
    log = home.parent / f"serve-{port}-{len(list(home.parent.glob('serve-*')))}.log"
    os.makedirs(home, exist_ok=True)
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            SPARKPLANE, "serve", "--port", str(port), "--no-discover",
            env=full_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(url + "/readyz") as r:
                    if r.status == 200:
                        return Served(proc, url, port, log)
            except aiohttp.ClientError:
                pass
            if proc.returncode is not None:
                break
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError(f"sparkplane did not start: {log.read_text()[-2000:]}")
