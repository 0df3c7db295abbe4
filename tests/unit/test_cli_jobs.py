"""`sparkplane jobs list|show|cancel` on the database directly."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparkplane.cli import app
from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.jobs.records import NewJob
from sparkplane.jobs.store import JobStore


async def _seed(url: str) -> None:
    engine = create_engine(url)
    await migrate.upgrade(engine)
    store = JobStore(session_factory(engine))
    for prompt_id in ("first", "second"):
        await store.enqueue(
            NewJob(prompt_id, "", "", {"1": {"class_type": "X", "inputs": {}}}, {}, ["1"], {}, "s")
        )
    await engine.dispose()


def test_list_show_and_cancel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKPLANE_HOME", str(tmp_path))
    asyncio.run(_seed(f"sqlite+aiosqlite:///{tmp_path / 'sparkplane.db'}"))
    runner = CliRunner()
    listed = runner.invoke(app, ["jobs", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [j["prompt_id"] for j in json.loads(listed.output)] == ["second", "first"]
    cancelled = runner.invoke(app, ["jobs", "cancel", "first"])
    assert cancelled.exit_code == 0, cancelled.output
    assert "cancelled" in cancelled.output
    shown = runner.invoke(app, ["jobs", "show", "first", "--json"])
    assert json.loads(shown.output)["status"] == "cancelled"
    again = runner.invoke(app, ["jobs", "cancel", "first"])
    assert "not changed" in again.output
    missing = runner.invoke(app, ["jobs", "show", "nope"])
    assert missing.exit_code == 1
    queued = runner.invoke(app, ["jobs", "list", "--status", "queued", "--json"])
    assert [j["prompt_id"] for j in json.loads(queued.output)] == ["second"]
