"""Who receives which frames through sparkplane, as in ComfyUI: prompts without
client_id, the newest socket per clientId, the re-sent node after a reconnect,
binary previews (legacy and with metadata), feature_flags."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from tests.conftest import SettingsFactory
from tests.fakes.comfyui import FakeComfyConfig
from tests.fakes.comfyui_conformance.flow import CHAIN
from tests.fakes.comfyui_conformance.support import assert_frames, text
from tests.support.comfy import ComfyClient, comfy_gateway, fleet
from tests.support.gateway import Gateway

IDLE = {"status": {"exec_info": {"queue_remaining": 0}}}


@pytest.fixture
async def gw(make_settings: SettingsFactory) -> AsyncIterator[Gateway]:
    config = FakeComfyConfig(node_seconds={"EmptyImage": 0.6})
    async with fleet([config]) as fakes, comfy_gateway(make_settings(), fakes) as gateway:
        yield gateway


def kinds(frames: list[dict[str, Any]]) -> list[str]:
    return [f["message"]["type"] if f["frame"] == "text" else "binary" for f in frames]


async def test_a_prompt_without_client_id_sends_only_progress_to_every_socket(
    gw: Gateway, session: aiohttp.ClientSession
) -> None:
    observer = ComfyClient(session, gw.url)
    ws = await observer.connect()
    status, answer = await observer.post({"prompt": CHAIN})  # no client_id
    assert status == 200
    await ws.wait_for(text("status", **IDLE), start=1)
    seen = set(kinds(ws.frames[1:]))
    assert "progress_state" in seen
    assert not seen & {"executing", "executed", "execution_start", "execution_success"}
    assert (await observer.history(answer["prompt_id"]))[answer["prompt_id"]]
    await ws.close()


async def test_only_the_newest_socket_of_a_client_id_gets_frames(
    gw: Gateway, session: aiohttp.ClientSession
) -> None:
    client = ComfyClient(session, gw.url)
    old = await client.connect()
    new = await client.connect()
    await client.run(new, CHAIN)
    assert len(old.frames) == 1  # its greeting only
    assert not old.ws.closed
    await old.close()
    await new.close()


async def test_a_reconnect_during_execution_gets_the_current_node(
    gw: Gateway, session: aiohttp.ClientSession
) -> None:
    client = ComfyClient(session, gw.url)
    first = await client.connect()
    prompt_id = await client.queue(CHAIN)
    await first.wait_for(text("executing", node="1"))
    await first.close()
    again = await client.connect()
    await again.wait_for(text("executing", node="1"))
    greeting, replay = (f["message"] for f in again.frames[:2])
    assert greeting["data"]["sid"] == client.client_id
    assert replay == {"type": "executing", "data": {"node": "1"}}  # no prompt_id, as ComfyUI
    await again.wait_for(text("executing", node=None, prompt_id=prompt_id))
    await again.close()


async def test_binary_previews_pass_through(
    gw: Gateway, session: aiohttp.ClientSession, fx: Callable[[str], Any]
) -> None:
    legacy = fx("ws_sequence_progress_binary_legacy")
    client = ComfyClient(session, gw.url)
    ws = await client.connect()
    await client.run(ws, legacy["post_request_body"]["prompt"])
    frames = ws.frames[1:]
    assert_frames(legacy["frames"], frames[: len(frames)])
    binaries = [f for f in frames if f["frame"] == "binary"]
    assert [b["event_type"] for b in binaries] == [1, 1, 1]
    assert all(b["image"]["head_hex"].startswith("89504e47") for b in binaries)
    await ws.close()


async def test_feature_flags_negotiate_previews_with_our_prompt_id(
    gw: Gateway, session: aiohttp.ClientSession, fx: Callable[[str], Any]
) -> None:
    flags = fx("ws_feature_flags")
    sequence = fx("ws_sequence_progress_binary_metadata")
    client = ComfyClient(session, gw.url)
    ws = await client.connect()
    await ws.send_json(flags["client_sent"][0]["message"])
    await ws.wait_for(text("feature_flags"))
    reply = ws.frames[1]["message"]["data"]
    assert reply == {"supports_preview_metadata": True, "max_upload_size": 104857600}
    prompt_id = await client.run(ws, sequence["post_request_body"]["prompt"])
    binaries = [f for f in ws.frames if f["frame"] == "binary"]
    assert binaries
    assert {b["event_type"] for b in binaries} == {4}
    assert {b["metadata"]["prompt_id"] for b in binaries} == {prompt_id}
    assert json.dumps(binaries[0]["metadata"], sort_keys=True).count(prompt_id) == 1
    await ws.close()
