"""Admin API inputs that schemathesis found answering 500: each must now get a
clear answer in OpenAI's error format, and leave the server healthy."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import SettingsFactory
from tests.fakes.openai_engine import FakeOpenAIEngine
from tests.support.gateway import running_gateway


async def test_patch_with_nothing_to_change_returns_the_device(
    make_settings: SettingsFactory,
) -> None:
    async with FakeOpenAIEngine() as engine, running_gateway(make_settings()) as gw:
        r = await gw.client.post(
            "/api/devices", json={"url": engine.url, "name": "box1", "priority": 3}
        )
        assert r.status_code == 201, r.text
        for body in ({}, {"priority": None, "enabled": None}):
            r = await gw.client.patch("/api/devices/box1", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["priority"] == 3
        r = await gw.client.patch("/api/devices/nope", json={})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "device_not_found"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"url": "ENGINE", "api_key": "line\nbreak"}, "api_key"),
        ({"url": "ENGINE", "kind": "openai", "api_key": "nul\x00"}, "api_key"),
        ({"url": "http://a..b:8000"}, "url"),
        ({"url": "http://" + "a" * 64 + ".lan:8000", "kind": "openai"}, "url"),
        ({"url": "http://[::1:8000"}, "url"),
        ({"url": "hTtp://\x00\xb9", "kind": "ollama"}, "url"),  # PostgreSQL refuses NUL
        ({"url": "http://box\t1:8000", "kind": "openai"}, "url"),
    ],
)
async def test_unusable_device_input_is_400(
    make_settings: SettingsFactory, body: dict[str, Any], param: str
) -> None:
    async with FakeOpenAIEngine() as engine, running_gateway(make_settings()) as gw:
        if body["url"] == "ENGINE":
            body = {**body, "url": engine.url}
        r = await gw.client.post("/api/devices", json=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == param
        assert (await gw.client.get("/api/devices")).json()["data"] == []
        assert (await gw.client.get("/readyz")).status_code == 200


async def test_patch_tells_the_scheduler_what_a_device_is(make_settings: SettingsFactory) -> None:
    async with FakeOpenAIEngine() as engine, running_gateway(make_settings()) as gw:
        r = await gw.client.post("/api/devices", json={"url": engine.url, "name": "box1"})
        assert r.status_code == 201, r.text
        r = await gw.client.patch(
            "/api/devices/box1", json={"profile": "4090", "memory_gib": 20, "parallel": 2}
        )
        assert r.status_code == 200, r.text
        shown = (await gw.client.get("/api/devices/box1")).json()
        assert shown["extra"] == {"profile": "4090", "memory_gib": 20, "parallel": 2}
        # The scheduler plans with it at once: 20 GiB, two places, a discrete GPU.
        assert shown["memory"]["total_bytes"] == 20 << 30
        assert shown["memory"]["parallel"] == 2
        assert shown["memory"]["unified"] is False
        bad = await gw.client.patch("/api/devices/box1", json={"profile": "gtx-280"})
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "profile"
