"""The recorded ComfyUI exchanges, replayed through sparkplane (one fake device behind
it): the same requests must give the recorded statuses, Content-Types and bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.conftest import SettingsFactory
from tests.fakes.comfyui import FakeComfyConfig, FakeComfyUI
from tests.fakes.comfyui_conformance.flow import connect, run
from tests.fakes.comfyui_conformance.support import (
    DEVICE_ONLY,
    VALIDATION_ERRORS,
    assert_frames,
    assert_matches,
    canon,
    replay,
    tokens,
)
from tests.fakes.comfyui_conformance.support import STATELESS as ALL_STATELESS
from tests.support.comfy import comfy_gateway, fleet

STATELESS = [name for name in ALL_STATELESS if name not in DEVICE_ONLY]


@dataclass
class Target:
    """What the conformance helpers need of a server: its URL."""

    url: str

    def ws_url(self, client_id: str) -> str:
        return self.url.replace("http", "ws", 1) + f"/ws?clientId={client_id}"


@pytest.fixture
async def sparkplane(make_settings: SettingsFactory) -> AsyncIterator[tuple[Target, FakeComfyUI]]:
    async with fleet([FakeComfyConfig()]) as fakes, comfy_gateway(make_settings(), fakes) as gw:
        yield Target(gw.url), fakes[0]


def tracebacks_as_types(body: Any) -> Any:
    """sparkplane validates before any device sees the prompt: its tracebacks are its own."""
    if isinstance(body, dict):
        return {
            k: ["<frame>"] * 0 if k == "traceback" else tracebacks_as_types(v)
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [tracebacks_as_types(v) for v in body]
    return body


@pytest.mark.parametrize("name", STATELESS)
async def test_stateless_exchange_matches_recording(
    name: str, fx: Callable[[str], Any], sparkplane: Any, session: aiohttp.ClientSession
) -> None:
    target, _ = sparkplane
    recording = fx(name)
    response = await replay(session, target, recording["request"])  # type: ignore[arg-type]
    await assert_matches(response, recording)


@pytest.mark.parametrize("name", VALIDATION_ERRORS)
async def test_validation_error_matches_recording(
    name: str, fx: Callable[[str], Any], sparkplane: Any, session: aiohttp.ClientSession
) -> None:
    target, fake = sparkplane
    recording = fx(name)
    response = await replay(session, target, recording["request"])  # type: ignore[arg-type]
    await assert_matches(response, recording, fix=tracebacks_as_types)
    assert not fake.stats.prompt_bodies  # refused before any device saw it


async def test_fresh_run_frames_and_history_match(
    fx: Callable[[str], Any], sparkplane: Any, session: aiohttp.ClientSession
) -> None:
    target, _ = sparkplane
    sequence = fx("ws_sequence")
    ws = await connect(session, target, sequence["client_id"])  # type: ignore[arg-type]
    assert ws.frames[0]["message"] == fx("ws_connect")["frames"][0]["message"]
    answer, frames = await run(session, target, ws, sequence["post_request_body"])  # type: ignore[arg-type]
    rec_ids, our_ids = tokens(
        [sequence["post_response"]["body"]["prompt_id"]], [answer["prompt_id"]]
    )
    assert canon(answer, our_ids) == canon(sequence["post_response"]["body"], rec_ids)
    # Outputs live under a subfolder named after the job (docs/comfyui.md): the one
    # documented difference in these frames.
    for frame in frames:
        if frame["frame"] == "text" and frame["message"]["type"] == "executed":
            for image in frame["message"]["data"]["output"]["images"]:
                assert image.pop("subfolder")
                image["subfolder"] = ""
    assert_frames(sequence["frames"], frames)
    async with session.get(f"{target.url}/history/{answer['prompt_id']}") as r:
        got = await r.json()
    recorded = fx("history_prompt")["response"]["body"]
    for body in (got, recorded):
        for entry in body.values():
            for image in entry["outputs"]["3"]["images"]:
                image["subfolder"] = "<subfolder>"
    assert canon(got, our_ids) == canon(recorded, rec_ids)
    image = got[answer["prompt_id"]]["outputs"]["3"]["images"][0]
    assert image["filename"] == "sparkplane_fixture_00001_.png"
    await ws.close()


async def test_client_origin_is_not_forwarded(
    sparkplane: Any, session: aiohttp.ClientSession, fx: Callable[[str], Any]
) -> None:
    # ComfyUI refuses a loopback request whose Origin names another host; sparkplane
    # talks to devices with its own requests, so the app's Origin never reaches them.
    target, fake = sparkplane
    body = fx("prompt_post_ok")["request"]["body"]
    headers = {"Origin": "http://app.example"}
    async with session.post(target.url + "/prompt", json=body, headers=headers) as r:
        assert r.status == 200
        prompt_id = (await r.json())["prompt_id"]
    for _ in range(200):
        async with session.get(f"{target.url}/history/{prompt_id}") as r:
            entry = await r.json()
        if entry:
            break
        await asyncio.sleep(0.05)
    assert entry[prompt_id]["status"]["status_str"] == "success"
    assert len(fake.stats.accepted) == 1


async def test_partly_invalid_prompt_runs_its_valid_branch(
    fx: Callable[[str], Any], sparkplane: Any, session: aiohttp.ClientSession
) -> None:
    target, fake = sparkplane
    recording = fx("prompt_post_partial_errors")
    ws = await connect(session, target, recording["request"]["body"]["client_id"])  # type: ignore[arg-type]
    answer, frames = await run(session, target, ws, recording["request"]["body"])  # type: ignore[arg-type]
    assert answer["node_errors"] == recording["response"]["body"]["node_errors"]
    executing = [
        f["message"]["data"]["node"]
        for f in frames
        if f["frame"] == "text" and f["message"]["type"] == "executing"
    ]
    assert executing == ["1", "2", None]
    assert fake.stats.jobs[0].executed == ("1", "2")
    await ws.close()
