"""Named database operations on join tokens, nodes and deployments. The API,
the CLI and the control loop call these; nothing else builds their queries."""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.agent import credentials
from sparkplane.agent.records import DeploymentRecord, NodeRecord, TokenRecord
from sparkplane.db.models import utcnow
from sparkplane.db.nodes import DeploymentRow, JoinTokenRow, NodeRow
from sparkplane.errors import Conflict, NotFound, Unauthorized

_NODE_FIELDS = tuple(f.name for f in fields(NodeRecord))
_DEPLOYMENT_FIELDS = tuple(f.name for f in fields(DeploymentRecord))
DEPLOYMENT_EDITABLE = frozenset(
    {"state", "port", "restarts", "error", "device_name", "spec", "need_bytes"}
)


def _token(row: JoinTokenRow) -> TokenRecord:
    return TokenRecord(row.id, row.note, row.created_at, row.expires_at, row.revoked_at, row.uses)


def _node(row: NodeRow) -> NodeRecord:
    return NodeRecord(**{name: getattr(row, name) for name in _NODE_FIELDS})


def _deployment(row: DeploymentRow) -> DeploymentRecord:
    return DeploymentRecord(**{name: getattr(row, name) for name in _DEPLOYMENT_FIELDS})


def no_node(name: str) -> NotFound:
    """The error for a node that does not exist."""
    return NotFound(f"no node named {name!r}", code="node_not_found")


