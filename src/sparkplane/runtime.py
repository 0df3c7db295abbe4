"""The running process's parts, wired together explicitly (no globals).

`start()` builds everything a server needs inside the event loop; `stop()`
takes it down in reverse. The app factory and the tests both go through here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

import aiohttp
import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from sparkplane.agent.control import NodeControl, refresh_devices
from sparkplane.agent.link import AgentLink, agent_session
from sparkplane.agent.store import NodeStore
from sparkplane.backends.base import Backend, Timeouts
from sparkplane.backends.comfyui import ComfyUIBackend
from sparkplane.backends.http import new_session
from sparkplane.backends.registry import KINDS, make_backend
from sparkplane.config import Settings
from sparkplane.db import migrate
from sparkplane.db.engine import close_engine, create_engine, session_factory
from sparkplane.fleet.breaker import CircuitBreaker
from sparkplane.fleet.device import DeviceRecord
from sparkplane.fleet.health import HealthMonitor
from sparkplane.fleet.load import LoadBook, LoadSettings, plan_figures
from sparkplane.fleet.registry import Fleet
from sparkplane.fleet.residency import ResidencyStore
from sparkplane.fleet.service import discover
from sparkplane.fleet.store import DeviceStore
from sparkplane.jobs.artifacts import ArtifactStore
from sparkplane.jobs.service import ComfyService
from sparkplane.jobs.store import JobStore
from sparkplane.lifecycle import Lifecycle
from sparkplane.metrics import Metrics
from sparkplane.planner import DeviceProfile, PlannerError, find_device, profiles_with
from sparkplane.scheduler.admission import Admission
from sparkplane.scheduler.budget import RetryBudget
from sparkplane.scheduler.choose import Tuning
from sparkplane.scheduler.dispatch import Dispatcher, GatewayLimits
from sparkplane.scheduler.policy import Policy
from sparkplane.scheduler.steps import Loader
from sparkplane.security.audit import AuditLog
from sparkplane.security.audit_journal import Journal
from sparkplane.security.audit_store import AuditStore
from sparkplane.security.auth import Authenticator
from sparkplane.security.auth_guard import AuthGuard
from sparkplane.security.key_usage import KeyUsage
from sparkplane.security.limits import Limiter, LocalLimiter
from sparkplane.security.limits_redis import RedisLimiter
from sparkplane.security.principal import Principal
from sparkplane.security.store import KeyStore, TenantStore
from sparkplane.usage.ledger import Ledger
from sparkplane.usage.meter import Meter, Power, PowerOf, power_figure

log = structlog.get_logger("sparkplane")

# Non-streaming answers arrive whole, after the full generation: give them
# longer than a stream's first byte unless a total limit is set.
NON_STREAM_FACTOR = 5


@dataclass
class Runtime:
    """Everything a running sparkplane holds."""

    settings: Settings
    lifecycle: Lifecycle
    engine: AsyncEngine
    store: DeviceStore
    http: aiohttp.ClientSession
    fleet: Fleet
    book: LoadBook
    admission: Admission
    residency: ResidencyStore
    metrics: Metrics
    dispatcher: Dispatcher
    health: HealthMonitor
    default_policy: Policy
    tenants: TenantStore
    keys: KeyStore
    authenticator: Authenticator
    guard: AuthGuard
    key_usage: KeyUsage
    limiter: Limiter
    meter: Meter
    ledger: Ledger
    audit: AuditLog
    comfy: ComfyService
    nodes: NodeControl
    agents_http: aiohttp.ClientSession
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def policy_for(self, principal: Principal) -> Policy:
        """Where this caller's work may run: the fleet's rule and the tenant's together."""
        if not principal.tenant_id:
            return self.default_policy
        return Policy(
            allow_off_prem=self.settings.allow_off_prem and principal.policy.allow_off_prem,
            allowed_devices=principal.policy.allowed_devices,
            owner=f"tenant '{principal.tenant}'",
        )

    async def database_ok(self) -> bool:
        """Whether the database answers a trivial query."""
        try:
            async with asyncio.timeout(2):
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means not ready
            return False
        return True


def device_power(fleet: Fleet, profiles: Mapping[str, DeviceProfile] | None = None) -> PowerOf:
    """A device's power by name: what its node's agent measured (`extra.measured_power_w`),
    else its configured figure (`extra.power_w`), else its planner profile's."""

    def power_of(name: str) -> Power | None:
        device = fleet.by_name(name)
        if device is None:
            return None
        extra = device.record.extra
        measured = power_figure({"power_w": extra.get("measured_power_w")})
        if measured is not None:
            return Power(measured, "measured")
        configured = power_figure(extra)
        if configured is not None:
            return Power(configured, "configured")
        profile = extra.get("profile")
        if isinstance(profile, str) and profiles:
            try:
                watts = find_device(profiles, profile).power_w
            except PlannerError:
                return None
            return Power(watts, "planner") if watts > 0 else None
        return None

    return power_of


def gateway_limits(settings: Settings) -> GatewayLimits:
    """Timeouts and attempts for dispatch, from settings."""
    response = settings.request_timeout_s or settings.first_byte_timeout_s * NON_STREAM_FACTOR
    return GatewayLimits(
        max_attempts=settings.max_attempts,
        timeouts=Timeouts(
            connect=settings.connect_timeout_s,
            first_byte=settings.first_byte_timeout_s,
            idle=settings.idle_timeout_s,
            response=response,
        ),
        total=settings.request_timeout_s,
    )


