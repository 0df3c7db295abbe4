"""`sparkplane serve`."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import structlog
import typer

from sparkplane.cli.common import ConfigOption, audit_admin, database, fail, run, settings_from
from sparkplane.config import Settings
from sparkplane.db.engine import session_factory
from sparkplane.logs import configure
from sparkplane.security.bootstrap import first_admin
from sparkplane.security.store import KeyStore, TenantStore

log = structlog.get_logger("sparkplane.server")


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings) -> None:
    """Refuse to serve without auth off loopback; warn about plain HTTP off loopback."""
    loopback = is_loopback(settings.host)
    if not settings.auth_enabled:
        if not loopback:
            fail(
                f"auth_enabled=false is allowed only on a loopback address, not {settings.host}: "
                "anyone who can reach the port could use the fleet"
            )
        log.warning(
            "auth_disabled",
            action="server.start",
            risk="every request is served without a key; only this machine can connect",
        )
    if (settings.tls_cert is None) != (settings.tls_key is None):
        fail("tls_cert and tls_key must be given together")
    if not loopback and settings.tls_cert is None:
        log.warning(
            "plain_http_on_network",
            action="server.start",
            host=settings.host,
            risk="API keys and prompts cross the network unencrypted; use --tls-cert/--tls-key "
            "or a TLS-terminating proxy",
        )


async def _bootstrap(settings: Settings) -> None:
    async with database(settings) as engine:
        sessions = session_factory(engine)
        made = await first_admin(TenantStore(sessions), KeyStore(sessions))
        if made is not None:
            await audit_admin(engine, "auth.bootstrap", made[1].id, tenant=made[0].name)
    if made is not None:
        from sparkplane.cli.security import show_new_key

        tenant, record, key = made
        show_new_key(key, record, tenant.name)


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
        tls_cert: Annotated[
            Path | None, typer.Option(help="PEM certificate: serve HTTPS.", dir_okay=False)
        ] = None,
        tls_key: Annotated[
            Path | None, typer.Option(help="PEM private key for --tls-cert.", dir_okay=False)
        ] = None,
    ) -> None:
        """Serve the OpenAI-compatible gateway, the admin API and metrics."""
        settings = settings_from(config, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key)
        configure(settings.log_level, settings.log_format)
        check_exposure(settings)
        if settings.auth_enabled:
            # The first start on an empty database makes the first admin key, so that
            # `make run` alone gets a newcomer going. It is printed, never logged.
            run(_bootstrap(settings))
        from sparkplane.server import serve as run_server  # uvicorn only when serving

        run_server(settings, discover=discover and settings.discover)
