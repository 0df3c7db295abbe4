"""Every value a database would refuse is the caller's mistake, a 400 naming the
field, on SQLite and PostgreSQL: integers past 64 bits (SQLite's driver raises a
bare OverflowError for them), text with NUL, overlong text and non-finite
numbers, sent to every route of the API description in every parameter and
top-level body field; and the fallback mapping names a URL parameter the
database refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from sparkplane.api import errors
from sparkplane.db.engine import close_engine, create_engine
from tests.conftest import SettingsFactory
from tests.support.gateway import running_gateway

BAD: dict[str, Any] = {"big": 2**70, "-big": -(2**70), "nul": "a\x00b", "long": "x" * 5000}
NESTED = ("requests_per_minute", "monthly_tokens", "per_image", "allowed_devices")


def _cases(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, str], str | None]]:
    """(method, path, query, body) for each bad value in each parameter and body field."""
    cases: list[tuple[str, str, dict[str, str], str | None]] = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            params = op.get("parameters", [])
            schema = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            empty = "{}" if schema else None  # a body where one is expected: the URL is tested
            plain = path
            for p in params:
                if p["in"] == "path":
                    plain = plain.replace(f"{{{p['name']}}}", "x")
            for p in params:
                for value in (str(BAD["big"]), BAD["long"]):
                    if p["in"] == "path":
                        named = path.replace(f"{{{p['name']}}}", value)
                        cases.append((method, named, {}, empty))
                    elif p["in"] == "query":
                        cases.append((method, plain, {p["name"]: value}, empty))
            ref = schema.get("schema", {}).get("$ref")
            if ref is None:
                continue
            fields = spec["components"]["schemas"][ref.rsplit("/", 1)[1]].get("properties", {})
            for name in fields:
                for value in BAD.values():
                    cases.append((method, plain, {}, json.dumps({name: value})))
                cases.append((method, plain, {}, f'{{"{name}": 1e999}}'))
                for sub in NESTED:
                    inner = [BAD["nul"]] if sub == "allowed_devices" else BAD["big"]
                    cases.append((method, plain, {}, json.dumps({name: {sub: inner}})))
    return cases


async def test_no_refused_value_is_a_server_error_and_each_names_its_field(
    make_settings: SettingsFactory, database_url: str
) -> None:
    settings = make_settings(database_url=database_url, log_level="error")
    async with running_gateway(settings) as gw:
        spec = (await gw.client.get("/openapi.json")).json()
        cases = _cases(spec)
        assert len(cases) > 500
        print(f"{len(cases)} requests with refused values")
        server_errors, unnamed = [], []
        for method, path, query, body in cases:
            headers = {"content-type": "application/json"} if body is not None else {}
            r = await gw.client.request(method, path, params=query, content=body, headers=headers)
            where = (method, path[:80], {k: v[:30] for k, v in query.items()}, (body or "")[:80])
            if r.status_code >= 500:
                server_errors.append((*where, r.status_code, r.text[:200]))
            elif r.status_code == 400 and r.json()["error"]["param"] is None:
                unnamed.append((*where, r.text[:200]))
        assert not server_errors, "\n".join(map(str, server_errors))
        assert not unnamed, "\n".join(map(str, unnamed))


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A bare app over the one error mapping, looking a path parameter up as given."""
    engine = create_engine(database_url)
    app = FastAPI()
    errors.install(app)

    @app.get("/rows/{n}")
    async def find(n: int, label: str = "") -> dict[str, Any]:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT CAST(:n AS BIGINT), CAST(:label AS TEXT)"), {"n": n, "label": label}
            )
        return {"n": found.scalar()}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c
    finally:
        await close_engine(engine)


async def test_the_fallback_names_the_parameter_the_database_refused(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/rows/7")).json() == {"n": 7}
    refused = await client.get(f"/rows/{2**70}")  # SQLite: OverflowError; PostgreSQL: 22003
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "invalid_value"
    assert refused.json()["error"]["param"] == "n"
