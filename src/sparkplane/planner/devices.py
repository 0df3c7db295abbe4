"""Device profiles: memory, bandwidth, dense TFLOPS per precision, power.

Built-in profiles live in ``data/devices.toml``; :func:`profiles_with` merges
profiles from user configuration over them (same field names; a partial entry
with a built-in id overrides just the fields it names, e.g. ``os_reserve_gib``).
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import InvalidRequestError, UnknownDeviceError

GIB = 1 << 30
ENGINES = ("llama.cpp", "ollama", "vllm", "sglang", "trt-llm")
PRECISIONS = ("fp32", "bf16", "fp8", "int8", "fp4")
# Where a device lacks a precision, kernels run at the next wider one.
_FALLBACK = {"fp4": "fp8", "fp8": "bf16", "int8": "bf16", "bf16": "fp32"}


class DeviceProfile(BaseModel):
    """One kind of machine the planner can place models on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    name: str = ""
    kind: Literal["discrete", "unified", "apple"] = "discrete"
    memory_gib: float = Field(gt=0)
    os_reserve_gib: float = Field(default=0.0, ge=0)
    bandwidth_gbs: float = Field(gt=0)
    tflops: dict[str, float] = Field(default_factory=dict)
    power_w: float = Field(default=0.0, ge=0)
    engines: tuple[str, ...] = ENGINES
    aliases: tuple[str, ...] = ()

    @property
    def memory_bytes(self) -> int:
        """Total memory in bytes."""
        return int(self.memory_gib * GIB)

    @property
    def usable_bytes(self) -> int:
        """Memory models may use: total minus the OS reserve."""
        return max(int((self.memory_gib - self.os_reserve_gib) * GIB), 0)

    @property
    def bandwidth_bytes(self) -> float:
        """Peak memory bandwidth in bytes per second."""
        return self.bandwidth_gbs * 1e9

    def compute(self, precision: str) -> tuple[str, float]:
        """The precision a ``precision`` matmul really runs at here, and its dense TFLOPS."""
        p = precision
        while p not in self.tflops or self.tflops[p] <= 0:
            if p not in _FALLBACK:
                return "fp32", max(self.tflops.get("fp32", 1.0), 1.0)
            p = _FALLBACK[p]
        return p, self.tflops[p]


def _parse(raw: Mapping[str, Any]) -> DeviceProfile:
    try:
        return DeviceProfile.model_validate(dict(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "profile"
        ident = raw.get("id", "?")
        raise InvalidRequestError(
            f"device profile {ident!r}: {where}: {first.get('msg', 'invalid')}", param="device"
        ) from None


@cache
def _builtin() -> tuple[DeviceProfile, ...]:
    raw = resources.files("sparkplane.planner").joinpath("data/devices.toml").read_bytes()
    doc = tomllib.loads(raw.decode("utf-8"))
    return tuple(_parse(d) for d in doc.get("device", ()))


def builtin_profiles() -> dict[str, DeviceProfile]:
    """The built-in profiles by id."""
    return {p.id: p for p in _builtin()}


def profiles_with(extra: Iterable[Mapping[str, Any]]) -> dict[str, DeviceProfile]:
    """Built-in profiles with user-supplied ones merged over them.

    An entry whose ``id`` names a built-in profile overrides only the fields it
    gives; any other entry must be a complete profile. Raises
    :class:`InvalidRequestError` for an invalid entry.
    """
    out = builtin_profiles()
    for raw in extra:
        ident = raw.get("id")
        if not isinstance(ident, str) or not ident:
            raise InvalidRequestError("device profile without an id", param="device")
        base = out.get(ident)
        merged = {**base.model_dump(), **dict(raw)} if base else dict(raw)
        out[ident] = _parse(merged)
    return out


def find_device(profiles: Mapping[str, DeviceProfile], ident: str) -> DeviceProfile:
    """The profile named ``ident`` (id or alias, case-insensitive, ``_`` as ``-``)."""
    key = ident.strip().lower().replace("_", "-")
    for p in profiles.values():
        names = {p.id.lower(), *(a.lower().replace("_", "-") for a in p.aliases)}
        if key in names:
            return p
    close = difflib.get_close_matches(key, list(profiles), n=3, cutoff=0.4)
    raise UnknownDeviceError(ident, close or sorted(profiles))
