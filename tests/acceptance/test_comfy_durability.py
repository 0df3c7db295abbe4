"""Durability with real `sparkplane serve` processes: 50 queued jobs survive a kill -9
(each runs exactly once), and two processes on one PostgreSQL database drain 200 jobs
between them, each job run exactly once."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.comfyui import FakeComfyConfig, FakeComfyUI
from tests.fakes.comfyui_conformance.flow import CHAIN
from tests.support.comfy import fleet
from tests.support.serve import serve
from tests.support.services import fresh_postgres_database

pytestmark = pytest.mark.slow


def prompt(i: int) -> dict[str, Any]:
    body = copy.deepcopy(CHAIN)
    body["1"]["inputs"]["width"] = 16 + 8 * (i % 40)  # distinct prompts, no cache hits
    body["3"]["inputs"]["filename_prefix"] = f"job{i}"
    return body


async def add_devices(
    session: aiohttp.ClientSession, url: str, fakes: Sequence[FakeComfyUI]
) -> None:
    for i, fake in enumerate(fakes):
        body = {"url": fake.url, "kind": "comfyui", "name": f"comfy{i}"}
        async with session.post(url + "/api/devices", json=body) as r:
            assert r.status == 201, await r.text()


async def wait_object_info(session: aiohttp.ClientSession, url: str, within_s: float = 20) -> None:
    async with asyncio.timeout(within_s):
        while True:
            async with session.get(url + "/object_info") as r:
                if "SaveImage" in await r.json():
                    return
            await asyncio.sleep(0.1)


async def submit(session: aiohttp.ClientSession, url: str, i: int) -> str:
    async with session.post(url + "/prompt", json={"prompt": prompt(i)}) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["prompt_id"])


async def wait_history(
    session: aiohttp.ClientSession, url: str, ids: set[str], within_s: float
) -> dict[str, Any]:
    async with asyncio.timeout(within_s):
        while True:
            async with session.get(url + "/history", params={"max_items": 10_000}) as r:
                history = await r.json()
            if ids <= set(history):
                return dict(history)
            await asyncio.sleep(0.25)


def executions(fakes: Sequence[FakeComfyUI]) -> list[str]:
    return [job.prompt_id for fake in fakes for job in fake.stats.jobs]


def slow_device() -> FakeComfyConfig:
    return FakeComfyConfig(node_seconds={"ImageInvert": 0.15})


async def test_kill_9_with_50_queued_jobs_loses_none_and_runs_none_twice(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"SPARKPLANE_JOB_LEASE_S": "2"}
    async with fleet([slow_device(), slow_device(), slow_device()]) as fakes:
        first = await serve(home, env)
        try:
            async with aiohttp.ClientSession() as session:
                await add_devices(session, first.url, fakes)
                await wait_object_info(session, first.url)
                ids = {await submit(session, first.url, i) for i in range(50)}
                # Kill while jobs run on the devices and most still wait in the queue.
                for _ in range(400):
                    if len(executions(fakes)) >= 3:
                        break
                    await asyncio.sleep(0.05)
                await first.kill()
                done_before = len(executions(fakes))
                assert done_before < 50
                second = await serve(home, env, port=first.port)
                try:
                    history = await wait_history(session, second.url, ids, within_s=120)
                finally:
                    await second.stop()
        finally:
            await first.stop()
        assert all(history[i]["status"]["status_str"] == "success" for i in ids)
        ran = executions(fakes)
        assert len(ran) == 50, f"{len(ran)} executions for 50 jobs"
        assert len(set(ran)) == 50


@pytest.mark.postgres
async def test_two_processes_on_one_postgres_drain_200_jobs_once_each(tmp_path: Path) -> None:
    async with (
        fresh_postgres_database() as database_url,
        fleet([FakeComfyConfig(), FakeComfyConfig(), FakeComfyConfig()]) as fakes,
    ):
        env = {"SPARKPLANE_DATABASE_URL": database_url, "SPARKPLANE_COMFY_POLL_S": "0.1"}
        one = await serve(tmp_path / "one", env)
        two = await serve(tmp_path / "two", env)
        try:
            async with aiohttp.ClientSession() as session:
                await add_devices(session, one.url, fakes)
                await wait_object_info(session, one.url)
                await wait_object_info(session, two.url)
                urls = [one.url, two.url]
                ids = set(
                    await asyncio.gather(*(submit(session, urls[i % 2], i) for i in range(200)))
                )
                history = await wait_history(session, one.url, ids, within_s=240)
                async with session.get(one.url + "/api/jobs", params={"limit": 1000}) as r:
                    jobs = (await r.json())["data"]
                workers: set[str] = set()
                for job in jobs[:40]:
                    async with session.get(f"{one.url}/api/jobs/{job['id']}") as r:
                        workers |= {a["worker"] for a in (await r.json())["attempts"]}
        finally:
            await one.stop()
            await two.stop()
        assert len(ids) == 200
        assert all(history[i]["status"]["status_str"] == "success" for i in ids)
        assert all(job["attempts"] == 1 for job in jobs)
        ran = executions(fakes)
        assert len(ran) == 200
        assert len(set(ran)) == 200
        assert len(workers) == 2, "both processes should have claimed jobs"
