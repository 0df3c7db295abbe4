"""ComfyUI's memory as `/system_stats` and `/queue` describe it (pure functions).

ComfyUI lists no loaded models: it loads checkpoints on a job's first use and
keeps them while memory allows. What it reports is per device: `vram_total`,
`vram_free` (the device's), `torch_vram_total` / `torch_vram_free` (what
PyTorch reserved, and the unused part of it), and the host's `ram_total` /
`ram_free`. So residency lists no models and carries these figures in `detail`.

A device that shares memory with the host (a CPU device, Apple's "mps", NVIDIA's
GB10 and other Grace/Tegra parts) is unified: there host memory pressure is
device memory pressure, so free memory is the smaller of the device's and the host's.
"""

from __future__ import annotations

from typing import Any

from sparkplane.backends.residency import Residency

# Device types and name fragments of memory shared with the host.
_UNIFIED_TYPES = frozenset({"cpu", "mps"})
_UNIFIED_NAMES = ("gb10", "gh200", "gb200", "grace", "thor", "orin", "tegra", "apple")
FREE_BODY: dict[str, bool] = {"unload_models": True, "free_memory": True}


def is_unified(device: dict[str, Any]) -> bool:
    """Whether a /system_stats device shares its memory with the host."""
    kind = str(device.get("type") or "").lower()
    name = str(device.get("name") or "").lower()
    return kind in _UNIFIED_TYPES or any(part in name for part in _UNIFIED_NAMES)


def parse_system_stats(stats: object, queue: object = None) -> Residency:
    """The residency a `/system_stats` answer (and optionally a `/queue` one) describes.

    The first device is the one ComfyUI runs on (it uses one); the others stay in
    `detail["devices"]`.
    """
    if not isinstance(stats, dict) or not isinstance(stats.get("system"), dict):
        raise ValueError("ComfyUI's /system_stats answer has no 'system'")
    system = stats["system"]
    devices = [d for d in stats.get("devices") or [] if isinstance(d, dict)]
    ram_total, ram_free = _count(system.get("ram_total")), _count(system.get("ram_free"))
    detail: dict[str, object] = {
        "source": "comfyui /system_stats",
        "ram_total": ram_total,
        "ram_free": ram_free,
        "devices": devices,
    }
    detail.update(_queue_counts(queue))
    if not devices:
        return Residency(total_bytes=ram_total, free_bytes=ram_free, unified=True, detail=detail)
    device = devices[0]
    total, free = _count(device.get("vram_total")), _count(device.get("vram_free"))
    detail["torch_vram_total"] = _count(device.get("torch_vram_total"))
    detail["torch_vram_free"] = _count(device.get("torch_vram_free"))
    unified = is_unified(device)
    if unified and ram_free is not None:
        free = ram_free if free is None else min(free, ram_free)
    return Residency(total_bytes=total, free_bytes=free, unified=unified, detail=detail)


def queue_busy(queue: object) -> bool:
    """Whether a `/queue` answer shows a prompt running (ComfyUI acts on /free when idle)."""
    return bool(isinstance(queue, dict) and queue.get("queue_running"))


def _queue_counts(queue: object) -> dict[str, object]:
    if not isinstance(queue, dict):
        return {}
    running, pending = queue.get("queue_running"), queue.get("queue_pending")
    return {
        "queue_running": len(running) if isinstance(running, list) else None,
        "queue_pending": len(pending) if isinstance(pending, list) else None,
    }


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return int(value)
