"""The contract of engines whose memory sparkplane can read and steer.

`ResidencyControl` sits beside `Backend`: an adapter implements it when its
engine can say what it holds in memory and, where the engine offers it, load
and unload a model on request (Ollama's `keep_alive`, ComfyUI's `/free`,
vLLM's sleep and wake). The scheduler decides; dispatch calls these methods
one load at a time per device, each under a load timeout of its own.

- `residency()` reports what the engine says: the models in memory with their
  bytes where it gives them, and the device's memory where it gives it. A
  figure the engine does not report is None; sparkplane then uses the
  planner's estimate. It raises `DeviceUnreachable` or `UpstreamTimeout`
  when the engine cannot be asked.
- `load(model, timeout)` returns once the model is in memory and can answer.
  `unload(model, timeout)` returns once the engine has let it go. Both raise
  `UpstreamError` (or a subclass) when the engine refused or failed, and
  `UnsupportedControl` when this engine cannot do it (the scheduler then
  treats the device as one that loads on first use).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from sparkplane.errors import UpstreamError


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model the engine holds in memory."""

    name: str  # the engine's own name for it
    bytes: int | None = None  # memory it takes, as the engine reports it
    device_bytes: int | None = None  # of which in GPU memory (Ollama's size_vram)
    expires_at: str | None = None  # when the engine drops it on its own (ISO 8601), if it says


@dataclass(frozen=True, slots=True)
class Residency:
    """What an engine says it holds, and its memory where it says."""

    loaded: tuple[LoadedModel, ...] = ()
    total_bytes: int | None = None
    free_bytes: int | None = None
    unified: bool = False  # memory shared with the host (GB10, Apple silicon)
    detail: dict[str, object] = field(default_factory=dict)

    def names(self) -> frozenset[str]:
        """The loaded models' names."""
        return frozenset(m.name for m in self.loaded)


class UnsupportedControl(UpstreamError):
    """This engine offers no way to do what was asked (load or unload)."""

    status = 501
    code = "unsupported_control"


@runtime_checkable
class ResidencyControl(Protocol):
    """An engine whose memory sparkplane can read, and load and unload models in."""

    async def residency(self) -> Residency:
        """What the engine holds in memory now."""
        ...

    async def load(self, model: str, timeout: float) -> None:
        """Bring `model` (the engine's own name) into memory."""
        ...

    async def unload(self, model: str, timeout: float) -> None:
        """Take `model` out of memory."""
        ...
