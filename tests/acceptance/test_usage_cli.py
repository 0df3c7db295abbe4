"""`sparkplane usage report` run as a user runs it: a subprocess on a database
that a meter filled."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.fleet.store import DeviceStore
from sparkplane.security.store import TenantStore
from sparkplane.security.tenancy import Prices
from sparkplane.usage.meter import Meter
from sparkplane.usage.records import UsageRecord

SPARKPLANE = str(Path(sys.executable).parent / "sparkplane")
NOV = datetime(2026, 11, 3, tzinfo=UTC)


@pytest.fixture
async def env(tmp_path: Path) -> dict[str, str]:
    """An environment whose database holds November's usage of two tenants."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'sp.db'}"
    engine = create_engine(url)
    await migrate.upgrade(engine)
    sessions = session_factory(engine)
    tenants = TenantStore(sessions)
    acme = await tenants.create(
        "acme", prices=Prices(currency="EUR", per_1k_output_tokens=2.0, per_image=0.1)
    )
    beta = await tenants.create("beta")
    await DeviceStore(sessions).add(name="spark", url="http://127.0.0.1:9", kind="openai")
    meter = Meter(sessions, {"spark": 240.0}.get)
    meter.record(UsageRecord(acme.id, "k1", "chat", "llama", "spark", 200, tokens_in=100,
                             tokens_out=3000, device_seconds=900, at=NOV))  # fmt: skip
    meter.record(UsageRecord(acme.id, "k1", "workflow", "sdxl", "spark", 200, images=5, at=NOV))
    meter.record(UsageRecord(beta.id, "k2", "embedding", "minilm", "spark", 200, tokens_in=9,
                             at=NOV))  # fmt: skip
    await meter.flush()
    await engine.dispose()
    return {**os.environ, "SPARKPLANE_DATABASE_URL": url, "SPARKPLANE_HOME": str(tmp_path)}


def sparkplane(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return command(env, "usage", "report", *args)


def command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SPARKPLANE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_json_report_of_one_tenant(env: dict[str, str]) -> None:
    done = sparkplane(env, "--tenant", "acme", "--month", "2026-11", "--format", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    (acme,) = doc["tenants"]
    assert (acme["tenant"], acme["currency"]) == ("acme", "EUR")
    assert acme["total"]["tokens_out"] == 3000
    assert acme["total"]["cost"] == pytest.approx(3 * 2.0 + 5 * 0.1)
    assert acme["total"]["energy_wh"] == pytest.approx(60.0)
    assert set(acme["by_model"]) == {"llama", "sdxl"}


def test_csv_report_of_every_tenant(env: dict[str, str]) -> None:
    done = sparkplane(env, "--month", "2026-11", "--format", "csv")
    assert done.returncode == 0, done.stderr
    totals = {
        r["tenant"]: r for r in csv.DictReader(io.StringIO(done.stdout)) if r["group"] == "total"
    }
    assert set(totals) == {"acme", "beta"}
    assert totals["beta"]["tokens_in"] == "9"


def test_table_report_and_an_empty_month(env: dict[str, str]) -> None:
    done = sparkplane(env, "--month", "2026-11")
    assert done.returncode == 0, done.stderr
    assert "acme" in done.stdout
    assert "llama" in done.stdout
    empty = sparkplane(env, "--month", "2025-01")
    assert "no usage in 2025-01" in empty.stdout


def test_unknown_tenant_and_bad_month_fail_readably(env: dict[str, str]) -> None:
    done = sparkplane(env, "--tenant", "nobody", "--month", "2026-11")
    assert done.returncode == 1
    assert "no tenant named 'nobody'" in done.stderr
    done = sparkplane(env, "--month", "11/2026")
    assert done.returncode == 1
    assert "YYYY-MM" in done.stderr


def test_devices_power_sets_and_clears_the_figure(env: dict[str, str]) -> None:
    done = command(env, "devices", "power", "spark", "240")
    assert done.returncode == 0, done.stderr
    assert "power 240.0 W" in done.stdout
    listed = json.loads(command(env, "devices", "list", "--json").stdout)
    assert listed[0]["extra"] == {"power_w": 240.0}
    assert command(env, "devices", "power", "spark", "--", "-5").returncode == 1
    done = command(env, "devices", "power", "spark")
    assert "no power figure" in done.stdout
    assert json.loads(command(env, "devices", "list", "--json").stdout)[0]["extra"] == {}
