"""Two scopes of role (platform and tenant) and a per-tenant audit chain.

Keys: a `scope` column. Every existing key keeps what it could do: `admin`
keys become platform owners, `operator` and `auditor` keys platform operators
and auditors, `member` keys tenant members.

Audit log: `tenant_seq`, `tenant_prev_hash`, `tenant_hash` chain each tenant's
entries on their own. Existing entries are chained here, in `seq` order, from
what the log holds at migration time (run `sparkplane audit verify` first; the
fleet chain still covers every old entry as before).

Downgrading maps platform owners back to `admin`, tenant admins to `member`
(the old schema cannot confine an admin to one tenant) and revokes tenant
auditors (its auditor would read every tenant's log).

Revision ID: 0005_tenant_scopes
Revises: 0004_residency
Create Date: 2026-12-05
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0005_tenant_scopes"
down_revision = "0004_residency"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")
GENESIS = "0" * 64
_BATCH = 2000

keys = sa.table(
    "api_keys",
    sa.column("role", sa.String),
    sa.column("scope", sa.String),
    sa.column("revoked_at", sa.DateTime(timezone=True)),
)
audit = sa.table(
    "audit_log",
    sa.column("seq", BIGINT),
    sa.column("at", sa.String),
    sa.column("action", sa.String),
    sa.column("tenant_id", sa.String),
    sa.column("key_id", sa.String),
    sa.column("data", sa.Text),
    sa.column("tenant_seq", BIGINT),
    sa.column("tenant_prev_hash", sa.String),
    sa.column("tenant_hash", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scope", sa.String(20), nullable=False, server_default="tenant"))
    for old, new in (("admin", "owner"), ("operator", "operator"), ("auditor", "auditor")):
        op.execute(keys.update().where(keys.c.role == old).values(role=new, scope="platform"))
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("tenant_seq", BIGINT, nullable=True))
        batch.add_column(sa.Column("tenant_prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("tenant_hash", sa.String(64), nullable=True))
    _chain_existing_entries()
    op.create_index(
        "ix_audit_log_tenant_chain", "audit_log", ["tenant_id", "tenant_seq"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_audit_log_tenant_chain", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("tenant_hash")
        batch.drop_column("tenant_prev_hash")
        batch.drop_column("tenant_seq")
    tenant_auditor = sa.and_(keys.c.scope == "tenant", keys.c.role == "auditor")
    op.execute(
        keys.update()
        .where(tenant_auditor, keys.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    op.execute(keys.update().where(tenant_auditor).values(role="member"))
    op.execute(
        keys.update().where(keys.c.scope == "tenant", keys.c.role == "admin").values(role="member")
    )
    op.execute(keys.update().where(keys.c.role == "owner").values(role="admin"))
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scope")


def _timestamp(value: Any) -> str:
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return str(at.astimezone(UTC).isoformat(timespec="microseconds"))


def _data(value: Any) -> Any:
    if not isinstance(value, str | bytes):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return {"unreadable": str(value)[:200]}


def _chain_existing_entries() -> None:
    """Give every existing entry with a tenant its place in that tenant's chain.

    The hash is the fleet chain's (docs/security.md), over the tenant's own
    sequence number: sha256(tenant_prev_hash || canonical(entry with seq=tenant_seq)).
    """
    bind = op.get_bind()
    heads: dict[str, tuple[int, str]] = {}
    last = 0
    while True:
        rows = bind.execute(
            sa.select(
                audit.c.seq,
                audit.c.at,
                audit.c.action,
                audit.c.tenant_id,
                audit.c.key_id,
                audit.c.data,
            )
            .where(audit.c.seq > last)
            .order_by(audit.c.seq)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        updates = []
        for seq, at, action, tenant_id, key_id, data in rows:
            if tenant_id is None:
                continue
            tenant_seq, prev = heads.get(tenant_id, (0, GENESIS))
            tenant_seq += 1
            doc = {
                "seq": tenant_seq,
                "at": _timestamp(at),
                "action": action,
                "tenant_id": tenant_id,
                "key_id": key_id,
                "data": _data(data),
            }
            digest = hashlib.sha256(prev.encode())
            digest.update(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS))
            heads[tenant_id] = (tenant_seq, digest.hexdigest())
            updates.append(
                {"b_seq": seq, "t_seq": tenant_seq, "t_prev": prev, "t_hash": heads[tenant_id][1]}
            )
        if updates:
            bind.execute(
                audit.update()
                .where(audit.c.seq == sa.bindparam("b_seq"))
                .values(
                    tenant_seq=sa.bindparam("t_seq"),
                    tenant_prev_hash=sa.bindparam("t_prev"),
                    tenant_hash=sa.bindparam("t_hash"),
                ),
                updates,
            )
        last = rows[-1][0]
