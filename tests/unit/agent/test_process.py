"""One engine process under the agent: health wait, crash and restart with
backoff, a command that cannot run, stopping; with small stand-in engines
(Python one-liners) so the timing is the test's own."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from sparkplane.agent.engines import builtin_engines
from sparkplane.agent.node import NodeAgent, NodeConfig
from sparkplane.agent.process import EngineProcess, Timing, launcher
from sparkplane.agent.protocol import DeploymentSpec

FAST = Timing(
    startup_s=20, backoff_first_s=0.05, backoff_max_s=0.2, stable_s=60, stop_s=5, poll_s=0.05
)
# Answers GET /v1/models with 200, as an OpenAI-compatible engine does.
SERVE = (
    '{python} -c "import http.server as h, sys; '
    "B = type('B', (h.BaseHTTPRequestHandler,), {{'do_GET': lambda s: (s.send_response(200), "
    "s.end_headers()), 'log_message': lambda *a: None}}); "
    "print('serving', flush=True); h.HTTPServer(('{host}', {port}), B).serve_forever()\""
)


def spec(command: str) -> DeploymentSpec:
    return DeploymentSpec(
        id=uuid.uuid4().hex, name="e", engine="command", served_name="e", command=command
    )


async def wait_for(check: object, timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():  # type: ignore[operator]
        assert loop.time() < deadline, "not within the time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def http() -> object:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_an_engine_is_running_once_it_answers_and_stops_on_request(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    engine = EngineProcess(
        spec(SERVE), builtin_engines()["command"], host="127.0.0.1", log_dir=tmp_path,
        http=http, timing=FAST,
    )  # fmt: skip
    engine.start()
    try:
        await wait_for(lambda: engine.state == "running")
        pid = engine.pid
        assert pid is not None
        assert "serving" in engine.log.tail(10)
    finally:
        await engine.stop()
    assert engine.state == "stopped"
    assert engine.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone (and reaped)


async def test_a_crashing_engine_is_restarted_with_backoff(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    engine = EngineProcess(
        spec("{python} -c 'import sys; sys.exit(3)'"), builtin_engines()["command"],
        host="127.0.0.1", log_dir=tmp_path, http=http, timing=FAST,
    )  # fmt: skip
    engine.start()
    try:
        await wait_for(lambda: engine.restarts >= 3)
        assert engine.state in ("restarting", "starting")
        assert engine.error == "engine exited with status 3"
        assert "engine exited with status 3" in engine.log.tail(20)
    finally:
        await engine.stop()


async def test_a_program_that_does_not_exist_fails_at_once(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    engine = EngineProcess(
        spec("no-such-engine-binary --port {port}"), builtin_engines()["command"],
        host="127.0.0.1", log_dir=tmp_path, http=http, timing=FAST,
    )  # fmt: skip
    engine.start()
    try:
        await wait_for(lambda: engine.state == "failed")
        assert engine.restarts == 0
        assert "no-such-engine-binary" in (engine.error or "")
    finally:
        await engine.stop()


def test_engines_are_started_to_die_with_the_agent() -> None:
    argv = launcher(["llama-server", "-m", "x.gguf"])
    if sys.platform.startswith("linux"):
        assert argv[0] == sys.executable
        assert argv[-3:] == ["llama-server", "-m", "x.gguf"]
    else:
        assert argv == ["llama-server", "-m", "x.gguf"]


async def test_a_stale_heartbeat_answer_neither_stops_a_new_deployment_nor_revives_a_stopped_one(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The server may answer a heartbeat sent before it recorded a deployment (or
    before it removed one): such an answer must not undo what it asked since."""
    agent = NodeAgent(NodeConfig(name="n", models_dir=tmp_path, home=tmp_path, timing=FAST), http)
    try:
        sent = time.monotonic()
        deployment = spec(SERVE)
        await agent.run(deployment)
        await agent.reconcile([], sent)  # answered before the server knew of it
        assert [s.id for s in agent.statuses()] == [deployment.id]
        await agent.reconcile([], time.monotonic())  # the server no longer wants it
        assert agent.statuses() == []

        revived = spec(SERVE)
        await agent.run(revived)
        sent = time.monotonic()
        await agent.stop(revived.id)
        await agent.reconcile([revived], sent)  # answered before the server removed it
        assert agent.statuses() == []
    finally:
        await agent.close()
