"""The server's side of nodes: joins, heartbeats, deployments and lost nodes.

A deployment that its agent reports running is registered as a device through
the fleet's own registration (`fleet/service.register`, as `sparkplane devices
add` does), named `NODE-DEPLOYMENT`, with `extra.node` and `extra.deployment`
saying where it came from. A node silent for `lost_after_s` is marked lost and
its devices are disabled, so they leave routing; its next heartbeat brings them
back. The CLI uses the same object (without a fleet) to deploy and undeploy.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import structlog

from sparkplane.agent import credentials, placement
from sparkplane.agent.engines import builtin_engines
from sparkplane.agent.link import AgentLink
from sparkplane.agent.protocol import (
    DeploymentSpec,
    DeploymentStatus,
    Heartbeat,
    HeartbeatAnswer,
    JoinAnswer,
    JoinRequest,
)
from sparkplane.agent.records import DeploymentRecord, NodeRecord
from sparkplane.agent.store import NodeStore
from sparkplane.db.models import utcnow
from sparkplane.errors import Conflict, NotFound, SparkplaneError, Unauthorized
from sparkplane.fleet import service
from sparkplane.fleet.health import HealthMonitor
from sparkplane.fleet.registry import Fleet
from sparkplane.fleet.store import DeviceStore

log = structlog.get_logger("sparkplane.nodes")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# A measured power figure is rewritten on the device only when it moved this much,
# so heartbeats do not rebuild the fleet's catalog every few seconds.
_POWER_STEP = 0.05


@dataclass(frozen=True)
class DeployRequest:
    """What `sparkplane deploy` and `POST /api/deployments` ask for."""

    model: str
    engine: str | None = None
    node: str | None = None
    name: str | None = None
    served_name: str | None = None
    context: int | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    command: str | None = None


def plain_name(text: str) -> str:
    """`text` made fit for a device or deployment name."""
    cleaned = _UNSAFE.sub("-", text).strip("-._")[:64]
    return cleaned or "model"


def agent_url(url: str, peer: str | None) -> str:
    """The agent's URL with a wildcard host replaced by the address it called from."""
    parts = urlsplit(url)
    if parts.hostname not in ("0.0.0.0", "::", "") or not peer:
        return url.rstrip("/")
    host = f"[{peer}]" if ":" in peer else peer
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")


