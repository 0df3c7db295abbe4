"""`sparkplane jobs`: list, show and cancel workflow jobs.

Like `devices`, these work on the database directly, so they work whether or not
a server runs. Cancelling here stops a pending job at once (a running server's
worker notices within a lease renewal and withdraws it from its device); a job
already executing is interrupted through its device.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from sparkplane.backends.comfyui import ComfyUIBackend
from sparkplane.backends.http import new_session
from sparkplane.cli.common import ConfigOption, console, database, fail, run, settings_from
from sparkplane.db.engine import session_factory
from sparkplane.fleet.store import DeviceStore
from sparkplane.jobs.records import Attempt, Job, JobStatus
from sparkplane.jobs.store import JobStore

app = typer.Typer(help="Workflow jobs (ComfyUI prompts) and their attempts.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
JobArgument = Annotated[str, typer.Argument(help="The job's prompt_id or id.")]


async def _find(store: JobStore, name: str) -> Job | None:
    return await store.get(name, None) or await store.get_by_id(name)


@app.command("list")
def list_(
    status: Annotated[
        str | None, typer.Option(help="Only jobs in this state (queued, running, success...).")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's jobs (its id).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show jobs, newest first."""
    settings = settings_from(config)
    if status is not None and status not in {s.value for s in JobStatus}:
        fail(f"unknown status {status!r}; use one of {', '.join(s.value for s in JobStatus)}")

    async def go() -> list[Job]:
        async with database(settings) as engine:
            return await JobStore(session_factory(engine)).list_jobs(tenant, status, limit)

    jobs = run(go())
    if as_json:
        typer.echo(json.dumps([j.public() for j in jobs], indent=2))
        return
    if not jobs:
        console.print("no jobs")
        return
    table = Table("prompt_id", "status", "device", "attempts", "created", "ended")
    for j in jobs:
        table.add_row(
            j.prompt_id,
            j.status.value,
            j.device or "-",
            str(j.attempts),
            j.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            j.ended_at.strftime("%H:%M:%S") if j.ended_at else "-",
        )
    console.print(table)


@app.command("show")
def show(job: JobArgument, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show one job and its attempts (device, times, outcome)."""
    settings = settings_from(config)

    async def go() -> tuple[Job, list[Attempt]] | None:
        async with database(settings) as engine:
            store = JobStore(session_factory(engine))
            found = await _find(store, job)
            return (found, await store.attempts(found.id)) if found else None

    found = run(go())
    if found is None:
        fail(f"no job {job!r}")
    record, attempts = found
    doc: dict[str, Any] = {**record.public(), "attempts": [a.public() for a in attempts]}
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    for key, value in doc.items():
        if key != "attempts":
            console.print(f"[bold]{key}[/bold]: {value}")
    table = Table("attempt", "device", "started", "ended", "outcome", "detail")
    for a in attempts:
        table.add_row(
            str(a.attempt),
            a.device,
            a.started_at.strftime("%H:%M:%S"),
            a.ended_at.strftime("%H:%M:%S") if a.ended_at else "-",
            a.outcome or "running",
            (a.detail or "")[:80],
        )
    console.print(table)


@app.command("cancel")
def cancel(job: JobArgument, config: ConfigOption = None) -> None:
    """Cancel a pending job, or interrupt it on its device if it is executing."""
    settings = settings_from(config)

    async def go() -> str:
        async with database(settings) as engine:
            sessions = session_factory(engine)
            store = JobStore(sessions)
            found = await _find(store, job)
            if found is None:
                fail(f"no job {job!r}")
            if await store.cancel(found):
                return "cancelled"
            if found.status is JobStatus.RUNNING and found.device and found.device_prompt_id:
                record = await DeviceStore(sessions).get(found.device)
                async with new_session() as http:
                    await ComfyUIBackend(record.url, http).interrupt(found.device_prompt_id)
                return "interrupted"
            return f"not changed: it is {found.status.value}"

    console.print(f"{job}: {run(go())}")
