"""Tenants (auth on): jobs, history, files, uploads and websocket frames of one tenant
are invisible to another; the websocket needs a key with `inference`; tenant policy
places jobs; the job-finished hook reports each job once with its tenant and key."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sparkplane.jobs.events import JobFinished
from sparkplane.security.rbac import Role
from sparkplane.security.tenancy import TenantPolicy
from tests.conftest import SettingsFactory
from tests.fakes.comfyui import FakeComfyConfig, FakeComfyUI
from tests.fakes.comfyui_conformance.flow import CHAIN
from tests.fakes.comfyui_conformance.support import WsRecorder, text
from tests.support.comfy import ComfyClient, comfy_gateway, fleet
from tests.support.gateway import Gateway
from tests.support.security import Keys, make_tenant


@pytest.fixture
async def two_tenants(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> AsyncIterator[tuple[Gateway, list[FakeComfyUI], Keys, Keys]]:
    settings = make_settings(auth_enabled=True)
    async with (
        fleet([FakeComfyConfig(), FakeComfyConfig()]) as fakes,
        comfy_gateway(settings, fakes, ["a", "b"]) as gw,
    ):
        acme = await make_tenant(gw.runtime, "acme")
        other = await make_tenant(gw.runtime, "other")
        yield gw, fakes, acme, other


def member(gw: Gateway, keys: Keys, session: aiohttp.ClientSession) -> ComfyClient:
    client = ComfyClient(session, gw.url, keys.headers(Role.MEMBER))
    client.client_id = "same-client-id"  # both tenants' apps use the same clientId
    return client


async def test_tenants_see_nothing_of_each_other(
    two_tenants: Any, session: aiohttp.ClientSession
) -> None:
    gw, _fakes, acme, other = two_tenants
    finished: list[JobFinished] = []
    gw.runtime.comfy.events.subscribe(finished.append)
    alice, bob = member(gw, acme, session), member(gw, other, session)
    alice_ws, bob_ws = await alice.connect(), await bob.connect()
    prompt_id = await alice.run(alice_ws, CHAIN)
    image = (await alice.history(prompt_id))[prompt_id]["outputs"]["3"]["images"][0]
    assert (await alice.view(image))[0] == 200

    # Bob's socket (same clientId) got its greeting and nothing else, not even status.
    assert len(bob_ws.frames) == 1
    assert await bob.history(prompt_id) == {}
    assert await bob.get("/history") == (200, {})
    assert (await bob.view(image))[0] == 404
    async with session.get(f"{gw.url}/api/jobs/{prompt_id}", headers=bob.headers) as r:
        assert r.status == 404
    async with session.get(f"{gw.url}/api/jobs", headers=bob.headers) as r:
        assert (await r.json())["data"] == []
    # Bob naming Alice's prompt changes nothing.
    await session.post(gw.url + "/history", json={"delete": [prompt_id]}, headers=bob.headers)
    assert prompt_id in await alice.history(prompt_id)
    # An operator (jobs:all) may look at every tenant's job by id.
    async with session.get(
        f"{gw.url}/api/jobs/{prompt_id}", headers=other.headers(Role.OPERATOR)
    ) as r:
        assert r.status == 200
        shown = await r.json()
    assert shown["tenant_id"] == acme.tenant.id
    job = await gw.runtime.comfy.store.get(prompt_id, acme.tenant.id)
    assert job is not None
    assert job.key_id  # stored with the key that submitted it
    artifacts = await gw.runtime.comfy.artifacts.artifacts(job.id)
    assert {(a.node_id, a.type) for a in artifacts} == {("3", "output")}
    assert [(e.prompt_id, e.tenant_id, e.key_id, e.status, e.images) for e in finished] == [
        (prompt_id, acme.tenant.id, job.key_id, "success", 1)
    ]
    assert finished[0].device in ("a", "b")
    assert finished[0].attempts == 1
    await alice_ws.close()
    await bob_ws.close()


async def test_uploads_are_per_tenant(two_tenants: Any, session: aiohttp.ClientSession) -> None:
    gw, _fakes, acme, other = two_tenants
    form = aiohttp.FormData()
    form.add_field("image", io.BytesIO(b"\x89PNG secret"), filename="secret.png")
    async with session.post(
        gw.url + "/upload/image", data=form, headers=acme.headers(Role.MEMBER)
    ) as r:
        assert r.status == 200
    bob = member(gw, other, session)
    async with session.get(
        gw.url + "/view", params={"filename": "secret.png", "type": "input"}, headers=bob.headers
    ) as r:
        assert r.status == 404
    _, info = await bob.get("/object_info/LoadImage")
    assert "secret.png" not in info["LoadImage"]["input"]["required"]["image"][0]
    _, mine = await member(gw, acme, session).get("/object_info/LoadImage")
    assert mine["LoadImage"]["input"]["required"]["image"][0] == ["secret.png"]
    load = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "secret.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    status, body = await bob.post({"prompt": load})
    assert status == 400
    assert body["node_errors"]["1"]["errors"][0]["type"] == "custom_validation_failed"


async def test_the_websocket_needs_a_key_with_inference(
    two_tenants: Any, session: aiohttp.ClientSession
) -> None:
    gw, _fakes, acme, _other = two_tenants
    url = gw.url.replace("http", "ws", 1) + "/ws?clientId=x"
    for params in ("", f"&token={acme.by_role[Role.AUDITOR]}", "&token=sp-nope_nope"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url + params)
        assert refused.value.status == 403
    ws = await WsRecorder.connect(session, url + f"&token={acme.by_role[Role.MEMBER]}")
    await ws.wait_for(text("status"))
    await ws.close()
    async with session.post(gw.url + "/prompt", json={"prompt": CHAIN}) as r:
        assert r.status == 401
    async with session.post(
        gw.url + "/prompt", json={"prompt": CHAIN}, headers=acme.headers(Role.AUDITOR)
    ) as r:
        assert r.status == 403


async def test_tenant_policy_chooses_the_devices(
    two_tenants: Any, session: aiohttp.ClientSession
) -> None:
    gw, fakes, _acme, _other = two_tenants
    only_b = await make_tenant(
        gw.runtime, "only-b", policy=TenantPolicy(allowed_devices=frozenset({"b"}))
    )
    client = ComfyClient(session, gw.url, only_b.headers(Role.MEMBER))
    ws = await client.connect()
    for _ in range(3):
        await client.run(ws, CHAIN)
    assert (len(fakes[0].stats.accepted), len(fakes[1].stats.accepted)) == (0, 3)
    _, stats = await client.get("/system_stats")
    assert [d["name"].split(":")[0] for d in stats["devices"]] == ["b"]
    await ws.close()
