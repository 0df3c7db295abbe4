"""Nodes and deployments over HTTP.

`/api/agent/*` is how agents call in: outside API-key authentication (listed
in `AGENT_PATHS`), each call carries its own credential (a join token, or the
node's key) and is refused with 401 without one that is valid.
`/api/nodes`, `/api/node-tokens` and `/api/deployments` are the admin API,
the JSON twin of `sparkplane nodes` and `sparkplane deploy`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from sparkplane.agent.control import DeployRequest
from sparkplane.agent.protocol import (
    EngineName,
    Heartbeat,
    HeartbeatAnswer,
    JoinAnswer,
    JoinRequest,
)
from sparkplane.api.auth import require
from sparkplane.api.deps import record_admin, runtime
from sparkplane.db.models import utcnow
from sparkplane.errors import Unauthorized
from sparkplane.security.principal import Principal
from sparkplane.security.rbac import Permission

AGENT_PATHS = frozenset({"/api/agent/join", "/api/agent/heartbeat"})
# Calls that reach a node's agent may fail there.
AGENT_ERRORS: dict[int | str, dict[str, Any]] = {
    502: {
        "description": "The node's agent could not be reached, or failed",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
}
router = APIRouter(tags=["nodes"])
Ref = Annotated[str, Field(min_length=1, max_length=1000, pattern=r"^[^\x00-\x1f]+$")]
NodeName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]


def _credential(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("an agent must send its join token or node key", code="no_credential")
    return value.strip()


@router.post("/api/agent/join", include_in_schema=False)
async def join(body: JoinRequest, request: Request) -> JoinAnswer:
    """An agent joins with a join token (or rejoins with its node key)."""
    peer = request.client.host if request.client else None
    return await runtime(request).nodes.join(_credential(request), body, peer)


@router.post("/api/agent/heartbeat", include_in_schema=False)
async def heartbeat(body: Heartbeat, request: Request) -> HeartbeatAnswer:
    """An agent's report; the answer lists the deployments it should run."""
    return await runtime(request).nodes.heartbeat(_credential(request), body)


class TokenCreate(BaseModel):
    """A join token to make; the answer carries the token, once."""

    ttl_s: Annotated[float, Field(gt=0, le=366 * 86400)] = 86400.0
    note: Annotated[str, Field(max_length=200, pattern=r"^[^\x00-\x1f]*$")] = ""


class DeploymentCreate(BaseModel):
    """A model to run on a node that has it and where it fits."""

    model: Ref = Field(description="A model file a node lists: its path, file name or name.")
    engine: EngineName | None = Field(None, description="Default: llamacpp for GGUF, else vllm.")
    node: NodeName | None = Field(None, description="Only this node (default: where it fits).")
    name: NodeName | None = None
    served_name: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    context: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    args: list[Annotated[str, Field(max_length=4000)]] = Field(default_factory=list, max_length=200)
    env: dict[str, Annotated[str, Field(max_length=4000)]] = Field(default_factory=dict)
    command: Annotated[str, Field(max_length=4000)] | None = None


@router.get("/api/nodes", summary="List nodes")
async def list_nodes(
    request: Request, _: Principal = require(Permission.DEVICES_READ)
) -> dict[str, Any]:
    """Every node with its hardware report, status and deployments."""
    nodes = runtime(request).nodes.store
    deployments = await nodes.deployments()
    out = []
    for node in await nodes.list_nodes():
        doc = node.public()
        doc["deployments"] = [d.public(node.name) for d in deployments if d.node_id == node.id]
        out.append(doc)
    return {"data": out}


@router.delete("/api/nodes/{name}", status_code=204, summary="Remove a node")
async def remove_node(
    name: str, request: Request, who: Principal = require(Permission.DEVICES_WRITE)
) -> None:
    """Stop and remove the node's deployments and devices, and forget the node."""
    rt = runtime(request)
    rt.audit.raise_if_closed()
    await rt.nodes.remove_node(name)
    record_admin(request, who, "nodes.remove", name)


