"""The server's side of the agent protocol, against a real gateway on loopback:
every agent call needs a valid credential; a deployment the agent reports
running becomes a routed device; its node's measured power prices its energy;
a silent node's devices leave routing. The "agent" here is the test itself
speaking the protocol, and the engine a fake OpenAI engine.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from sparkplane.agent.hardware import read_hardware
from sparkplane.agent.node import NodeAgent, NodeConfig
from sparkplane.agent.protocol import DeploymentSpec, DeploymentStatus, Heartbeat, JoinRequest
from sparkplane.agent.service import build_app
from tests.conftest import SettingsFactory
from tests.fakes.nvml import RecordedNVML
from tests.fakes.openai_engine import EngineBehaviour, FakeOpenAIEngine
from tests.support.gateway import Gateway, running_gateway

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def join_request(tmp_path: Path, name: str = "spark") -> dict[str, Any]:
    hardware = read_hardware(tmp_path, nvml_module=RecordedNVML.load("gb10"))
    request = JoinRequest(
        name=name, url="http://127.0.0.1:1", agent_key="spa-" + "k" * 40, hardware=hardware
    )
    return request.model_dump(mode="json")


async def joined(gw: Gateway, tmp_path: Path, name: str = "spark") -> dict[str, Any]:
    _, token = await gw.runtime.nodes.store.create_token(timedelta(hours=1))
    r = await gw.client.post(
        "/api/agent/join", json=join_request(tmp_path, name), headers=bearer(token)
    )
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def test_agent_calls_need_a_valid_credential(
    make_settings: SettingsFactory, database_url: str, tmp_path: Path
) -> None:
    async with running_gateway(make_settings(database_url=database_url)) as gw:
        body = join_request(tmp_path)
        assert (await gw.client.post("/api/agent/join", json=body)).status_code == 401
        for bad in ("spj-000000000000_" + "a" * 43, "sp-000000000000_" + "a" * 43, "x"):
            r = await gw.client.post("/api/agent/join", json=body, headers=bearer(bad))
            assert r.status_code == 401, bad
            assert r.json()["error"]["code"] in ("bad_token", "bad_node_key")
        record, token = await gw.runtime.nodes.store.create_token(timedelta(hours=1))
        await gw.runtime.nodes.store.revoke_token(record.id)
        r = await gw.client.post("/api/agent/join", json=body, headers=bearer(token))
        assert r.status_code == 401

        answer = await joined(gw, tmp_path)
        beat = Heartbeat(hardware=body["hardware"]).model_dump(mode="json")
        r = await gw.client.post(
            "/api/agent/heartbeat", json=beat, headers=bearer(answer["node_key"])
        )
        assert r.status_code == 200, r.text
        forged = answer["node_key"][:-4] + "AAAA"
        r = await gw.client.post("/api/agent/heartbeat", json=beat, headers=bearer(forged))
        assert r.status_code == 401
        # A node's key cannot take another node's name.
        other = join_request(tmp_path, "other")
        r = await gw.client.post("/api/agent/join", json=other, headers=bearer(answer["node_key"]))
        assert r.status_code == 401
        # With its own name it rejoins, and its old key stops working.
        r = await gw.client.post("/api/agent/join", json=body, headers=bearer(answer["node_key"]))
        assert r.status_code == 200
        r = await gw.client.post(
            "/api/agent/heartbeat", json=beat, headers=bearer(answer["node_key"])
        )
        assert r.status_code == 401


async def test_a_running_deployment_is_routed_priced_by_measured_power_and_lost_with_its_node(
    make_settings: SettingsFactory, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url=database_url, node_lost_after_s=1.0)
    # Half a second per answer, so the energy shows at the report's rounding (1 mWh).
    slow = EngineBehaviour(delay_s=0.5)
    async with FakeOpenAIEngine(slow) as engine, running_gateway(settings) as gw:
        answer = await joined(gw, tmp_path)
        store = gw.runtime.nodes.store
        node = await store.get("spark")
        spec = DeploymentSpec(
            id=uuid.uuid4().hex, name="fake", engine="llamacpp", served_name="fake-model"
        )
        await store.add_deployment(
            name="fake", node_id=node.id, model="fake.gguf", served_name="fake-model",
            engine="llamacpp", spec=spec.model_dump(mode="json"), need_bytes=None,
        )  # fmt: skip
        hardware = join_request(tmp_path)["hardware"]
        running = DeploymentStatus(id=spec.id, state="running", port=engine.port)
        beat = Heartbeat(hardware=hardware, deployments=[running]).model_dump(mode="json")
        r = await gw.client.post(
            "/api/agent/heartbeat", json=beat, headers=bearer(answer["node_key"])
        )
        assert r.status_code == 200, r.text
        assert [d["id"] for d in r.json()["deployments"]] == [spec.id]

        reply = await gw.client.post("/v1/chat/completions", json=CHAT)
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-sparkplane-device"] == "spark-fake"
        device = (await gw.client.get("/api/devices/spark-fake")).json()
        assert device["extra"]["node"] == "spark"
        # GB10: the SoC reading (35.62 W) scaled to the system.
        assert device["extra"]["measured_power_w"] == hardware["power"]["watts"]

        await gw.runtime.meter.flush()
        usage = (await gw.client.get("/api/usage")).json()["tenants"][0]["by_device"]["spark-fake"]
        assert usage["energy_basis"] == "measured"
        assert usage["energy_wh"] > 0
        assert usage["energy_measured_wh"] == usage["energy_wh"]

        async def device_enabled() -> bool:
            d = gw.runtime.fleet.by_name("spark-fake")
            return d is not None and d.record.enabled

        # Silent past node_lost_after_s: lost, and its device leaves routing.
        async def lost() -> bool:
            return (await store.get("spark")).status == "lost"

        await _until(lost, 10)
        await _until(_not(device_enabled), 5)
        refused = await gw.client.post("/v1/chat/completions", json=CHAT)
        assert refused.status_code in (404, 503), refused.text

        r = await gw.client.post(
            "/api/agent/heartbeat", json=beat, headers=bearer(answer["node_key"])
        )
        assert r.status_code == 200
        assert await device_enabled()
        assert (await gw.client.post("/v1/chat/completions", json=CHAT)).status_code == 200


def _not(check: Any) -> Any:
    async def negated() -> bool:
        return not await check()

    return negated


async def _until(check: Any, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "not within the time"
        await asyncio.sleep(0.05)


async def test_the_agent_api_answers_only_its_server(tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http:
        agent = NodeAgent(NodeConfig(name="n", models_dir=tmp_path, home=tmp_path), http)
        app = build_app(agent, "spa-right-key-0123456789")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
            assert (await client.get("/v1/status")).status_code == 401
            wrong = await client.get("/v1/status", headers=bearer("spa-wrong-key-0123456789"))
            assert wrong.status_code == 401
            right = await client.get("/v1/status", headers=bearer("spa-right-key-0123456789"))
            assert right.status_code == 200
            assert right.json()["deployments"] == []
            missing = await client.get(
                "/v1/deployments/ab/logs", headers=bearer("spa-right-key-0123456789")
            )
            assert missing.status_code == 404
        await agent.close()


async def test_the_admin_api_for_tokens_and_nodes(
    make_settings: SettingsFactory, database_url: str, tmp_path: Path
) -> None:
    async with running_gateway(make_settings(database_url=database_url)) as gw:
        made = await gw.client.post("/api/node-tokens", json={"ttl_s": 600, "note": "rack 2"})
        assert made.status_code == 201, made.text
        token, token_id = made.json()["token"], made.json()["id"]
        (listed,) = (await gw.client.get("/api/node-tokens")).json()["data"]
        assert "token" not in listed
        assert (listed["state"], listed["note"]) == ("valid", "rack 2")

        body = join_request(tmp_path)
        answer = await gw.client.post("/api/agent/join", json=body, headers=bearer(token))
        assert answer.status_code == 200
        (node,) = (await gw.client.get("/api/nodes")).json()["data"]
        assert node["name"] == "spark"
        assert node["status"] == "online"
        assert node["hardware"]["gpus"][0]["name"] == "NVIDIA GB10"
        assert "agent_key" not in node
        assert (await gw.client.get("/api/deployments")).json()["data"] == []

        revoked = await gw.client.delete(f"/api/node-tokens/{token_id}")
        assert revoked.json()["state"] == "revoked"
        again = await gw.client.post("/api/agent/join", json=body, headers=bearer(token))
        assert again.status_code == 401

        assert (await gw.client.delete("/api/nodes/spark")).status_code == 204
        assert (await gw.client.get("/api/nodes")).json()["data"] == []
        beat = Heartbeat(hardware=body["hardware"]).model_dump(mode="json")
        key = answer.json()["node_key"]
        r = await gw.client.post("/api/agent/heartbeat", json=beat, headers=bearer(key))
        assert r.status_code == 401
        assert (await gw.client.delete("/api/nodes/spark")).status_code == 404
