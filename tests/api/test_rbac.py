"""Every route times every role of both scopes: a table of who may do what, checked
against the running app. A new route fails this test until it is added to the table.

Then every route is called by each tenant role of one tenant naming another
tenant's things, and naming things that do not exist: the two answers must be
the same bytes (but for the name asked), so another tenant cannot be told apart
from no tenant at all.
"""

from __future__ import annotations

import itertools
import re
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sparkplane.jobs.records import NewJob
from sparkplane.runtime import Runtime
from sparkplane.security.rbac import (
    GRANTS,
    KEY_GRANTS,
    PLATFORM_AUDITOR,
    PLATFORM_OPERATOR,
    PLATFORM_OWNER,
    TENANT_ADMIN,
    TENANT_AUDITOR,
    TENANT_MEMBER,
    Grant,
    Permission,
    Scope,
    scope_of,
)
from tests.conftest import SettingsFactory
from tests.support.gateway import running_gateway
from tests.support.security import Keys, make_tenant

PUBLIC = None
P, T = Scope.PLATFORM, Scope.TENANT
CHAT = {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}

# (method, path) -> the scope it acts in (None: public), the permission it needs, a body.
ROUTES: dict[tuple[str, str], tuple[Scope | None, Permission | None, object]] = {
    ("GET", "/healthz"): (PUBLIC, None, None),
    ("GET", "/readyz"): (PUBLIC, None, None),
    ("GET", "/metrics"): (P, Permission.METRICS_READ, None),
    ("GET", "/v1/models"): (T, Permission.MODELS_READ, None),
    ("GET", "/v1/models/{model}"): (T, Permission.MODELS_READ, None),
    ("POST", "/v1/chat/completions"): (T, Permission.INFERENCE, CHAT),
    ("POST", "/v1/completions"): (T, Permission.INFERENCE, {"model": "no-such", "prompt": "x"}),
    ("POST", "/v1/embeddings"): (T, Permission.INFERENCE, {"model": "no-such", "input": "x"}),
    ("GET", "/api/devices"): (P, Permission.DEVICES_READ, None),
    ("POST", "/api/devices"): (P, Permission.DEVICES_WRITE, {"url": "not a url"}),
    ("GET", "/api/devices/{name}"): (P, Permission.DEVICES_READ, None),
    ("PATCH", "/api/devices/{name}"): (P, Permission.DEVICES_WRITE, {"priority": 1}),
    ("DELETE", "/api/devices/{name}"): (P, Permission.DEVICES_WRITE, None),
    ("POST", "/api/devices/{name}/probe"): (P, Permission.DEVICES_WRITE, None),
    ("GET", "/api/nodes"): (P, Permission.DEVICES_READ, None),
    ("DELETE", "/api/nodes/{name}"): (P, Permission.DEVICES_WRITE, None),
    ("GET", "/api/nodes/{node}/deployments/{ref}/logs"): (P, Permission.DEVICES_READ, None),
    ("GET", "/api/node-tokens"): (P, Permission.DEVICES_WRITE, None),
    ("POST", "/api/node-tokens"): (P, Permission.DEVICES_WRITE, {"ttl_s": 60}),
    ("DELETE", "/api/node-tokens/{token_id}"): (P, Permission.DEVICES_WRITE, None),
    ("GET", "/api/deployments"): (P, Permission.DEVICES_READ, None),
    ("POST", "/api/deployments"): (P, Permission.DEVICES_WRITE, {"model": "nothing"}),
    ("GET", "/api/deployments/{ref}"): (P, Permission.DEVICES_READ, None),
    ("DELETE", "/api/deployments/{ref}"): (P, Permission.DEVICES_WRITE, None),
    ("GET", "/api/tenants"): (T, Permission.TENANT_READ, None),
    ("POST", "/api/tenants"): (P, Permission.TENANTS_MANAGE, {"name": "made-in-rbac-test"}),
    ("GET", "/api/tenants/{name}"): (T, Permission.TENANT_READ, None),
    ("PATCH", "/api/tenants/{name}"): (P, Permission.TENANTS_MANAGE, {}),
    ("GET", "/api/keys"): (T, Permission.KEYS_OWN, None),
    ("POST", "/api/keys"): (T, Permission.KEYS_OWN, {"tenant": "nobody", "role": "member"}),
    ("PATCH", "/api/keys/{key_id}"): (T, Permission.KEYS_OWN, {"name": "x"}),
    ("POST", "/api/keys/{key_id}/rotate"): (T, Permission.KEYS_OWN, None),
    ("DELETE", "/api/keys/{key_id}"): (T, Permission.KEYS_OWN, None),
    ("GET", "/api/plan"): (T, Permission.PLAN, None),
    ("GET", "/api/usage"): (T, Permission.USAGE_OWN, None),
    ("GET", "/api/audit"): (T, Permission.AUDIT_OWN, None),
    ("GET", "/api/audit/verify"): (T, Permission.AUDIT_OWN, None),
    ("GET", "/api/audit/export"): (T, Permission.AUDIT_OWN, None),
}
COMFY: dict[tuple[str, str], tuple[Scope | None, Permission | None, object]] = {
    ("POST", "/prompt"): (T, Permission.INFERENCE, {"prompt": {}}),
    ("GET", "/prompt"): (T, Permission.JOBS_OWN, None),
    ("GET", "/queue"): (T, Permission.JOBS_OWN, None),
    ("POST", "/queue"): (T, Permission.JOBS_OWN, {"delete": ["nothing"]}),
    ("GET", "/history"): (T, Permission.JOBS_OWN, None),
    ("GET", "/history/{prompt_id}"): (T, Permission.JOBS_OWN, None),
    ("POST", "/history"): (T, Permission.JOBS_OWN, {"delete": ["nothing"]}),
    ("POST", "/interrupt"): (T, Permission.JOBS_OWN, {"prompt_id": "nothing"}),
    ("POST", "/free"): (P, Permission.JOBS_ALL, {"free_memory": False}),
    ("GET", "/view"): (T, Permission.JOBS_OWN, None),
    ("POST", "/upload/image"): (T, Permission.INFERENCE, None),
    ("GET", "/system_stats"): (T, Permission.INFERENCE, None),
    ("GET", "/object_info"): (T, Permission.INFERENCE, None),
    ("GET", "/object_info/{node_class}"): (T, Permission.INFERENCE, None),
    ("GET", "/features"): (T, Permission.INFERENCE, None),
}
# ComfyUI serves every route also under /api; so does sparkplane.
for (_method, _path), _entry in COMFY.items():
    ROUTES[(_method, _path)] = _entry
    ROUTES[(_method, "/api" + _path)] = _entry
