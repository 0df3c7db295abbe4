"""`sparkplane serve`."""

from __future__ import annotations

from typing import Annotated

import typer

from sparkplane.cli.common import ConfigOption, settings_from
from sparkplane.logs import configure


def register(app: typer.Typer) -> None:
    """Add the `serve` command to `app`."""

    @app.command()
    def serve(
        host: Annotated[
            str | None, typer.Option(help="Address to bind (default 127.0.0.1).")
        ] = None,
        port: Annotated[int | None, typer.Option(help="Port to listen on (default 8400).")] = None,
        config: ConfigOption = None,
        discover: Annotated[
            bool,
            typer.Option(help="With no devices registered, look for engines on loopback."),
        ] = True,
    ) -> None:
        """Serve the OpenAI-compatible gateway, the admin API and metrics."""
        settings = settings_from(config, host=host, port=port)
        configure(settings.log_level, settings.log_format)
        from sparkplane.server import serve as run_server  # uvicorn only when serving

        run_server(settings, discover=discover and settings.discover)
