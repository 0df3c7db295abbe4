"""A stand-in for the `pynvml` module that answers from recorded NVML output.

Recordings (tests/fakes/nvml_recordings/*.json) hold what NVML answers on a
machine, call by call: a value, or "NOT_SUPPORTED" where NVML raises
NVMLError_NotSupported (the DGX Spark's GB10 does for every memory query).
Each file's `_source` says where its answers come from.
Errors are the real `pynvml` exception classes, so the code under test sees
exactly what it would on the machine.

    nvml = RecordedNVML.load("gb10")
    report = sparkplane.agent.nvml.read(nvml)
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

RECORDINGS = Path(__file__).with_name("nvml_recordings")
NOT_SUPPORTED = "NOT_SUPPORTED"


class RecordedNVML:
    """The part of pynvml's API that sparkplane calls, answered from a recording."""

    NVMLError = pynvml.NVMLError
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_ERROR_LIBRARY_NOT_FOUND = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_ERROR_DRIVER_NOT_LOADED = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    NVML_ERROR_NO_PERMISSION = pynvml.NVML_ERROR_NO_PERMISSION

    def __init__(self, recording: dict[str, Any]) -> None:
        self.recording = recording
        self.initialised = False
        self.shutdowns = 0

    @classmethod
    def load(cls, name: str) -> RecordedNVML:
        """The recording `nvml_recordings/NAME.json`."""
        return cls(json.loads((RECORDINGS / f"{name}.json").read_text()))

    @classmethod
    def failing(cls, error: int) -> RecordedNVML:
        """NVML whose nvmlInit raises `error` (e.g. NVML_ERROR_LIBRARY_NOT_FOUND)."""
        return cls({"init_error": error, "devices": []})

    def _answer(self, value: Any) -> Any:
        if value == NOT_SUPPORTED:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return value

    def _device(self, handle: int) -> dict[str, Any]:
        assert self.initialised, "NVML called before nvmlInit"
        device: dict[str, Any] = self.recording["devices"][handle]
        return device

    def nvmlInit(self) -> None:
        error = self.recording.get("init_error")
        if error is not None:
            raise pynvml.NVMLError(error)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return str(self._answer(self.recording["driver"]))

    def nvmlDeviceGetCount(self) -> int:
        return len(self.recording["devices"])

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._device(index)
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return str(self._device(handle)["name"])

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return str(self._answer(self._device(handle)["uuid"]))

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(**self._answer(self._device(handle)["memory"]))

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(**self._answer(self._device(handle)["utilization"]))

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return int(self._answer(self._device(handle)["power_mw"]))

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return int(self._answer(self._device(handle)["temperature_c"]))