ROUTES |= {
    ("GET", "/api/jobs"): (T, Permission.JOBS_OWN, None),
    ("GET", "/api/jobs/{job}"): (T, Permission.JOBS_OWN, None),
    ("DELETE", "/api/jobs/{job}"): (T, Permission.JOBS_OWN, None),
}
IGNORED = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
TENANT_GRANTS = [TENANT_ADMIN, TENANT_MEMBER, TENANT_AUDITOR]
ALL_GRANTS = [PLATFORM_OWNER, PLATFORM_OPERATOR, PLATFORM_AUDITOR, *TENANT_GRANTS]


def _app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app documents, which is every route it serves."""
    found = set()
    for path, item in app.openapi()["paths"].items():
        found |= {(method.upper(), path) for method in item if path not in IGNORED}
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "nothing-here", path)


def test_every_route_names_the_scope_of_its_permission() -> None:
    for route, (scope, permission, _) in ROUTES.items():
        if permission is None:
            assert scope is None, route
        else:
            assert scope_of(permission) is scope, route


def test_no_tenant_role_holds_a_platform_permission() -> None:
    assert set(KEY_GRANTS) == set(ALL_GRANTS)
    for grant, held in GRANTS.items():
        platform = {p for p in held if scope_of(p) is Scope.PLATFORM}
        if grant.scope is Scope.TENANT:
            assert not platform, grant
    assert GRANTS[PLATFORM_OWNER] == frozenset(Permission)


async def test_the_table_covers_every_route(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings(auth_enabled=True)) as gw:
        assert _app_routes(gw.app) == set(ROUTES)


@pytest.mark.parametrize("grant", [*ALL_GRANTS, None], ids=str)
async def test_each_role_gets_exactly_its_routes(
    make_settings: SettingsFactory, grant: Grant | None
) -> None:
    async with running_gateway(make_settings(auth_enabled=True, metrics_public=False)) as gw:
        keys = await make_tenant(gw.runtime, "acme", roles=tuple(ALL_GRANTS))
        headers = keys.headers(grant) if grant is not None else {}
        for (method, path), (_scope, permission, body) in ROUTES.items():
            r = await gw.client.request(method, _concrete(path), json=body, headers=headers)
            where = f"{grant} {method} {path}: {r.status_code} {r.text[:200]}"
            if permission is None:
                assert r.status_code == 200, where
            elif grant is None:
                assert r.status_code == 401, where
            elif permission in GRANTS[grant]:
                assert r.status_code not in (401, 403), where
                assert r.status_code < 500, where
            else:
                assert r.status_code == 403, where
                assert r.json()["error"]["type"] == "permission_error", where


# -- across tenants ------------------------------------------------------------

# What each route names of a tenant, written with placeholders filled from one
# tenant's things (its own, another's, or things that do not exist):
# {tenant} name, {tenant_id}, {key} a key id, {job} a prompt id, {file} an upload.
PROBES: dict[tuple[str, str], tuple[str, object]] = {
    ("GET", "/api/usage"): ("/api/usage?tenant={tenant}", None),
    ("GET", "/api/keys"): ("/api/keys?tenant={tenant}", None),
    ("POST", "/api/keys"): ("/api/keys", {"tenant": "{tenant}", "role": "member"}),
    ("PATCH", "/api/keys/{key_id}"): ("/api/keys/{key}", {"limits": {"concurrent": 1}}),
    ("POST", "/api/keys/{key_id}/rotate"): ("/api/keys/{key}/rotate", None),
    ("DELETE", "/api/keys/{key_id}"): ("/api/keys/{key}", None),
    ("GET", "/api/tenants/{name}"): ("/api/tenants/{tenant}", None),
    ("PATCH", "/api/tenants/{name}"): ("/api/tenants/{tenant}", {}),
    ("GET", "/api/audit"): ("/api/audit?tenant={tenant}", None),
    ("GET", "/api/audit/verify"): ("/api/audit/verify?tenant={tenant}", None),
    ("GET", "/api/audit/export"): ("/api/audit/export?tenant={tenant_id}", None),
    ("GET", "/api/jobs"): ("/api/jobs?tenant_id={tenant_id}", None),
    ("GET", "/api/jobs/{job}"): ("/api/jobs/{job}", None),
    ("DELETE", "/api/jobs/{job}"): ("/api/jobs/{job}", None),
    ("GET", "/history/{prompt_id}"): ("/history/{job}", None),
    ("POST", "/history"): ("/history", {"delete": ["{job}"]}),
    ("POST", "/queue"): ("/queue", {"delete": ["{job}"]}),
    ("POST", "/interrupt"): ("/interrupt", {"prompt_id": "{job}"}),
    ("GET", "/view"): ("/view?filename={file}&type=input", None),
    ("GET", "/v1/models/{model}"): ("/v1/models/{model}", None),
}
for (_method, _path), _probe in list(PROBES.items()):
    if (_method, _path) in COMFY:
        PROBES[(_method, "/api" + _path)] = ("/api" + _probe[0], _probe[1])
MISSING = {
    "tenant": "nobody-here",
    "tenant_id": "f" * 32,
    "key": "0" * 12,
    "job": "no-such-prompt",
    "file": "no-such-upload.png",
    "model": "no-such-model",
}


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    return value


async def _things(rt: Runtime, keys: Keys, victim: str) -> dict[str, str]:
    """A tenant with a job, an upload and a spare member key; their names."""
    tenant = keys.tenant
    prompt_id = f"{tenant.name}-prompt"
    await rt.comfy.store.enqueue(
        NewJob(prompt_id, tenant.id, "", {}, {}, [], {}, "", policy={"allowed_devices": []})
    )
    with tempfile.NamedTemporaryFile(delete=False, suffix=".png") as f:
        f.write(b"\x89PNG not really")
    # save_upload moves the file into the artifact store.
    await rt.comfy.artifacts.save_upload(
        tenant.id, "", "input", "", f"{tenant.name}.png", Path(f.name), True
    )
    return {
        "tenant": tenant.name,
        "tenant_id": tenant.id,
        "key": victim,
        "job": prompt_id,
        "file": f"{tenant.name}.png",
        "model": "no-such-model",
    }


def _normalised(r: httpx.Response, names: dict[str, str]) -> tuple[int, str]:
    body = r.text
    # Longest first: a tenant's name is also part of its prompt id and file name.
    for field, value in sorted(names.items(), key=lambda item: -len(item[1])):
        body = body.replace(value, MISSING[field])
    return r.status_code, body


async def _two_tenants(rt: Runtime) -> tuple[Keys, dict[str, str], Keys, dict[str, str]]:
    acme = await make_tenant(rt, "acme", roles=tuple(ALL_GRANTS))
    globex = await make_tenant(rt, "globex", roles=tuple(ALL_GRANTS))
    acme_victim, _ = await rt.keys.create(acme.tenant, TENANT_MEMBER.role, name="victim")
    globex_victim, _ = await rt.keys.create(globex.tenant, TENANT_MEMBER.role, name="victim")
    return (
        acme,
        await _things(rt, acme, acme_victim.id),
        globex,
        await _things(rt, globex, globex_victim.id),
    )


def test_every_route_that_names_a_tenant_is_probed() -> None:
    # A route not probed must name nothing of a tenant's (devices, plan, inference...).
    unprobed = {
        (m, p)
        for (m, p), (scope, _, _) in ROUTES.items()
        if (m, p) not in PROBES and ("{" in p and scope is Scope.TENANT)
    }
    assert unprobed == {
        ("GET", "/object_info/{node_class}"),
        ("GET", "/api/object_info/{node_class}"),
    }


@pytest.mark.parametrize("grant", TENANT_GRANTS, ids=str)
async def test_another_tenant_answers_as_if_it_did_not_exist(
    make_settings: SettingsFactory, database_url: str, grant: Grant
) -> None:
    settings = make_settings(auth_enabled=True, database_url=database_url)
    async with running_gateway(settings) as gw:
        acme, own, _globex, other = await _two_tenants(gw.runtime)
        headers = acme.headers(grant)
        # Mutations of the caller's own things last, so earlier probes still find them.
        order = sorted(PROBES.items(), key=lambda item: item[0][0] != "GET")
        for (method, path), (template, body) in order:
            _scope, permission, _ = ROUTES[(method, path)]
            answers = {}
            for label, names in (("other", other), ("missing", MISSING), ("own", own)):
                r = await gw.client.request(
                    method,
                    _fill(template, names),
                    json=_fill(body, names) if body is not None else None,
                    headers=headers,
                )
                answers[label] = r
            where = f"{grant} {method} {path}"
            assert _normalised(answers["other"], other) == _normalised(
                answers["missing"], MISSING
            ), where
            assert answers["other"].status_code < 500, where
            if permission is not None and permission in GRANTS[grant]:
                mine = answers["own"]
                # Jobs, files and models have their own suites; here they need only match.
                if not re.search(r"\{(job|file|model)\}", str(template)):
                    assert mine.status_code < 300, f"{where} own: {mine.status_code} {mine.text}"


@pytest.mark.parametrize("grant", [PLATFORM_OWNER, PLATFORM_AUDITOR], ids=str)
async def test_platform_roles_reach_every_tenant(
    make_settings: SettingsFactory, grant: Grant
) -> None:
    async with running_gateway(make_settings(auth_enabled=True)) as gw:
        acme, _own, _globex, other = await _two_tenants(gw.runtime)
        headers = acme.headers(grant)
        for path in ("/api/usage?tenant={tenant}", "/api/audit/verify?tenant={tenant}"):
            r = await gw.client.get(_fill(path, other), headers=headers)
            assert r.status_code == 200, (path, r.text)
        r = await gw.client.get("/api/keys?tenant=globex", headers=headers)
        assert r.status_code == (200 if grant is PLATFORM_OWNER else 403)


LISTS = (
    "/api/keys",
    "/api/tenants",
    "/api/usage",
    "/api/audit",
    "/api/audit/export",
    "/api/audit/verify",
    "/api/jobs",
    "/history",
    "/queue",
    "/prompt",
    "/object_info",
)


@pytest.mark.parametrize("grant", TENANT_GRANTS, ids=str)
async def test_lists_do_not_change_when_another_tenant_grows(
    make_settings: SettingsFactory, grant: Grant
) -> None:
    async with running_gateway(make_settings(auth_enabled=True)) as gw:
        rt = gw.runtime
        acme, _own, globex, _other = await _two_tenants(rt)
        # acme's admin leaves acme entries in the log before the first look.
        r = await gw.client.post(
            "/api/keys", json={"role": "member"}, headers=acme.headers(TENANT_ADMIN)
        )
        assert r.status_code == 201, r.text
        await rt.audit.flush()

        async def look() -> dict[str, tuple[int, str]]:
            seen = {}
            for path in LISTS:
                r = await gw.client.get(path, headers=acme.headers(grant))
                seen[path] = (r.status_code, r.text)
            return seen

        before = await look()
        for _ in range(3):  # globex grows: keys, audit entries, jobs, uploads
            r = await gw.client.post(
                "/api/keys", json={"role": "member"}, headers=globex.headers(TENANT_ADMIN)
            )
            assert r.status_code == 201, r.text
        await rt.comfy.store.enqueue(
            NewJob("globex-2", globex.tenant.id, "", {}, {}, [], {}, "", policy={})
        )
        await rt.audit.flush()
        assert await look() == before


async def test_a_tenant_auditor_sees_its_own_chain_numbered_alone(
    make_settings: SettingsFactory,
) -> None:
    async with running_gateway(make_settings(auth_enabled=True)) as gw:
        rt = gw.runtime
        acme, _own, globex, _other = await _two_tenants(rt)
        for keys in (acme, globex, acme, globex, globex, acme):
            r = await gw.client.post(
                "/api/keys", json={"role": "member"}, headers=keys.headers(TENANT_ADMIN)
            )
            assert r.status_code == 201, r.text
        await rt.audit.flush()
        r = await gw.client.get("/api/audit", headers=acme.headers(TENANT_AUDITOR))
        entries = r.json()["data"]
        assert [e["seq"] for e in entries] == [1, 2, 3]
        assert {e["tenant_id"] for e in entries} == {acme.tenant.id}
        assert entries[0]["prev_hash"] == "0" * 64
        assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(entries))
        r = await gw.client.get("/api/audit/verify", headers=acme.headers(TENANT_AUDITOR))
        assert r.json()["ok"] is True
        assert r.json()["checked"] == 3
        # The platform auditor sees all six, in the fleet's numbering.
        r = await gw.client.get("/api/audit", headers=acme.headers(PLATFORM_AUDITOR))
        assert len(r.json()["data"]) == 6
