"""``GET /api/plan`` on a bare FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from sparkplane.api.auth import PRINCIPAL
from sparkplane.api.plan import build_router
from sparkplane.planner import profiles_with
from sparkplane.security.principal import Principal
from sparkplane.security.rbac import Role


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    profiles = profiles_with([{"id": "lab-box", "memory_gib": 48, "bandwidth_gbs": 960}])
    app.include_router(build_router(profiles))

    @app.middleware("http")
    async def as_member(request: Request, call_next: Callable[[Request], Awaitable[Response]]):  # type: ignore[no-untyped-def]
        # The gateway middleware authenticates in the real app; here a member calls.
        request.scope[PRINCIPAL] = Principal(
            key_id="k", tenant_id="t", tenant="t", role=Role.MEMBER
        )
        return await call_next(request)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_plan_with_breakdown(client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/api/plan",
        params={"model": "llama-3.1-70b", "device": ["dgx-spark", "rtx-4090"], "quant": "fp8"},
    )
    assert r.status_code == 200
    body = r.json()
    spark, rtx = body["devices"]
    assert spark["fits"]
    assert not rtx["fits"]
    assert spark["memory"]["total"] == sum(i["bytes"] for i in spark["memory"]["items"])
    assert spark["decode"]["tokens_per_s"] > 0


async def test_custom_profiles_are_served(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/plan", params={"model": "qwen3-8b", "device": "lab-box"})
    assert r.status_code == 200
    assert r.json()["devices"][0]["device"] == "lab-box"


async def test_model_by_numbers(client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/api/plan",
        params={"params_b": 200, "quant": "nvfp4", "device": "dgx-spark", "context": 4096},
    )
    assert r.status_code == 200
    assert r.json()["devices"][0]["fits"]


async def test_unknown_model_is_404_with_suggestions(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/plan", params={"model": "llama-3.1-7b"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == "model"
    assert err["code"] == "model_not_found"
    assert "llama-3.1-8b" in err["message"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"model": "llama-3.1-8b", "quant": "q9_9"}, "quant"),
        ({"model": "llama-3.1-8b", "device": "nope"}, "device"),
        ({"model": "llama-3.1-8b", "context": "many"}, "context"),
        ({"model": "llama-3.1-8b", "context": 0}, "context"),
        ({"model": "/etc/passwd"}, "model"),
        ({"model": "../models/x.gguf"}, "model"),
        ({}, "model"),
    ],
)
async def test_bad_input_is_400_in_openai_format(
    client: httpx.AsyncClient, params: dict[str, object], param: str
) -> None:
    r = await client.get("/api/plan", params=params)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert err["message"]
