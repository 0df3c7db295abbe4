"""`sparkplane models`: the fleet's public model names."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from sparkplane.backends.registry import KINDS
from sparkplane.cli.common import ConfigOption, console, database, run, settings_from
from sparkplane.db.engine import session_factory
from sparkplane.fleet.catalog import split_target
from sparkplane.fleet.store import DeviceStore

app = typer.Typer(help="Models the fleet serves.", no_args_is_help=True)


@app.command("list")
def list_(
    config: ConfigOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Public model names and the devices that advertised them at their last probe."""
    settings = settings_from(config)

    async def go() -> dict[str, set[str]]:
        async with database(settings) as engine:
            records = await DeviceStore(session_factory(engine)).list_devices()
        served: dict[str, set[str]] = {}
        for r in records:
            for m in r.models:
                served.setdefault(m, set()).add(r.name)
        kinds = frozenset(KINDS)
        for public, targets in settings.aliases.items():
            devices: set[str] = set()
            for target in targets:
                kind, name = split_target(target, kinds)
                devices.update(
                    r.name for r in records if name in r.models and kind in (None, r.kind)
                )
            served[public] = devices
        return served

    served = run(go())
    if as_json:
        typer.echo(json.dumps({m: sorted(d) for m, d in sorted(served.items())}, indent=2))
        return
    table = Table("model", "devices")
    for model, devices in sorted(served.items()):
        table.add_row(model, ", ".join(sorted(devices)) or "[red]none[/red]")
    console.print(table)
