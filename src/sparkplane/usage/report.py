"""A month of usage per tenant, by model and by device, priced.

`build_report` is pure: sums from `UsageStore.groups` and the tenants' prices
in, a `Report` out. `month_report` is the one function that queries.
Cost = input tokens/1000 x price + output tokens/1000 x price + images x price
+ device-seconds/3600 x price per device-hour, each in the tenant's currency.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.security.store import TenantStore
from sparkplane.security.tenancy import Prices, TenantRecord
from sparkplane.usage.store import UsageGroup, UsageStore, month_bounds

NO_TENANT = "(none)"  # records made without a tenant (authentication off)


@dataclass(slots=True)
class Totals:
    """Summed usage and its cost."""

    requests: int = 0
    errors: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    images: int = 0
    device_seconds: float = 0.0
    energy_wh: float = 0.0
    energy_measured_wh: float = 0.0
    cost: float = 0.0

    @property
    def energy_basis(self) -> str:
        """Where the energy figure comes from: `measured` (the nodes' own power
        readings), `estimated` (power figures: configured or the planner's),
        `mixed`, or `none`."""
        if self.energy_wh <= 0:
            return "none"
        share = self.energy_measured_wh / self.energy_wh
        if share >= 0.999:
            return "measured"
        return "estimated" if share <= 0.001 else "mixed"

    def add(self, group: UsageGroup, cost: float) -> None:
        """Fold one group in."""
        self.requests += group.requests
        self.errors += group.errors
        self.tokens_in += group.tokens_in
        self.tokens_out += group.tokens_out
        self.images += group.images
        self.device_seconds += group.device_seconds
        self.energy_wh += group.energy_wh
        self.energy_measured_wh += group.energy_measured_wh
        self.cost += cost

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with floats rounded for people."""
        return {
            "requests": self.requests,
            "errors": self.errors,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "images": self.images,
            "device_seconds": round(self.device_seconds, 3),
            "energy_wh": round(self.energy_wh, 3),
            "energy_measured_wh": round(self.energy_measured_wh, 3),
            "energy_basis": self.energy_basis,
            "cost": round(self.cost, 6),
        }


@dataclass(slots=True)
class TenantUsage:
    """One tenant's month."""

    tenant: str
    tenant_id: str | None
    prices: Prices
    total: Totals = field(default_factory=Totals)
    by_model: dict[str, Totals] = field(default_factory=dict)
    by_device: dict[str, Totals] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "tenant": self.tenant,
            "tenant_id": self.tenant_id,
            "currency": self.prices.currency,
            "prices": self.prices.model_dump(mode="json"),
            "total": self.total.as_dict(),
            "by_model": {k: v.as_dict() for k, v in sorted(self.by_model.items())},
            "by_device": {k: v.as_dict() for k, v in sorted(self.by_device.items())},
        }


@dataclass(frozen=True, slots=True)
class Report:
    """A month of usage for one tenant or all."""

    month: str
    tenants: list[TenantUsage]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"month": self.month, "tenants": [t.as_dict() for t in self.tenants]}


def cost_of(group: UsageGroup, prices: Prices) -> float:
    """What a group of usage costs at `prices`."""
    return (
        group.tokens_in / 1000 * prices.per_1k_input_tokens
        + group.tokens_out / 1000 * prices.per_1k_output_tokens
        + group.images * prices.per_image
        + group.device_seconds / 3600 * prices.per_device_hour
    )


def build_report(
    month: str,
    groups: Iterable[UsageGroup],
    tenants: Iterable[TenantRecord],
    *,
    include_idle: bool = False,
) -> Report:
    """Roll groups up per tenant (by model, by device) and price them.

    With `include_idle`, every tenant given appears even without usage.
    """
    known = {t.id: t for t in tenants}
    out: dict[str | None, TenantUsage] = {}
    if include_idle:
        for t in known.values():
            out[t.id] = TenantUsage(t.name, t.id, t.prices)
    for g in groups:
        usage = out.get(g.tenant_id)
        if usage is None:
            record = known.get(g.tenant_id) if g.tenant_id else None
            name = record.name if record else (g.tenant_id or NO_TENANT)
            usage = TenantUsage(name, g.tenant_id, record.prices if record else Prices())
            out[g.tenant_id] = usage
        cost = cost_of(g, usage.prices)
        usage.total.add(g, cost)
        usage.by_model.setdefault(g.model, Totals()).add(g, cost)
        usage.by_device.setdefault(g.device or "-", Totals()).add(g, cost)
    return Report(month, sorted(out.values(), key=lambda u: u.tenant))


async def month_report(
    sessions: async_sessionmaker[AsyncSession], month: str, tenant: TenantRecord | None = None
) -> Report:
    """The report for `month`: one tenant's (listed even when idle) or every tenant's."""
    month_bounds(month)  # a malformed month fails before any query
    groups = await UsageStore(sessions).groups(month, tenant.id if tenant else None)
    if tenant is not None:
        return build_report(month, groups, [tenant], include_idle=True)
    return build_report(month, groups, await TenantStore(sessions).list_tenants())
