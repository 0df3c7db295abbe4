"""Configuration of one fake ComfyUI server: node classes, timing, faults, latency.

Every duration is in seconds of the fake's clock and is divided by `speed`, so two fakes
with speed 1.0 and 2.0 model a slow and a fast device running the same graph.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DATA_DIR = Path(__file__).resolve().parent / "data"

FaultAction = Literal["error", "oom", "hang", "die", "freeze", "http_error"]


@dataclass(frozen=True)
class NodeSpec:
    """One node class: its /object_info entry and how the fake runs it.

    `behavior` names a runner in nodes.py (one per recorded class, "generic" for
    synthetic ones). `seconds` is the work before any progress steps; a node with
    `progress_input` reports one progress step per unit of that input (KSampler: steps),
    each taking `step_seconds`; `previews` adds a JPEG preview to every step.
    `always_changed` mimics IS_CHANGED returning a new value each time (never cached).
    """

    definition: dict[str, Any]
    behavior: str = "generic"
    seconds: float = 0.0
    step_seconds: float = 0.0
    progress_input: str | None = None
    previews: bool = False
    always_changed: bool = False

    @property
    def name(self) -> str:
        """The class name (`class_type` in prompts)."""
        return str(self.definition["name"])

    @property
    def output_node(self) -> bool:
        """True for nodes that end a branch (SaveImage...)."""
        return bool(self.definition.get("output_node", False))

    @property
    def return_types(self) -> tuple[Any, ...]:
        """RETURN_TYPES, a tuple as in ComfyUI (indexing errors read the same)."""
        return tuple(self.definition.get("output", []))


@dataclass(frozen=True)
class Fault:
    """A failure to inject when a matching node runs.

    Matches on `node_class` and/or `node_id` (None matches anything) and fires when the
    node starts, or at progress step `at_step` (1-based) of a progress node.
    `times` is how many executions it affects (None: every one).

    Actions: "error" raises `exception_type: message` (an execution_error frame);
    "oom" raises a torch.OutOfMemoryError with ComfyUI's OOM tips; "hang" never
    finishes (interruptible only if `interruptible`); "die" kills the server (sockets
    reset, port closed); "freeze" keeps the port open but answers nothing;
    "http_error" answers every request with `http_status` and closes websockets.
    """

    action: FaultAction
    node_class: str | None = None
    node_id: str | None = None
    at_step: int | None = None
    times: int | None = 1
    exception_type: str = "RuntimeError"
    message: str = "fault injected by the fake ComfyUI server"
    interruptible: bool = False
    http_status: int = 500

    def matches(self, node_id: str, class_type: str, step: int | None) -> bool:
        """True if this fault applies to the node at this point of its execution."""
        return (
            (self.node_class is None or self.node_class == class_type)
            and (self.node_id is None or self.node_id == node_id)
            and self.at_step == step
        )


def recorded_definitions() -> dict[str, dict[str, Any]]:
    """The 8 /object_info entries recorded from ComfyUI 0.3.64 (fresh copies)."""
    with (DATA_DIR / "recorded_object_info.json").open() as f:
        return dict(json.load(f))


def recorded_nodes() -> dict[str, NodeSpec]:
    """NodeSpecs for the recorded node classes, run by their dedicated behaviours."""
    defs = recorded_definitions()
    return {
        name: NodeSpec(
            definition=entry,
            behavior=name,
            # SaveImageWebsocket.IS_CHANGED returns time.time(): it always re-runs.
            always_changed=name == "SaveImageWebsocket",
        )
        for name, entry in defs.items()
    }


def recorded_system_stats() -> dict[str, Any]:
    """The /system_stats body of the recorded CPU server."""
    ram_total, ram_free = 25276510208, 23395045376
    return {
        "system": {
            "os": "posix",
            "ram_total": ram_total,
            "ram_free": ram_free,
            "comfyui_version": "0.3.64",
            "required_frontend_version": "1.27.10",
            "installed_templates_version": "0.1.95",
            "required_templates_version": "0.1.95",
            "python_version": "3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]",
            "pytorch_version": "2.13.0+cpu",
            "embedded_python": False,
            "argv": ["main.py", "--cpu", "--listen", "127.0.0.1", "--port", "8188"],
        },
        "devices": [
            {
                "name": "cpu",
                "type": "cpu",
                "index": None,
                "vram_total": ram_total,
                "vram_free": ram_free,
                "torch_vram_total": ram_total,
                "torch_vram_free": ram_free,
            }
        ],
    }


def gpu_system_stats(
    name: str = "NVIDIA GeForce RTX 4090",
    vram_total: int = 25_757_220_864,
    vram_free: int = 24_000_000_000,
    ram_total: int = 67_000_000_000,
    ram_free: int = 60_000_000_000,
) -> dict[str, Any]:
    """A /system_stats body for a CUDA device (not recorded; shaped like the CPU one)."""
    stats = recorded_system_stats()
    stats["system"].update(ram_total=ram_total, ram_free=ram_free, pytorch_version="2.8.0+cu128")
    stats["system"]["argv"] = ["main.py", "--listen", "0.0.0.0", "--port", "8188"]
    stats["devices"] = [
        {
            "name": f"cuda:0 {name} : cudaMallocAsync",
            "type": "cuda",
            "index": 0,
            "vram_total": vram_total,
            "vram_free": vram_free,
            "torch_vram_total": 0,
            "torch_vram_free": 0,
        }
    ]
    return stats


@dataclass
class FakeComfyConfig:
    """Everything that makes one fake device differ from another.

    - nodes: class name -> NodeSpec (default: the 8 recorded classes).
    - model_files: folder -> file names, served by /models and /models/{folder}.
    - speed: divides every duration; node_seconds / step_seconds override a class's
      NodeSpec.seconds / step_seconds.
    - faults: failures to inject (see Fault); more can be added at run time.
    - frame_latency_s: every websocket frame leaves this long after it was produced.
    - gc_pause_s / gc_interval_s: after the first prompt, and after a prompt that ends
      more than gc_interval_s after the previous pause, the server stalls for gc_pause_s
      (frames, HTTP answers and the worker wait), like ComfyUI's gc.collect().
    - system_stats: the /system_stats body (default: the recorded CPU server).
    - model_bytes: model file -> bytes it takes once a job loaded it (memory.py); those
      bytes come off /system_stats' free figures until POST /free unloads the models.
    - base_dir: folder holding input/, output/, temp/ (default: a temporary folder).
    """

    nodes: dict[str, NodeSpec] = field(default_factory=recorded_nodes)
    model_files: dict[str, list[str]] = field(default_factory=dict)
    speed: float = 1.0
    node_seconds: dict[str, float] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    frame_latency_s: float = 0.0
    gc_pause_s: float = 0.0
    gc_interval_s: float = 10.0
    system_stats: dict[str, Any] = field(default_factory=recorded_system_stats)
    model_bytes: dict[str, int] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    base_dir: Path | None = None
    max_upload_size: int = 100 * 1024 * 1024

    def with_nodes(self, *specs: NodeSpec) -> FakeComfyConfig:
        """A copy of this config with extra (or replaced) node classes."""
        clone = copy.deepcopy(self)
        clone.nodes.update({spec.name: spec for spec in specs})
        return clone

    def node_time(self, spec: NodeSpec) -> float:
        """Seconds a node works before its progress steps, after the speed factor."""
        return self.node_seconds.get(spec.name, spec.seconds) / self.speed

    def step_time(self, spec: NodeSpec) -> float:
        """Seconds per progress step of a node, after the speed factor."""
        return self.step_seconds.get(spec.name, spec.step_seconds) / self.speed
