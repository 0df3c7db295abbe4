"""A ComfyUI app, unchanged, against sparkplane with three different devices behind it:
ComfyUI's websocket API example flow, placement by node classes and model files,
and ComfyUI's 400 answers for prompts no device can run."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from tests.conftest import SettingsFactory
from tests.fakes.comfyui import (
    FakeComfyConfig,
    FakeComfyUI,
    custom_node,
    txt2img_prompt,
    with_models,
)
from tests.fakes.comfyui_conformance.flow import CHAIN
from tests.fakes.comfyui_conformance.support import canon, text
from tests.support.comfy import ComfyClient, comfy_gateway, fleet
from tests.support.gateway import Gateway

NAMES = ("rtx", "spark", "cpu")


def three_devices() -> list[FakeComfyConfig]:
    rtx = with_models(FakeComfyConfig(speed=2.0), ["sdxl.safetensors"], ["detail.safetensors"])
    spark = with_models(FakeComfyConfig(), ["sdxl.safetensors", "flux1-dev.safetensors"])
    spark = spark.with_nodes(
        custom_node(
            "ControlNetLoader", {"control_net_name": [["canny.safetensors"]]}, ["CONTROL_NET"]
        )
    )
    return [rtx, spark, FakeComfyConfig()]


@pytest.fixture
async def setup(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> AsyncIterator[tuple[Gateway, dict[str, FakeComfyUI], ComfyClient]]:
    async with fleet(three_devices()) as fakes, comfy_gateway(make_settings(), fakes, NAMES) as gw:
        yield gw, dict(zip(NAMES, fakes, strict=True)), ComfyClient(session, gw.url)


def ran_on(fakes: dict[str, FakeComfyUI]) -> dict[str, int]:
    return {name: len(fake.stats.accepted) for name, fake in fakes.items()}


async def test_comfyui_websocket_example_flow_with_three_devices(setup: Any) -> None:
    _gw, fakes, client = setup
    ws = await client.connect()
    prompt_id = await client.run(ws, txt2img_prompt("flux1-dev.safetensors", steps=3))
    images = await client.images(prompt_id)
    assert len(images) == 1
    assert images[0].startswith(b"\x89PNG")
    assert ran_on(fakes) == {"rtx": 0, "spark": 1, "cpu": 0}  # only spark holds flux
    frames = [f["message"] for f in ws.frames if f["frame"] == "text"]
    kinds = [m["type"] for m in frames]
    # ComfyUI's order: status x2, execution_start, execution_cached, nodes..., success,
    # status, executing null; every prompt_id is sparkplane's.
    assert kinds[:4] == ["status", "status", "status", "execution_start"]
    assert kinds[-3:] == ["execution_success", "status", "executing"]
    assert kinds.count("progress") == 3
    ids = {m["data"]["prompt_id"] for m in frames if "prompt_id" in m["data"]}
    assert ids == {prompt_id}
    assert frames[-2]["data"] == {"status": {"exec_info": {"queue_remaining": 0}}}
    entry = (await client.history(prompt_id))[prompt_id]
    assert entry["prompt"][1] == prompt_id
    assert entry["prompt"][3] == {"client_id": client.client_id}
    assert entry["status"]["status_str"] == "success"
    assert [m[0] for m in entry["status"]["messages"]] == [
        "execution_start",
        "execution_cached",
        "execution_success",
    ]
    await ws.close()


async def test_work_goes_where_the_nodes_and_files_are(setup: Any) -> None:
    _gw, fakes, client = setup
    ws = await client.connect()
    lora = txt2img_prompt("sdxl.safetensors")
    lora["10"] = {
        "class_type": "LoraLoader",
        "inputs": {
            "model": ["4", 0],
            "clip": ["4", 1],
            "lora_name": "detail.safetensors",
            "strength_model": 1.0,
            "strength_clip": 1.0,
        },
    }
    lora["3"]["inputs"]["model"] = ["10", 0]
    await client.run(ws, lora)
    assert ran_on(fakes) == {"rtx": 1, "spark": 0, "cpu": 0}
    controlnet = copy.deepcopy(CHAIN)
    controlnet["9"] = {
        "class_type": "ControlNetLoader",
        "inputs": {"control_net_name": "canny.safetensors"},
    }
    controlnet["9"]["class_type"] = "ControlNetLoader"
    status, answer = await client.post({"prompt": controlnet, "client_id": client.client_id})
    # ControlNetLoader is no output node and feeds nothing: ComfyUI would accept and skip it.
    assert status == 200, answer
    await ws.wait_for(text("executing", node=None, prompt_id=answer["prompt_id"]))
    assert ran_on(fakes)["spark"] == 1
    await ws.close()


async def test_recorded_nodes_run_on_any_device_and_spread_by_load(setup: Any) -> None:
    _gw, fakes, client = setup
    ws = await client.connect()
    ids = [await client.queue(CHAIN) for _ in range(9)]
    for prompt_id in ids:
        await ws.wait_for(text("executing", node=None, prompt_id=prompt_id), within_s=30)
    counts = ran_on(fakes)
    assert sum(counts.values()) == 9
    assert sum(1 for c in counts.values() if c > 0) >= 2, counts
    await ws.close()


async def test_unknown_node_class_gets_comfyuis_answer(setup: Any, fx: Callable[..., Any]) -> None:
    _gw, fakes, client = setup
    recording = fx("prompt_error_unknown_node")
    status, body = await client.post(recording["request"]["body"])
    assert status == 400
    assert body == recording["response"]["body"]
    assert ran_on(fakes) == {"rtx": 0, "spark": 0, "cpu": 0}


@pytest.mark.parametrize("name", ["prompt_error_missing_input", "prompt_error_missing_image_file"])
async def test_missing_input_gets_comfyuis_answer(
    name: str, setup: Any, fx: Callable[..., Any]
) -> None:
    _gw, _fakes, client = setup
    recording = fx(name)
    status, body = await client.post(recording["request"]["body"])
    assert (status, body) == (400, recording["response"]["body"])


async def test_a_model_file_no_device_has_is_named(setup: Any) -> None:
    _gw, _fakes, client = setup
    status, body = await client.post({"prompt": txt2img_prompt("sd3.safetensors")})
    assert status == 400
    error = body["node_errors"]["4"]["errors"][0]
    assert error["type"] == "value_not_in_list"
    assert "sd3.safetensors" in error["details"]


async def test_nodes_and_files_spread_over_devices_no_one_has_all(setup: Any) -> None:
    _gw, fakes, client = setup
    prompt = txt2img_prompt("flux1-dev.safetensors")  # flux: spark only
    prompt["10"] = {
        "class_type": "LoraLoader",  # detail LoRA: rtx only
        "inputs": {
            "model": ["4", 0],
            "clip": ["4", 1],
            "lora_name": "detail.safetensors",
            "strength_model": 1.0,
            "strength_clip": 1.0,
        },
    }
    prompt["3"]["inputs"]["model"] = ["10", 0]
    status, body = await client.post({"prompt": prompt})
    assert status == 400
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert (
        "detail.safetensors" in body["error"]["details"] or "flux1-dev" in body["error"]["details"]
    )
    assert body["node_errors"]
    assert ran_on(fakes) == {"rtx": 0, "spark": 0, "cpu": 0}


async def test_client_chosen_prompt_id_and_idempotency_key(setup: Any) -> None:
    gw, _fakes, client = setup
    ws = await client.connect()
    body = {"prompt": CHAIN, "client_id": client.client_id, "prompt_id": "my-own-id"}
    status, answer = await client.post(body)
    assert (status, answer["prompt_id"]) == (200, "my-own-id")
    await ws.wait_for(text("executing", node=None, prompt_id="my-own-id"))
    first = await client.post({"prompt": CHAIN}, **{"Idempotency-Key": "k-1"})
    again = await client.post({"prompt": CHAIN}, **{"Idempotency-Key": "k-1"})
    assert first == again
    assert first[0] == 200
    status, clash = await client.post(
        {"prompt": CHAIN | {"9": CHAIN["3"]}, "prompt_id": "my-own-id"}
    )
    assert status == 400
    assert clash["error"]["type"] == "invalid_prompt"
    await gw.runtime.comfy.store.get(first[1]["prompt_id"], "")
    jobs = await gw.runtime.comfy.store.list_jobs(None)
    assert len(jobs) == 2
    await ws.close()


async def test_system_stats_and_object_info_cover_the_fleet(setup: Any) -> None:
    _gw, _fakes, client = setup
    status, stats = await client.get("/system_stats")
    assert status == 200
    assert [d["name"].split(":")[0] for d in stats["devices"]] == ["cpu", "rtx", "spark"]
    assert stats["system"]["comfyui_version"] == "0.3.64"
    status, info = await client.get("/object_info")
    assert {"ControlNetLoader", "LoraLoader", "EmptyImage", "SaveImage"} <= set(info)
    ckpts = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    assert sorted(ckpts) == ["flux1-dev.safetensors", "sdxl.safetensors"]
    assert (await client.get("/object_info/NoSuchNode")) == (200, {})
    status, one = await client.get("/api/object_info/LoraLoader")
    assert list(one) == ["LoraLoader"]
    assert canon(await client.get("/features"), {}) == canon(
        (200, {"supports_preview_metadata": True, "max_upload_size": 104857600}), {}
    )
