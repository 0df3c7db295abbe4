"""The two scopes of role, as pure data: what each grant may do, which roles each
scope has, what a key of the single-scope model became, and the tenant ceiling
on a key's limits."""

from __future__ import annotations

from datetime import UTC, datetime

from sparkplane.security.audit_chain import GENESIS, Entry, Verifier, link
from sparkplane.security.principal import ANONYMOUS, Principal
from sparkplane.security.rbac import (
    LEGACY_GRANTS,
    PLATFORM_OWNER,
    SCOPE_ROLES,
    TENANT_ADMIN,
    Permission,
    Role,
    Scope,
    default_scope,
    valid_grant,
)
from sparkplane.security.tenancy import Limits

AT = datetime(2026, 12, 1, tzinfo=UTC)


def test_each_scope_has_its_own_roles() -> None:
    assert SCOPE_ROLES[Scope.PLATFORM] == (Role.OWNER, Role.OPERATOR, Role.AUDITOR)
    assert SCOPE_ROLES[Scope.TENANT] == (Role.ADMIN, Role.MEMBER, Role.AUDITOR)
    assert not valid_grant(Scope.TENANT, Role.OWNER)
    assert not valid_grant(Scope.PLATFORM, Role.ADMIN)
    assert default_scope(Role.OPERATOR) is Scope.PLATFORM
    assert default_scope(Role.AUDITOR) is Scope.TENANT


def test_old_keys_keep_what_they_could_do() -> None:
    assert LEGACY_GRANTS[Role.ADMIN] == PLATFORM_OWNER
    assert {g.scope for r, g in LEGACY_GRANTS.items() if r is not Role.MEMBER} == {Scope.PLATFORM}


def test_an_auditor_reaches_as_far_as_its_scope() -> None:
    platform = Principal("k", "t", "acme", Role.AUDITOR, scope=Scope.PLATFORM)
    tenant = Principal("k", "t", "acme", Role.AUDITOR, scope=Scope.TENANT)
    assert platform.can(Permission.AUDIT_ALL)
    assert tenant.can(Permission.AUDIT_OWN)
    assert not tenant.can(Permission.AUDIT_ALL)
    assert not tenant.can(Permission.INFERENCE)
    admin = Principal("k", "t", "acme", TENANT_ADMIN.role, scope=TENANT_ADMIN.scope)
    assert admin.can(Permission.KEYS_OWN)
    assert not admin.can(Permission.KEYS_ALL)
    assert not admin.can(Permission.AUDIT_OWN)  # separation of duties: it makes an auditor
    assert ANONYMOUS.can(Permission.DEVICES_WRITE)


def test_a_keys_limits_must_fit_within_its_tenants() -> None:
    tenant = Limits(requests_per_minute=100, monthly_tokens=None)
    assert Limits(requests_per_minute=100, monthly_tokens=10**9).over(tenant) is None
    assert Limits().over(tenant) is None
    assert Limits(requests_per_minute=101).over(tenant) == "requests_per_minute"


def test_each_tenant_chains_on_its_own_and_verifies_alone() -> None:
    entries = [Entry(AT, "inference", t, "k", {"i": i}) for i, t in enumerate("abab")]
    entries.append(Entry(AT, "auth.failed", None, None, {}))
    heads: dict[str, tuple[int, str]] = {}
    chained = link(entries, 0, GENESIS, heads)
    assert [e.tenant_seq for e in chained] == [1, 1, 2, 2, None]
    assert heads["a"] == (2, chained[2].tenant_hash)
    verifier = Verifier()
    assert verifier.feed(e.in_tenant_chain() for e in chained if e.tenant_id == "b")
    assert verifier.report().checked == 2
    # b's chain alone, without a's entries, and its first entry links to GENESIS.
    assert chained[1].tenant_prev_hash == GENESIS
    more = link([Entry(AT, "job", "a", "k", {})], 5, chained[-1].hash, heads)
    assert (more[0].tenant_seq, more[0].tenant_prev_hash) == (3, chained[2].tenant_hash)
