"""`sparkplane devices`: register, list, probe and remove devices.

The CLI works on the database directly (running servers pick changes up on
their next health round), so it works whether or not a server is running.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from sparkplane.backends.http import new_session
from sparkplane.backends.registry import make_backend
from sparkplane.cli.common import (
    ConfigOption,
    audit_admin,
    console,
    database,
    fail,
    run,
    settings_from,
)
from sparkplane.db.engine import session_factory
from sparkplane.errors import UpstreamError
from sparkplane.fleet import service
from sparkplane.fleet.device import DeviceRecord
from sparkplane.fleet.residency import DeviceEvent, ResidencyStore, Resident
from sparkplane.fleet.store import DeviceStore
from sparkplane.planner import profiles_with

app = typer.Typer(help="Devices: the engines sparkplane routes to.", no_args_is_help=True)

KindOption = Annotated[
    str, typer.Option("--kind", help="auto (detect by probing), openai, ollama or comfyui.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="Base URL of the engine, e.g. http://10.0.0.5:11434")],
    name: Annotated[str | None, typer.Option(help="Unique name (default kind-host-port).")] = None,
    kind: KindOption = "auto",
    priority: Annotated[int, typer.Option(help="Higher wins ties between idle devices.")] = 0,
    off_prem: Annotated[
        bool, typer.Option("--off-prem", help="A cloud or other off-premises device.")
    ] = False,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="SPARKPLANE_DEVICE_API_KEY", help="Key the device requires (cloud)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Register a device."""
    settings = settings_from(config)

    async def go() -> DeviceRecord:
        async with database(settings) as engine, new_session() as http:
            record = await service.register(
                DeviceStore(session_factory(engine)),
                http,
                url=url,
                name=name,
                kind=kind,
                priority=priority,
                off_prem=off_prem,
                api_key=api_key,
                probe_timeout=settings.probe_timeout_s,
            )
            await audit_admin(
                engine,
                "devices.add",
                record.name,
                url=record.url,
                kind=record.kind,
                priority=priority,
                off_prem=off_prem,
                has_api_key=bool(api_key),
            )
            return record

    record = run(go())
    models = f"{len(record.models)} model(s)" if record.models else "no models yet"
    console.print(f"added [bold]{record.name}[/bold] ({record.kind}, {record.url}): {models}")


