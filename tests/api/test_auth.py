"""Keys on every endpoint: missing, wrong, revoked, expired; both header forms."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sparkplane.security.rbac import PLATFORM_OWNER, TENANT_ADMIN, TENANT_MEMBER, Role
from tests.conftest import SettingsFactory
from tests.support.gateway import running_gateway
from tests.support.security import make_tenant


async def test_every_non_public_endpoint_needs_a_key(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings(auth_enabled=True)) as gw:
        for method, path in [
            ("GET", "/v1/models"),
            ("POST", "/v1/chat/completions"),
            ("POST", "/v1/embeddings"),
            ("GET", "/api/devices"),
            ("GET", "/api/keys"),
        ]:
            r = await gw.client.request(method, path, json={})
            assert r.status_code == 401, (method, path)
            assert r.json()["error"]["type"] == "authentication_error"
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert (await gw.client.get("/healthz")).status_code == 200
        assert (await gw.client.get("/readyz")).status_code == 200
        assert (await gw.client.get("/openapi.json")).status_code == 200


async def test_bearer_and_x_api_key_both_work_and_bad_keys_do_not(
    make_settings: SettingsFactory,
) -> None:
    async with running_gateway(make_settings(auth_enabled=True)) as gw:
        keys = await make_tenant(gw.runtime, "acme", roles=(Role.MEMBER,))
        key = keys.by_role[Role.MEMBER]
        ok = await gw.client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        ok = await gw.client.get("/v1/models", headers={"x-api-key": key})
        assert ok.status_code == 200
        tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
        for bad in [tampered, "sp-000000000000_" + "x" * 43, "not-a-key", key + "x"]:
            r = await gw.client.get("/v1/models", headers={"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401, bad


async def test_a_revoked_key_is_refused_by_every_process_within_5s(
    make_settings: SettingsFactory, database_url: str
) -> None:
    settings = make_settings(auth_enabled=True, database_url=database_url)
    async with running_gateway(settings) as a, running_gateway(settings) as b:
        keys = await make_tenant(a.runtime, "acme", roles=(Role.ADMIN, Role.MEMBER))
        member = keys.by_role[Role.MEMBER]
        headers = {"Authorization": f"Bearer {member}"}
        assert (await a.client.get("/v1/models", headers=headers)).status_code == 200
        assert (await b.client.get("/v1/models", headers=headers)).status_code == 200
        key_id = member[3:15]
        r = await a.client.delete(f"/api/keys/{key_id}", headers=keys.headers(Role.ADMIN))
        assert r.status_code == 200
        assert r.json()["revoked_at"] is not None
        assert (await a.client.get("/v1/models", headers=headers)).status_code == 401
        started = asyncio.get_running_loop().time()
        while (await b.client.get("/v1/models", headers=headers)).status_code != 401:
            assert asyncio.get_running_loop().time() - started < 5.0
            await asyncio.sleep(0.1)


async def test_an_expired_key_is_refused(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings(auth_enabled=True, auth_cache_s=0.1)) as gw:
        tenant = await gw.runtime.tenants.create("acme")
        soon = datetime.now(UTC) + timedelta(seconds=1)
        _, key = await gw.runtime.keys.create(tenant, Role.MEMBER, expires_at=soon)
        headers = {"Authorization": f"Bearer {key}"}
        assert (await gw.client.get("/v1/models", headers=headers)).status_code == 200
        await asyncio.sleep(1.3)
        assert (await gw.client.get("/v1/models", headers=headers)).status_code == 401


async def test_a_disabled_tenant_loses_access(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings(auth_enabled=True)) as gw:
        keys = await make_tenant(gw.runtime, "acme", roles=(Role.ADMIN,))
        admin = keys.headers(Role.ADMIN)
        other = await make_tenant(gw.runtime, "other", roles=(Role.MEMBER,))
        member = other.headers(Role.MEMBER)
        assert (await gw.client.get("/v1/models", headers=member)).status_code == 200
        r = await gw.client.patch("/api/tenants/other", json={"disabled": True}, headers=admin)
        assert r.status_code == 200
        assert (await gw.client.get("/v1/models", headers=member)).status_code == 401


async def test_keys_api_shows_a_key_once_and_never_again(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings(auth_enabled=True)) as gw:
        keys = await make_tenant(gw.runtime, "acme", roles=(Role.ADMIN,))
        admin = keys.headers(Role.ADMIN)
        r = await gw.client.post(
            "/api/keys", json={"tenant": "acme", "role": "member", "name": "ci"}, headers=admin
        )
        assert r.status_code == 201
        key = r.json()["key"]
        assert key.startswith("sp-")
        assert len(key) >= 3 + 12 + 1 + 43
        listing = (await gw.client.get("/api/keys", headers=admin)).text
        assert key not in listing
        assert key[16:] not in listing
        r = await gw.client.post(
            "/api/keys", json={"tenant": "acme", "role": "public"}, headers=admin
        )
        assert r.status_code == 400


def test_keyless_serving_is_refused_off_loopback() -> None:
    sparkplane = Path(sys.executable).parent / "sparkplane"
    done = subprocess.run(
        [str(sparkplane), "serve", "--host", "0.0.0.0", "--no-discover"],
        env={"SPARKPLANE_AUTH_ENABLED": "false", "SPARKPLANE_HOME": "/nonexistent/never"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "loopback" in done.stderr


async def test_cors_preflight_is_answered_before_authentication(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(auth_enabled=True, cors_origins=["https://app.example"])
    async with running_gateway(settings) as gw:
        r = await gw.client.options(
            "/v1/chat/completions",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = await gw.client.get("/v1/models", headers={"Origin": "https://evil.example"})
        assert r.status_code == 401
        assert "access-control-allow-origin" not in r.headers


async def test_a_rotated_key_works_with_its_new_secret_only(
    make_settings: SettingsFactory, database_url: str
) -> None:
    settings = make_settings(auth_enabled=True, database_url=database_url)
    async with running_gateway(settings) as gw:
        keys = await make_tenant(gw.runtime, "acme", roles=(TENANT_ADMIN, TENANT_MEMBER))
        old = keys.headers(TENANT_MEMBER)
        assert (await gw.client.get("/v1/models", headers=old)).status_code == 200
        key_id = keys.key(TENANT_MEMBER)[3:15]
        r = await gw.client.post(f"/api/keys/{key_id}/rotate", headers=keys.headers(TENANT_ADMIN))
        assert r.status_code == 200, r.text
        new = {"Authorization": f"Bearer {r.json()['key']}"}
        assert r.json()["id"] == key_id
        assert (await gw.client.get("/v1/models", headers=old)).status_code == 401
        assert (await gw.client.get("/v1/models", headers=new)).status_code == 200


async def test_a_tenant_admin_cannot_touch_the_providers_keys_in_its_tenant(
    make_settings: SettingsFactory,
) -> None:
    async with running_gateway(make_settings(auth_enabled=True)) as gw:
        # The provider's owner key lives in the same tenant as the client's admin.
        keys = await make_tenant(gw.runtime, "acme", roles=(PLATFORM_OWNER, TENANT_ADMIN))
        admin = keys.headers(TENANT_ADMIN)
        owner_id = keys.key(PLATFORM_OWNER)[3:15]
        listed = (await gw.client.get("/api/keys", headers=admin)).json()["data"]
        assert [k["scope"] for k in listed] == ["tenant"]
        for method, path in (("DELETE", ""), ("POST", "/rotate"), ("PATCH", "")):
            r = await gw.client.request(
                method, f"/api/keys/{owner_id}{path}", json={}, headers=admin
            )
            assert r.status_code == 404, (method, path, r.text)
        r = await gw.client.get("/api/tenants", headers=keys.headers(PLATFORM_OWNER))
        assert r.status_code == 200
        assert (
            await gw.client.get("/v1/models", headers=keys.headers(PLATFORM_OWNER))
        ).status_code == 200
