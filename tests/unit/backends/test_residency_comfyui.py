"""ComfyUI's /system_stats and /queue answers read as residency, without I/O."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sparkplane.backends.comfyui_residency import is_unified, parse_system_stats, queue_busy

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "comfyui"


def recorded() -> dict[str, Any]:
    """The recorded /system_stats body of a CPU-only ComfyUI 0.3.64."""
    data: dict[str, Any] = json.loads((FIXTURES / "system_stats.json").read_text())
    return data["response"]["body"]


def with_device(device: dict[str, Any], ram_free: int = 60 * 10**9) -> dict[str, Any]:
    stats = copy.deepcopy(recorded())
    stats["system"].update(ram_total=128 * 10**9, ram_free=ram_free)
    stats["devices"] = [device]
    return stats


CUDA = {
    "name": "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync",
    "type": "cuda",
    "index": 0,
    "vram_total": 25_757_220_864,
    "vram_free": 24_000_000_000,
    "torch_vram_total": 1_000_000,
    "torch_vram_free": 500_000,
}


def test_the_recorded_cpu_server_is_host_memory() -> None:
    residency = parse_system_stats(recorded())
    assert residency.loaded == ()  # ComfyUI does not list the models it holds
    assert residency.total_bytes == 25276510208
    assert residency.free_bytes == 23395045376
    assert residency.unified
    assert residency.detail["ram_free"] == 23395045376
    assert residency.detail["torch_vram_total"] == 25276510208


def test_a_discrete_gpu_reports_its_own_memory() -> None:
    residency = parse_system_stats(with_device(CUDA, ram_free=1))
    assert not residency.unified
    assert residency.total_bytes == 25_757_220_864
    assert residency.free_bytes == 24_000_000_000  # host RAM does not bound it
    assert residency.detail["torch_vram_free"] == 500_000


@pytest.mark.parametrize(
    ("name", "kind"),
    [("cuda:0 NVIDIA GB10 : cudaMallocAsync", "cuda"), ("mps", "mps"), ("cpu", "cpu")],
)
def test_unified_devices_are_bounded_by_host_memory(name: str, kind: str) -> None:
    device = {
        **CUDA,
        "name": name,
        "type": kind,
        "vram_total": 128 * 10**9,
        "vram_free": 90 * 10**9,
    }
    residency = parse_system_stats(with_device(device, ram_free=40 * 10**9))
    assert residency.unified
    assert residency.free_bytes == 40 * 10**9


def test_unified_names() -> None:
    assert is_unified({"type": "cuda", "name": "cuda:0 NVIDIA GH200 480GB"})
    assert not is_unified({"type": "cuda", "name": "cuda:0 NVIDIA H100 80GB HBM3"})


def test_queue_counts_go_in_the_detail() -> None:
    queue = {"queue_running": [[0, "a", {}, {}, []]], "queue_pending": []}
    residency = parse_system_stats(recorded(), queue)
    assert (residency.detail["queue_running"], residency.detail["queue_pending"]) == (1, 0)
    assert queue_busy(queue)
    assert not queue_busy({"queue_running": [], "queue_pending": [[1]]})


def test_no_devices_means_host_memory() -> None:
    stats = copy.deepcopy(recorded())
    stats["devices"] = []
    residency = parse_system_stats(stats)
    assert residency.unified
    assert residency.free_bytes == 23395045376


@pytest.mark.parametrize("data", [None, [], {"devices": []}])
def test_not_system_stats_is_refused(data: object) -> None:
    with pytest.raises(ValueError, match="system"):
        parse_system_stats(data)
