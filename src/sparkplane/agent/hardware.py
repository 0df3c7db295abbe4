"""The hardware report: GPUs (NVML), the memory models can use, power, CPU, RAM, disk.

Memory, by machine:
- discrete GPUs: the sum of their memory as NVML reports it;
- unified memory (GB10, Jetson, Apple silicon): the system's RAM from
  /proc/meminfo and the cgroup limit, flagged `shared` with the CPU;
- no GPU: the system's RAM (llama.cpp runs on the CPU), not flagged shared
  since no GPU shares it.

Power: the sum of the GPUs' readings. On a GB10 that reading covers the SoC
only (140 W of the 240 W the whole DGX Spark may draw), so the system's power
is estimated as reading x 240/140 and the report says so (docs/agent.md).
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
from pathlib import Path
from typing import Any

from sparkplane.agent import nvml, sysmem
from sparkplane.agent.protocol import Disk, Gpu, Hardware, Memory, Power

GIB = 1 << 30
# DGX Spark: 240 W system power supply budget over the GB10 SoC's 140 W.
GB10_SYSTEM_FACTOR = 240.0 / 140.0


def memory_of(
    gpus: list[Gpu], system: sysmem.SystemMemory, apple: bool, cap_bytes: int | None = None
) -> Memory:
    """The memory models can use, by the rules in the module docstring."""
    discrete = [g for g in gpus if not g.unified and g.memory_total_bytes is not None]
    if discrete:
        total = sum(g.memory_total_bytes or 0 for g in discrete)
        free = total - sum(g.memory_used_bytes or 0 for g in discrete)
        memory = Memory(kind="gpu", total_bytes=total, free_bytes=free, shared=False, source="nvml")
    else:
        # The machine's RAM: shared with the GPU on unified memory, the CPU's alone
        # when there is no GPU.
        unified = bool(gpus) or apple
        memory = Memory(
            kind="unified" if unified else "system",
            total_bytes=system.total,
            free_bytes=system.available,
            shared=unified,
            source=system.source,
        )
    if cap_bytes is not None:
        # The operator lent the fleet only part of the machine (`--memory-gib`).
        memory.total_bytes = min(memory.total_bytes, cap_bytes)
        memory.free_bytes = min(memory.free_bytes, cap_bytes)
        memory.source += "+limit"
    return memory


def power_of(gpus: list[Gpu]) -> Power:
    """The node's power now from the GPUs' readings (GB10: scaled to the system)."""
    readings = [g for g in gpus if g.power_w is not None]
    if not readings:
        return Power(watts=None, measured=False, basis="no power reading")
    watts = sum(g.power_w or 0.0 for g in readings)
    if any("GB10" in g.name for g in readings):
        return Power(
            watts=round(watts * GB10_SYSTEM_FACTOR, 1),
            measured=True,
            basis="GB10: NVML reading (SoC) x 240/140, the system's share estimated",
        )
    return Power(watts=round(watts, 1), measured=True, basis="NVML power reading, GPUs only")


def disk_of(folder: Path) -> Disk | None:
    """Free and total space where the models live, if the folder exists."""
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return None
    return Disk(path=str(folder), total_bytes=usage.total, free_bytes=usage.free)


def read_hardware(
    models_dir: Path,
    *,
    nvml_module: Any | None = None,
    proc: Path = Path("/proc"),
    cgroup: Path = Path("/sys/fs/cgroup"),
    cap_bytes: int | None = None,
) -> Hardware:
    """The whole report. `nvml_module` defaults to the real `pynvml`, if installed."""
    report = nvml.read(nvml_module if nvml_module is not None else nvml.load())
    system = sysmem.read(proc, cgroup)
    apple = platform.system() == "Darwin" and platform.machine() == "arm64"
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return Hardware(
        hostname=socket.gethostname(),
        system=platform.system(),
        machine=platform.machine(),
        cpu_count=os.cpu_count() or 1,
        load_1m=load,
        ram_total_bytes=system.total,
        ram_available_bytes=system.available,
        gpus=report.gpus,
        nvml=report.status,
        driver=report.driver,
        memory=memory_of(report.gpus, system, apple, cap_bytes),
        power=power_of(report.gpus),
        disk=disk_of(models_dir),
    )
