"""Memory as the operating system sees it: /proc/meminfo and cgroup limits.

On a unified-memory machine (GB10, Jetson) this is the GPU's memory too, and
the honest figure: CUDA on a DGX Spark reports at most about 102 of 121.7 GiB
free, and an engine that trusts it can push the box into swap. A container's
cgroup limit caps what the agent's engines may use, whatever the machine has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# cgroup v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages).
_V1_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class SystemMemory:
    """RAM total and available, in bytes, and where the figures came from."""

    total: int
    available: int
    source: str


def meminfo(path: Path) -> tuple[int, int] | None:
    """(MemTotal, MemAvailable) in bytes from a /proc/meminfo file, or None."""
    try:
        text = path.read_text()
    except OSError:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
            values[key.strip()] = int(parts[0]) * scale
    if "MemTotal" not in values:
        return None
    available = values.get("MemAvailable", values.get("MemFree", 0))
    return values["MemTotal"], available


def _number(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def cgroup_limit(root: Path) -> tuple[int, int] | None:
    """(limit, usage) in bytes of this process's memory cgroup, or None if unlimited.

    cgroup v2 (`memory.max`, `memory.current`) is read first, then v1
    (`memory/memory.limit_in_bytes`, `memory/memory.usage_in_bytes`).
    """
    limit = _number(root / "memory.max")
    if limit is not None:
        return limit, _number(root / "memory.current") or 0
    limit = _number(root / "memory" / "memory.limit_in_bytes")
    if limit is not None and limit < _V1_UNLIMITED:
        return limit, _number(root / "memory" / "memory.usage_in_bytes") or 0
    return None


def read(proc: Path = Path("/proc"), cgroup: Path = Path("/sys/fs/cgroup")) -> SystemMemory:
    """The machine's RAM, capped by the cgroup limit where one is set."""
    found = meminfo(proc / "meminfo")
    if found is None:
        # Not Linux (a Mac): the page counts are all the standard library offers.
        pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
        total = pages * os.sysconf("SC_PAGE_SIZE") if pages > 0 else 0
        return SystemMemory(total, total, "sysconf")
    total, available = found
    limit = cgroup_limit(cgroup)
    if limit is None or limit[0] >= total:
        return SystemMemory(total, available, "meminfo")
    cap, used = limit
    return SystemMemory(cap, max(0, min(available, cap - used)), "cgroup")
