from __future__ import annotations

import aiohttp

from tests.conftest import SettingsFactory
from tests.fakes.comfyui import FakeComfyConfig
from tests.fakes.comfyui_conformance.flow import CHAIN
from tests.support.comfy import ComfyClient, comfy_gateway, fleet


async def test_one_prompt_end_to_end(make_settings: SettingsFactory) -> None:
    async with fleet([FakeComfyConfig()]) as fakes, comfy_gateway(make_settings(), fakes) as gw:
        async with aiohttp.ClientSession() as session:
            client = ComfyClient(session, gw.url)
            ws = await client.connect()
            prompt_id = await client.run(ws, CHAIN)
            images = await client.images(prompt_id)
            assert len(images) == 1
            assert images[0].startswith(b"\x89PNG")
            print([f["message"]["type"] if f["frame"] == "text" else "bin" for f in ws.frames])
            await ws.close()