def scheduling(
    settings: Settings,
    fleet: Fleet,
    sessions: async_sessionmaker[AsyncSession],
    metrics: Metrics,
) -> tuple[LoadBook, Admission, Loader, ResidencyStore]:
    """The scheduler's parts: the load book, admission, the loader and residency store."""
    book = LoadBook(
        fleet,
        profiles_with(settings.device_profiles),
        LoadSettings(parallel=settings.device_parallel, load_gbs=settings.load_gbs),
        plan_figures,
    )
    fleet.listeners.append(book.rebuild)
    book.rebuild()
    tuning = Tuning(min_resident_s=settings.min_resident_s, saturation=settings.device_saturation)
    admission = Admission(
        book,
        tuning,
        queue_limit=settings.model_queue_limit,
        queue_wait_s=settings.queue_wait_s,
        weights=settings.tenant_weights,
    )
    residency = ResidencyStore(sessions)
    loader = Loader(book, residency, metrics, tuning, settings.load_timeout_s)
    loader.changed = admission.wake
    return book, admission, loader, residency


async def start(settings: Settings, lifecycle: Lifecycle, *, discover_engines: bool) -> Runtime:
    """Open the database (migrating it), the HTTP pool and the fleet; start the health loop."""
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.artifacts_path.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.db_url)
    await migrate.upgrade(engine)
    sessions = session_factory(engine)
    store = DeviceStore(sessions)
    key_store = KeyStore(sessions)
    http = new_session()

    def backend_for(record: DeviceRecord) -> Backend:
        backend = make_backend(
            record.kind,
            record.url,
            http,
            api_key=record.api_key,
            probe_timeout=settings.probe_timeout_s,
        )
        if isinstance(backend, ComfyUIBackend):
            backend.refresh_s = settings.comfy_object_info_refresh_s
        return backend

    fleet = Fleet(
        make_backend=backend_for,
        make_breaker=lambda: CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s),
        aliases=settings.aliases,
        kinds=KINDS,
    )
    records = await store.list_devices()
    if not records and discover_engines:
        records = await discover(store, http)
    fleet.sync(records)
    metrics = Metrics(fleet.devices)
    book, admission, loader, residency = scheduling(settings, fleet, sessions, metrics)
    dispatcher = Dispatcher(
        fleet,
        book,
        admission,
        loader,
        gateway_limits(settings),
        RetryBudget(settings.retry_budget_ratio, settings.retry_budget_min),
        metrics,
    )
    health = HealthMonitor(
        fleet, store, settings.health_interval_s, book=book, residency=residency,
        on_residency=admission.wake,
    )  # fmt: skip
    limiter: Limiter = (
        RedisLimiter.from_url(settings.redis_url) if settings.redis_url else LocalLimiter()
    )
    await limiter.seed_month(sessions)
    meter = Meter(sessions, device_power(fleet, profiles_with(settings.device_profiles)))
    audit = AuditLog(
        AuditStore(sessions),
        journal=Journal(settings.home / "audit-journal") if settings.audit_journal else None,
        fail_closed=settings.audit_fail_closed,
    )
    agents_http = agent_session(settings.agent_ca)
    key_usage = KeyUsage(key_store)
    authenticator = Authenticator(key_store, ttl=settings.auth_cache_s, usage=key_usage)
    runtime = Runtime(
        settings=settings,
        lifecycle=lifecycle,
        engine=engine,
        store=store,
        http=http,
        fleet=fleet,
        book=book,
        admission=admission,
        residency=residency,
        metrics=metrics,
        dispatcher=dispatcher,
        health=health,
        default_policy=Policy(allow_off_prem=settings.allow_off_prem),
        tenants=TenantStore(sessions),
        keys=key_store,
        authenticator=authenticator,
        guard=AuthGuard(authenticator, audit, settings.auth_failures_per_minute),
        key_usage=key_usage,
        limiter=limiter,
        meter=meter,
        ledger=Ledger(limiter, meter, audit),
        audit=audit,
        comfy=ComfyService(
            settings,
            fleet,
            JobStore(sessions),
            ArtifactStore(settings.artifacts_path, sessions),
        ),
        nodes=NodeControl(
            NodeStore(sessions),
            store,
            AgentLink(agents_http),
            http,
            heartbeat_s=settings.node_heartbeat_s,
            lost_after_s=settings.node_lost_after_s,
            probe_timeout_s=settings.probe_timeout_s,
            on_devices=partial(refresh_devices, fleet, store, health),
        ),
        agents_http=agents_http,
    )
    meter.start()
    key_usage.start()
    await runtime.audit.start()
    # A crash between a job's end and its audit entry: report recent ends again (no doubles).
    await runtime.ledger.reaudit_jobs(runtime.comfy.store)
    runtime.tasks.append(asyncio.create_task(health.run(), name="health"))
    runtime.tasks.append(asyncio.create_task(runtime.nodes.watch(), name="nodes"))
    runtime.comfy.events.subscribe(runtime.ledger.job_finished)
    runtime.comfy.start()
    log.info(
        "started",
        action="server.start",
        database=make_url(settings.db_url).render_as_string(hide_password=True),
        artifacts=str(settings.artifacts_path),
        devices=[d.name for d in fleet.devices()],
        models=len(fleet.catalog.listed()),
    )
    if not records:
        log.warning(
            "no_devices",
            action="server.start",
            hint="register an engine: sparkplane devices add http://HOST:PORT",
        )
    return runtime


async def stop(runtime: Runtime) -> None:
    """Stop background work and close connections."""
    await runtime.comfy.stop()
    for task in runtime.tasks:
        task.cancel()
    for task in runtime.tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await runtime.meter.stop()
    await runtime.key_usage.stop()
    await runtime.limiter.close()
    await runtime.audit.stop()
    await runtime.http.close()
    await runtime.agents_http.close()
    await close_engine(runtime.engine)
