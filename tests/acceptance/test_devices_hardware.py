"""`sparkplane devices hardware` and `devices show`: telling the scheduler what a
device is, and seeing what sits in its memory and its history."""

from __future__ import annotations

import json

from tests.fakes.ollama import FakeOllama, OllamaBehaviour
from tests.support.cli import Cli


async def test_hardware_is_stored_and_bad_values_are_refused(cli: Cli) -> None:
    async with FakeOllama(OllamaBehaviour(models=["llama3.1:8b"])) as ollama:
        assert (await cli("devices", "add", ollama.url, "--name", "spark")).code == 0
    set_ = await cli(
        "devices", "hardware", "spark", "--profile", "dgx-spark", "--parallel", "8",
        "--quant", "q4_k_m",
    )  # fmt: skip
    assert set_.code == 0, set_
    assert '"profile": "dgx-spark"' in set_.stdout
    assert '"parallel": 8' in set_.stdout
    (device,) = json.loads((await cli("devices", "list", "--json")).stdout)
    assert device["extra"] == {"profile": "dgx-spark", "parallel": 8, "quant": "q4_k_m"}

    unknown = await cli("devices", "hardware", "spark", "--profile", "gtx-280")
    assert unknown.code == 1
    assert "unknown device profile 'gtx-280'" in unknown.output
    nothing = await cli("devices", "hardware", "spark")
    assert nothing.code == 1
    assert "--profile" in nothing.output
    negative = await cli("devices", "hardware", "spark", "--memory-gib", "-3")
    assert negative.code == 1
    assert "memory_gib must be a number above 0" in negative.output
    missing = await cli("devices", "hardware", "nope", "--parallel", "2")
    assert missing.code == 1
    assert "nope" in missing.output


async def test_show_prints_the_device_and_says_when_nothing_is_reported(cli: Cli) -> None:
    async with FakeOllama(OllamaBehaviour(models=["llama3.1:8b"])) as ollama:
        assert (await cli("devices", "add", ollama.url, "--name", "box")).code == 0
    shown = await cli("devices", "show", "box")
    assert shown.code == 0, shown
    assert "box" in shown.stdout
    assert "llama3.1:8b" in shown.stdout
    assert "in memory now: nothing reported" in shown.stdout
    doc = json.loads((await cli("devices", "show", "box", "--json")).stdout)
    assert doc["name"] == "box"
    assert doc["residency"] == []
    assert doc["history"] == []
    missing = await cli("devices", "show", "nope")
    assert missing.code == 1
    assert "no device named 'nope'" in missing.output
