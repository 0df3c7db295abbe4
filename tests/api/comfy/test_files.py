"""Uploads and outputs: a 20 MB upload used by a prompt on a device, path traversal
in /view and in an upload's name, the deny list, retention, outputs after the
device is gone."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta
from typing import Any

import aiohttp
import numpy as np

from sparkplane.db.models import utcnow
from tests.conftest import SettingsFactory
from tests.fakes.comfyui import FakeComfyConfig
from tests.fakes.comfyui.images import encode_png
from tests.fakes.comfyui_conformance.flow import CHAIN
from tests.support.comfy import ComfyClient, comfy_gateway, fleet


async def upload(
    session: aiohttp.ClientSession, url: str, name: str, data: bytes, **fields: str
) -> tuple[int, Any]:
    form = aiohttp.FormData(quote_fields=False)
    for key, value in fields.items():
        form.add_field(key, value)
    form.add_field("image", io.BytesIO(data), filename=name, content_type="image/png")
    async with session.post(url + "/upload/image", data=form) as r:
        return r.status, (await r.read())


def load_and_shrink(image: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {
            "class_type": "ImageScale",
            "inputs": {
                "image": ["1", 0],
                "upscale_method": "nearest-exact",
                "width": 32,
                "height": 32,
                "crop": "disabled",
            },
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "up"}},
    }


async def test_a_20_mb_upload_reaches_the_device_that_runs_the_prompt(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> None:
    rng = np.random.default_rng(7)
    big = encode_png(rng.integers(0, 256, (2600, 2600, 3), dtype=np.uint8), compress_level=0)
    assert len(big) > 20_000_000
    async with (
        fleet([FakeComfyConfig(), FakeComfyConfig()]) as fakes,
        comfy_gateway(make_settings(), fakes) as gw,
    ):
        status, body = await upload(session, gw.url, "big.png", big, subfolder="mine")
        assert status == 200, body[:300].decode(errors="replace")
        assert body == b'{"name":"big.png","subfolder":"mine","type":"input"}'
        # Same name, same bytes: same name; different bytes: "name (1).png".
        assert (await upload(session, gw.url, "big.png", big, subfolder="mine"))[0] == 200
        status, renamed = await upload(session, gw.url, "big.png", b"other", subfolder="mine")
        assert renamed == b'{"name":"big (1).png","subfolder":"mine","type":"input"}'
        client = ComfyClient(session, gw.url)
        ws = await client.connect()
        prompt_id = await client.run(ws, load_and_shrink("mine/big.png"), within_s=60)
        entry = (await client.history(prompt_id))[prompt_id]
        assert entry["status"]["status_str"] == "success"
        device = next(f for f in fakes if f.stats.uploads)
        copied = device.stats.uploads[0]
        assert copied.size == len(big)
        assert copied.subfolder == "sparkplane"
        on_device = device.folders.input / "sparkplane" / copied.name
        assert hashlib.sha256(on_device.read_bytes()).digest() == hashlib.sha256(big).digest()
        async with session.get(
            gw.url + "/view",
            params={"filename": "big.png", "subfolder": "mine", "type": "input"},
        ) as r:
            assert r.status == 200
            assert hashlib.sha256(await r.read()).digest() == hashlib.sha256(big).digest()
        await ws.close()


async def test_uploads_over_the_limit_are_refused(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> None:
    async with (
        fleet([FakeComfyConfig()]) as fakes,
        comfy_gateway(make_settings(max_upload_bytes=4096), fakes) as gw,
    ):
        status, _ = await upload(session, gw.url, "x.png", b"x" * 10_000)
        assert status == 413


async def test_path_traversal_in_view_and_upload_names_is_refused(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> None:
    secret = make_settings().home / "secret.txt"
    async with fleet([FakeComfyConfig()]) as fakes, comfy_gateway(make_settings(), fakes) as gw:
        secret.write_text("do not serve")
        for params, expected in [
            ({"filename": "../secret.txt", "type": "input"}, 400),
            ({"filename": "/etc/passwd"}, 400),
            ({"filename": "secret.txt", "subfolder": "../../..", "type": "input"}, 403),
            ({"filename": "sparkplane.db", "subfolder": "../..", "type": "output"}, 403),
            ({"filename": "x.png", "type": "nope"}, 400),
        ]:
            async with session.get(gw.url + "/view", params=params) as r:
                assert (r.status, await r.read()) == (expected, b""), params
        for name, subfolder in [
            ("../../evil.png", ""),
            ("evil.png", "../.."),
            ("a/../../b.png", ""),
        ]:
            status, body = await upload(session, gw.url, name, b"png", subfolder=subfolder)
            assert (status, body) == (400, b""), name
        root = gw.runtime.settings.home
        assert not list(root.parent.glob("**/evil.png"))
        assert not list(root.parent.glob("**/b.png"))


async def test_denied_node_classes_are_refused_and_hidden(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> None:
    settings = make_settings(comfy_deny_nodes=["ImageInvert"])
    async with fleet([FakeComfyConfig()]) as fakes, comfy_gateway(settings, fakes) as gw:
        client = ComfyClient(session, gw.url)
        status, body = await client.post({"prompt": CHAIN})
        assert status == 400
        assert body["error"]["type"] == "invalid_prompt"
        assert "ImageInvert" in body["error"]["message"]
        assert body["error"]["details"] == "Node ID '#2'"
        _, info = await client.get("/object_info")
        assert "ImageInvert" not in info
        assert "EmptyImage" in info
        assert not fakes[0].stats.prompt_bodies


async def test_outputs_outlive_the_device_and_retention_removes_them(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> None:
    async with fleet([FakeComfyConfig()]) as fakes, comfy_gateway(make_settings(), fakes) as gw:
        client = ComfyClient(session, gw.url)
        ws = await client.connect()
        prompt_id = await client.run(ws, CHAIN)
        await fakes[0].kill()
        images = await client.images(prompt_id)  # served from the artifact store
        assert images[0].startswith(b"\x89PNG")
        image = (await client.history(prompt_id))[prompt_id]["outputs"]["3"]["images"][0]
        swept = await gw.runtime.comfy.artifacts.sweep(utcnow() + timedelta(days=1))
        assert swept == (1, 0)
        assert await client.history(prompt_id) == {}
        assert (await client.view(image))[0] == 404
        job = await gw.runtime.comfy.store.get(prompt_id, "")
        assert job is not None  # the record stays for accounting
        await ws.close()
