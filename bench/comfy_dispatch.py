"""ComfyUI job dispatch: 1,000 short jobs through one `sparkplane serve` process over
three fake ComfyUI devices of different speeds.

Prints jobs/s for the whole batch, the dispatch overhead per job (end-to-end time
of one job submitted alone, minus the time the device spent executing it, by the
device's own timestamps; p50 and p99) and how evenly the work followed each
device's speed. Usage:

    python bench/comfy_dispatch.py [--jobs 1000] [--alone 100] [--base-ms 40]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.comfyui import FakeComfyConfig, FakeComfyUI  # noqa: E402
from tests.fakes.comfyui_conformance.flow import CHAIN  # noqa: E402
from tests.support.serve import serve  # noqa: E402

SPEEDS = {"slow": 1.0, "mid": 2.0, "fast": 4.0}


def prompt(i: int) -> dict[str, Any]:
    body = copy.deepcopy(CHAIN)
    body["1"]["inputs"]["width"] = 8 + 8 * (i % 50)  # no two neighbours hit the cache
    body["3"]["inputs"]["filename_prefix"] = f"b{i}"
    return body


async def submit(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> str:
    async with session.post(url + "/prompt", json=body) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["prompt_id"])


async def until_done(ws: aiohttp.ClientWebSocketResponse, ids: set[str]) -> None:
    """Like an app: wait for `executing` with node null of every prompt."""
    waiting = set(ids)
    while waiting:
        msg = await ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            continue
        data = msg.json()
        if data["type"] == "executing" and data["data"].get("node") is None:
            waiting.discard(data["data"].get("prompt_id"))


async def alone(session: aiohttp.ClientSession, url: str, count: int) -> list[float]:
    """Overhead of jobs run one at a time: end-to-end minus device execution (ms)."""
    overheads = []
    async with session.ws_connect(url.replace("http", "ws", 1) + "/ws?clientId=bench") as ws:
        await ws.receive()
        for i in range(count):
            started = time.time()
            prompt_id = await submit(session, url, {"prompt": prompt(i), "client_id": "bench"})
            device_start = device_end = 0.0
            while True:
                msg = (await ws.receive()).json()
                data = msg.get("data", {})
                if data.get("prompt_id") != prompt_id:
                    continue
                if msg["type"] == "execution_start":
                    device_start = data["timestamp"] / 1000
                elif msg["type"] == "execution_success":
                    device_end = data["timestamp"] / 1000
                elif msg["type"] == "executing" and data.get("node") is None:
                    break
            overheads.append((time.time() - started - (device_end - device_start)) * 1000)
    return overheads


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bulk(
    session: aiohttp.ClientSession, url: str, count: int, offset: int
) -> tuple[float, float]:
    """Submit `count` jobs at once and wait for all: (seconds to accept, seconds to finish)."""
    ws_url = url.replace("http", "ws", 1) + f"/ws?clientId=bulk{offset}"
    async with session.ws_connect(ws_url) as ws:
        started = time.monotonic()
        bodies = [
            {"prompt": prompt(offset + i), "client_id": f"bulk{offset}"} for i in range(count)
        ]
        ids = set(await asyncio.gather(*(submit(session, url, b) for b in bodies)))
        accepted = time.monotonic() - started
        await until_done(ws, ids)
        return accepted, time.monotonic() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--alone", type=int, default=100)
    parser.add_argument("--base-ms", type=float, default=400.0, help="job time on the slow device")
    parser.add_argument(
        "--ceiling-jobs", type=int, default=300, help="jobs of the dispatch-bound run (2 ms each)"
    )
    args = parser.parse_args()
    fakes = {
        name: FakeComfyUI(FakeComfyConfig(speed=speed, node_seconds={"ImageInvert": 0.002}))
        for name, speed in SPEEDS.items()
    }
    for fake in fakes.values():
        await fake.start()
    with tempfile.TemporaryDirectory() as tmp:
        served = await serve(Path(tmp) / "home", {"SPARKPLANE_LOG_LEVEL": "warning"})
        try:
            async with aiohttp.ClientSession() as session:
                for name, fake in fakes.items():
                    body = {"url": fake.url, "kind": "comfyui", "name": name}
                    async with session.post(served.url + "/api/devices", json=body) as r:
                        assert r.status == 201
                await asyncio.sleep(1.0)
                overheads = await alone(session, served.url, args.alone)
                _, ceiling = await bulk(session, served.url, args.ceiling_jobs, 100_000)
                for fake in fakes.values():
                    fake.config.node_seconds["ImageInvert"] = args.base_ms / 1000
                before = {n: len(f.stats.jobs) for n, f in fakes.items()}
                accepted, elapsed = await bulk(session, served.url, args.jobs, 0)
        finally:
            await served.stop()
    for fake in fakes.values():
        await fake.close()
    counts = {n: len(f.stats.jobs) - before[n] for n, f in fakes.items()}
    total_speed = sum(SPEEDS.values())
    capacity = sum(speed / (args.base_ms / 1000) for speed in SPEEDS.values())
    cores = os.cpu_count()
    print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}")
    print(
        f"dispatch overhead per job, {args.alone} jobs one at a time: "
        f"p50 {statistics.median(overheads):.1f} ms, p99 {percentile(overheads, 0.99):.1f} ms"
    )
    print(
        f"dispatch ceiling: {args.ceiling_jobs} jobs of 2 ms in {ceiling:.1f} s: "
        f"{args.ceiling_jobs / ceiling:.1f} jobs/s"
    )
    print(
        f"{args.jobs} jobs of {args.base_ms:g} ms (slow device) in {elapsed:.1f} s: "
        f"{args.jobs / elapsed:.1f} jobs/s (devices' combined capacity {capacity:.1f} jobs/s; "
        f"all {args.jobs} accepted in {accepted:.1f} s)"
    )
    print("device  speed  jobs  share  ideal share")
    worst = 0.0
    for name, speed in SPEEDS.items():
        share, ideal = counts[name] / args.jobs, speed / total_speed
        worst = max(worst, abs(share - ideal))
        print(f"{name:6}  {speed:5.1f}  {counts[name]:4}  {share:5.1%}  {ideal:5.1%}")
    print(f"largest gap between a device's share and its speed share: {worst:.1%}")


if __name__ == "__main__":
    asyncio.run(main())
