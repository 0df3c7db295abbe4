"""GPUs through NVML (`nvidia-ml-py`, imported as `pynvml`).

No NVML is a normal case (a CPU-only box, a Mac, a container without the
driver): the report then says "absent" and lists no GPUs. Each field NVML
answers "not supported" for is left as None rather than failing the GPU: the
DGX Spark's GB10 reports no memory figures at all (its memory is the system's,
see `sysmem.py`), and some boards report no utilisation or power.

The module object is passed in, so tests can hand in recorded answers
(tests/fakes/nvml.py) and the real library is only imported by `load()`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sparkplane.agent.protocol import Gpu

T = TypeVar("T")

# GPUs whose memory is the machine's RAM, shared with the CPU.
UNIFIED_NAMES = ("GB10", "Jetson", "Orin", "Thor", "Xavier")


@dataclass
class NvmlReport:
    """What NVML said: the GPUs, the driver, and "ok" / "absent" / an error."""

    status: str
    gpus: list[Gpu] = field(default_factory=list)
    driver: str | None = None


def load() -> Any | None:
    """The `pynvml` module, or None when the package is not installed."""
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _absent(nvml: Any, exc: Exception) -> bool:
    """Errors that mean "no NVIDIA GPU here", not a fault worth reporting."""
    value = getattr(exc, "value", None)
    return value in (
        getattr(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND", -1),
        getattr(nvml, "NVML_ERROR_DRIVER_NOT_LOADED", -1),
        getattr(nvml, "NVML_ERROR_NO_PERMISSION", -1),
    )


def _field(nvml: Any, call: Callable[[], T]) -> T | None:
    """The answer of one NVML call, or None where the GPU does not support it."""
    try:
        return call()
    except nvml.NVMLError:
        return None


def read(nvml: Any | None) -> NvmlReport:
    """Every GPU NVML knows, with memory, utilisation, power and temperature."""
    if nvml is None:
        return NvmlReport("absent")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        return NvmlReport("absent" if _absent(nvml, exc) else f"error: {exc}")
    try:
        driver = _field(nvml, lambda: _text(nvml.nvmlSystemGetDriverVersion()))
        count = nvml.nvmlDeviceGetCount()
        gpus = [_gpu(nvml, index) for index in range(count)]
    except nvml.NVMLError as exc:
        return NvmlReport(f"error: {exc}")
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()
    return NvmlReport("ok" if gpus else "absent", gpus, driver)


def _gpu(nvml: Any, index: int) -> Gpu:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name = _text(nvml.nvmlDeviceGetName(handle))
    memory = _field(nvml, lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
    util = _field(nvml, lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
    milliwatts = _field(nvml, lambda: nvml.nvmlDeviceGetPowerUsage(handle))
    temperature = _field(
        nvml, lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
    )
    uuid = _field(nvml, lambda: _text(nvml.nvmlDeviceGetUUID(handle)))
    # A GPU that reports no memory of its own (or a known SoC) uses the system's.
    unified = memory is None or any(n.lower() in name.lower() for n in UNIFIED_NAMES)
    return Gpu(
        index=index,
        name=name,
        uuid=uuid,
        memory_total_bytes=int(memory.total) if memory is not None and not unified else None,
        memory_used_bytes=int(memory.used) if memory is not None and not unified else None,
        utilization_pct=float(util.gpu) if util is not None else None,
        power_w=round(milliwatts / 1000.0, 2) if milliwatts is not None else None,
        temperature_c=float(temperature) if temperature is not None else None,
        unified=unified,
    )
