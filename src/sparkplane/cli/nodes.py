"""`sparkplane nodes`: join tokens, nodes and their engines' logs.

Like `sparkplane devices`, these work on the database directly; `logs` also
calls the node's agent (with the key it gave the server).
"""

from __future__ import annotations

import json
import re
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table

from sparkplane.agent.control import NodeControl
from sparkplane.agent.link import AgentLink, agent_session
from sparkplane.agent.records import DeploymentRecord, NodeRecord
from sparkplane.agent.store import NodeStore
from sparkplane.backends.http import new_session
from sparkplane.cli.common import (
    ConfigOption,
    audit_admin,
    console,
    database,
    fail,
    run,
    settings_from,
)
from sparkplane.config import Settings
from sparkplane.db.engine import session_factory
from sparkplane.db.models import utcnow
from sparkplane.fleet.store import DeviceStore

app = typer.Typer(help="Nodes: machines that run `sparkplane agent`.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
GIB = 1 << 30
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `24h` or `7d` as a timedelta."""
    match = _DURATION.match(text.strip())
    if not match:
        fail(f"a duration reads like 30m, 24h or 7d, not {text!r}")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


async def control(settings: Settings, engine: Any, stack: Any) -> NodeControl:
    """A NodeControl over the database, for commands (no running fleet)."""
    sessions = session_factory(engine)
    agents = await stack.enter_async_context(agent_session(settings.agent_ca))
    http = await stack.enter_async_context(new_session())
    return NodeControl(
        NodeStore(sessions), DeviceStore(sessions), AgentLink(agents), http,
        probe_timeout_s=settings.probe_timeout_s,
    )  # fmt: skip


@app.command("token")
def token(
    ttl: Annotated[str, typer.Option(help="How long it may be used: 30m, 24h, 7d.")] = "24h",
    note: Annotated[str, typer.Option(help="What it is for (shown in `nodes tokens`).")] = "",
    config: ConfigOption = None,
) -> None:
    """Make a join token for `sparkplane agent` (shown once, stored hashed)."""
    settings = settings_from(config)
    lifetime = parse_duration(ttl)

    async def go() -> tuple[str, str, str]:
        async with database(settings) as engine:
            record, secret = await NodeStore(session_factory(engine)).create_token(lifetime, note)
            await audit_admin(engine, "nodes.token", record.id, expires_at=str(record.expires_at))
            return record.id, secret, record.expires_at.strftime("%Y-%m-%d %H:%M UTC")

    token_id, secret, expires = run(go())
    scheme = "https" if settings.tls_cert else "http"
    console.print(
        Panel(
            f"[bold]{secret}[/bold]\n\nid {token_id}, expires {expires}\n"
            "This is the only time the token is shown. On the GPU machine:\n"
            f"  sparkplane agent --server {scheme}://SERVER:{settings.port} --token {secret}",
            title="join token",
            expand=False,
        ),
        soft_wrap=True,
    )


@app.command("tokens")
def tokens(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List join tokens and their state (valid, expired, revoked)."""
    settings = settings_from(config)

    async def go() -> list[dict[str, Any]]:
        async with database(settings) as engine:
            now = utcnow()
            found = await NodeStore(session_factory(engine)).list_tokens()
            return [t.public(now) for t in found]

    found = run(go())
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    table = Table("id", "state", "expires", "uses", "note")
    for t in found:
        table.add_row(t["id"], t["state"], t["expires_at"], str(t["uses"]), t["note"])
    console.print(table if found else "no join tokens: sparkplane nodes token")


@app.command("revoke")
def revoke(token_id: str, config: ConfigOption = None) -> None:
    """Revoke a join token (nodes that joined with it keep their own keys)."""
    settings = settings_from(config)

    async def go() -> None:
        async with database(settings) as engine:
            await NodeStore(session_factory(engine)).revoke_token(token_id)
            await audit_admin(engine, "nodes.token_revoke", token_id)

    run(go())
    console.print(f"revoked join token {token_id}")


def _memory(node: NodeRecord) -> str:
    memory = node.hardware.get("memory") or {}
    free, total = memory.get("free_bytes"), memory.get("total_bytes")
    if not isinstance(free, int) or not isinstance(total, int):
        return "-"
    shared = " shared" if memory.get("shared") else ""
    return f"{free / GIB:.1f} / {total / GIB:.1f} GiB {memory.get('kind', '')}{shared}"


def _power(node: NodeRecord) -> str:
    power = node.hardware.get("power") or {}
    watts = power.get("watts")
    return f"{watts:.0f} W" if isinstance(watts, int | float) else "-"


def _gpus(node: NodeRecord) -> str:
    names = [str(g.get("name", "?")) for g in node.hardware.get("gpus") or []]
    return ", ".join(names) or "none"


@app.command("list")
def list_(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show nodes: status, free memory, power, GPUs and deployments."""
    settings = settings_from(config)

    async def go() -> tuple[list[NodeRecord], list[DeploymentRecord]]:
        async with database(settings) as engine:
            store = NodeStore(session_factory(engine))
            return await store.list_nodes(), await store.deployments()

    nodes, deployments = run(go())
    if as_json:
        docs = []
        for n in nodes:
            doc = n.public()
            doc["deployments"] = [d.public(n.name) for d in deployments if d.node_id == n.id]
            docs.append(doc)
        typer.echo(json.dumps(docs, indent=2))
        return
    if not nodes:
        console.print("no nodes yet: sparkplane nodes token, then sparkplane agent on the machine")
        return
    table = Table("node", "status", "free memory", "power", "GPUs", "deployments", "last seen")
    for n in nodes:
        mine = [f"{d.name} ({d.state})" for d in deployments if d.node_id == n.id]
        colour = "green" if n.status == "online" else "red"
        table.add_row(
            n.name,
            f"[{colour}]{n.status}[/{colour}]",
            _memory(n),
            _power(n),
            _gpus(n),
            ", ".join(mine) or "-",
            n.last_seen.strftime("%H:%M:%S"),
        )
    console.print(table)


@app.command("remove")
def remove(node: str, config: ConfigOption = None) -> None:
    """Forget a node: stop and remove its deployments and their devices."""
    settings = settings_from(config)

    async def go() -> None:
        async with database(settings) as engine, AsyncExitStack() as stack:
            await (await control(settings, engine, stack)).remove_node(node)
            await audit_admin(engine, "nodes.remove", node)

    run(go())
    console.print(f"removed node {node}")


@app.command("logs")
def logs(
    node: str,
    deployment: str,
    lines: Annotated[int, typer.Option(min=1, max=100_000, help="How many lines.")] = 200,
    config: ConfigOption = None,
) -> None:
    """Print the end of a deployment's engine log, read from its node."""
    settings = settings_from(config)

    async def go() -> str:
        async with database(settings) as engine, AsyncExitStack() as stack:
            return await (await control(settings, engine, stack)).logs(node, deployment, lines)

    typer.echo(run(go()), nl=False)
