"""Driver for test_discovery.py's CLI-level test, run inside a private network
namespace (`unshare --user --map-root-user --net`), where the usual engine ports
on loopback belong to nobody else.

It puts a fake OpenAI engine on vLLM's usual port, then runs `sparkplane serve`
twice on fresh homes: once with --no-discover, once with discovery (the default),
and writes what each saw as JSON to the path given as the first argument.

    python -m tests.acceptance.netns_discovery RESULT.json WORK_FOLDER
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from sparkplane.fleet.service import LOCAL_ENGINES
from tests.fakes.openai_engine import FakeOpenAIEngine
from tests.support.cli import Cli, serving

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
LABEL = "vllm"


class CountingEngine(FakeOpenAIEngine):
    """The fake engine, counting the model-list probes it answers."""

    probes = 0

    async def _models(self, request: web.Request) -> web.Response:
        self.probes += 1
        return await super()._models(request)


async def main(work: Path) -> dict[str, Any]:
    """Run both starts; what they saw."""
    port = dict((label, p) for p, label in LOCAL_ENGINES)[LABEL]
    engine = CountingEngine()
    await engine.start(port=port)
    out: dict[str, Any] = {"engine_url": engine.url, "label": LABEL}
    try:
        cli = Cli(home=work / "home-no-discover", cwd=work)
        async with serving(cli, "--no-discover") as server:
            out["no_discover_devices"] = (await server.client.get("/api/devices")).json()["data"]
            out["no_discover_probes"] = engine.probes

        cli = Cli(home=work / "home-discover", cwd=work)
        async with serving(cli) as server:
            out["discovered"] = (await server.client.get("/api/devices")).json()["data"]
            r = await server.client.post("/v1/chat/completions", json=CHAT)
            out["chat"] = [r.status_code, r.headers.get("x-sparkplane-device")]
        out["discover_probes"] = engine.probes
    finally:
        await engine.stop()
    return out


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(asyncio.run(main(Path(sys.argv[2])))))
