"""``sparkplane simulate``: replay a trace on a simulated fleet under every policy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sparkplane.cli.common import console, fail
from sparkplane.sim import (
    IDEAL,
    POLICIES,
    UPPER,
    FigureTable,
    FleetFileError,
    Trace,
    TraceError,
    compare,
    load_azure,
    load_burstgpt,
    load_fleet,
    load_jsonl,
)
from sparkplane.sim.fleetfile import FleetFile
from sparkplane.sim.report import plot, table, write_json
from sparkplane.sim.run import RATE_FACTORS

FORMATS = ("jsonl", "azure", "burstgpt")
ALL = (*POLICIES, UPPER, IDEAL)


def _policies(given: list[str] | None) -> list[str]:
    names = [n.strip() for item in given or ["all"] for n in item.split(",") if n.strip()]
    if "all" in names:
        return list(ALL)
    unknown = [n for n in names if n not in ALL]
    if unknown:
        fail(f"unknown policy {unknown[0]!r} (known: all, {', '.join(ALL)})", code=2)
    return list(dict.fromkeys(names))


def _trace(path: Path, fmt: str, fleet: FleetFile, models: list[str] | None) -> Trace:
    names = [n for item in models or [] for n in item.split(",") if n] or [
        m.name for m in fleet.model
    ]
    if fmt == "jsonl":
        return load_jsonl(path)
    if fmt == "azure":
        return load_azure(path, names)
    if fmt == "burstgpt":
        return load_burstgpt(path, names, {"ChatGPT": names[0], "GPT-4": names[-1]})
    fail(f"unknown trace format {fmt!r} (known: {', '.join(FORMATS)})", code=2)


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to ``app``."""

    @app.command("simulate")
    def simulate_command(
        fleet: Annotated[Path, typer.Option(help="Fleet file (TOML).", dir_okay=False)],
        trace: Annotated[Path, typer.Option(help="Trace file.", dir_okay=False)],
        policy: Annotated[
            list[str] | None,
            typer.Option(help="Policies to run (repeat or comma): all, " + ", ".join(ALL) + "."),
        ] = None,
        trace_format: Annotated[
            str, typer.Option(help="jsonl, azure (Azure LLM traces) or burstgpt.")
        ] = "jsonl",
        models: Annotated[
            list[str] | None,
            typer.Option(help="Fleet models for azure/burstgpt requests (default: all)."),
        ] = None,
        speed: Annotated[
            float, typer.Option(help="Replay the trace this many times as fast.", min=1e-6)
        ] = 1.0,
        goodput: Annotated[
            bool, typer.Option(help="Search each policy's goodput (replays at other rates).")
        ] = True,
        json_out: Annotated[
            Path | None, typer.Option("--json", help="Write the results as JSON here.")
        ] = None,
        png: Annotated[Path | None, typer.Option("--png", help="Write a plot (PNG) here.")] = None,
    ) -> None:
        """Replay TRACE on the fleet under each policy: SLO attainment, goodput, latency,
        loads, bytes moved, cloud spend and energy."""
        chosen = _policies(policy)
        try:
            spec = load_fleet(fleet)
            requests = _trace(trace, trace_format, spec, models)
            if speed != 1.0:
                requests = requests.scaled(speed)
            table_ = FigureTable()
            factors = RATE_FACTORS if goodput else ()
            runs = len(chosen) * (1 + (5 if goodput else 0))
            columns = (
                TextColumn("simulating"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console, transient=True) as bar:
                task = bar.add_task("simulate", total=len(requests) * runs)
                result = compare(
                    spec,
                    requests,
                    chosen,
                    table_,
                    factors=factors,
                    progress=lambda n: bar.advance(task, n),
                )
        except (FleetFileError, TraceError) as e:
            fail(str(e), code=2)
        console.print(table(result, f"{len(requests):,} requests at {requests.rate:.2f}/s"))
        if json_out is not None:
            write_json(result, json_out)
            console.print(f"wrote {json_out}")
        if png is not None:
            plot(result, png)
            console.print(f"wrote {png}")
