"""`sparkplane init`, `sparkplane tenants`, `sparkplane keys`.

Like `devices`, these work on the database directly; running servers see
changes within `auth_cache_s`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.panel import Panel
from rich.table import Table

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
from sparkplane.security.bootstrap import DEFAULT_TENANT, first_admin
from sparkplane.security.rbac import SCOPE_ROLES, Role, Scope, default_scope, valid_grant
from sparkplane.security.store import KeyStore, TenantStore
from sparkplane.security.tenancy import KeyRecord, Limits, Prices, TenantPolicy, TenantRecord

tenants_app = typer.Typer(
    help="Tenants: client organisations, their policy and limits.", no_args_is_help=True
)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def show_new_key(key: str, record: KeyRecord, tenant: str) -> None:
    """Print a new key once, where people see it (never through the logs)."""
    console.print(
        Panel(
            f"[bold]{key}[/bold]\n\ntenant {tenant}, {record.grant} key, id {record.id}\n"
            "This is the only time the key is shown: store it now.",
            title="new API key",
            expand=False,
        )
    )


def register(app: typer.Typer) -> None:
    """Add `init`, `tenants` and `keys` to `app`."""

    @app.command()
    def init(
        tenant: Annotated[str, typer.Option(help="Name of the first tenant.")] = DEFAULT_TENANT,
        config: ConfigOption = None,
    ) -> None:
        """Create the first tenant and a platform owner key (once, on an empty database)."""
        settings = settings_from(config)

        async def go() -> tuple[TenantRecord, KeyRecord, str] | None:
            async with database(settings) as engine:
                sessions = session_factory(engine)
                made = await first_admin(TenantStore(sessions), KeyStore(sessions), tenant)
                if made is not None:
                    await audit_admin(engine, "auth.bootstrap", made[1].id, concerns=made[0])
                return made

        made = run(go())
        if made is None:
            fail(
                "already initialised: tenants exist. Make more keys with `sparkplane keys create`."
            )
        show_new_key(made[2], made[1], made[0].name)

    app.add_typer(tenants_app, name="tenants")
    app.add_typer(keys_app, name="keys")


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], text: str | None, what: str) -> M | None:
    if text is None:
        return None
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"--{what}: {'.'.join(map(str, first['loc'])) or 'value'}: {first['msg']}")


PolicyOption = Annotated[
    str | None,
    typer.Option(
        "--policy", help='JSON, e.g. \'{"allow_off_prem": false, "allowed_devices": ["spark"]}\''
    ),
]
LimitsOption = Annotated[
    str | None,
    typer.Option(
        "--limits", help='JSON, e.g. \'{"requests_per_minute": 60, "monthly_tokens": 1000000}\''
    ),
]
PricesOption = Annotated[
    str | None,
    typer.Option("--prices", help='JSON, e.g. \'{"per_1k_input_tokens": 0.1, "per_image": 0.02}\''),
]


def _tenant_settings(
    policy: str | None, limits: str | None, prices: str | None
) -> tuple[TenantPolicy | None, Limits | None, Prices | None]:
    return (
        _parse(TenantPolicy, policy, "policy"),
        _parse(Limits, limits, "limits"),
        _parse(Prices, prices, "prices"),
    )


@tenants_app.command("create")
def tenants_create(
    name: str,
    policy: PolicyOption = None,
    limits: LimitsOption = None,
    prices: PricesOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a tenant."""
    settings = settings_from(config)
    parsed = _tenant_settings(policy, limits, prices)

    async def go() -> TenantRecord:
        async with database(settings) as engine:
            tenant = await TenantStore(session_factory(engine)).create(
                name, policy=parsed[0], limits=parsed[1], prices=parsed[2]
            )
            await audit_admin(engine, "tenants.create", name, concerns=tenant, **tenant.settings())
            return tenant

    tenant = run(go())
    console.print(f"created tenant [bold]{tenant.name}[/bold] ({tenant.id})")


