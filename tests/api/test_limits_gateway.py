"""Limits and metering on the real request path: 429s as clients see them,
tenants kept apart, and every request metered with its tokens."""

from __future__ import annotations

import asyncio

import openai
import pytest

from sparkplane.security.rbac import Role
from sparkplane.security.tenancy import Limits
from tests.conftest import SettingsFactory
from tests.fakes.openai_engine import EngineBehaviour, FakeOpenAIEngine
from tests.support.gateway import Gateway, running_gateway
from tests.support.security import make_tenant
from tests.support.services import require_redis

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hello there"}]}


async def _device(gw: Gateway, engine: FakeOpenAIEngine, admin: dict[str, str]) -> None:
    r = await gw.client.post("/api/devices", json={"url": engine.url, "name": "box"}, headers=admin)
    assert r.status_code == 201, r.text


async def test_over_the_rate_limit_is_429_with_retry_after(make_settings: SettingsFactory) -> None:
    async with (
        FakeOpenAIEngine() as engine,
        running_gateway(make_settings(auth_enabled=True)) as gw,
    ):
        ops = await make_tenant(gw.runtime, "ops", roles=(Role.ADMIN,))
        await _device(gw, engine, ops.headers(Role.ADMIN))
        acme = await make_tenant(
            gw.runtime, "acme", limits=Limits(requests_per_minute=3), roles=(Role.MEMBER,)
        )
        beta = await make_tenant(gw.runtime, "beta", roles=(Role.MEMBER,))
        statuses = []
        for _ in range(4):
            r = await gw.client.post(
                "/v1/chat/completions", json=CHAT, headers=acme.headers(Role.MEMBER)
            )
            statuses.append(r.status_code)
        assert statuses == [200, 200, 200, 429]
        assert int(r.headers["retry-after"]) >= 1
        error = r.json()["error"]
        assert error["type"] == "rate_limit_error"
        assert "acme" in error["message"]
        # The other tenant is not slowed by acme's limit.
        for _ in range(5):
            r = await gw.client.post(
                "/v1/chat/completions", json=CHAT, headers=beta.headers(Role.MEMBER)
            )
            assert r.status_code == 200
        # The OpenAI SDK sees a RateLimitError (it would retry after Retry-After).
        client = openai.AsyncOpenAI(
            base_url=gw.url + "/v1", api_key=acme.by_role[Role.MEMBER], max_retries=0
        )
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
        await client.close()


async def test_concurrency_limit_holds_under_load(make_settings: SettingsFactory) -> None:
    behaviour = EngineBehaviour(delay_s=0.3)
    async with (
        FakeOpenAIEngine(behaviour) as engine,
        running_gateway(make_settings(auth_enabled=True)) as gw,
    ):
        ops = await make_tenant(gw.runtime, "ops", roles=(Role.ADMIN,))
        await _device(gw, engine, ops.headers(Role.ADMIN))
        acme = await make_tenant(
            gw.runtime, "acme", limits=Limits(concurrent=2), roles=(Role.MEMBER,)
        )

        async def one() -> int:
            r = await gw.client.post(
                "/v1/chat/completions", json=CHAT, headers=acme.headers(Role.MEMBER)
            )
            return r.status_code

        statuses = await asyncio.gather(*(one() for _ in range(6)))
        assert sorted(statuses) == [200, 200, 429, 429, 429, 429]
        # Slots come back when requests end.
        assert await one() == 200


async def test_each_request_is_metered_with_its_tokens(make_settings: SettingsFactory) -> None:
    async with (
        FakeOpenAIEngine() as engine,
        running_gateway(make_settings(auth_enabled=True)) as gw,
    ):
        keys = await make_tenant(gw.runtime, "acme", roles=(Role.ADMIN, Role.MEMBER))
        await _device(gw, engine, keys.headers(Role.ADMIN))
        member = keys.headers(Role.MEMBER)
        r = await gw.client.post("/v1/chat/completions", json=CHAT, headers=member)
        assert r.status_code == 200
        reported = r.json()["usage"]
        r = await gw.client.post(
            "/v1/chat/completions", json={**CHAT, "stream": True}, headers=member
        )
        assert r.status_code == 200
        r = await gw.client.post(
            "/v1/chat/completions", json={**CHAT, "model": "nope"}, headers=member
        )
        assert r.status_code == 404
        await gw.runtime.meter.flush()
        r = await gw.client.get("/api/usage", headers=member)
        total = r.json()["tenants"][0]["total"]
        assert total["requests"] == 3
        assert total["errors"] == 1
        # The plain answer's counts are the engine's own; the stream's are estimated.
        assert total["tokens_in"] >= reported["prompt_tokens"]
        assert total["tokens_out"] >= reported["completion_tokens"] + 1


@pytest.mark.redis
async def test_two_replicas_share_one_limit_through_redis(make_settings: SettingsFactory) -> None:
    url = require_redis()
    settings = make_settings(auth_enabled=True, redis_url=url)
    async with (
        FakeOpenAIEngine() as engine,
        running_gateway(settings) as a,
        running_gateway(settings) as b,
    ):
        ops = await make_tenant(a.runtime, "ops", roles=(Role.ADMIN,))
        await _device(a, engine, ops.headers(Role.ADMIN))
        name = f"acme-{id(a)}"
        acme = await make_tenant(
            a.runtime, name, limits=Limits(requests_per_minute=4), roles=(Role.MEMBER,)
        )
        for _ in range(50):  # replica b sees the device within a health round
            if b.runtime.fleet.by_name("box") is not None:
                break
            await asyncio.sleep(0.1)
        statuses = []
        for gw in (a, b, a, b, a, b):
            r = await gw.client.post(
                "/v1/chat/completions", json=CHAT, headers=acme.headers(Role.MEMBER)
            )
            statuses.append(r.status_code)
        assert statuses == [200, 200, 200, 200, 429, 429]
