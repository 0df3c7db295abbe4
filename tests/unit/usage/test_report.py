"""Reports from usage sums: rolled up per tenant, model and device, priced."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from sparkplane.errors import BadRequest
from sparkplane.security.tenancy import Limits, Prices, TenantPolicy, TenantRecord
from sparkplane.usage.formats import CSV_COLUMNS, to_csv, to_json, to_tables
from sparkplane.usage.meter import energy_wh, power_figure
from sparkplane.usage.report import NO_TENANT, build_report, cost_of
from sparkplane.usage.store import UsageGroup, month_bounds

PRICES = Prices(
    currency="EUR",
    per_1k_input_tokens=0.5,
    per_1k_output_tokens=1.5,
    per_image=0.04,
    per_device_hour=2.0,
)


def tenant(tid: str, name: str, prices: Prices = PRICES) -> TenantRecord:
    return TenantRecord(
        id=tid,
        name=name,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        disabled=False,
        policy=TenantPolicy(),
        limits=Limits(),
        prices=prices,
    )


def group(tid: str | None, model: str, device: str | None, **sums: float) -> UsageGroup:
    values: dict[str, float] = {
        "requests": 1,
        "errors": 0,
        "tokens_in": 0,
        "tokens_out": 0,
        "images": 0,
        "device_seconds": 0.0,
        "energy_wh": 0.0,
    }
    values.update(sums)
    return UsageGroup(tid, model, device, **values)  # type: ignore[arg-type]


GROUPS = [
    group("a", "llama", "spark", requests=10, errors=1, tokens_in=4000, tokens_out=2000,
          device_seconds=1800, energy_wh=70.0),
    group("a", "llama", "rtx4090", requests=5, tokens_in=1000, tokens_out=1000,
          device_seconds=360, energy_wh=45.0),
    group("a", "sdxl", "rtx4090", requests=3, images=12, device_seconds=90, energy_wh=11.25),
    group("b", "llama", "spark", requests=2, tokens_in=100, tokens_out=100),
]  # fmt: skip


def test_cost_is_tokens_images_and_device_hours_at_the_tenant_prices() -> None:
    g = group("a", "m", "d", tokens_in=2000, tokens_out=1000, images=3, device_seconds=5400)
    assert cost_of(g, PRICES) == pytest.approx(2 * 0.5 + 1 * 1.5 + 3 * 0.04 + 1.5 * 2.0)


def test_report_rolls_up_per_tenant_model_and_device() -> None:
    report = build_report("2026-11", GROUPS, [tenant("a", "acme"), tenant("b", "beta", Prices())])
    assert [t.tenant for t in report.tenants] == ["acme", "beta"]
    acme = report.tenants[0]
    assert acme.total.requests == 18
    assert acme.total.errors == 1
    assert (acme.total.tokens_in, acme.total.tokens_out, acme.total.images) == (5000, 3000, 12)
    assert acme.total.energy_wh == pytest.approx(126.25)
    assert set(acme.by_model) == {"llama", "sdxl"}
    assert acme.by_model["llama"].requests == 15
    assert acme.by_device["rtx4090"].device_seconds == pytest.approx(450)
    expected = 5 * 0.5 + 3 * 1.5 + 12 * 0.04 + 2250 / 3600 * 2.0
    assert acme.total.cost == pytest.approx(expected)
    assert sum(m.cost for m in acme.by_model.values()) == pytest.approx(expected)
    assert report.tenants[1].total.cost == 0.0  # beta pays nothing


def test_one_tenant_report_lists_it_even_when_idle() -> None:
    report = build_report("2026-11", [], [tenant("a", "acme")], include_idle=True)
    assert [(t.tenant, t.total.requests) for t in report.tenants] == [("acme", 0)]


def test_usage_without_a_tenant_or_with_an_unknown_one_is_shown() -> None:
    report = build_report("2026-11", [group(None, "m", None), group("gone", "m", "d")], [])
    assert sorted(t.tenant for t in report.tenants) == sorted([NO_TENANT, "gone"])


def test_json_and_csv_carry_the_same_numbers() -> None:
    report = build_report("2026-11", GROUPS, [tenant("a", "acme"), tenant("b", "beta")])
    doc = json.loads(to_json(report))
    assert doc["month"] == "2026-11"
    acme = doc["tenants"][0]
    assert acme["currency"] == "EUR"
    assert acme["total"]["tokens_in"] == 5000
    assert acme["by_device"]["spark"]["requests"] == 10
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert list(rows[0]) == CSV_COLUMNS
    total = next(r for r in rows if r["tenant"] == "acme" and r["group"] == "total")
    assert float(total["cost"]) == pytest.approx(acme["total"]["cost"])
    assert {(r["group"], r["name"]) for r in rows if r["tenant"] == "acme"} == {
        ("total", ""),
        ("model", "llama"),
        ("model", "sdxl"),
        ("device", "spark"),
        ("device", "rtx4090"),
    }
    assert len(to_tables(report)) == 2


def test_month_bounds() -> None:
    assert month_bounds("2026-12") == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(BadRequest):
        month_bounds("2026-13")
    with pytest.raises(BadRequest):
        month_bounds("november")


def test_energy_from_the_device_power_figure() -> None:
    # A DGX Spark at its 240 W system figure for 30 minutes: 120 Wh.
    assert energy_wh(1800, power_figure({"power_w": 240})) == pytest.approx(120.0)
    assert power_figure({"power_w": "140"}) == 140.0
    for bad in ({}, {"power_w": None}, {"power_w": -5}, {"power_w": "lots"}, {"power_w": True}):
        assert power_figure(bad) is None
    assert energy_wh(1800, None) == 0.0
