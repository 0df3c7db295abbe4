"""The contract of workflow engines (ComfyUI): what the job worker needs from a device.

A workflow device runs API-format graphs (`{node id: {"class_type", "inputs"}}`)
and reports their progress as frames on a websocket. sparkplane always picks the
device's `prompt_id` and websocket `client_id` itself and never forwards a
client's headers (ComfyUI refuses requests whose `Origin` does not match it).

Capabilities are what placement reads: every node class the device offers with
its `/object_info` entry, and the options of each combo input (model files,
samplers...). Adapters refresh them on probes (see `backends/comfyui.py`).

Failures: a device that cannot be reached, or drops a connection, raises
`DeviceUnreachable`; one that does not answer in time raises `UpstreamTimeout`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Node classes a device offers, and the options of their combo inputs."""

    definitions: Mapping[str, dict[str, Any]]
    combos: Mapping[str, Mapping[str, tuple[str, ...]]]
    # Inputs that name an uploaded file (LoadImage's `image`): the client's uploads, not
    # the device's folder, decide what is valid; sparkplane copies the file over.
    uploads: Mapping[str, frozenset[str]] = field(default_factory=dict)
    fetched_at: float = field(default_factory=time.monotonic)

    @classmethod
    def from_object_info(cls, info: Mapping[str, Any]) -> Capabilities:
        """Index a `/object_info` body."""
        definitions: dict[str, dict[str, Any]] = {}
        combos: dict[str, dict[str, tuple[str, ...]]] = {}
        uploads: dict[str, frozenset[str]] = {}
        for name, entry in info.items():
            if not isinstance(entry, dict):
                continue
            definitions[name] = entry
            inputs = entry.get("input") or {}
            for section in ("required", "optional"):
                for input_name, spec in (inputs.get(section) or {}).items():
                    if is_upload_input(spec):
                        uploads[name] = uploads.get(name, frozenset()) | {input_name}
                    elif isinstance(spec, list) and spec and isinstance(spec[0], list):
                        options = tuple(str(o) for o in spec[0])
                        combos.setdefault(name, {})[input_name] = options
        return cls(definitions, combos, uploads)


def is_upload_input(spec: Any) -> bool:
    """Whether an input spec names an uploaded file (`{"image_upload": true}` and kin)."""
    if not (isinstance(spec, list) and len(spec) > 1 and isinstance(spec[1], dict)):
        return False
    return any(k.endswith("_upload") and v is True for k, v in spec[1].items())


@dataclass(frozen=True, slots=True)
class Frame:
    """One websocket frame from a device: a JSON message or binary bytes."""

    message: dict[str, Any] | None = None
    data: bytes | None = None

    @property
    def type(self) -> str | None:
        """The message type (`executing`, `progress`...); None for binary frames."""
        return None if self.message is None else self.message.get("type")

    @property
    def body(self) -> dict[str, Any]:
        """The message's `data` (an empty dict for binary frames)."""
        if self.message is None:
            return {}
        data = self.message.get("data")
        return data if isinstance(data, dict) else {}


class EventStream(Protocol):
    """A device websocket opened for one client id."""

    async def receive(self, timeout: float) -> Frame | None:
        """The next frame; None if none came within `timeout` seconds.

        Raises `DeviceUnreachable` when the socket closes or breaks.
        """
        ...

    async def close(self) -> None:
        """Close the socket; safe to call more than once."""
        ...


@runtime_checkable
class WorkflowBackend(Protocol):
    """A device that runs workflows (ComfyUI)."""

    kind: str
    url: str
    capabilities: Capabilities | None
    system_stats: dict[str, Any] | None

    async def refresh_capabilities(self) -> Capabilities:
        """Read the node classes and their options now."""
        ...

    async def submit(
        self, prompt: dict[str, Any], prompt_id: str, client_id: str, extra_data: dict[str, Any]
    ) -> tuple[int, Any]:
        """Queue a prompt under our ids; (HTTP status, JSON body) as the device answered."""
        ...

    async def events(self, client_id: str, preview_metadata: bool) -> EventStream:
        """Open the websocket for `client_id` (negotiating metadata previews if asked)."""
        ...

    async def upload(self, name: str, path: Path, subfolder: str, type_: str) -> dict[str, Any]:
        """Upload an input file; the device's answer (`name`, `subfolder`, `type`)."""
        ...

    def download(self, filename: str, subfolder: str, type_: str) -> AsyncIterator[bytes]:
        """An output file's bytes, as they arrive."""
        ...

    async def history(self, prompt_id: str) -> dict[str, Any]:
        """The device's history entry for `prompt_id` ({} while unknown or running)."""
        ...

    async def queue(self) -> dict[str, Any]:
        """The device's queue (`queue_running`, `queue_pending`)."""
        ...

    async def interrupt(self, prompt_id: str | None) -> None:
        """Interrupt `prompt_id` if it is running (everything when None)."""
        ...

    async def delete(self, prompt_ids: list[str]) -> None:
        """Remove pending prompts from the device's queue."""
        ...

    async def free(self, body: dict[str, Any]) -> None:
        """Ask the device to unload models / free memory."""
        ...