@app.command("list")
def list_(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show devices with their health, models and latency."""
    settings = settings_from(config)

    async def go() -> list[DeviceRecord]:
        async with database(settings) as engine:
            return await DeviceStore(session_factory(engine)).list_devices()

    records = run(go())
    if as_json:
        typer.echo(json.dumps([r.public() for r in records], indent=2))
        return
    if not records:
        console.print("no devices yet: sparkplane devices add URL")
        return
    table = Table("name", "kind", "URL", "health", "models", "latency", "priority")
    for r in records:
        latency = f"{r.latency_ms:.1f} ms" if r.latency_ms is not None else "-"
        flags = " (off-prem)" if r.off_prem else ""
        health = r.health if r.enabled else "disabled"
        table.add_row(
            r.name,
            r.kind + flags,
            r.url,
            _colour(health),
            _models(r.models),
            latency,
            str(r.priority),
        )
    console.print(table)


@app.command("show")
def show(name: str, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show one device: settings, health, what sits in its memory, and its history."""
    settings = settings_from(config)

    async def go() -> tuple[DeviceRecord, list[Resident], list[DeviceEvent]]:
        async with database(settings) as engine:
            sessions = session_factory(engine)
            record = await DeviceStore(sessions).get(name)
            residency = ResidencyStore(sessions)
            return record, await residency.residents(record.id), await residency.history(record.id)

    record, residents, history = run(go())
    if as_json:
        doc = record.public()
        doc["residency"] = [r.public() for r in residents]
        doc["history"] = [e.public() for e in history]
        typer.echo(json.dumps(doc, indent=2))
        return
    health = record.health if record.enabled else "disabled"
    console.print(f"[bold]{record.name}[/bold]  {record.kind}  {record.url}  {_colour(health)}")
    console.print(f"models it can serve: {_models(record.models)}")
    table = Table("resident model", "memory", "source", title="in memory now")
    for r in residents:
        table.add_row(r.model, _gib(r.bytes), r.source)
    console.print(table if residents else "in memory now: nothing reported")
    if history:
        events = Table("when", "what", "model", "memory", "seconds", "detail", title="history")
        for e in history:
            when = e.at.strftime("%Y-%m-%d %H:%M:%S") if e.at else "-"
            secs = f"{e.seconds:.1f}" if e.seconds is not None else "-"
            events.add_row(when, e.kind.value, e.model, _gib(e.bytes), secs, e.detail)
        console.print(events)


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n else "-"


@app.command("probe")
def probe(name: str, config: ConfigOption = None) -> None:
    """Probe a device now and store what it said."""
    settings = settings_from(config)

    async def go() -> DeviceRecord:
        async with database(settings) as engine, new_session() as http:
            store = DeviceStore(session_factory(engine))
            record = await store.get(name)
            backend = make_backend(
                record.kind,
                record.url,
                http,
                api_key=record.api_key,
                probe_timeout=settings.probe_timeout_s,
            )
            try:
                service.apply_probe(record, await backend.probe())
            except UpstreamError as exc:
                record.health, record.last_error = "unhealthy", exc.message
            await store.save_probes([record])
            return record

    record = run(go())
    if record.health != "healthy":
        fail(f"{record.name}: {record.last_error}")
    console.print(
        f"{record.name}: healthy, {record.latency_ms} ms, models: {_models(record.models, 20)}"
    )


@app.command("remove")
def remove(name: str, config: ConfigOption = None) -> None:
    """Unregister a device."""
    settings = settings_from(config)

    async def go() -> None:
        async with database(settings) as engine:
            await DeviceStore(session_factory(engine)).remove(name)
            await audit_admin(engine, "devices.remove", name)

    run(go())
    console.print(f"removed {name}")


@app.command("power")
def power(
    name: str,
    watts: Annotated[
        float | None, typer.Argument(help="Watts the device draws working; omit to clear.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Set a device's power figure, used for the energy estimate of its usage."""
    settings = settings_from(config)

    async def go() -> DeviceRecord:
        async with database(settings) as engine:
            record = await service.set_power(DeviceStore(session_factory(engine)), name, watts)
            await audit_admin(engine, "devices.update", name, power_w=watts)
            return record

    record = run(go())
    figure = record.extra.get("power_w")
    console.print(
        f"{record.name}: power {figure} W" if figure else f"{record.name}: no power figure"
    )


def _models(models: list[str], limit: int = 3) -> str:
    if not models:
        return "-"
    shown = ", ".join(models[:limit])
    return shown + (f" +{len(models) - limit}" if len(models) > limit else "")


def _colour(health: str) -> str:
    colour = {"healthy": "green", "unhealthy": "red", "probing": "yellow"}.get(health, "dim")
    return f"[{colour}]{health}[/{colour}]"


@app.command("hardware")
def hardware(
    name: str,
    profile: Annotated[
        str | None, typer.Option(help="Planner device profile, e.g. rtx-4090, dgx-spark, h100.")
    ] = None,
    memory_gib: Annotated[float | None, typer.Option(help="Memory models may use, in GiB.")] = None,
    parallel: Annotated[int | None, typer.Option(help="Requests it serves at once.")] = None,
    load_gbs: Annotated[float | None, typer.Option(help="GB/s a model loads at.")] = None,
    quant: Annotated[str | None, typer.Option(help="Precision its models run at.")] = None,
    price_per_mtok: Annotated[
        float | None, typer.Option(help="A cloud device's price per million tokens.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Tell the scheduler what a device is (the planner's figures come from its profile)."""
    settings = settings_from(config)
    given = {
        "profile": profile,
        "memory_gib": memory_gib,
        "parallel": parallel,
        "load_gbs": load_gbs,
        "quant": quant,
        "price_per_mtok": price_per_mtok,
    }
    values: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if not values:
        fail("give at least one of --profile, --memory-gib, --parallel, --load-gbs, --quant, "
             "--price-per-mtok")  # fmt: skip
    profiles = profiles_with(settings.device_profiles)

    async def go() -> DeviceRecord:
        async with database(settings) as engine:
            store = DeviceStore(session_factory(engine))
            record = await service.set_hardware(store, name, values, profiles)
            await audit_admin(engine, "devices.update", name, **values)
            return record

    record = run(go())
    shown = {k: record.extra[k] for k in service.HARDWARE_KEYS if k in record.extra}
    console.print(f"{record.name}: {json.dumps(shown)}")
