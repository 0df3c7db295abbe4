"""The `sparkplane` command line."""

from __future__ import annotations

import typer

from sparkplane.cli import (
    agent,
    audit,
    db,
    deploy,
    devices,
    jobs,
    models,
    nodes,
    plan,
    security,
    serve,
    simulate,
    usage,
)
from sparkplane.cli.common import settings_from
from sparkplane.logs import configure
from sparkplane.planner import DeviceProfile, profiles_with

app = typer.Typer(
    name="sparkplane",
    help="A control plane for private AI on a small fleet of GPU machines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _setup() -> None:
    """A control plane for private AI on a small fleet of GPU machines."""
    # Commands other than `serve` print results, not logs: only warnings show.
    configure("warning", "console")


def plan_profiles() -> dict[str, DeviceProfile]:
    """Built-in device profiles plus those in the settings (`[[device_profiles]]`)."""
    return profiles_with(settings_from(None).device_profiles)


serve.register(app)
security.register(app)
plan.register(app, profiles=plan_profiles)
simulate.register(app)
agent.register(app)
deploy.register(app)
app.add_typer(devices.app, name="devices")
app.add_typer(nodes.app, name="nodes")
app.add_typer(models.app, name="models")
app.add_typer(jobs.app, name="jobs")
app.add_typer(db.app, name="db")
app.add_typer(usage.app, name="usage")
app.add_typer(audit.app, name="audit")


def main() -> None:
    """Entry point of the `sparkplane` script."""
    app()