class NodeControl:
    """Nodes and deployments, over the database, the fleet's devices and agent calls."""

    def __init__(
        self,
        store: NodeStore,
        devices: DeviceStore,
        link: AgentLink,
        http: aiohttp.ClientSession,
        *,
        heartbeat_s: float = 5.0,
        lost_after_s: float = 20.0,
        probe_timeout_s: float = 3.0,
        on_devices: Callable[[], object] | None = None,
    ) -> None:
        self.store = store
        self.devices = devices
        self.link = link
        self._http = http
        self.heartbeat_s = heartbeat_s
        self.lost_after_s = lost_after_s
        self._probe_timeout = probe_timeout_s
        # Told (and awaited, if it returns an awaitable) after devices changed.
        self._on_devices = on_devices

    # -- agents calling in ---------------------------------------------------

    async def join(self, credential: str, request: JoinRequest, peer: str | None) -> JoinAnswer:
        """A node joins with a join token, or rejoins with its own node key."""
        if credential.startswith(credentials.NODE_KEY_PREFIX):
            known = await self.store.authenticate(credential)
            if known.name != request.name:
                raise Unauthorized("this node key belongs to another node", code="bad_node_key")
            token_id, node_id = "rejoin", known.id
        else:
            token_id, node_id = (await self.store.use_token(credential)).id, uuid.uuid4().hex
            with contextlib.suppress(NotFound):
                node_id = (await self.store.get(request.name)).id
        node_key = credentials.new_node_key(node_id)
        node = await self.store.join(
            name=request.name,
            url=agent_url(request.url, peer),
            node_key=node_key,
            node_id=node_id,
            agent_key=request.agent_key,
            token_id=token_id,
            hardware=request.hardware.model_dump(mode="json"),
            models=[m.model_dump(mode="json") for m in request.models],
        )
        log.info("node_joined", action="nodes.join", node=node.name, url=node.url)
        return JoinAnswer(node_id=node.id, node_key=node_key, heartbeat_s=self.heartbeat_s)

    async def heartbeat(self, node_key: str, beat: Heartbeat) -> HeartbeatAnswer:
        """Take a node's report in; answer with the deployments it should run."""
        node = await self.store.authenticate(node_key)
        back = node.status != "online"
        await self.store.seen(
            node.id,
            beat.hardware.model_dump(mode="json"),
            [m.model_dump(mode="json") for m in beat.models],
        )
        node = await self.store.by_id(node.id)
        if back:
            log.info("node_back", action="nodes.heartbeat", node=node.name)
        reported = {s.id: s for s in beat.deployments}
        wanted = await self.store.deployments(node.id)
        changed = False
        for deployment in wanted:
            status = reported.get(deployment.id)
            if status is not None:
                changed |= await self._apply(node, deployment, status, back)
        if changed:
            await self._devices_changed()
        return HeartbeatAnswer(deployments=[DeploymentSpec.model_validate(d.spec) for d in wanted])

    async def _apply(
        self, node: NodeRecord, deployment: DeploymentRecord, status: DeploymentStatus, back: bool
    ) -> bool:
        """Record a deployment's reported state; True if its device changed."""
        news = {
            "state": status.state,
            "port": status.port,
            "restarts": status.restarts,
            "error": status.error,
        }
        if any(getattr(deployment, k) != v for k, v in news.items()):
            await self.store.update_deployment(deployment.id, **news)
            if status.state != deployment.state:
                log.info("deployment_state", action="nodes.deployment", node=node.name,
                         deployment=deployment.name, state=status.state)  # fmt: skip
        if status.state != "running" or status.port is None:
            return False
        # Engines speak plain HTTP on their own ports, whatever the agent's API does.
        url = f"http://{_host(node)}:{status.port}"
        if deployment.device_name is None:
            await self._register(node, deployment, url)
            return True
        try:
            device = await self.devices.get(deployment.device_name)
        except NotFound:
            await self._register(node, deployment, url)
            return True
        extra = self._extra(node, deployment, device.extra)
        if device.url != url or not device.enabled or extra != device.extra:
            await self.devices.edit(device.name, url=url, enabled=True, extra=extra)
            return True
        return back

    def _extra(
        self, node: NodeRecord, deployment: DeploymentRecord, current: dict[str, object]
    ) -> dict[str, object]:
        extra = {**current, "node": node.name, "deployment": deployment.id}
        watts = node.power_w
        old = current.get("measured_power_w")
        if watts is None:
            extra.pop("measured_power_w", None)
        elif not isinstance(old, int | float) or abs(watts - old) > _POWER_STEP * max(old, 1):
            extra["measured_power_w"] = watts
        return extra

    async def _register(self, node: NodeRecord, deployment: DeploymentRecord, url: str) -> None:
        name = plain_name(f"{node.name}-{deployment.name}")
        kind = builtin_engines()[deployment.engine].device_kind
        try:
            record = await service.register(
                self.devices, self._http, url=url, name=name, kind=kind,
                probe_timeout=self._probe_timeout,
            )  # fmt: skip
        except Conflict:
            record = await self.devices.edit(name, url=url, kind=kind, enabled=True)
        await self.devices.edit(record.name, extra=self._extra(node, deployment, record.extra))
        await self.store.update_deployment(deployment.id, device_name=record.name)
        log.info("deployment_device", action="nodes.device", node=node.name,
                 deployment=deployment.name, device=record.name, url=url)  # fmt: skip

    async def _devices_changed(self) -> None:
        if self._on_devices is not None:
            result = self._on_devices()
            if asyncio.iscoroutine(result):
                await result

    # -- lost nodes ----------------------------------------------------------

    async def mark_lost(self) -> list[NodeRecord]:
        """Nodes silent for `lost_after_s` become lost; their devices leave routing."""
        lost = await self.store.mark_lost(utcnow() - timedelta(seconds=self.lost_after_s))
        for node in lost:
            for deployment in await self.store.deployments(node.id):
                if deployment.device_name:
                    try:
                        await self.devices.edit(deployment.device_name, enabled=False)
                    except NotFound:
                        continue
            log.warning("node_lost", action="nodes.lost", node=node.name,
                        last_seen=node.last_seen.isoformat())  # fmt: skip
        if lost:
            await self._devices_changed()
        return lost

    async def watch(self) -> None:
        """Look for lost nodes until cancelled."""
        interval = max(0.1, min(self.lost_after_s / 4, 5.0))
        # After a restart of the server every node's last heartbeat is old: give
        # agents one full window to call in before any is declared lost.
        await asyncio.sleep(self.lost_after_s)
        while True:
            try:
                await self.mark_lost()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node_watch_failed", action="nodes.watch")
            await asyncio.sleep(interval)

    # -- deployments ---------------------------------------------------------

    async def deploy(self, request: DeployRequest) -> tuple[DeploymentRecord, NodeRecord]:
        """Choose a node with the planner's figures, record the deployment and ask
        that node's agent to start it; nothing starts when no node can take it."""
        chosen = placement.choose(
            await self.store.list_nodes(),
            request.model,
            engine=request.engine,
            context=request.context,
            node_name=request.node,
            pending=placement.pending_bytes(await self.store.deployments()),
        )
        name = plain_name(request.name or request.served_name or chosen.served_name)
        spec = DeploymentSpec(
            id=uuid.uuid4().hex,
            name=name,
            engine=chosen.engine,
            model_path=chosen.model_path,
            served_name=request.served_name or chosen.served_name,
            args=request.args,
            env=request.env,
            command=request.command,
            context=request.context,
        )
        record = await self.store.add_deployment(
            name=name,
            node_id=chosen.node.id,
            model=request.model,
            served_name=spec.served_name,
            engine=spec.engine,
            spec=spec.model_dump(mode="json"),
            need_bytes=chosen.need_bytes,
        )
        try:
            status = await self.link.run(chosen.node, spec)
        except SparkplaneError:
            await self.store.remove_deployment(record.id)
            raise
        await self.store.update_deployment(record.id, state=status.state, port=status.port)
        log.info("deployed", action="nodes.deploy", node=chosen.node.name, deployment=name,
                 model=request.model, need_bytes=chosen.need_bytes)  # fmt: skip
        return await self.store.deployment(record.id), chosen.node

    async def undeploy(self, ref: str, node_name: str | None = None) -> DeploymentRecord:
        """Stop a deployment on its node and remove it and its device."""
        node_id = (await self.store.get(node_name)).id if node_name else None
        deployment = await self.store.deployment(ref, node_id)
        node = await self.store.by_id(deployment.node_id)
        try:
            await self.link.stop(node, deployment.id)
        except SparkplaneError as exc:
            # The agent is away: it stops the engine when its next heartbeat hears
            # that the deployment is gone.
            log.warning("undeploy_unconfirmed", action="nodes.undeploy", node=node.name,
                        reason=exc.message)  # fmt: skip
        await self.store.remove_deployment(deployment.id)
        if deployment.device_name:
            with contextlib.suppress(NotFound):
                await self.devices.remove(deployment.device_name)
            await self._devices_changed()
        return deployment

    async def remove_node(self, name: str) -> NodeRecord:
        """Forget a node: its deployments are stopped (where its agent answers) and
        removed with their devices. An agent still running would need a new token."""
        node = await self.store.get(name)
        for deployment in await self.store.deployments(node.id):
            await self.undeploy(deployment.id)
        return await self.store.remove(name)

    async def logs(self, node_name: str, ref: str, lines: int) -> str:
        """The tail of a deployment's engine log, read from its node."""
        node = await self.store.get(node_name)
        deployment = await self.store.deployment(ref, node.id)
        return await self.link.logs(node, deployment.id, lines)


def _host(node: NodeRecord) -> str:
    host = urlsplit(node.url).hostname or "127.0.0.1"
    return f"[{host}]" if ":" in host else host


async def refresh_devices(fleet: Fleet, devices: DeviceStore, health: HealthMonitor) -> None:
    """Bring the running fleet in step with the device table at once, probing new
    deployment devices now rather than at the next health round, so a deployment
    serves as soon as its agent says it is up."""
    fleet.sync(await devices.list_devices())
    fresh = [
        d
        for d in fleet.devices()
        if "deployment" in d.record.extra and d.available and not d.probed
    ]
    changed = await asyncio.gather(*(health.probe(d) for d in fresh))
    if any(changed):
        fleet.rebuild_catalog()
    await devices.save_probes([d.record for d in fresh])
