"""Recorded HTTP exchanges that need no prior state, replayed against a fresh fake."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.comfyui_conformance.support import assert_matches, replay, unpath

STATELESS = [
    "system_stats",
    "features",
    "object_info_single_node",
    "object_info_unknown_node",
    "queue_idle",
    "prompt_get_idle",
    "api_prefix_queue",
    "history_unknown_prompt_id",
    "history_after_clear",
    "view_not_found",
    "view_bad_filename",
    "origin_mismatch_403",
    "origin_match_ok",
    "free",
    "free_no_body",
    "interrupt_global_no_body",
    "interrupt_not_running",
    "prompt_error_malformed_json",
]

VALIDATION_ERRORS = [
    "prompt_error_bad_combo",
    "prompt_error_bad_link",
    "prompt_error_bad_link_slot",
    "prompt_error_empty_prompt",
    "prompt_error_missing_class_type",
    "prompt_error_missing_image_file",
    "prompt_error_missing_input",
    "prompt_error_no_outputs",
    "prompt_error_no_prompt_key",
    "prompt_error_type_mismatch",
    "prompt_error_unknown_node",
    "prompt_error_value_below_min",
    "prompt_error_value_not_int",
]


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
