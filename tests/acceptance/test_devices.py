"""`sparkplane devices`: add (with engine detection), list, probe and remove, and
the errors a user can make, as they see them on the terminal."""

from __future__ import annotations

import json

import pytest

from tests.fakes.openai_engine import EngineBehaviour, FakeOpenAIEngine
from tests.support.cli import Cli
from tests.support.net import free_port


async def test_add_detects_the_engine_and_list_shows_it(cli: Cli) -> None:
    behaviour = EngineBehaviour(models=["fake-model", "fake-embed"])
    async with FakeOpenAIEngine(behaviour) as engine:
        added = await cli("devices", "add", engine.url)
        assert added.code == 0, added
        name = f"openai-127.0.0.1-{engine.port}"
        assert f"added {name} (openai, {engine.url}): 2 model(s)" in added.stdout, added

        table = await cli("devices", "list")
        assert table.code == 0, table
        row = next(line for line in table.stdout.splitlines() if name in line)
        for cell in ("openai", engine.url, "healthy", "fake-embed, fake-model", " ms"):
            assert cell in row, table

        listed = await cli("devices", "list", "--json")
        assert listed.code == 0, listed
        (device,) = json.loads(listed.stdout)
        assert device["name"] == name
        assert device["kind"] == "openai"
        assert device["url"] == engine.url
        assert device["health"] == "healthy"
        assert device["models"] == ["fake-embed", "fake-model"]
        assert device["latency_ms"] > 0
        assert device["has_api_key"] is False


@pytest.mark.slow
async def test_probe_reports_health_then_failure_and_remove_unregisters(cli: Cli) -> None:
    engine = FakeOpenAIEngine()
    async with engine:
        assert (await cli("devices", "add", engine.url, "--name", "box1")).code == 0
        probe = await cli("devices", "probe", "box1")
        assert probe.code == 0, probe
        assert "box1: healthy" in probe.stdout
        assert "fake-model" in probe.stdout

    probe = await cli("devices", "probe", "box1")
    assert probe.code != 0, probe
    assert "box1" in probe.output
    assert str(engine.port) in probe.output  # says where it could not connect
    assert "Traceback" not in probe.output
    (device,) = json.loads((await cli("devices", "list", "--json")).stdout)
    assert device["health"] == "unhealthy"
    assert device["last_error"]

    removed = await cli("devices", "remove", "box1")
    assert removed.code == 0, removed
    assert "removed box1" in removed.stdout
    assert json.loads((await cli("devices", "list", "--json")).stdout) == []
    again = await cli("devices", "remove", "box1")
    assert again.code != 0
    assert "no device named 'box1'" in again.stderr


async def test_list_on_a_new_home_says_how_to_start(cli: Cli) -> None:
    result = await cli("devices", "list")
    assert result.code == 0, result
    assert "no devices yet: sparkplane devices add URL" in result.stdout
    assert json.loads((await cli("devices", "list", "--json")).stdout) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--name", "box1"), "a device named 'box1' exists"),
        (("--kind", "tensorrt"), "unknown kind 'tensorrt'; use auto or one of openai"),
        (("--name", "bad name!"), "device name: 1-64 letters"),
    ],
    ids=["duplicate-name", "unknown-kind", "bad-name"],
)
async def test_add_mistakes_get_a_clear_message(
    cli: Cli, args: tuple[str, ...], message: str
) -> None:
    async with FakeOpenAIEngine() as engine:
        assert (await cli("devices", "add", engine.url, "--name", "box1")).code == 0
        result = await cli("devices", "add", engine.url, *args)
        assert result.code != 0, result
        assert "error:" in result.stderr
        assert message in " ".join(result.stderr.split()), result
        assert "Traceback" not in result.output
        (device,) = json.loads((await cli("devices", "list", "--json")).stdout)
        assert device["name"] == "box1"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost:8000", "device URL must be http(s)://host[:port]: 'localhost:8000'"),
        ("ftp://10.0.0.5", "device URL must be http(s)://host[:port]"),
        ("http://10.0.0.5:99999", "bad port in device URL"),
        ("http://[::1:8000", "malformed device URL"),
        ("http://gpu..lan:8000", "bad host name in device URL"),
    ],
)
async def test_bad_urls_are_refused(cli: Cli, url: str, message: str) -> None:
    result = await cli("devices", "add", url, "--kind", "openai")
    assert result.code != 0, result
    assert message in " ".join(result.stderr.split()), result
    assert "Traceback" not in result.output


async def test_auto_detection_with_nothing_listening_says_so(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = await cli("devices", "add", url)
    assert result.code != 0, result
    text = " ".join(result.stderr.split())
    assert f"no engine sparkplane knows answered at {url}" in text, result
    assert "Or give --kind" in text
    assert "Traceback" not in result.output
    assert json.loads((await cli("devices", "list", "--json")).stdout) == []


async def test_explicit_kind_registers_a_device_that_is_down(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = await cli("devices", "add", url, "--kind", "openai", "--name", "later")
    assert result.code == 0, result
    assert "no models yet" in result.stdout
    (device,) = json.loads((await cli("devices", "list", "--json")).stdout)
    assert (device["name"], device["health"], device["models"]) == ("later", "unknown", [])


async def test_add_prints_only_its_result_on_stdout(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = await cli("devices", "add", url, "--kind", "openai", "--name", "quiet")
    assert result.code == 0, result
    expected = [f"added quiet (openai, {url}): no models yet"]
    assert result.stdout.splitlines() == expected
