"""Energy in usage records: a node's measured power where its agent reports one,
else the device's configured figure, else its planner profile's; the report
says which (`energy_basis`), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.usage.formats import to_csv, to_tables
from sparkplane.usage.meter import Meter, Power
from sparkplane.usage.records import UsageRecord
from sparkplane.usage.report import month_report

NOV = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
POWER = {
    "spark": Power(240.0, "measured"),
    "rtx4090": 450.0,  # a bare number: the configured figure
    "h100": Power(700.0, "planner"),
}


def use(device: str, seconds: float) -> UsageRecord:
    return UsageRecord(None, None, "chat", "llama", device, 200, device_seconds=seconds, at=NOV)


async def test_the_report_says_where_each_devices_energy_came_from(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine)
        sessions = session_factory(engine)
        meter = Meter(sessions, POWER.get)
        for device in ("spark", "rtx4090", "h100", "unknown"):
            meter.record(use(device, 3600))
        await meter.flush()
        report = await month_report(sessions, "2026-11")
    finally:
        await engine.dispose()
    (usage,) = report.tenants
    by_device = {k: (v.energy_wh, v.energy_basis) for k, v in usage.by_device.items()}
    assert by_device == {
        "spark": (pytest.approx(240.0), "measured"),
        "rtx4090": (pytest.approx(450.0), "estimated"),
        "h100": (pytest.approx(700.0), "estimated"),
        "unknown": (0.0, "none"),
    }
    assert usage.total.energy_basis == "mixed"
    assert usage.total.energy_measured_wh == pytest.approx(240.0)
    assert "energy_basis" in to_csv(report).splitlines()[0]
    assert "energy from" in [c.header for c in to_tables(report)[0].columns]
