"""The app factory: builds the ASGI app and wires its parts explicitly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from sparkplane import __version__, runtime
from sparkplane.api import (
    admin,
    audit,
    comfy,
    comfy_ws,
    errors,
    health,
    jobs,
    nodes,
    openai,
    openapi,
    plan,
    security,
    usage,
)
from sparkplane.api.auth import PUBLIC_PATHS
from sparkplane.api.middleware import GatewayMiddleware
from sparkplane.config import Settings
from sparkplane.lifecycle import Lifecycle
from sparkplane.planner import profiles_with


def create_app(
    settings: Settings, *, lifecycle: Lifecycle | None = None, discover: bool | None = None
) -> FastAPI:
    """A sparkplane ASGI app for `settings`.

    `lifecycle` lets the server (or a test) drain the app; `discover` overrides
    `settings.discover` for the first-start probe of loopback engines.
    """
    lifecycle = lifecycle or Lifecycle()
    discover_engines = settings.discover if discover is None else discover

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        rt = await runtime.start(settings, lifecycle, discover_engines=discover_engines)
        try:
            yield {"runtime": rt}
        finally:
            await runtime.stop(rt)

    app = SparkplaneApp(
        title="sparkplane",
        version=__version__,
        description="One OpenAI-compatible endpoint over a fleet of GPU machines.",
        lifespan=lifespan,
    )
    openapi.install(app)
    errors.install(app)
    app.include_router(openai.router)
    app.include_router(admin.router)
    app.include_router(audit.router)
    app.include_router(health.router)
    app.include_router(security.router)
    app.include_router(plan.build_router(profiles_with(settings.device_profiles)))
    app.include_router(usage.router)
    app.include_router(nodes.router)
    app.include_router(jobs.router)
    app.include_router(comfy.router)
    app.include_router(comfy_ws.router)
    # Agents authenticate with their own credentials (api/nodes.py), not API keys.
    public = PUBLIC_PATHS | nodes.AGENT_PATHS | ({"/metrics"} if settings.metrics_public else set())
    entry: ASGIApp = GatewayMiddleware(
        partial(FastAPI.__call__, app),
        lifecycle=lifecycle,
        max_body=settings.max_body_bytes,
        max_upload=settings.max_upload_bytes,
        auth_enabled=settings.auth_enabled,
        public_paths=frozenset(public),
        tls=settings.tls_cert is not None,
    )
    if settings.cors_origins:
        # Outermost, so preflight requests are answered before authentication.
        entry = CORSMiddleware(
            entry,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["authorization", "x-api-key", "content-type", "x-request-id"],
            expose_headers=["x-sparkplane-device", "x-sparkplane-attempts", "x-request-id"],
        )
    app.entry = entry
    return app


class SparkplaneApp(FastAPI):
    """The FastAPI app, entered through sparkplane's gateway layer.

    The gateway middleware sits in front of the framework rather than inside its
    middleware stack: every request is authenticated, counted and limited there,
    and the inference hot path is served without passing through the
    framework's own layers at all (see docs/benchmarks.md).
    """

    entry: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.entry(scope, receive, send)
