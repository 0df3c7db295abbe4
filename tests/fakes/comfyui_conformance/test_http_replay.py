"""Recorded HTTP exchanges that need no prior state, replayed against a fresh fake."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.comfyui_conformance.support import (
    STATELESS,
    VALIDATION_ERRORS,
    assert_matches,
    replay,
    unpath,
)


@pytest.mark.parametrize("name", STATELESS)
async def test_stateless_exchange_matches_recording(
    name: str, fx: Any, comfy_fake: Any, session: Any
) -> None:
    recording = fx(name)
    response = await replay(session, comfy_fake, recording["request"])
    await assert_matches(response, recording)


@pytest.mark.parametrize("name", VALIDATION_ERRORS)
async def test_validation_error_body_matches_recording(
    name: str, fx: Any, comfy_fake: Any, session: Any
) -> None:
    recording = fx(name)
    response = await replay(session, comfy_fake, recording["request"])
    await assert_matches(response, recording, fix=lambda body: unpath(body, comfy_fake))
    assert not comfy_fake.stats.accepted


async def test_object_info_holds_the_recorded_definitions(
    fx: Any, comfy_fake: Any, session: Any
) -> None:
    recording = fx("object_info")
    response = await session.get(comfy_fake.url + "/object_info")
    body = await response.json()
    assert response.status == 200
    assert response.headers["Content-Type"] == recording["response"]["headers"]["Content-Type"]
    assert body == recording["response"]["body_subset"]
    allowed_keys = set(recording["response"]["body_summary"]["keys_seen_in_entries"])
    assert all(set(entry) <= allowed_keys for entry in body.values())


@pytest.mark.parametrize(
    "path", ["/api/system_stats", "/api/object_info/EmptyImage", "/api/history"]
)
async def test_api_prefix_serves_the_same_bodies(path: str, comfy_fake: Any, session: Any) -> None:
    plain = await session.get(comfy_fake.url + path.removeprefix("/api"))
    prefixed = await session.get(comfy_fake.url + path)
    assert prefixed.status == plain.status == 200
    assert await prefixed.json() == await plain.json()


async def test_origin_check_applies_to_every_route(comfy_fake: Any, session: Any) -> None:
    headers = {"Origin": "http://evil.example"}
    for method, path in [("POST", "/prompt"), ("GET", "/system_stats"), ("POST", "/interrupt")]:
        response = await session.request(method, comfy_fake.url + path, headers=headers)
        assert (response.status, await response.read()) == (403, b"")
    # A non-loopback Host disables the check (what a reverse proxy sends).
    proxied = {"Host": "comfy.example.org", "Origin": "http://evil.example"}
    response = await session.get(comfy_fake.url + "/queue", headers=proxied)
    assert response.status == 200


async def test_get_routes_also_answer_head(comfy_fake: Any, session: Any) -> None:
    response = await session.head(comfy_fake.url + "/system_stats")
    assert response.status == 200
    assert (await session.head(comfy_fake.url + "/api/queue")).status == 200
