"""Named database operations on tenants and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.db.models import ApiKeyRow, TenantRow, utcnow
from sparkplane.errors import BadRequest, Conflict, NotFound
from sparkplane.security import keys
from sparkplane.security.rbac import Role, Scope, default_scope, valid_grant
from sparkplane.security.tenancy import KeyRecord, Limits, Prices, TenantPolicy, TenantRecord


def _tenant(row: TenantRow) -> TenantRecord:
    return TenantRecord(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        disabled=row.disabled,
        policy=TenantPolicy.model_validate(row.policy or {}),
        limits=Limits.model_validate(row.limits or {}),
        prices=Prices.model_validate(row.prices or {}),
    )


def _key(row: ApiKeyRow) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        role=Role(row.role),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        limits=Limits.model_validate(row.limits or {}),
        scope=Scope(row.scope or Scope.TENANT),
        last_used_at=row.last_used_at,
        previous_until=row.previous_until if row.previous_secret_hash else None,
    )


class KeyLookup(NamedTuple):
    """What authentication needs of a key: its record, stored digests and tenant."""

    record: KeyRecord
    digest: str
    tenant: TenantRecord
    # The secret a rotation replaced, accepted until `record.previous_until`.
    previous_digest: str | None = None


class TenantStore:
    """Tenants in the database."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(
        self,
        name: str,
        *,
        policy: TenantPolicy | None = None,
        limits: Limits | None = None,
        prices: Prices | None = None,
    ) -> TenantRecord:
        """A new tenant; Conflict if the name is taken."""
        row = TenantRow(
            id=uuid.uuid4().hex,
            name=name,
            created_at=utcnow(),
            disabled=False,
            policy=(policy or TenantPolicy()).model_dump(mode="json"),
            limits=(limits or Limits()).model_dump(mode="json"),
            prices=(prices or Prices()).model_dump(mode="json"),
        )
        async with self._sessions() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError as exc:
                raise Conflict(f"a tenant named {name!r} exists", code="tenant_exists") from exc
        return _tenant(row)

    async def list_tenants(self) -> list[TenantRecord]:
        """Every tenant, by name."""
        async with self._sessions() as session:
            rows = await session.scalars(select(TenantRow).order_by(TenantRow.name))
            return [_tenant(r) for r in rows]

    async def get(self, name: str) -> TenantRecord:
        """The tenant called `name`; NotFound otherwise."""
        async with self._sessions() as session:
            row = await session.scalar(select(TenantRow).where(TenantRow.name == name))
        if row is None:
            raise NotFound(f"no tenant named {name!r}", code="tenant_not_found")
        return _tenant(row)

    async def get_by_id(self, tenant_id: str) -> TenantRecord:
        """The tenant with `tenant_id`; NotFound otherwise."""
        async with self._sessions() as session:
            row = await session.get(TenantRow, tenant_id)
        if row is None:
            raise NotFound("no such tenant", code="tenant_not_found")
        return _tenant(row)

    async def update(
        self,
        name: str,
        *,
        policy: TenantPolicy | None = None,
        limits: Limits | None = None,
        prices: Prices | None = None,
        disabled: bool | None = None,
    ) -> TenantRecord:
        """Replace the given parts of a tenant's settings."""
        values: dict[str, object] = {}
        if policy is not None:
            values["policy"] = policy.model_dump(mode="json")
        if limits is not None:
            values["limits"] = limits.model_dump(mode="json")
        if prices is not None:
            values["prices"] = prices.model_dump(mode="json")
        if disabled is not None:
            values["disabled"] = disabled
        if values:
            async with self._sessions() as session:
                await session.execute(
                    update(TenantRow).where(TenantRow.name == name).values(**values)
                )
                await session.commit()
        return await self.get(name)

    async def count(self) -> int:
        """How many tenants exist."""
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(TenantRow)) or 0)


