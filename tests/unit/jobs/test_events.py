"""The job-finished hook: every subscriber gets each event; a failing one harms nobody."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from sparkplane.jobs.events import JobEvents, JobFinished

EVENT = JobFinished(
    job_id="j",
    prompt_id="p",
    tenant_id="t",
    key_id="k",
    device="spark",
    status="success",
    images=2,
    started_at=None,
    ended_at=datetime.now(UTC),
    duration_s=1.5,
    device_seconds=1.2,
    attempts=1,
)


async def test_sync_and_async_subscribers_get_the_event_and_failures_are_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = JobEvents()
    seen: list[str] = []

    def broken(event: JobFinished) -> None:
        raise RuntimeError("metering is down")

    async def slow(event: JobFinished) -> None:
        await asyncio.sleep(0.01)
        seen.append(f"async {event.job_id}")

    events.subscribe(broken)
    events.subscribe(lambda e: seen.append(f"sync {e.status}"))
    events.subscribe(slow)
    with caplog.at_level(logging.ERROR):
        events.emit(EVENT)
        assert seen == []  # nothing ran on the caller's path
        await asyncio.sleep(0)
        await events.drain()
        await asyncio.sleep(0)
    assert sorted(seen) == ["async j", "sync success"]