@tenants_app.command("update")
def tenants_update(
    name: str,
    policy: PolicyOption = None,
    limits: LimitsOption = None,
    prices: PricesOption = None,
    disable: Annotated[
        bool | None, typer.Option("--disable/--enable", help="Refuse or allow all of its keys.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Replace a tenant's policy, limits or prices, or disable it."""
    settings = settings_from(config)
    parsed = _tenant_settings(policy, limits, prices)

    async def go() -> TenantRecord:
        async with database(settings) as engine:
            tenant = await TenantStore(session_factory(engine)).update(
                name, policy=parsed[0], limits=parsed[1], prices=parsed[2], disabled=disable
            )
            changed: dict[str, Any] = {
                k: v.model_dump(mode="json")
                for k, v in zip(("policy", "limits", "prices"), parsed, strict=True)
                if v is not None
            }
            if disable is not None:
                changed["disabled"] = disable
            await audit_admin(engine, "tenants.update", name, concerns=tenant, **changed)
            return tenant

    typer.echo(json.dumps(run(go()).public(), indent=2))


@tenants_app.command("list")
def tenants_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List tenants."""
    settings = settings_from(config)

    async def go() -> list[TenantRecord]:
        async with database(settings) as engine:
            return await TenantStore(session_factory(engine)).list_tenants()

    tenants = run(go())
    if as_json:
        typer.echo(json.dumps([t.public() for t in tenants], indent=2))
        return
    table = Table("name", "id", "off-prem", "allowed devices", "allowed models", "disabled")
    for t in tenants:
        p = t.policy
        table.add_row(
            t.name,
            t.id,
            "yes" if p.allow_off_prem else "no",
            ", ".join(sorted(p.allowed_devices)) if p.allowed_devices is not None else "any",
            ", ".join(sorted(p.allowed_models)) if p.allowed_models is not None else "any",
            "yes" if t.disabled else "",
        )
    console.print(table)


@tenants_app.command("show")
def tenants_show(name: str, config: ConfigOption = None) -> None:
    """Show a tenant's policy, limits and prices (JSON)."""
    settings = settings_from(config)

    async def go() -> TenantRecord:
        async with database(settings) as engine:
            return await TenantStore(session_factory(engine)).get(name)

    typer.echo(json.dumps(run(go()).public(), indent=2))


def _duration(text: str) -> timedelta:
    """`0`, `90m`, `12h` or `7d`, at most 30 days."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    if text == "0":
        return timedelta(0)
    if not (text[:-1].isdigit() and text[-1] in units):
        fail(f"--overlap: use 0, 90m, 12h or 7d, not {text!r}")
    window = timedelta(**{units[text[-1]]: int(text[:-1])})
    if window > timedelta(days=30):
        fail("--overlap: at most 30d")
    return window


def _expiry(text: str | None) -> datetime | None:
    """`30d`, `12h`, `90m` or an ISO date/time."""
    if text is None:
        return None
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[:-1].isdigit() and text[-1] in units:
        return datetime.now(UTC) + timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--expires: use 30d, 12h, 90m or an ISO date, not {text!r}")
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant the key belongs to.")],
    role: Annotated[
        str,
        typer.Option(
            "--role", help="platform: owner, operator, auditor; tenant: admin, member, auditor."
        ),
    ] = "member",
    scope: Annotated[
        str | None,
        typer.Option(
            "--scope",
            help="platform (every tenant) or tenant (only its own); "
            "default: platform for owner and operator, tenant otherwise.",
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="A label for people.")] = "",
    expires: Annotated[
        str | None, typer.Option("--expires", help="30d, 12h, 90m or an ISO date.")
    ] = None,
    limits: LimitsOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a key and print it once."""
    settings = settings_from(config)
    grant = _grant(scope, role)
    when = _expiry(expires)
    key_limits = _parse(Limits, limits, "limits")

    async def go() -> tuple[KeyRecord, str]:
        async with database(settings) as engine:
            sessions = session_factory(engine)
            record = await TenantStore(sessions).get(tenant)
            over = (key_limits or Limits()).over(record.limits)
            if over is not None:
                fail(f"--limits: {over} is over the tenant's own limit")
            made = await KeyStore(sessions).create(
                record, grant[1], scope=grant[0], name=name, expires_at=when, limits=key_limits
            )
            await audit_admin(
                engine, "keys.create", made[0].id, concerns=record, scope=grant[0].value, role=role
            )
            return made

    record, key = run(go())
    show_new_key(key, record, tenant)


def _grant(scope: str | None, role: str) -> tuple[Scope, Role]:
    if scope is not None and scope not in {s.value for s in Scope}:
        fail("--scope must be platform or tenant")
    roles = {r.value for rs in SCOPE_ROLES.values() for r in rs}
    if role not in roles:
        fail(f"--role must be one of {', '.join(sorted(roles))}")
    chosen = Scope(scope) if scope is not None else default_scope(Role(role))
    if not valid_grant(chosen, Role(role)):
        allowed = ", ".join(r.value for r in SCOPE_ROLES[chosen])
        fail(f"a {chosen.value} key's --role must be one of {allowed}")
    return chosen, Role(role)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's keys.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List keys (ids and roles; never the keys themselves)."""
    settings = settings_from(config)

    async def go() -> tuple[list[KeyRecord], dict[str, str]]:
        async with database(settings) as engine:
            sessions = session_factory(engine)
            names = {t.id: t.name for t in await TenantStore(sessions).list_tenants()}
            tenant_id = None
            if tenant is not None:
                tenant_id = (await TenantStore(sessions).get(tenant)).id
            return await KeyStore(sessions).list_keys(tenant_id), names

    records, names = run(go())
    if as_json:
        typer.echo(json.dumps([r.public(names.get(r.tenant_id)) for r in records], indent=2))
        return
    table = Table(
        "id", "tenant", "scope", "role", "name", "created", "expires", "last used", "state"
    )
    now = datetime.now(UTC)
    for r in records:
        state = "revoked" if r.revoked_at else ("expired" if not r.usable(now) else "active")
        if state == "active" and r.previous_until is not None and r.previous_until > now:
            state = f"active (old secret until {r.previous_until:%Y-%m-%d %H:%M})"
        table.add_row(
            r.id,
            names.get(r.tenant_id, "?"),
            r.scope.value,
            r.role.value,
            r.name,
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            r.expires_at.strftime("%Y-%m-%d %H:%M") if r.expires_at else "-",
            r.last_used_at.strftime("%Y-%m-%d %H:%M") if r.last_used_at else "never",
            state,
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: ConfigOption = None) -> None:
    """Revoke a key by id; servers refuse it within `auth_cache_s` seconds."""
    settings = settings_from(config)

    async def go() -> KeyRecord:
        async with database(settings) as engine:
            sessions = session_factory(engine)
            record = await KeyStore(sessions).revoke(key_id)
            tenant = await TenantStore(sessions).get_by_id(record.tenant_id)
            await audit_admin(engine, "keys.revoke", key_id, concerns=tenant)
            return record

    record = run(go())
    console.print(f"revoked key {record.id}")


@keys_app.command("rotate")
def keys_rotate(
    key_id: str,
    overlap: Annotated[
        str,
        typer.Option(
            "--overlap",
            help="How long the old secret keeps working beside the new one: 0 (default), "
            "90m, 12h, 7d (at most 30d).",
        ),
    ] = "0",
    config: ConfigOption = None,
) -> None:
    """Give a key a new secret (same id, role and limits) and print it once; servers
    refuse the old one after the overlap, within `auth_cache_s` seconds."""
    settings = settings_from(config)
    window = _duration(overlap)

    async def go() -> tuple[KeyRecord, str, TenantRecord]:
        async with database(settings) as engine:
            sessions = session_factory(engine)
            record, key = await KeyStore(sessions).rotate(key_id, window)
            tenant = await TenantStore(sessions).get_by_id(record.tenant_id)
            await audit_admin(
                engine,
                "keys.rotate",
                key_id,
                concerns=tenant,
                overlap_s=int(window.total_seconds()),
            )
            return record, key, tenant

    record, key, tenant = run(go())
    show_new_key(key, record, tenant.name)