class KeyStore:
    """API keys in the database (hashes only)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(
        self,
        tenant: TenantRecord,
        role: Role,
        *,
        scope: Scope | None = None,
        name: str = "",
        expires_at: datetime | None = None,
        limits: Limits | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key for `tenant`: its record and the key itself (shown once, never stored).

        Without `scope`, `owner` and `operator` are platform roles and the others
        tenant roles (`rbac.default_scope`).
        """
        scope = scope or default_scope(role)
        if not valid_grant(scope, role):
            raise BadRequest(
                f"a {scope.value} key cannot have the role {role.value!r}", param="role"
            )
        if expires_at is not None and expires_at <= utcnow():
            raise BadRequest("the expiry is in the past", param="expires_at")
        key_id, key = keys.generate()
        row = ApiKeyRow(
            id=key_id,
            tenant_id=tenant.id,
            name=name,
            role=role.value,
            scope=scope.value,
            secret_hash=keys.digest(key),
            created_at=utcnow(),
            expires_at=expires_at,
            revoked_at=None,
            limits=(limits or Limits()).model_dump(mode="json"),
        )
        async with self._sessions() as session:
            session.add(row)
            await session.commit()
        return _key(row), key

    async def list_keys(
        self, tenant_id: str | None = None, scope: Scope | None = None
    ) -> list[KeyRecord]:
        """Keys, newest first; only `tenant_id`'s and only `scope`'s when given."""
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at.desc())
        if tenant_id is not None:
            query = query.where(ApiKeyRow.tenant_id == tenant_id)
        if scope is not None:
            query = query.where(ApiKeyRow.scope == scope.value)
        async with self._sessions() as session:
            return [_key(r) for r in await session.scalars(query)]

    async def get(self, key_id: str) -> KeyRecord:
        """The key with `key_id`; NotFound otherwise."""
        async with self._sessions() as session:
            row = await session.get(ApiKeyRow, key_id)
        if row is None:
            raise NotFound("no such key", code="key_not_found")
        return _key(row)

    async def revoke(self, key_id: str) -> KeyRecord:
        """Revoke a key; every process refuses it within the auth cache's lifetime."""
        async with self._sessions() as session:
            row = await session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound("no such key", code="key_not_found")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                await session.commit()
            return _key(row)

    async def rotate(self, key_id: str, overlap: timedelta = timedelta(0)) -> tuple[KeyRecord, str]:
        """A new secret for a live key (same id, role and limits).

        The old secret keeps working for `overlap` (0: it stops now, within the auth
        cache time), so clients can move to the new one without a gap; a second
        rotation inside the window replaces the older secret for good. Returns the
        record and the new key, shown once. A revoked key cannot be rotated.
        """
        key = keys.with_new_secret(key_id)
        async with self._sessions() as session:
            row = await session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound("no such key", code="key_not_found")
            if row.revoked_at is not None:
                raise Conflict("a revoked key cannot be rotated", code="key_revoked")
            if overlap > timedelta(0):
                row.previous_secret_hash = row.secret_hash
                row.previous_until = utcnow() + overlap
            else:
                row.previous_secret_hash, row.previous_until = None, None
            row.secret_hash = keys.digest(key)
            await session.commit()
            return _key(row), key

    async def touch(self, used: dict[str, datetime]) -> None:
        """Record when keys were last used (a batch from `KeyUsage`), in one transaction;
        never moves a key's time backwards."""
        if not used:
            return
        async with self._sessions() as session:
            for key_id, at in sorted(used.items()):
                await session.execute(
                    update(ApiKeyRow)
                    .where(
                        ApiKeyRow.id == key_id,
                        or_(ApiKeyRow.last_used_at.is_(None), ApiKeyRow.last_used_at < at),
                    )
                    .values(last_used_at=at)
                )
            await session.commit()

    async def update(
        self, key_id: str, *, name: str | None = None, limits: Limits | None = None
    ) -> KeyRecord:
        """Replace a key's label or limits."""
        async with self._sessions() as session:
            row = await session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound("no such key", code="key_not_found")
            if name is not None:
                row.name = name
            if limits is not None:
                row.limits = limits.model_dump(mode="json")
            await session.commit()
            return _key(row)

    async def lookup(self, key_id: str) -> KeyLookup | None:
        """For authentication: the key, its stored digests and its tenant, in one query."""
        async with self._sessions() as session:
            result = await session.execute(
                select(ApiKeyRow, TenantRow)
                .join(TenantRow, TenantRow.id == ApiKeyRow.tenant_id)
                .where(ApiKeyRow.id == key_id)
            )
            found = result.first()
        if found is None:
            return None
        key_row, tenant_row = found
        return KeyLookup(
            _key(key_row), key_row.secret_hash, _tenant(tenant_row), key_row.previous_secret_hash
        )
