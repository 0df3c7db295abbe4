"""`sparkplane agent`: run this machine as a node of a sparkplane server."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path
from typing import Annotated

import typer

from sparkplane.agent.node import NodeConfig
from sparkplane.agent.runner import AgentOptions
from sparkplane.agent.runner import run as run_agent
from sparkplane.cli.common import fail
from sparkplane.errors import SparkplaneError
from sparkplane.logs import configure

GIB = 1 << 30


def _default_name() -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", socket.gethostname()).strip("-._")[:64] or "node"


def _engine_commands(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        engine, sep, template = value.partition("=")
        if not sep or not engine or not template:
            fail(f"--engine-command takes ENGINE=TEMPLATE, not {value!r}")
        out[engine] = template
    return out


def register(app: typer.Typer) -> None:
    """Add the `agent` command to `app`."""

    @app.command()
    def agent(
        server: Annotated[str, typer.Option(help="The server's URL, e.g. https://10.0.0.2:8400.")],
        token: Annotated[
            str | None,
            typer.Option(
                envvar="SPARKPLANE_AGENT_TOKEN",
                help="Join token from `sparkplane nodes token` (not needed to rejoin).",
            ),
        ] = None,
        name: Annotated[str | None, typer.Option(help="Node name (default: host name).")] = None,
        models: Annotated[
            Path, typer.Option(help="Folder of model files (GGUF, safetensors folders).")
        ] = Path("~/models"),
        home: Annotated[
            Path, typer.Option(help="The agent's folder: engine logs, its node key.")
        ] = Path("~/.sparkplane-agent"),
        host: Annotated[
            str, typer.Option(help="Address the agent API and its engines bind to.")
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port of the agent API.")] = 8401,
        advertise: Annotated[
            str | None, typer.Option(help="URL the server should call this agent at.")
        ] = None,
        ca: Annotated[
            Path | None, typer.Option(help="CA bundle to check the server's certificate with.")
        ] = None,
        tls_cert: Annotated[
            Path | None, typer.Option(help="PEM certificate: serve the agent API over HTTPS.")
        ] = None,
        tls_key: Annotated[Path | None, typer.Option(help="PEM key for --tls-cert.")] = None,
        memory_gib: Annotated[
            float | None, typer.Option(help="Offer at most this much memory to deployments.")
        ] = None,
        engine_command: Annotated[
            list[str] | None,
            typer.Option(help="ENGINE=TEMPLATE: how to start an engine here (repeatable)."),
        ] = None,
        log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    ) -> None:
        """Run this machine as a node: report its hardware, run the engines the server asks for."""
        configure(log_level, "auto")
        if (tls_cert is None) != (tls_key is None):
            fail("--tls-cert and --tls-key go together")
        options = AgentOptions(
            server=server.rstrip("/"),
            token=token,
            node=NodeConfig(
                name=name or _default_name(),
                models_dir=models.expanduser().resolve(),
                home=home.expanduser().resolve(),
                host=host,
                memory_cap_bytes=int(memory_gib * GIB) if memory_gib is not None else None,
                engine_commands=_engine_commands(engine_command or []),
            ),
            port=port,
            advertise=advertise,
            ca_file=ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
        try:
            asyncio.run(run_agent(options))
        except SparkplaneError as exc:
            fail(exc.message)
        except OSError as exc:
            fail(f"the agent cannot run: {exc}")
