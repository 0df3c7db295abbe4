"""A value PostgreSQL refuses (NUL in text, an integer past 64 bits) is the
caller's mistake: a 400 in the error format, not a 500. Other database failures
stay 500s. Real PostgreSQL errors, through the one error mapping (api/errors.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from sparkplane.api import errors
from sparkplane.db.engine import create_engine
from tests.support.services import fresh_postgres_database

pytestmark = pytest.mark.postgres


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with fresh_postgres_database() as url:
        engine = create_engine(url)
        app = FastAPI()
        errors.install(app)

        @app.post("/echo")
        async def echo(body: dict[str, Any]) -> dict[str, Any]:
            async with engine.connect() as conn:
                value = (await conn.execute(text(body["sql"]), {"v": body["v"]})).scalar()
            return {"v": value}

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                yield c
        finally:
            await engine.dispose()


@pytest.mark.parametrize(
    ("sql", "value"),
    [("SELECT CAST(:v AS text)", "a\x00b"), ("SELECT CAST(:v AS bigint)", 2**70)],
)
async def test_a_refused_value_is_400(client: httpx.AsyncClient, sql: str, value: Any) -> None:
    r = await client.post("/echo", json={"sql": sql, "v": value})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_value"


async def test_a_stored_value_passes(client: httpx.AsyncClient) -> None:
    r = await client.post("/echo", json={"sql": "SELECT CAST(:v AS text)", "v": "plain"})
    assert r.status_code == 200
    assert r.json() == {"v": "plain"}


async def test_other_database_failures_stay_500(client: httpx.AsyncClient) -> None:
    r = await client.post("/echo", json={"sql": "SELECT * FROM no_such_table WHERE 1 = :v", "v": 1})
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
