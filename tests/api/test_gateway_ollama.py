"""An Ollama device behind sparkplane, as an OpenAI client sees it."""

from __future__ import annotations

import openai

from tests.conftest import SettingsFactory
from tests.fakes.ollama import FakeOllama, OllamaBehaviour
from tests.support.gateway import running_gateway


async def test_ollama_is_detected_and_spoken_to_natively(make_settings: SettingsFactory) -> None:
    behaviour = OllamaBehaviour(models=["llama3.1:8b"], reply="the sky is blue", chunks=3)
    aliases = {"llama3.1-8b": ["ollama:llama3.1:8b"]}
    async with (
        FakeOllama(behaviour) as ollama,
        running_gateway(make_settings(aliases=aliases)) as gw,
    ):
        r = await gw.client.post("/api/devices", json={"url": ollama.url, "name": "mac"})
        assert r.status_code == 201
        assert r.json()["kind"] == "ollama"
        assert r.json()["models"] == ["llama3.1:8b"]

        client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
        chat = await client.chat.completions.create(
            model="llama3.1-8b", messages=[{"role": "user", "content": "sky?"}], max_tokens=20
        )
        assert chat.choices[0].message.content == "the sky is blue"
        assert chat.model == "llama3.1-8b"
        assert ollama.last.path == "/api/chat"
        assert ollama.last.body["model"] == "llama3.1:8b"
        assert ollama.last.body["options"]["num_predict"] == 20

        text = ""
        stream = await client.chat.completions.create(
            model="llama3.1-8b", messages=[{"role": "user", "content": "sky?"}], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
        assert text == "the sky is blue"

        emb = await client.embeddings.create(model="llama3.1:8b", input=["a", "b"])
        assert len(emb.data) == 2
        assert ollama.last.path == "/api/embed"
        await client.close()
