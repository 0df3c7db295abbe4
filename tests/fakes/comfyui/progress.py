"""Per-prompt progress: `progress_state`, `progress` and preview frames.

Mirrors ComfyUI's progress registry plus the legacy progress hook:
- start: node state running, value 0.0 / max 1.0 (floats), progress_state sent;
- a progress step: the hook checks for an interrupt, the registry stores value/max
  (ints from the progress bar) and sends progress_state, then a type-4 preview if the
  client negotiated metadata; then `progress` is sent, then a type-1 preview otherwise;
- finish: state finished, value = max; a node finished from cache was never started,
  so it reports the ints 1 / 1.
progress_state lists every node that is not pending, in the order they were touched.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from tests.fakes.comfyui.hub import PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA, Hub
from tests.fakes.comfyui.images import Frame
from tests.fakes.comfyui.jpeg import encode_jpeg


def encode_preview(kind: str, frame: Frame) -> tuple[bytes, int, str]:
    """(bytes, legacy format code, mime type) of a preview, encoded as ComfyUI does."""
    if kind == "PNG":
        return frame.png(compress_level=1), 2, "image/png"
    return encode_jpeg(frame.array(), quality=95), 1, "image/jpeg"


class ProgressRegistry:
    """Node states of the prompt being executed."""

    def __init__(self, hub: Hub, prompt_id: str, client_id: str | None) -> None:
        self.hub = hub
        self.prompt_id = prompt_id
        self.client_id = client_id
        self.nodes: dict[str, dict[str, Any]] = {}

    def _entry(self, node_id: str) -> dict[str, Any]:
        return self.nodes.setdefault(node_id, {"state": "pending", "value": 0, "max": 1})

    def _send(self) -> None:
        active = {
            node_id: {
                "value": entry["value"],
                "max": entry["max"],
                "state": entry["state"],
                "node_id": node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            for node_id, entry in self.nodes.items()
            if entry["state"] != "pending"
        }
        self.hub.send_sync(
            "progress_state", {"prompt_id": self.prompt_id, "nodes": active}, self.client_id
        )

    def start(self, node_id: str) -> None:
        """A node begins executing."""
        self._entry(node_id).update(state="running", value=0.0, max=1.0)
        self._send()

    def finish(self, node_id: str) -> None:
        """A node finished (executed or served from cache)."""
        entry = self._entry(node_id)
        entry.update(state="finished", value=entry["max"])
        self._send()

    def step(self, node_id: str, value: int, total: int, preview: tuple[str, Frame] | None) -> None:
        """One progress-bar update, with the frames ComfyUI sends for it."""
        value = min(value, total)
        self._entry(node_id).update(state="running", value=value, max=total)
        self._send()
        encoded = encode_preview(*preview) if preview is not None else None
        metadata_client = self.hub.supports_preview_metadata(self.client_id)
        if encoded is not None and metadata_client:
            metadata = {
                "node_id": node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
                "image_type": encoded[2],
            }
            blob = json.dumps(metadata).encode()
            payload = struct.pack(">I", len(blob)) + blob + encoded[0]
            self.hub.send_binary(PREVIEW_IMAGE_WITH_METADATA, payload, self.client_id)
        progress = {"value": value, "max": total, "prompt_id": self.prompt_id, "node": node_id}
        self.hub.send_sync("progress", progress, self.client_id)
        if encoded is not None and not metadata_client:
            payload = struct.pack(">I", encoded[1]) + encoded[0]
            self.hub.send_binary(PREVIEW_IMAGE, payload, self.client_id)
