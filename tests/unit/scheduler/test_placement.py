"""Placement: which devices can run a workflow, and in which order."""

from __future__ import annotations

from typing import Any

from sparkplane.backends.workflow import Capabilities
from sparkplane.scheduler import placement
from sparkplane.scheduler.placement import DeviceView
from sparkplane.scheduler.policy import Policy


def loader(*files: str) -> dict[str, Any]:
    return {
        "input": {"required": {"ckpt_name": [list(files), {}]}},
        "output": ["MODEL"],
        "output_node": False,
    }


SAVE = {"input": {"required": {"images": ["IMAGE", {}]}}, "output": [], "output_node": True}
LOAD = {"input": {"required": {"image": [["a.png"], {"image_upload": True}]}}, "output": ["IMAGE"]}


def device(name: str, queue: int = 0, pace: float | None = None, **classes: Any) -> DeviceView:
    caps = Capabilities.from_object_info({"SaveImage": SAVE, "LoadImage": LOAD, **classes})
    return DeviceView(name, 0, False, True, queue, pace, caps)


PROMPT = {
    "1": {"class_type": "Loader", "inputs": {"ckpt_name": "flux.safetensors"}},
    "2": {"class_type": "LoadImage", "inputs": {"image": "mine/upload.png"}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
}


def test_only_devices_with_every_class_and_file_are_capable() -> None:
    devices = [
        device("sdxl-only", Loader=loader("sdxl.safetensors")),
        device("flux", Loader=loader("sdxl.safetensors", "flux.safetensors")),
        device("no-loader"),
    ]
    assert [d.name for d in placement.capable(PROMPT, devices)] == ["flux"]
    gap = placement.missing(PROMPT, devices[0].capabilities)  # type: ignore[arg-type]
    assert [m.describe() for m in gap] == ["ckpt_name 'flux.safetensors' of Loader"]
    assert placement.missing(PROMPT, devices[2].capabilities)[0].describe() == "node class Loader"  # type: ignore[arg-type]


def test_uploads_are_not_device_files() -> None:
    # LoadImage's image names the client's upload; sparkplane copies it over.
    caps = device("d", Loader=loader("flux.safetensors")).capabilities
    assert caps is not None
    assert placement.missing(PROMPT, caps) == []


def test_least_estimated_wait_then_priority() -> None:
    flux = loader("flux.safetensors")
    fast_busy = device("fast", queue=2, pace=1.0, Loader=flux)
    slow_idle = device("slow", queue=0, pace=4.0, Loader=flux)
    assert placement.place(PROMPT, [fast_busy, slow_idle], Policy()).plans[0].device == "fast"
    fast_busier = device("fast", queue=4, pace=1.0, Loader=flux)
    assert placement.place(PROMPT, [fast_busier, slow_idle], Policy()).plans[0].device == "slow"
    a = DeviceView("a", 0, False, True, 0, 1.0, slow_idle.capabilities)
    b = DeviceView("b", 5, False, True, 0, 1.0, slow_idle.capabilities)
    assert placement.place(PROMPT, [a, b], Policy()).plans[0].device == "b"


def test_tenant_policy_and_health_apply() -> None:
    flux = loader("flux.safetensors")
    caps = device("x", Loader=flux).capabilities
    on_prem = DeviceView("home", 0, False, False, 0, None, caps)  # unhealthy
    cloud = DeviceView("cloud", 0, True, True, 0, None, caps)
    assert placement.place(PROMPT, [on_prem, cloud], Policy()).plans == ()
    allowed = Policy(allow_off_prem=True)
    assert [p.device for p in placement.place(PROMPT, [on_prem, cloud], allowed).plans] == ["cloud"]


def test_merged_object_info_unions_options_and_signature_ignores_text() -> None:
    merged = placement.merged(
        [
            device("a", Loader=loader("sdxl.safetensors")).capabilities,  # type: ignore[list-item]
            device("b", Loader=loader("flux.safetensors")).capabilities,  # type: ignore[list-item]
        ]
    )
    assert merged["Loader"]["input"]["required"]["ckpt_name"][0] == [
        "sdxl.safetensors",
        "flux.safetensors",
    ]
    one = {"1": {"class_type": "K", "inputs": {"steps": 20, "text": "a cat"}}}
    two = {"9": {"class_type": "K", "inputs": {"steps": 20, "text": "a dog"}}}
    more = {"1": {"class_type": "K", "inputs": {"steps": 40, "text": "a cat"}}}
    assert placement.signature(one) == placement.signature(two) != placement.signature(more)
