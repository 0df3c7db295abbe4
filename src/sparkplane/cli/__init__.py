"""The ``sparkplane`` command line (minimal: the lead's version replaces this file)."""

from __future__ import annotations

import typer

from . import plan

app = typer.Typer(no_args_is_help=True)
plan.register(app)


@app.callback()
def _root() -> None:
    """sparkplane: a control plane for private AI on a small GPU fleet."""


def main() -> None:
    """Entry point of the ``sparkplane`` script."""
    app()
