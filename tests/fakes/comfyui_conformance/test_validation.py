"""Validation cases beyond the recordings, derived from the same node definitions."""

from __future__ import annotations

from typing import Any

from tests.fakes.comfyui.config import FakeComfyConfig
from tests.fakes.comfyui.synthetic import txt2img_prompt, with_models
from tests.fakes.comfyui_conformance.flow import chain


async def post(session: Any, fake: Any, prompt: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await session.post(fake.url + "/prompt", json={"prompt": prompt})
    return response.status, await response.json()


async def test_value_above_max(comfy_fake: Any, session: Any) -> None:
    status, body = await post(session, comfy_fake, chain(n1={"height": 20000}))
    error = body["node_errors"]["1"]["errors"][0]
    assert status == 400
    assert error["type"] == "value_bigger_than_max"
    assert error["message"] == "Value 20000 bigger than max of 16384"
    assert error["extra_info"]["input_config"][1]["max"] == 16384


async def test_string_numbers_are_converted_in_place(comfy_fake: Any, session: Any) -> None:
    status, body = await post(session, comfy_fake, chain(n1={"width": "32", "color": 7.9}))
    assert status == 200
    await comfy_fake.wait_idle()
    history = await (await session.get(f"{comfy_fake.url}/history/{body['prompt_id']}")).json()
    inputs = history[body["prompt_id"]]["prompt"][2]["1"]["inputs"]
    assert (inputs["width"], inputs["color"]) == (32, 7)


async def test_bad_linked_input_length(comfy_fake: Any, session: Any) -> None:
    status, body = await post(session, comfy_fake, chain(n2={"image": ["1", 0, 0]}))
    error = body["node_errors"]["2"]["errors"][0]
    assert status == 400
    assert error["type"] == "bad_linked_input"
    assert error["extra_info"]["received_value"] == ["1", 0, 0]


async def test_output_linked_to_a_missing_node(comfy_fake: Any, session: Any) -> None:
    status, body = await post(session, comfy_fake, chain(n3={"images": ["99", 0]}))
    error = body["node_errors"]["3"]["errors"][0]
    assert status == 400
    assert error["type"] == "exception_during_validation"
    assert error["extra_info"]["exception_type"] == "KeyError"
    assert [line.split(", in ")[1].split("\n")[0] for line in error["extra_info"]["traceback"]] == [
        "validate_prompt",
        "validate_inputs",
    ]
    assert body["error"]["details"] == "Exception when validating node: '99'"


async def test_shared_broken_node_lists_every_dependent_output(
    comfy_fake: Any, session: Any
) -> None:
    prompt = chain(n1={"width": 0})
    prompt["4"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    status, body = await post(session, comfy_fake, prompt)
    assert status == 400
    assert list(body["node_errors"]) == ["1"]
    assert body["node_errors"]["1"]["dependent_outputs"] == ["3", "4"]


async def test_second_failing_output_is_appended_to_earlier_failures(
    comfy_fake: Any, session: Any
) -> None:
    # ComfyUI appends the failing output to every failed node seen so far, even one
    # the output does not depend on.
    prompt = chain(n1={"width": 0})
    prompt["5"] = {"class_type": "ImageInvert", "inputs": {}}
    prompt["6"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["5", 0], "filename_prefix": "y"},
    }
    status, body = await post(session, comfy_fake, prompt)
    assert status == 400
    assert body["node_errors"]["1"]["dependent_outputs"] == ["3", "6"]
    assert body["node_errors"]["5"]["dependent_outputs"] == ["6"]


async def test_long_combo_lists_are_not_echoed(comfy_fake_factory: Any, session: Any) -> None:
    fake = await comfy_fake_factory(with_models(FakeComfyConfig(), ["a.safetensors"]))
    prompt = txt2img_prompt("a.safetensors")
    prompt["3"]["inputs"]["sampler_name"] = "nope"
    status, body = await post(session, fake, prompt)
    error = body["node_errors"]["3"]["errors"][0]
    assert status == 400
    assert error["details"].startswith("sampler_name: 'nope' not in (list of length ")
    assert error["extra_info"]["input_config"] is None


async def test_checkpoint_missing_on_this_device(comfy_fake_factory: Any, session: Any) -> None:
    fake = await comfy_fake_factory(with_models(FakeComfyConfig(), ["a.safetensors"]))
    status, body = await post(session, fake, txt2img_prompt("b.safetensors"))
    error = body["node_errors"]["4"]["errors"][0]
    assert status == 400
    assert error["details"] == "ckpt_name: 'b.safetensors' not in ['a.safetensors']"
    assert sorted(body["node_errors"]["4"]["dependent_outputs"]) == ["9"]


async def test_partial_execution_targets_limit_the_outputs(comfy_fake: Any, session: Any) -> None:
    prompt = chain()
    prompt["4"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    body = {"prompt": prompt, "partial_execution_targets": ["4"]}
    answer = await (await session.post(comfy_fake.url + "/prompt", json=body)).json()
    await comfy_fake.wait_idle()
    history = await (await session.get(f"{comfy_fake.url}/history/{answer['prompt_id']}")).json()
    assert history[answer["prompt_id"]]["prompt"][4] == ["4"]
    assert list(history[answer["prompt_id"]]["outputs"]) == ["4"]
