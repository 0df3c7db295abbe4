"""The memory-aware scheduler, live: engines load and evict on sparkplane's word,
a full model queue answers 429, and a flooding tenant does not starve another."""

from __future__ import annotations

import asyncio
import copy

import httpx

from sparkplane.fleet.load import plan_figures
from sparkplane.planner import builtin_profiles
from sparkplane.security.rbac import Role
from tests.conftest import SettingsFactory
from tests.engines.llama_server import LlamaServer
from tests.fakes.ollama import FakeOllama, OllamaBehaviour
from tests.fakes.ollama_memory import MemoryKnobs
from tests.fakes.openai_engine import EngineBehaviour, FakeOpenAIEngine
from tests.support.eventually import eventually
from tests.support.gateway import Gateway, running_gateway
from tests.support.security import make_tenant

GIB = 1 << 30
MODELS = ["llama3.1:8b", "qwen2.5:7b", "mistral:7b"]


def chat(model: str, *, stream: bool = False, max_tokens: int = 16) -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": max_tokens,
        "stream": stream,
    }


async def add_device(
    gw: Gateway, url: str, name: str, headers: dict[str, str] | None = None, **extra: object
) -> None:
    r = await gw.client.post("/api/devices", json={"url": url, "name": name}, headers=headers)
    assert r.status_code == 201, r.text
    if extra:
        await gw.runtime.store.edit(name, extra=extra)
    await gw.runtime.health.round()


def sizes() -> dict[str, int]:
    """What the planner says each model takes on a 4090 at Q4_K_M (the fake reports the same)."""
    profile = builtin_profiles()["rtx-4090"]
    out = {}
    for model in MODELS:
        figures = plan_figures(model, profile, "q4_k_m")
        assert figures is not None
        out[model] = figures.bytes
    return out


async def test_cold_model_loads_on_the_best_device_and_an_idle_one_is_evicted(
    make_settings: SettingsFactory,
) -> None:
    bytes_of = sizes()
    big = sorted(bytes_of.values())
    # Any two models fit, all three do not.
    memory_gib = (big[1] + big[2]) / GIB + 0.25
    assert sum(big) / GIB > memory_gib
    knobs = MemoryKnobs(sizes=bytes_of, max_loaded=None)
    fast = OllamaBehaviour(models=MODELS, memory=knobs, chunks=4)
    # The Spark lacks mistral: when it is asked for, only the 4090 can take it.
    slow = OllamaBehaviour(models=MODELS[:2], memory=copy.deepcopy(knobs))
    settings = make_settings(min_resident_s=0.0)
    async with (
        FakeOllama(fast) as rtx,
        FakeOllama(slow) as spark,
        running_gateway(settings) as gw,
    ):
        common = {"memory_gib": memory_gib, "quant": "q4_k_m"}
        await add_device(gw, rtx.url, "rtx", profile="rtx-4090", **common)
        await add_device(gw, spark.url, "spark", profile="dgx-spark", **common)
        assert not rtx.memory.resident
        assert not spark.memory.resident

        # Cold everywhere: loaded where it completes soonest (the 4090 decodes 3x faster).
        r = await gw.client.post("/v1/chat/completions", json=chat("llama3.1:8b"))
        assert r.status_code == 200, r.text
        assert r.headers["x-sparkplane-device"] == "rtx"
        assert [(e.kind, e.model) for e in rtx.memory.events] == [("load", "llama3.1:8b")]
        assert spark.memory.events == []
        r = await gw.client.post("/v1/chat/completions", json=chat("qwen2.5:7b"))
        assert r.headers["x-sparkplane-device"] == "rtx"
        assert set(rtx.memory.resident) == {"llama3.1:8b", "qwen2.5:7b"}

        # A slow stream keeps llama busy while mistral needs room on the same device.
        fast.chunk_delay_s = 0.3
        busy = asyncio.create_task(
            gw.client.post("/v1/chat/completions", json=chat("llama3.1:8b", stream=True))
        )
        await eventually(
            lambda: any(run.model == "llama3.1:8b" and not run.ended for run in rtx.memory.runs)
        )
        r = await gw.client.post("/v1/chat/completions", json=chat("mistral:7b"))
        assert r.status_code == 200, r.text
        assert r.headers["x-sparkplane-device"] == "rtx"
        assert (await busy).status_code == 200
        kinds = [(e.kind, e.model) for e in rtx.memory.events]
        # sparkplane made room itself (an unload it asked for, not Ollama's own
        # eviction), and took the idle model, never the one with work in flight.
        assert kinds[-2:] == [("unload", "qwen2.5:7b"), ("load", "mistral:7b")]
        assert all(run.undisturbed for run in rtx.memory.runs)
        assert set(rtx.memory.resident) == {"llama3.1:8b", "mistral:7b"}

        shown = (await gw.client.get("/api/devices/rtx")).json()
        history = [(h["kind"], h["model"]) for h in reversed(shown["history"])]
        assert history == [
            ("load", "llama3.1:8b"),
            ("load", "qwen2.5:7b"),
            ("evict", "qwen2.5:7b"),
            ("load", "mistral:7b"),
        ]
        resident = {m["model"] for m in shown["memory"]["models"] if m["resident"]}
        assert resident == {"llama3.1:8b", "mistral:7b"}
        metrics = (await gw.client.get("/metrics")).text
        assert 'sparkplane_model_loads_total{device="rtx",model="mistral:7b",outcome="ok"} 1.0' in (
            metrics
        )
        assert (
            'sparkplane_model_evictions_total{device="rtx",model="qwen2.5:7b",outcome="ok"} 1.0'
            in metrics
        )