class NodeStore:
    """Join tokens, nodes and deployments in the database."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    # -- join tokens ---------------------------------------------------------

    async def create_token(self, ttl: timedelta, note: str = "") -> tuple[TokenRecord, str]:
        """A new join token: its record and the token itself, to show once."""
        token_id, token = credentials.new_join_token()
        now = utcnow()
        row = JoinTokenRow(
            id=token_id,
            secret_hash=credentials.digest(token),
            note=note,
            created_at=now,
            expires_at=now + ttl,
            uses=0,
        )
        async with self._sessions() as session:
            session.add(row)
            await session.commit()
        return _token(row), token

    async def list_tokens(self) -> list[TokenRecord]:
        """Every join token, newest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(JoinTokenRow).order_by(JoinTokenRow.created_at.desc())
            )
            return [_token(r) for r in rows]

    async def revoke_token(self, token_id: str) -> TokenRecord:
        """Revoke a join token; nodes that joined with it keep their own keys."""
        async with self._sessions() as session:
            row = await session.get(JoinTokenRow, token_id)
            if row is None:
                raise NotFound(f"no join token {token_id!r}", code="token_not_found")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                await session.commit()
            return _token(row)

    async def use_token(self, token: str) -> TokenRecord:
        """The token's record if it may join a node now (its use counted); else Unauthorized."""
        token_id = credentials.token_id_of(token)
        refused = Unauthorized("the join token is unknown, expired or revoked", code="bad_token")
        if token_id is None:
            raise refused
        async with self._sessions() as session:
            row = await session.get(JoinTokenRow, token_id)
            if row is None or not credentials.matches(token, row.secret_hash):
                raise refused
            if _token(row).state(utcnow()) != "valid":
                raise refused
            row.uses += 1
            await session.commit()
            return _token(row)

    # -- nodes ---------------------------------------------------------------

    async def join(
        self,
        *,
        name: str,
        url: str,
        node_key: str,
        node_id: str,
        agent_key: str,
        token_id: str,
        hardware: dict[str, Any],
        models: list[dict[str, Any]],
    ) -> NodeRecord:
        """Record a node joining, or the same name joining again (its keys replaced)."""
        now = utcnow()
        values = {
            "url": url,
            "key_hash": credentials.digest(node_key),
            "agent_key": agent_key,
            "token_id": token_id,
            "status": "online",
            "hardware": hardware,
            "models": models,
            "last_seen": now,
        }
        async with self._sessions() as session:
            row = await session.scalar(select(NodeRow).where(NodeRow.name == name))
            if row is None:
                row = NodeRow(id=node_id, name=name, joined_at=now, **values)
                session.add(row)
            else:
                for key, value in values.items():
                    setattr(row, key, value)
            try:
                await session.commit()
            except IntegrityError as exc:  # another replica took the name a moment ago
                raise Conflict(f"node {name!r} is joining twice", code="node_exists") from exc
            return _node(row)

    async def authenticate(self, node_key: str) -> NodeRecord:
        """The node whose key this is; Unauthorized otherwise."""
        node_id = credentials.node_id_of(node_key)
        refused = Unauthorized("unknown node key", code="bad_node_key")
        if node_id is None:
            raise refused
        async with self._sessions() as session:
            row = await session.get(NodeRow, node_id)
            if row is None or not credentials.matches(node_key, row.key_hash):
                raise refused
            return _node(row)

    async def list_nodes(self) -> list[NodeRecord]:
        """Every node, by name."""
        async with self._sessions() as session:
            rows = await session.scalars(select(NodeRow).order_by(NodeRow.name))
            return [_node(r) for r in rows]

    async def get(self, name: str) -> NodeRecord:
        """The node called `name`; NotFound otherwise."""
        async with self._sessions() as session:
            row = await session.scalar(select(NodeRow).where(NodeRow.name == name))
            if row is None:
                raise no_node(name)
            return _node(row)

    async def by_id(self, node_id: str) -> NodeRecord:
        """The node with this id; NotFound otherwise."""
        async with self._sessions() as session:
            row = await session.get(NodeRow, node_id)
            if row is None:
                raise no_node(node_id)
            return _node(row)

    async def seen(
        self, node_id: str, hardware: dict[str, Any], models: list[dict[str, Any]]
    ) -> None:
        """A heartbeat arrived: the node is online, with this report."""
        async with self._sessions() as session:
            await session.execute(
                update(NodeRow)
                .where(NodeRow.id == node_id)
                .values(status="online", hardware=hardware, models=models, last_seen=utcnow())
            )
            await session.commit()

    async def mark_lost(self, silent_since: datetime) -> list[NodeRecord]:
        """Online nodes not heard from since `silent_since` become lost; returns them."""
        async with self._sessions() as session:
            rows = list(
                await session.scalars(
                    select(NodeRow).where(
                        NodeRow.status == "online", NodeRow.last_seen < silent_since
                    )
                )
            )
            for row in rows:
                row.status = "lost"
            await session.commit()
            return [_node(r) for r in rows]

    async def remove(self, name: str) -> NodeRecord:
        """Forget a node and its deployments (the CLI stops its agent's engines first)."""
        node = await self.get(name)
        async with self._sessions() as session:
            await session.execute(delete(DeploymentRow).where(DeploymentRow.node_id == node.id))
            await session.execute(delete(NodeRow).where(NodeRow.id == node.id))
            await session.commit()
        return node

    # -- deployments ---------------------------------------------------------

    async def add_deployment(
        self,
        *,
        name: str,
        node_id: str,
        model: str,
        served_name: str,
        engine: str,
        spec: dict[str, Any],
        need_bytes: int | None,
    ) -> DeploymentRecord:
        """A new deployment, starting; Conflict if the node has one of that name."""
        now = utcnow()
        row = DeploymentRow(
            id=str(spec.get("id") or uuid.uuid4().hex),
            name=name,
            node_id=node_id,
            model=model,
            served_name=served_name,
            engine=engine,
            spec=spec,
            need_bytes=need_bytes,
            state="starting",
            restarts=0,
            created_at=now,
            updated_at=now,
        )
        async with self._sessions() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError as exc:
                raise Conflict(
                    f"the node already has a deployment named {name!r}", code="deployment_exists"
                ) from exc
            return _deployment(row)

    async def deployments(self, node_id: str | None = None) -> list[DeploymentRecord]:
        """Every deployment (of one node when given), by name."""
        query = select(DeploymentRow).order_by(DeploymentRow.name, DeploymentRow.created_at)
        if node_id is not None:
            query = query.where(DeploymentRow.node_id == node_id)
        async with self._sessions() as session:
            return [_deployment(r) for r in await session.scalars(query)]

    async def deployment(self, ref: str, node_id: str | None = None) -> DeploymentRecord:
        """A deployment by id, or by name (on `node_id` when given); NotFound otherwise."""
        async with self._sessions() as session:
            row = await session.get(DeploymentRow, ref)
            if row is None or (node_id is not None and row.node_id != node_id):
                query = select(DeploymentRow).where(DeploymentRow.name == ref)
                if node_id is not None:
                    query = query.where(DeploymentRow.node_id == node_id)
                rows = list(await session.scalars(query))
                if len(rows) > 1:
                    raise Conflict(f"several nodes run {ref!r}; name the node", code="ambiguous")
                row = rows[0] if rows else None
            if row is None:
                raise NotFound(f"no deployment {ref!r}", code="deployment_not_found")
            return _deployment(row)

    async def update_deployment(self, deployment_id: str, **changes: Any) -> None:
        """Change a deployment's reported state (only the editable fields)."""
        unknown = set(changes) - DEPLOYMENT_EDITABLE
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        async with self._sessions() as session:
            await session.execute(
                update(DeploymentRow)
                .where(DeploymentRow.id == deployment_id)
                .values(updated_at=utcnow(), **changes)
            )
            await session.commit()

    async def remove_deployment(self, deployment_id: str) -> None:
        """Forget a deployment."""
        async with self._sessions() as session:
            await session.execute(delete(DeploymentRow).where(DeploymentRow.id == deployment_id))
            await session.commit()
