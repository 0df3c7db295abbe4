"""Chaos for the durable job queue: 1,000 ComfyUI jobs through `sparkplane serve`
over three fake ComfyUI devices, with the server killed (SIGKILL, no drain) 20
times while they run and started again on the same home folder each time.

Prints the jobs lost (accepted, never finished), run twice on a device, and
completed (goal: 0, 0, 1,000), and the same for their audit entries (`job`
entries missing or doubled in the chain, and whether the chain verifies).
Usage:

    python bench/chaos_jobs.py [--jobs 1000] [--kills 20] [--node-s 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.acceptance.test_comfy_durability import (  # noqa: E402
    add_devices,
    executions,
    submit,
    wait_object_info,
)
from tests.fakes.comfyui import FakeComfyConfig  # noqa: E402
from tests.support.comfy import fleet  # noqa: E402
from tests.support.serve import Served, serve  # noqa: E402

from sparkplane.db.engine import close_engine, create_engine, session_factory  # noqa: E402
from sparkplane.security import audit  # noqa: E402
from sparkplane.security.audit_store import AuditStore  # noqa: E402

ENV = {"SPARKPLANE_JOB_LEASE_S": "2", "SPARKPLANE_LOG_LEVEL": "warning"}


async def finished(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    """prompt id -> status of every finished job the server reports."""
    async with session.get(url + "/history", params={"max_items": 100_000}) as r:
        history = await r.json()
    return {pid: h["status"]["status_str"] for pid, h in history.items()}


async def audit_figures(home: Path, ids: set[str]) -> tuple[int, int, bool, int]:
    """(job entries missing, job entries doubled, chain verifies, entries checked)."""
    engine = create_engine(f"sqlite+aiosqlite:///{home / 'sparkplane.db'}")
    try:
        store = AuditStore(session_factory(engine))
        seen: Counter[str] = Counter()
        async for entry in audit.export(store, datetime(2000, 1, 1, tzinfo=UTC)):
            if entry["action"] == "job":
                seen[str(entry["data"].get("prompt_id"))] += 1
        report = await audit.verify(store)
    finally:
        await close_engine(engine)
    missing = sum(1 for i in ids if seen[i] == 0)
    doubled = sum(n - 1 for i, n in seen.items() if n > 1)
    return missing, doubled, report.ok, report.checked


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--node-s", type=float, default=0.1, help="seconds per node on a device")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    configs = [FakeComfyConfig(node_seconds={"ImageInvert": args.node_s * k}) for k in (1, 2, 4)]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        async with fleet(configs) as fakes, aiohttp.ClientSession() as session:
            server: Served = await serve(home, ENV)
            port = server.port
            try:
                await add_devices(session, server.url, fakes)
                await wait_object_info(session, server.url)
                ids = set(
                    await asyncio.gather(
                        *(submit(session, server.url, i) for i in range(args.jobs))
                    )
                )
                print(f"{len(ids):,} jobs accepted in {time.perf_counter() - started:.1f} s")
                kills = 0
                while kills < args.kills:
                    await asyncio.sleep(rng.uniform(1.0, 3.0))  # let jobs run, then strike
                    done = len(executions(fakes))
                    await server.kill()
                    kills += 1
                    print(f"  kill -9 #{kills}: {done:,} device runs so far", flush=True)
                    server = await serve(home, ENV, port=port)
                deadline = time.monotonic() + 900
                status: dict[str, str] = {}
                while time.monotonic() < deadline:
                    status = await finished(session, server.url)
                    if ids <= set(status):
                        break
                    await asyncio.sleep(0.5)
            finally:
                await server.stop()
            ran = executions(fakes)
        completed = sum(1 for i in ids if status.get(i) == "success")
        lost = sum(1 for i in ids if i not in status)
        failed = len(ids) - completed - lost
        runs = Counter(ran)
        twice = sum(n - 1 for i, n in runs.items() if i in ids and n > 1)
        missing, doubled, chain_ok, checked = await audit_figures(home, ids)
    elapsed = time.perf_counter() - started
    print()
    print(f"jobs {len(ids):,}, kill -9 x{args.kills}, {elapsed:.0f} s in all")
    print(f"lost        {lost}")
    print(f"duplicated  {twice}   (device runs of a job past its first)")
    print(f"completed   {completed:,}")
    if failed:
        print(f"failed      {failed}   (finished, not successfully)")
    print(f"audit: job entries missing {missing}, doubled {doubled}; ", end="")
    print(f"chain {'verifies' if chain_ok else 'BROKEN'} ({checked:,} entries)")


if __name__ == "__main__":
    asyncio.run(main())
