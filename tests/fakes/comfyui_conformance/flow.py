"""The client flow a ComfyUI app uses: socket with clientId, POST /prompt, wait, fetch."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp

from tests.fakes.comfyui.server import FakeComfyUI
from tests.fakes.comfyui_conformance.support import WsRecorder, done, text


async def post_prompt(
    session: aiohttp.ClientSession, fake: FakeComfyUI, body: dict[str, Any]
) -> dict[str, Any]:
    """POST /prompt, expecting 200."""
    response = await session.post(fake.url + "/prompt", json=body)
    payload: dict[str, Any] = await response.json()
    assert response.status == 200, payload
    return payload


async def connect(session: aiohttp.ClientSession, fake: FakeComfyUI, client_id: str) -> WsRecorder:
    """Open /ws?clientId= and wait for the greeting status frame."""
    ws = await WsRecorder.connect(session, fake.ws_url(client_id))
    await ws.wait_for(text("status"))
    return ws


async def run(
    session: aiohttp.ClientSession, fake: FakeComfyUI, ws: WsRecorder, body: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """POST a prompt for this socket's client and collect its frames up to executing null."""
    start = len(ws.frames)
    answer = await post_prompt(session, fake, body)
    end = await ws.wait_for(done(answer["prompt_id"]), start=start)
    return answer, ws.frames[start : end + 1]


async def history(
    session: aiohttp.ClientSession, fake: FakeComfyUI, prompt_id: str
) -> dict[str, Any]:
    """GET /history/{id}."""
    response = await session.get(f"{fake.url}/history/{prompt_id}")
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


CHAIN = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0},
    },
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
}


def chain(**changes: Any) -> dict[str, Any]:
    """CHAIN with node inputs replaced: chain(n1={"width": 0})."""
    prompt = copy.deepcopy(CHAIN)
    for key, inputs in changes.items():
        prompt[key.removeprefix("n")]["inputs"].update(inputs)
    return prompt
