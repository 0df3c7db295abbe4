"""A real `sparkplane serve` process: keys and secrets never leak into logs, error
bodies, listings or metrics; HTTPS serves TLS 1.2+ only."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trustme

from tests.fakes.openai_engine import EngineBehaviour, FakeOpenAIEngine
from tests.support.net import free_port

SPARKPLANE = str(Path(sys.executable).parent / "sparkplane")
KEY_RE = re.compile(r"sp-[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


def _cli(home: Path, *args: str) -> str:
    env = {**os.environ, "SPARKPLANE_HOME": str(home)}
    done = subprocess.run([SPARKPLANE, *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@asynccontextmanager
async def _serve(
    home: Path, log: Path, *args: str, scheme: str = "http", verify: ssl.SSLContext | bool = True
) -> AsyncIterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "SPARKPLANE_HOME": str(home),
        "SPARKPLANE_LOG_LEVEL": "debug",
        "SPARKPLANE_LOG_FORMAT": "json",
        "SPARKPLANE_HEALTH_INTERVAL_S": "0.3",
    }
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            SPARKPLANE,
            "serve",
            "--port",
            str(port),
            "--no-discover",
            *args,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(verify=verify) as client:
            for _ in range(100):
                try:
                    if (await client.get(url + "/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"sparkplane did not start; see {log}")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)


async def test_keys_and_secrets_never_leak(tmp_path: Path) -> None:
    home = tmp_path / "home"
    admin_key = KEY_RE.search(_cli(home, "init"))
    assert admin_key is not None
    admin = admin_key.group(0)
    _cli(home, "tenants", "create", "acme")
    member = KEY_RE.search(_cli(home, "keys", "create", "--tenant", "acme", "--role", "member"))
    assert member is not None
    member_key = member.group(0)
    cloud_secret = "sk-cloud-abcdefghijklmnopqrstuvwxyz012345"
    prompt_secret = "my password is hunter2-c0rrect-h0rse"
    log = tmp_path / "serve.log"
    seen: list[str] = []
    failing = FakeOpenAIEngine(EngineBehaviour(fail_status=500), name="failing")
    cloud = FakeOpenAIEngine(EngineBehaviour(api_key=cloud_secret, models=["gpt-x"]), name="cloud")
    async with failing, cloud, _serve(home, log) as url, httpx.AsyncClient(base_url=url) as c:
        as_admin = {"Authorization": f"Bearer {admin}"}
        as_member = {"Authorization": f"Bearer {member_key}"}
        r = await c.post(
            "/api/devices",
            headers=as_admin,
            json={"url": failing.url, "name": "failing", "kind": "openai"},
        )
        assert r.status_code == 201
        r = await c.post(
            "/api/devices",
            headers=as_admin,
            json={"url": cloud.url, "name": "cloud", "off_prem": True, "api_key": cloud_secret},
        )
        assert r.status_code == 201
        tampered = admin[:-2] + ("xy" if admin[-2:] != "xy" else "yz")
        calls = [
            ("GET", "/v1/models", {"Authorization": f"Bearer {tampered}"}, None),
            ("GET", "/api/devices", {"x-api-key": member_key}, None),  # member: 403
            ("GET", "/api/keys", {"Authorization": f"Bearer {admin}x"}, None),
            (
                "POST",
                "/v1/chat/completions",
                as_member,
                {"model": "fake-model", "messages": [{"role": "user", "content": prompt_secret}]},
            ),
            (
                "POST",
                "/v1/chat/completions",
                as_member,
                {"model": "gpt-x", "messages": [{"role": "user", "content": prompt_secret}]},
            ),
            ("POST", "/v1/chat/completions", as_member, {"model": prompt_secret}),
            ("GET", "/api/devices", as_admin, None),
            ("GET", "/api/keys", as_admin, None),
            ("GET", "/metrics", {}, None),
        ]
        for method, path, headers, body in calls:
            r = await c.request(method, path, headers=headers, json=body)
            assert r.status_code < 500 or path == "/v1/chat/completions", (path, r.text)
            seen.append(r.text)
            seen.extend(f"{k}: {v}" for k, v in r.headers.items())
        key_id = member_key[3:15]
        await c.delete(f"/api/keys/{key_id}", headers=as_admin)
        r = await c.get("/v1/models", headers=as_member)
        assert r.status_code == 401
        seen.append(r.text)
    output = log.read_text() + "\n".join(seen)
    assert "request_failed" in output or "circuit" in output  # the errors were logged
    for secret in (admin, member_key, tampered, admin[16:], member_key[16:], cloud_secret):
        assert secret not in output, f"a secret leaked: {secret[:8]}..."
    assert prompt_secret not in log.read_text()


async def test_https_with_tls_12_floor(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    home = tmp_path / "home"
    args = ("--tls-cert", str(cert_file), "--tls-key", str(key_file))
    async with _serve(
        home, tmp_path / "serve.log", *args, scheme="https", verify=client_ctx
    ) as url:
        async with httpx.AsyncClient(verify=client_ctx) as client:
            r = await client.get(url + "/healthz")
            assert r.status_code == 200
        host, port = url.removeprefix("https://").split(":")
        _, writer = await asyncio.open_connection(host, int(port), ssl=client_ctx)
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
        writer.close()
        old = ssl.create_default_context()
        ca.configure_trust(old)
        with warnings.catch_warnings():  # an old client on purpose
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("ALL:@SECLEVEL=0")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.open_connection(host, int(port), ssl=old)
