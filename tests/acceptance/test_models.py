"""`sparkplane models list`: the fleet's public names, aliases applied as the
gateway applies them."""

from __future__ import annotations

import json

from tests.fakes.ollama import FakeOllama, OllamaBehaviour
from tests.fakes.openai_engine import EngineBehaviour, FakeOpenAIEngine
from tests.support.cli import Cli


async def test_models_list_applies_aliases(cli: Cli) -> None:
    (cli.cwd / "sparkplane.toml").write_text(
        '[aliases]\n"llama3.1-8b" = ["ollama:llama3.1:8b", "meta-llama/Llama-3.1-8B-Instruct"]\n'
        '"nothing" = "openai:llama3.1:8b"\n'
    )
    vllm = FakeOpenAIEngine(EngineBehaviour(models=["meta-llama/Llama-3.1-8B-Instruct", "emb"]))
    async with vllm, FakeOllama(OllamaBehaviour(models=["llama3.1:8b"])) as ollama:
        assert (await cli("devices", "add", vllm.url, "--name", "rtx")).code == 0
        assert (await cli("devices", "add", ollama.url, "--name", "mac")).code == 0
        listed = await cli("models", "list", "--json")
    assert listed.code == 0, listed
    models = json.loads(listed.stdout)
    assert models["llama3.1-8b"] == ["mac", "rtx"]
    assert models["emb"] == ["rtx"]
    # `openai:` limits the target to OpenAI-compatible engines: the Ollama one does not count.
    assert models["nothing"] == []
