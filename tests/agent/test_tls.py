"""TLS both ways, with certificates the test makes (trustme): the agent checks the
server's certificate against `--ca`, the server checks the agent's against
`agent_ca`, and an agent that cannot verify the server does not join."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from tests.agent.live import fleet, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def issue(ca: trustme.CA, folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


async def test_agent_and_server_talk_tls_both_ways(tmp_path: Path, tiny_llama_gguf: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_cert, server_key = issue(ca, tmp_path, "server")
    agent_cert, agent_key = issue(ca, tmp_path, "agent")
    tls = {"TLS_CERT": str(server_cert), "TLS_KEY": str(server_key), "AGENT_CA": str(ca_file)}
    async with fleet(tmp_path, tiny_llama_gguf, extra=tls, scheme="https") as f:
        token = await f.token()
        untrusting = await f.agent("stranger", token=token)
        await until(lambda: _said(untrusting.log, "CERTIFICATE_VERIFY_FAILED"), timeout=30)
        assert await f.nodes() == []
        await untrusting.stop()

        await f.agent(
            "box", "--ca", str(ca_file), "--tls-cert", str(agent_cert), "--tls-key",
            str(agent_key), token=token,
        )  # fmt: skip

        async def online() -> bool:
            node = await f.node("box")
            return node is not None and node["status"] == "online"

        await until(online, timeout=30)
        assert (await f.node("box") or {})["url"].startswith("https://127.0.0.1:")
        deployed = await f.cli("deploy", "tiny.gguf", timeout=120)  # the server calls the agent
        assert deployed.code == 0, str(deployed)
        logs = await f.cli("nodes", "logs", "box", "tiny")  # and so does the CLI
        assert logs.code == 0, str(logs)
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=ca_file), timeout=30
        ) as client:
            answer = await client.post(
                f"{f.url}/v1/chat/completions",
                json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
                      "max_tokens": 2},
            )  # fmt: skip
        assert answer.status_code == 200, answer.text


async def _said(log: Path, text: str) -> bool:
    return text in await asyncio.to_thread(log.read_text, errors="replace")
