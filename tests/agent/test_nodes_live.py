"""A real server and real agents running real llama.cpp servers on the tiny GGUF.

What a user sees: `sparkplane deploy` of a GGUF leaves a model answering
through /v1/chat/completions; a crashed engine is restarted and serves again;
a killed agent's node is marked lost and its devices leave routing (and come
back with it); a deployment that does not fit starts nothing and says why.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent.live import LOST_AFTER_S, Fleet, fleet, pids_running, until
from tests.support.cli import KEY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


async def chat(url: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30, **kwargs) as client:
        return await client.post(f"{url}/v1/chat/completions", json=CHAT)


async def joined(f: Fleet, name: str) -> dict[str, Any]:
    async def online() -> dict[str, Any] | None:
        node = await f.node(name)
        return node if node and node["status"] == "online" else None

    found: dict[str, Any] = await until(online, timeout=30)
    return found


async def deploy_tiny(f: Fleet, *args: str) -> None:
    result = await f.cli("deploy", "tiny.gguf", *args, timeout=120)
    assert result.code == 0, str(result)
    assert "running tiny on" in result.stdout


async def test_a_deployed_gguf_answers_and_a_crashed_engine_comes_back(
    tmp_path: Path, tiny_llama_gguf: Path, database_url: str
) -> None:
    async with fleet(tmp_path, tiny_llama_gguf, database_url=database_url) as f:
        await f.agent("box", token=await f.token())
        node = await joined(f, "box")
        assert node["hardware"]["memory"]["free_bytes"] > 0
        (listed,) = node["models"]
        assert listed["name"] == "tiny"
        assert listed["need_bytes"] > 0

        await deploy_tiny(f, "--env", "TINY_MARK=from-deploy")
        answer = await chat(f.url)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-sparkplane-device"] == "box-tiny"
        assert answer.json()["usage"]["completion_tokens"] == 4

        logs = await f.cli("nodes", "logs", "box", "tiny", "--lines", "100000")
        assert logs.code == 0, str(logs)
        assert "llama_cpp.server" in logs.stdout  # the agent's start line
        assert "GET /v1/models" in logs.stdout  # the engine's own output

        (engine,) = pids_running(f.engine_marker)
        environ = (await asyncio.to_thread(Path(f"/proc/{engine}/environ").read_bytes)).split(b"\0")
        assert b"TINY_MARK=from-deploy" in environ
        os.kill(engine, signal.SIGKILL)

        async def restarted() -> bool:
            node = await f.node("box")
            assert node is not None
            (d,) = node["deployments"]
            return bool(d["restarts"] >= 1 and d["state"] == "running")

        await until(restarted, timeout=60)
        assert pids_running(f.engine_marker) != [engine]

        async def answers_again() -> bool:
            return (await chat(f.url)).status_code == 200

        await until(answers_again, timeout=30)
        (device,) = await f.devices()
        assert device["name"] == "box-tiny"
        assert device["enabled"]

        result = await f.cli("undeploy", "tiny")
        assert result.code == 0, str(result)
        assert await f.devices() == []
        await until(lambda: _none_left(f), timeout=15)


async def _none_left(f: Fleet) -> bool:
    return not pids_running(f.engine_marker)


async def test_a_killed_agent_leaves_routing_and_comes_back_with_its_node(
    tmp_path: Path, tiny_llama_gguf: Path
) -> None:
    async with fleet(tmp_path, tiny_llama_gguf) as f:
        agent = await f.agent("box", token=await f.token())
        await joined(f, "box")
        await deploy_tiny(f)
        assert (await chat(f.url)).status_code == 200

        await agent.stop(signal.SIGKILL)

        async def lost() -> bool:
            node = await f.node("box")
            return node is not None and node["status"] == "lost"

        await until(lost, timeout=LOST_AFTER_S * 5)
        (device,) = await f.devices()
        assert device["enabled"] is False
        refused = await chat(f.url)
        assert refused.status_code in (404, 503), refused.text
        # The engine died with its agent: nothing is left running on the machine.
        await until(lambda: _none_left(f), timeout=10)

        # Restarted without a token: it rejoins with the node key it kept, and the
        # server hands it its deployment back.
        await f.agent("box")
        await joined(f, "box")

        async def serving() -> bool:
            return (await chat(f.url)).status_code == 200

        await until(serving, timeout=60)


async def test_a_deployment_that_does_not_fit_is_refused_and_starts_nothing(
    tmp_path: Path, tiny_llama_gguf: Path
) -> None:
    # With API keys required: agents still join (they have credentials of their own).
    async with fleet(tmp_path, tiny_llama_gguf, extra={"AUTH_ENABLED": "true"}) as f:
        found = KEY.search(f.server.text())
        assert found is not None, f.server.text()
        admin = {"Authorization": f"Bearer {found.group(0)}"}
        await f.agent("small", "--memory-gib", "0.1", token=await f.token())
        await joined(f, "small")
        result = await f.cli("deploy", "tiny.gguf")
        assert result.code == 1, str(result)
        assert "cannot deploy tiny.gguf: needs 0." in result.stderr
        assert "GiB, small has 0.1 free" in result.stderr

        async with httpx.AsyncClient(base_url=f.url) as client:
            keyless = await client.post("/api/deployments", json={"model": "tiny"})
            answer = await client.post("/api/deployments", json={"model": "tiny"}, headers=admin)
        assert keyless.status_code == 401
        assert answer.status_code == 409
        assert answer.json()["error"]["code"] == "no_node_fits"
        assert "small has 0.1 free" in answer.json()["error"]["message"]

        table = await f.cli("nodes", "list")
        assert "small" in table.stdout
        assert "online" in table.stdout
        assert "0.1 / 0.1 GiB system" in table.stdout
        node = await f.node("small")
        assert node is not None
        assert node["deployments"] == []
        assert await f.devices() == []
        assert pids_running(f.engine_marker) == []


async def test_a_wrong_expired_or_revoked_token_is_refused(
    tmp_path: Path, tiny_llama_gguf: Path
) -> None:
    async with fleet(tmp_path, tiny_llama_gguf) as f:
        fake = "spj-000000000000_" + "x" * 43
        refused = [await f.agent("a", token=fake), await f.agent("b", token="nonsense")]
        expiring = await f.token("--ttl", "1s")
        revoked = await f.token()
        revoked_id = revoked.removeprefix("spj-").split("_")[0]
        assert (await f.cli("nodes", "revoke", revoked_id)).code == 0
        await until(_later(1.2), timeout=5)
        refused += [await f.agent("c", token=expiring), await f.agent("d", token=revoked)]
        for agent in refused:
            assert await agent.proc.wait() == 1
            assert "the join token is unknown, expired or revoked" in agent.text()
        assert await f.nodes() == []
        tokens = await f.cli("nodes", "tokens", "--json")
        states = sorted(t["state"] for t in json.loads(tokens.stdout))
        assert states == ["expired", "revoked"]


def _later(seconds: float) -> Any:
    at = time.monotonic() + seconds

    async def passed() -> bool:
        return time.monotonic() >= at

    return passed
