"""`sparkplane deploy` and `sparkplane undeploy`: run a model on a node where it
fits, and stop it. The planner picks the node; a Rich progress line follows the
deployment until its agent says the engine answers (or gave up)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from sparkplane.agent.control import DeployRequest
from sparkplane.agent.protocol import EngineName
from sparkplane.agent.records import DeploymentRecord
from sparkplane.cli.common import (
    ConfigOption,
    audit_admin,
    console,
    database,
    fail,
    run,
    settings_from,
)
from sparkplane.cli.nodes import control

WAIT_STATES = ("starting", "restarting")


def register(app: typer.Typer) -> None:
    """Add `deploy` and `undeploy` to `app`."""

    @app.command()
    def deploy(
        model: Annotated[
            str, typer.Argument(help="A model file a node lists: path, file name or name.")
        ],
        engine: Annotated[
            str | None, typer.Option(help="llamacpp, vllm, sglang, ollama, comfyui or command.")
        ] = None,
        node: Annotated[str | None, typer.Option(help="Only this node.")] = None,
        name: Annotated[
            str | None, typer.Option(help="Deployment name (default: the model's).")
        ] = None,
        served_name: Annotated[
            str | None, typer.Option(help="Model name clients ask for (default: the file's).")
        ] = None,
        context: Annotated[int | None, typer.Option(min=1, help="Context window, tokens.")] = None,
        arg: Annotated[
            list[str] | None, typer.Option(help="Extra engine argument (repeatable).")
        ] = None,
        env: Annotated[
            list[str] | None,
            typer.Option(help="KEY=VALUE for the engine's environment (repeatable)."),
        ] = None,
        command: Annotated[
            str | None, typer.Option(help="For --engine command: e.g. 'srv --port {port} {model}'.")
        ] = None,
        wait: Annotated[bool, typer.Option(help="Wait until the engine answers.")] = True,
        timeout: Annotated[float, typer.Option(help="Longest wait, seconds.")] = 900.0,
        config: ConfigOption = None,
    ) -> None:
        """Run a model on the node where the planner says it fits."""
        settings = settings_from(config)
        if engine is not None and engine not in EngineName.__args__:  # type: ignore[attr-defined]
            fail(f"unknown engine {engine!r}")
        variables = dict(_pair(v) for v in env or [])
        request = DeployRequest(
            model=model, engine=engine, node=node, name=name, served_name=served_name,
            context=context, args=list(arg or []), env=variables, command=command,
        )  # fmt: skip

        async def go() -> tuple[DeploymentRecord, str]:
            async with database(settings) as db, AsyncExitStack() as stack:
                nodes = await control(settings, db, stack)
                with _progress() as progress:
                    task = progress.add_task(f"choosing a node for {model}")
                    record, chosen = await nodes.deploy(request)
                    await audit_admin(db, "deployments.create", record.name, node=chosen.name,
                                      model=model, engine_kind=record.engine)  # fmt: skip
                    if not wait:
                        return record, chosen.name
                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + timeout
                    while record.state in WAIT_STATES or record.device_name is None:
                        if record.state in ("failed", "stopped") or loop.time() > deadline:
                            break
                        what = f"{record.state} on {chosen.name}"
                        if record.restarts:
                            what += f" (restarted {record.restarts}x)"
                        progress.update(task, description=f"{record.name}: {what}")
                        await asyncio.sleep(0.5)
                        record = await nodes.store.deployment(record.id)
                return record, chosen.name

        record, node_name = run(go())
        if not wait:
            console.print(f"{record.name}: {record.state} on {node_name}")
            return
        if record.state != "running" or record.device_name is None:
            reason = record.error or f"still {record.state} after {timeout:.0f} s"
            fail(f"{record.name} on {node_name}: {reason}; see sparkplane nodes logs "
                 f"{node_name} {record.name}")  # fmt: skip
        console.print(
            f"[green]running[/green] {record.name} on {node_name}: model "
            f"[bold]{record.served_name}[/bold] as device {record.device_name}"
        )

    @app.command()
    def undeploy(
        deployment: Annotated[str, typer.Argument(help="Deployment name or id.")],
        node: Annotated[
            str | None, typer.Option(help="The node, if several have that name.")
        ] = None,
        config: ConfigOption = None,
    ) -> None:
        """Stop a deployment's engine and remove it and its device."""
        settings = settings_from(config)

        async def go() -> DeploymentRecord:
            async with database(settings) as db, AsyncExitStack() as stack:
                record = await (await control(settings, db, stack)).undeploy(deployment, node)
                await audit_admin(db, "deployments.remove", record.name)
                return record

        record = run(go())
        console.print(f"stopped {record.name}")


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        fail(f"--env takes KEY=VALUE, not {text!r}")
    return key, value


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=console, transient=True,
    )  # fmt: skip