@router.get("/api/node-tokens", summary="List join tokens")
async def list_tokens(
    request: Request, _: Principal = require(Permission.DEVICES_WRITE)
) -> dict[str, Any]:
    """Join tokens (never their secrets) with their state."""
    now = utcnow()
    return {"data": [t.public(now) for t in await runtime(request).nodes.store.list_tokens()]}


@router.post("/api/node-tokens", status_code=201, summary="Make a join token")
async def create_token(
    body: TokenCreate, request: Request, who: Principal = require(Permission.DEVICES_WRITE)
) -> dict[str, Any]:
    """A token agents join with until it expires or is revoked; shown only in this answer."""
    rt = runtime(request)
    rt.audit.raise_if_closed()
    record, token = await rt.nodes.store.create_token(timedelta(seconds=body.ttl_s), body.note)
    record_admin(request, who, "nodes.token", record.id, expires_at=record.expires_at.isoformat())
    return {**record.public(utcnow()), "token": token}


@router.delete("/api/node-tokens/{token_id}", summary="Revoke a join token")
async def revoke_token(
    token_id: str, request: Request, who: Principal = require(Permission.DEVICES_WRITE)
) -> dict[str, Any]:
    """No node joins with it any more; nodes that did keep their own keys."""
    rt = runtime(request)
    rt.audit.raise_if_closed()
    record = await rt.nodes.store.revoke_token(token_id)
    record_admin(request, who, "nodes.token_revoke", record.id)
    return record.public(utcnow())


@router.get("/api/deployments", summary="List deployments")
async def list_deployments(
    request: Request, _: Principal = require(Permission.DEVICES_READ)
) -> dict[str, Any]:
    """Every deployment with its node, state and device."""
    store = runtime(request).nodes.store
    names = {n.id: n.name for n in await store.list_nodes()}
    return {"data": [d.public(names.get(d.node_id)) for d in await store.deployments()]}


@router.post(
    "/api/deployments",
    status_code=201,
    summary="Deploy a model on a node",
    responses=AGENT_ERRORS,
)
async def create_deployment(
    body: DeploymentCreate, request: Request, who: Principal = require(Permission.DEVICES_WRITE)
) -> dict[str, Any]:
    """Choose a node where the model fits (409 `no_node_fits` gives each node's reason)
    and ask its agent to start the engine. The answer comes once the agent took it
    (state `starting`); poll `GET /api/deployments/{id}` until it is `running`."""
    rt = runtime(request)
    rt.audit.raise_if_closed()
    record, node = await rt.nodes.deploy(DeployRequest(**body.model_dump()))
    record_admin(request, who, "deployments.create", record.name, node=node.name,
                 model=record.model, engine_kind=record.engine)  # fmt: skip
    return record.public(node.name)


@router.get("/api/deployments/{ref}", summary="Show a deployment")
async def get_deployment(
    ref: str, request: Request, _: Principal = require(Permission.DEVICES_READ)
) -> dict[str, Any]:
    """One deployment, by id or name."""
    store = runtime(request).nodes.store
    record = await store.deployment(ref)
    return record.public((await store.by_id(record.node_id)).name)


@router.delete("/api/deployments/{ref}", status_code=204, summary="Stop a deployment")
async def delete_deployment(
    ref: str, request: Request, who: Principal = require(Permission.DEVICES_WRITE)
) -> None:
    """Stop the engine on its node and remove the deployment and its device."""
    rt = runtime(request)
    rt.audit.raise_if_closed()
    record = await rt.nodes.undeploy(ref)
    record_admin(request, who, "deployments.remove", record.name)


@router.get(
    "/api/nodes/{node}/deployments/{ref}/logs",
    summary="A deployment's engine log",
    response_class=PlainTextResponse,
    responses=AGENT_ERRORS,
)
async def deployment_logs(
    node: str,
    ref: str,
    request: Request,
    lines: Annotated[int, Query(ge=1, le=100_000)] = 200,
    _: Principal = require(Permission.DEVICES_READ),
) -> PlainTextResponse:
    """The last lines of the engine's output, read from its node's rotating log."""
    return PlainTextResponse(await runtime(request).nodes.logs(node, ref, lines))