async def test_a_full_model_queue_answers_429_with_retry_after_and_loses_nothing(
    make_settings: SettingsFactory,
) -> None:
    behaviour = OllamaBehaviour(models=["llama3.2:latest"], delay_s=1.0)
    settings = make_settings(device_parallel=1, device_saturation=1, model_queue_limit=1)
    async with FakeOllama(behaviour) as ollama, running_gateway(settings) as gw:
        await add_device(gw, ollama.url, "box")
        body = chat("llama3.2:latest")
        first = asyncio.create_task(gw.client.post("/v1/chat/completions", json=body))
        await asyncio.sleep(0.3)
        second = asyncio.create_task(gw.client.post("/v1/chat/completions", json=body))
        await asyncio.sleep(0.3)
        refused = await gw.client.post("/v1/chat/completions", json=body)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "model_queue_full"
        assert int(refused.headers["retry-after"]) >= 1
        # The two accepted requests both complete.
        assert [(await t).status_code for t in (first, second)] == [200, 200]


async def test_a_flooding_tenant_does_not_starve_a_quiet_one(
    make_settings: SettingsFactory, llama_engine: LlamaServer
) -> None:
    settings = make_settings(
        auth_enabled=True, device_parallel=1, device_saturation=1, model_queue_limit=100
    )
    async with running_gateway(settings) as gw:
        flood = await make_tenant(gw.runtime, "flood", roles=(Role.ADMIN, Role.MEMBER))
        quiet = await make_tenant(gw.runtime, "quiet", roles=(Role.MEMBER,))
        await add_device(gw, llama_engine.base_url, "llama", flood.headers(Role.ADMIN))
        done: list[str] = []

        async def ask(who: str, headers: dict[str, str]) -> httpx.Response:
            r = await gw.client.post(
                "/v1/chat/completions",
                json=chat("tiny-llama", max_tokens=24),
                headers=headers,
                timeout=120,
            )
            done.append(who)
            return r

        floods = [asyncio.create_task(ask("flood", flood.headers(Role.MEMBER))) for _ in range(10)]
        await eventually(lambda: gw.runtime.admission.waiting("tiny-llama") == 9)
        quiets = [asyncio.create_task(ask("quiet", quiet.headers(Role.MEMBER))) for _ in range(2)]
        responses = await asyncio.gather(*floods, *quiets)
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
        # First come, first served would finish the quiet tenant 11th and 12th.
        positions = [i for i, who in enumerate(done) if who == "quiet"]
        assert positions[-1] <= 4, done


async def test_cloud_is_used_only_when_allowed_and_local_misses_the_deadline(
    make_settings: SettingsFactory,
) -> None:
    model = "llama3.1:8b"
    async with (
        FakeOpenAIEngine(EngineBehaviour(models=[model]), name="local") as local,
        FakeOpenAIEngine(EngineBehaviour(models=[model]), name="cloud") as cloud,
        running_gateway(make_settings(allow_off_prem=True)) as gw,
    ):
        await add_device(gw, local.url, "spark", profile="dgx-spark", quant="q4_k_m")
        r = await gw.client.post(
            "/api/devices", json={"url": cloud.url, "name": "cloud", "off_prem": True}
        )
        assert r.status_code == 201
        await gw.runtime.store.edit("cloud", extra={"price_per_mtok": 0.6, "parallel": 1000})
        await gw.runtime.health.round()
        body = chat(model, max_tokens=1000)  # planned ~25 s on a Spark at Q4_K_M
        urgent = {"x-sparkplane-deadline": "2"}
        r = await gw.client.post("/v1/chat/completions", json=body, headers=urgent)
        assert r.headers["x-sparkplane-device"] == "cloud"
        plain = await gw.client.post("/v1/chat/completions", json=body)
        assert plain.headers["x-sparkplane-device"] == "spark"
        relaxed = {"x-sparkplane-deadline": "600"}
        r = await gw.client.post("/v1/chat/completions", json=body, headers=relaxed)
        assert r.headers["x-sparkplane-device"] == "spark"
        bad = await gw.client.post(
            "/v1/chat/completions", json=body, headers={"x-sparkplane-deadline": "soon"}
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "deadline"
