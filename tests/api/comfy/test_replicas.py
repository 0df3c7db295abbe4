"""Two sparkplane processes on one database: a client connected to one hears the end of
its job (the flow ComfyUI's example waits for) even when the other process ran it."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.conftest import SettingsFactory
from tests.fakes.comfyui import FakeComfyConfig
from tests.fakes.comfyui_conformance.flow import CHAIN
from tests.fakes.comfyui_conformance.support import text
from tests.support.comfy import ComfyClient, comfy_gateway, fleet, wait_capable
from tests.support.gateway import running_gateway


async def test_the_end_of_a_job_run_elsewhere_reaches_the_clients_socket(
    make_settings: SettingsFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    shared = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
        "artifacts_dir": tmp_path / "artifacts",
        "comfy_poll_s": 0.1,
    }
    async with (
        fleet([FakeComfyConfig()]) as fakes,
        comfy_gateway(make_settings(home=tmp_path / "a", **shared), fakes) as front,
        running_gateway(make_settings(home=tmp_path / "b", **shared)) as back,
    ):
        await wait_capable(back, 1)
        await front.runtime.comfy.worker.stop()  # this one only takes requests
        client = ComfyClient(session, front.url)
        ws = await client.connect()
        prompt_id = await client.queue(CHAIN)
        await ws.wait_for(text("executing", node=None, prompt_id=prompt_id), within_s=20)
        kinds = [f["message"]["type"] for f in ws.frames if f["frame"] == "text"]
        assert kinds[-4:] == ["executed", "execution_success", "status", "executing"]
        job = await front.runtime.comfy.store.get(prompt_id, "")
        assert job is not None
        attempts = await front.runtime.comfy.store.attempts(job.id)
        assert attempts[0].worker == back.runtime.comfy.worker.id
        assert len(await client.images(prompt_id)) == 1
        await ws.close()
