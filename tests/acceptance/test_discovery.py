"""First-start discovery of engines on loopback.

The usual ports (8000, 8080, 11434...) on this machine may belong to other
people's services, so discovery is tested (1) at the function level with
LOCAL_ENGINES pointed at a fake engine's port, and (2) through the CLI inside a
private network namespace where those ports are ours; that test is skipped
where unprivileged user namespaces are not allowed.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest
from aiohttp import web

from sparkplane.backends.http import new_session
from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.fleet import service
from sparkplane.fleet.store import DeviceStore
from tests.fakes.openai_engine import FakeOpenAIEngine
from tests.support.net import free_port

REPO = Path(__file__).resolve().parents[2]


async def test_discover_registers_what_answers_on_the_usual_ports(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_an_engine = web.AppRunner(web.Application())  # answers 404 to everything
    await not_an_engine.setup()
    other_port = free_port()
    await web.TCPSite(not_an_engine, "127.0.0.1", other_port).start()
    db = create_engine(database_url)
    try:
        await migrate.upgrade(db)
        store = DeviceStore(session_factory(db))
        async with FakeOpenAIEngine() as engine, new_session() as http:
            monkeypatch.setattr(
                service,
                "LOCAL_ENGINES",
                ((engine.port, "vllm"), (other_port, "llamacpp"), (free_port(), "ollama")),
            )
            found = await service.discover(store, http, host="127.0.0.1", timeout=1.0)
        assert [(r.name, r.kind, r.url) for r in found] == [("local-vllm", "openai", engine.url)]
        (stored,) = await store.list_devices()
        assert stored.name == "local-vllm"
        assert stored.health == "healthy"
        assert stored.models == ["fake-model"]
        assert stored.latency_ms is not None
    finally:
        await db.dispose()
        await not_an_engine.cleanup()


async def test_discover_with_nothing_listening_registers_nothing(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "LOCAL_ENGINES", ((free_port(), "vllm"),))
    db = create_engine(sqlite_url)
    try:
        await migrate.upgrade(db)
        store = DeviceStore(session_factory(db))
        async with new_session() as http:
            assert await service.discover(store, http, host="127.0.0.1", timeout=1.0) == []
        assert await store.list_devices() == []
    finally:
        await db.dispose()


async def _namespaces_allowed() -> str | None:
    """Why the private-network test cannot run here, or None."""
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    process = await asyncio.create_subprocess_exec(
        "unshare",
        "--user",
        "--map-root-user",
        "--net",
        "ip",
        "link",
        "set",
        "lo",
        "up",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        return f"unprivileged network namespaces are not allowed: {err.decode().strip()}"
    return None


@pytest.mark.slow
async def test_first_serve_discovers_a_loopback_engine_unless_told_not_to(tmp_path: Path) -> None:
    why = await _namespaces_allowed()
    if why is not None:
        pytest.skip(why)
    result = tmp_path / "result.json"
    driver = f"{sys.executable} -m tests.acceptance.netns_discovery {result} {tmp_path}"
    process = await asyncio.create_subprocess_exec(
        "unshare",
        "--user",
        "--map-root-user",
        "--net",
        "sh",
        "-c",
        f"ip link set lo up && exec {driver}",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, output.decode(errors="replace")
    seen = json.loads(result.read_text())

    # --no-discover: no device, and the engine was never asked anything.
    assert seen["no_discover_devices"] == []
    assert seen["no_discover_probes"] == 0
    # Default: the engine on vLLM's port is found, named, and serves requests.
    (device,) = seen["discovered"]
    assert device["name"] == "local-vllm"
    assert device["kind"] == "openai"
    assert device["url"] == seen["engine_url"]
    assert device["models"] == ["fake-model"]
    assert seen["chat"] == [200, "local-vllm"]
    assert seen["discover_probes"] >= 1
