"""Model memory of the fake: files a job loaded stay resident until POST /free.

Shaped from ComfyUI's model management, not recorded: a loader node that names a
file listed in `FakeComfyConfig.model_bytes` makes it resident with that many
bytes; `unload_models` (or `free_memory`) on /free drops them all, when the
worker is next idle. /system_stats then reports the configured figures less the
resident bytes: on the device (vram_free, and torch's reservation grows by them),
and on the host too when the device is the CPU or shares memory with the host.
With nothing resident it answers the configured body unchanged (the recording).
"""

from __future__ import annotations

import copy
from typing import Any

_SHARED = ("cpu", "mps")
_SHARED_NAMES = ("gb10", "grace", "thor", "orin")


def note_loads(
    resident: dict[str, int], model_bytes: dict[str, int], inputs: dict[str, Any]
) -> None:
    """Mark the model files a node's literal inputs name as resident."""
    for value in inputs.values():
        if isinstance(value, str) and value in model_bytes:
            resident[value] = model_bytes[value]


def system_stats(configured: dict[str, Any], resident: dict[str, int]) -> dict[str, Any]:
    """The /system_stats body with `resident` bytes in use."""
    used = sum(resident.values())
    if not used:
        return configured
    stats = copy.deepcopy(configured)
    devices = stats.get("devices") or []
    if not devices:
        return stats
    device = devices[0]
    kind, name = str(device.get("type", "")), str(device.get("name", "")).lower()
    shared = kind in _SHARED or any(part in name for part in _SHARED_NAMES)
    device["vram_free"] = max(0, device["vram_free"] - used)
    if kind == "cpu":
        device["torch_vram_free"] = device["vram_free"]
    else:
        device["torch_vram_total"] = device.get("torch_vram_total", 0) + used
    if shared:
        system = stats["system"]
        system["ram_free"] = max(0, system["ram_free"] - used)
    return stats
