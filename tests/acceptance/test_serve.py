"""`sparkplane serve` as a subprocess: it starts and is ready, keeps devices
across restarts (SQLite and PostgreSQL), skips discovery when told, and refuses
invalid settings with a readable message."""

from __future__ import annotations

import json
import signal

import pytest

from tests.fakes.openai_engine import FakeOpenAIEngine
from tests.support.cli import Cli, serving
from tests.support.net import free_port

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


def _events(log: str) -> list[dict[str, object]]:
    """The JSON log lines a server wrote (SPARKPLANE_LOG_FORMAT=json)."""
    events = []
    for line in log.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


async def test_serve_is_ready_and_stops_cleanly_on_sigterm(cli: Cli) -> None:
    async with serving(cli, "--no-discover") as server:
        r = await server.client.get("/readyz")
        assert r.status_code == 200
        assert r.json() == {"status": "ready", "devices": 0}
        assert (await server.client.get("/healthz")).json() == {"status": "ok"}
        schema = (await server.client.get("/openapi.json")).json()
        assert "/v1/chat/completions" in schema["paths"]
        server.signal(signal.SIGTERM)
        assert await server.wait(15) == 0, server.log_text()
    assert (cli.home / "sparkplane.db").is_file()


async def test_no_discover_skips_the_loopback_probe(cli: Cli) -> None:
    # Whether anything answers on the usual engine ports of this machine is not
    # ours to know; the log says whether discovery ran at all. (That discovery
    # finds an engine is tested in test_discovery.py.)
    async with serving(cli, "--no-discover") as server:
        assert (await server.client.get("/api/devices")).json() == {"data": []}
        server.signal(signal.SIGTERM)
        assert await server.wait(15) == 0
    actions = {e.get("action") for e in _events(server.log_text())}
    assert "devices.discover" not in actions, server.log_text()
    assert "server.drain" in actions  # the log is there and parsed


@pytest.mark.slow
async def test_devices_survive_a_restart(cli: Cli, database_url: str) -> None:
    if database_url.startswith("postgresql"):
        cli.settings["DATABASE_URL"] = database_url
    # (On SQLite the default file in the home folder is what a user gets.)
    cli.settings["HEALTH_INTERVAL_S"] = "0.2"
    async with FakeOpenAIEngine() as engine:
        async with serving(cli, "--no-discover") as server:
            r = await server.client.post(
                "/api/devices", json={"url": engine.url, "name": "box1", "priority": 7}
            )
            assert r.status_code == 201, r.text
        assert server.process.returncode == 0, server.log_text()
        added = await cli("devices", "add", engine.url, "--name", "box2")
        assert added.code == 0, added

        async with serving(cli, "--no-discover") as server:
            r = await server.client.get("/api/devices")
            devices = {d["name"]: d for d in r.json()["data"]}
            assert set(devices) == {"box1", "box2"}
            assert devices["box1"]["priority"] == 7
            r = await server.client.post("/v1/chat/completions", json=CHAT)
            assert r.status_code == 200, r.text
            assert r.headers["x-sparkplane-device"] in ("box1", "box2")
    if database_url.startswith("sqlite"):
        assert (cli.home / "sparkplane.db").is_file()


@pytest.mark.parametrize(
    ("env", "toml", "args", "message"),
    [
        ({"PORT": "notaport"}, None, (), "port: Input should be a valid integer"),
        ({}, None, ("--port", "0"), "port: Input should be greater than or equal to 1"),
        ({"DRAIN_TIMEOUT_S": "-1"}, None, (), "drain_timeout_s: Input should be greater"),
        ({}, "bogus_key = 1\n", (), "bogus_key: Extra inputs are not permitted"),
        ({}, "log_level = 'loud'\n", (), "log_level: Input should be"),
        ({}, None, ("--config", "missing.toml"), "config file not found: missing.toml"),
    ],
    ids=["env-port", "flag-port", "env-drain", "toml-unknown-key", "toml-bad-value", "no-file"],
)
async def test_invalid_settings_are_refused_readably(
    cli: Cli, env: dict[str, str], toml: str | None, args: tuple[str, ...], message: str
) -> None:
    cli.settings.update(env)
    if toml is not None:
        (cli.cwd / "sparkplane.toml").write_text(toml)  # picked up from the working folder
    result = await cli("serve", "--no-discover", *args, timeout=30)
    assert result.code != 0, result
    assert "invalid settings" in result.stderr or "not found" in result.stderr, result
    assert message in " ".join(result.stderr.split()), result
    assert "Traceback" not in result.output, result


async def test_a_toml_syntax_error_is_refused_readably(cli: Cli) -> None:
    (cli.cwd / "sparkplane.toml").write_text("[aliases\n")
    result = await cli("serve", "--no-discover", timeout=30)
    assert result.code != 0, result
    assert "Traceback" not in result.output, result
    assert "sparkplane.toml" in result.stderr


async def test_an_unreachable_database_stops_serve(cli: Cli) -> None:
    cli.settings["DATABASE_URL"] = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    result = await cli("serve", "--no-discover", "--port", str(free_port()), timeout=30)
    assert result.code != 0, result
    assert "cannot use the database" in result.stderr, result
    assert "Traceback" not in result.output, result
