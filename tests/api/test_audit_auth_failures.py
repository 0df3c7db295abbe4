"""Failed authentications and refused permissions as an auditor sees them: each is
an `auth.failed` entry with the source address and the key's public id (never
the secret); a source that keeps guessing is answered 429 before its keys are
looked at, while a key already working from the same address goes on."""

from __future__ import annotations

import orjson

from sparkplane.security.rbac import Role
from tests.conftest import SettingsFactory
from tests.support.gateway import Gateway, running_gateway
from tests.support.security import make_tenant


async def _failed(gw: Gateway) -> list[dict[str, object]]:
    await gw.runtime.audit.flush(timeout=10)
    entries = await gw.runtime.audit.store.search(action="auth.failed", limit=1000)
    return [{"key_id": e.key_id, "tenant_id": e.tenant_id, **e.data} for e in entries]


async def test_refused_keys_and_permissions_are_on_the_record(
    make_settings: SettingsFactory,
) -> None:
    async with running_gateway(make_settings(auth_enabled=True)) as gw:
        keys = await make_tenant(gw.runtime, "acme", roles=(Role.MEMBER,))
        member = keys.key(Role.MEMBER)
        key_id = member[3:15]
        wrong = member[:-4] + "AAAA"
        record, revoked = await gw.runtime.keys.create(keys.tenant, Role.MEMBER)
        await gw.runtime.keys.revoke(record.id)
        assert (await gw.client.get("/v1/models")).status_code == 401
        gone = await gw.client.get("/v1/models", headers={"x-api-key": revoked})
        assert gone.status_code == 401
        bad = await gw.client.get("/v1/models", headers={"Authorization": f"Bearer {wrong}"})
        assert bad.status_code == 401
        assert "wrong" not in bad.text  # the caller learns nothing of why
        garbage = await gw.client.get("/api/keys", headers={"x-api-key": "hunter2-password"})
        assert garbage.status_code == 401
        # A valid member key asking for the fleet's devices: refused, and on the record.
        denied = await gw.client.get("/api/devices", headers=keys.headers(Role.MEMBER))
        assert denied.status_code == 403

        failed = await _failed(gw)
        assert [(e["status"], e["reason"], e["key_id"], e["path"]) for e in failed] == [
            (401, "missing", None, "/v1/models"),
            (401, "revoked", record.id, "/v1/models"),
            (401, "wrong_secret", key_id, "/v1/models"),
            (401, "malformed", None, "/api/keys"),
            (403, "forbidden", key_id, "/api/devices"),
        ]
        assert {e["client"] for e in failed} == {"127.0.0.1"}
        assert failed[-1]["tenant_id"] is None  # the fleet chain's: a tenant's own is untouched
        everything = orjson.dumps(failed).decode()
        for secret in (member, wrong, member[16:], revoked[16:], "hunter2"):
            assert secret not in everything


async def test_a_guessing_source_is_throttled_and_a_working_key_is_not(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(auth_enabled=True, auth_failures_per_minute=5)
    async with running_gateway(settings) as gw:
        keys = await make_tenant(gw.runtime, "acme", roles=(Role.MEMBER, Role.AUDITOR))
        working = keys.headers(Role.MEMBER)
        assert (await gw.client.get("/v1/models", headers=working)).status_code == 200

        statuses = []
        for i in range(12):
            guess = {"Authorization": f"Bearer sp-{i:012x}_{'x' * 43}"}
            r = await gw.client.get("/v1/models", headers=guess)
            statuses.append(r.status_code)
        assert statuses == [401] * 5 + [429] * 7
        assert r.json()["error"]["code"] == "auth_throttled"
        assert 1 <= int(r.headers["retry-after"]) <= 12  # one failure every 60/5 s

        # The key that was already working goes on; one not yet seen waits like a guess.
        assert (await gw.client.get("/v1/models", headers=working)).status_code == 200
        fresh = await gw.client.get("/v1/models", headers=keys.headers(Role.AUDITOR))
        assert fresh.status_code == 429
        # No key at all guesses nothing: still a 401 (and no more entries).
        assert (await gw.client.get("/v1/models")).status_code == 401

        failed = await _failed(gw)
        # Five guesses and one note that the source is throttled: a flood does not grow the log.
        assert [e["reason"] for e in failed] == ["unknown_key"] * 5 + ["throttled"]
        assert failed[-1]["status"] == 429
