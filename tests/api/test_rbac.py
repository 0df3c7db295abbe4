"""Every route times every role: a table of who may do what, checked against the
running app. A new route fails this test until it is added to the table."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI

from sparkplane.security.rbac import ROLE_PERMISSIONS, Permission, Role
from tests.conftest import SettingsFactory
from tests.support.gateway import running_gateway
from tests.support.security import make_tenant

PUBLIC = None
CHAT = {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}

# (method, path) -> the permission it needs (None: public), and a body to send.
ROUTES: dict[tuple[str, str], tuple[Permission | None, object]] = {
    ("GET", "/healthz"): (PUBLIC, None),
    ("GET", "/readyz"): (PUBLIC, None),
    ("GET", "/metrics"): (Permission.METRICS_READ, None),
    ("GET", "/v1/models"): (Permission.MODELS_READ, None),
    ("GET", "/v1/models/{model}"): (Permission.MODELS_READ, None),
    ("POST", "/v1/chat/completions"): (Permission.INFERENCE, CHAT),
    ("POST", "/v1/completions"): (Permission.INFERENCE, {"model": "no-such", "prompt": "x"}),
    ("POST", "/v1/embeddings"): (Permission.INFERENCE, {"model": "no-such", "input": "x"}),
    ("GET", "/api/devices"): (Permission.DEVICES_READ, None),
    ("POST", "/api/devices"): (Permission.DEVICES_WRITE, {"url": "not a url"}),
    ("GET", "/api/devices/{name}"): (Permission.DEVICES_READ, None),
    ("PATCH", "/api/devices/{name}"): (Permission.DEVICES_WRITE, {"priority": 1}),
    ("DELETE", "/api/devices/{name}"): (Permission.DEVICES_WRITE, None),
    ("POST", "/api/devices/{name}/probe"): (Permission.DEVICES_WRITE, None),
    ("GET", "/api/tenants"): (Permission.TENANTS_MANAGE, None),
    ("POST", "/api/tenants"): (Permission.TENANTS_MANAGE, {"name": "made-in-rbac-test"}),
    ("GET", "/api/tenants/{name}"): (Permission.TENANTS_MANAGE, None),
    ("PATCH", "/api/tenants/{name}"): (Permission.TENANTS_MANAGE, {}),
    ("GET", "/api/keys"): (Permission.KEYS_MANAGE, None),
    ("POST", "/api/keys"): (Permission.KEYS_MANAGE, {"tenant": "nobody", "role": "member"}),
    ("DELETE", "/api/keys/{key_id}"): (Permission.KEYS_MANAGE, None),
    ("GET", "/api/plan"): (Permission.PLAN, None),
    ("GET", "/api/usage"): (Permission.USAGE_OWN, None),
    ("GET", "/api/audit"): (Permission.AUDIT_READ, None),
    ("GET", "/api/audit/verify"): (Permission.AUDIT_READ, None),
}
COMFY: dict[tuple[str, str], tuple[Permission | None, object]] = {
    ("POST", "/prompt"): (Permission.INFERENCE, {"prompt": {}}),
    ("GET", "/prompt"): (Permission.JOBS_OWN, None),
    ("GET", "/queue"): (Permission.JOBS_OWN, None),
    ("POST", "/queue"): (Permission.JOBS_OWN, {"delete": ["nothing"]}),
    ("GET", "/history"): (Permission.JOBS_OWN, None),
    ("GET", "/history/{prompt_id}"): (Permission.JOBS_OWN, None),
    ("POST", "/history"): (Permission.JOBS_OWN, {"delete": ["nothing"]}),
    ("POST", "/interrupt"): (Permission.JOBS_OWN, {"prompt_id": "nothing"}),
    ("POST", "/free"): (Permission.JOBS_ALL, {"free_memory": False}),
    ("GET", "/view"): (Permission.JOBS_OWN, None),
    ("POST", "/upload/image"): (Permission.INFERENCE, None),
    ("GET", "/system_stats"): (Permission.INFERENCE, None),
    ("GET", "/object_info"): (Permission.INFERENCE, None),
    ("GET", "/object_info/{node_class}"): (Permission.INFERENCE, None),
    ("GET", "/features"): (Permission.INFERENCE, None),
}
# ComfyUI serves every route also under /api; so does sparkplane.
for (_method, _path), _entry in COMFY.items():
    ROUTES[(_method, _path)] = _entry
    ROUTES[(_method, "/api" + _path)] = _entry
ROUTES |= {
    ("GET", "/api/jobs"): (Permission.JOBS_OWN, None),
    ("GET", "/api/jobs/{job}"): (Permission.JOBS_OWN, None),
    ("DELETE", "/api/jobs/{job}"): (Permission.JOBS_OWN, None),
}
IGNORED = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app documents, which is every route it serves."""
    found = set()
    for path, item in app.openapi()["paths"].items():
        found |= {(method.upper(), path) for method in item if path not in IGNORED}
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "nothing-here", path)


async def test_the_table_covers_every_route(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings(auth_enabled=True)) as gw:
        assert _app_routes(gw.app) == set(ROUTES)


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OPERATOR, Role.MEMBER, Role.AUDITOR, None])
async def test_each_role_gets_exactly_its_routes(
    make_settings: SettingsFactory, role: Role | None
) -> None:
    async with running_gateway(make_settings(auth_enabled=True, metrics_public=False)) as gw:
        keys = await make_tenant(gw.runtime, "acme")
        headers = keys.headers(role) if role is not None else {}
        for (method, path), (permission, body) in ROUTES.items():
            r = await gw.client.request(method, _concrete(path), json=body, headers=headers)
            where = f"{role} {method} {path}: {r.status_code} {r.text[:200]}"
            if permission is None:
                assert r.status_code == 200, where
            elif role is None:
                assert r.status_code == 401, where
            elif permission in ROLE_PERMISSIONS[role]:
                assert r.status_code not in (401, 403), where
                assert r.status_code < 500, where
            else:
                assert r.status_code == 403, where
                assert r.json()["error"]["type"] == "permission_error", where
