"""Replaying recorded exchanges against the fake and comparing the answers.

What is normalised, precisely:
- numbers compare with their type (1 and 1.0 differ, as they do on the wire).
- `canon`: prompt ids are mapped to tokens by the order the scenario created them (the
  recorded ids of a scenario map to the same tokens), `number` values and the first
  element of queue/history items likewise; every "timestamp" becomes "<ts>".
- `unpath`: the fake's base folder becomes <COMFYUI_ROOT> and its venv stand-in <VENV>;
  each traceback entry keeps only its `File "...", line N, in func` line (the recorded
  source lines were elided; the fake's are placeholders).
- websocket frames are compared as `frame_shape`: type, data keys and values, with the
  values of prompt_id, timestamp, progress `value`, filename and error details replaced
  by their type names; binary frames by event type, format code or metadata, and image
  geometry. Elided runs match any number of frames of the elided types.
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.fakes.comfyui.images import png_chunks
from tests.fakes.comfyui.server import FakeComfyUI

VARYING = {
    "prompt_id",
    "timestamp",
    "value",
    "filename",
    "exception_message",
    "traceback",
    "current_inputs",
}
# Recorded exchanges that need no prior state: a fresh server answers them as recorded.
STATELESS = [
    "system_stats",
    "features",
    "object_info_single_node",
    "object_info_unknown_node",
    "queue_idle",
    "prompt_get_idle",
    "api_prefix_queue",
    "history_unknown_prompt_id",
    "history_after_clear",
    "view_not_found",
    "view_bad_filename",
    "origin_mismatch_403",
    "origin_match_ok",
    "free",
    "free_no_body",
    "interrupt_global_no_body",
    "interrupt_not_running",
    "prompt_error_malformed_json",
]

# Prompts ComfyUI refuses in validation, each with its recorded error body.
VALIDATION_ERRORS = [
    "prompt_error_bad_combo",
    "prompt_error_bad_link",
    "prompt_error_bad_link_slot",
    "prompt_error_empty_prompt",
    "prompt_error_missing_class_type",
    "prompt_error_missing_image_file",
    "prompt_error_missing_input",
    "prompt_error_no_outputs",
    "prompt_error_no_prompt_key",
    "prompt_error_type_mismatch",
    "prompt_error_unknown_node",
    "prompt_error_value_below_min",
    "prompt_error_value_not_int",
]

# Answered by a device itself, not through sparkplane: /system_stats is the fleet's own
# view there, and sparkplane never forwards a client's Origin (tested on its own).
DEVICE_ONLY = {"system_stats", "origin_mismatch_403", "origin_match_ok"}

_TRACEBACK_ENTRY = re.compile(r'^(  File ".*", line \d+, in .*)\n')


async def replay(
    session: aiohttp.ClientSession, fake: FakeComfyUI, request: dict[str, Any]
) -> aiohttp.ClientResponse:
    """Send a recorded HTTP request to the fake; the caller reads the response."""
    kwargs: dict[str, Any] = {"headers": dict(request.get("headers", {}))}
    if "query" in request:
        kwargs["params"] = request["query"]
    if "body" in request:
        kwargs["data"] = json.dumps(request["body"]).encode()
    elif "body_raw" in request:
        kwargs["data"] = request["body_raw"].encode()
    return await session.request(request["method"], fake.url + request["path"], **kwargs)


async def assert_matches(
    response: aiohttp.ClientResponse,
    recorded: dict[str, Any],
    fix: Callable[[Any], Any] = lambda x: x,
) -> Any:
    """Status, Content-Type and body equal to the recording (bodies through `fix`)."""
    expected = recorded["response"]
    raw = await response.read()
    assert response.status == expected["status"], raw[:300]
    assert response.headers.get("Content-Type") == expected["headers"].get("Content-Type")
    if "body" in expected:
        body = json.loads(raw)
        assert typed(fix(body)) == typed(fix(expected["body"]))
        return body
    if "body_text" in expected:
        assert raw.decode() == expected["body_text"]
        assert response.headers.get("Content-Length") == expected["headers"].get("Content-Length")
    return raw


def canon(
    obj: Any, ids: dict[str, str], numbers: dict[Any, str] | None = None, key: str | None = None
) -> Any:
    """Replace ids, numbers and timestamps by tokens, tag other numbers with their type."""
    numbers = numbers or {}
    if isinstance(obj, dict):
        return {ids.get(k, k): canon(v, ids, numbers, k) for k, v in obj.items()}
    if isinstance(obj, list):
        items = [canon(v, ids, numbers) for v in obj]
        if len(obj) == 5 and isinstance(obj[1], str) and obj[1] in ids:
            items[0] = numbers.get(obj[0], items[0])
        return items
    if key == "timestamp":
        return "<ts>"
    if key == "number" and isinstance(obj, int | float) and obj in numbers:
        return numbers[obj]
    if isinstance(obj, str):
        return ids.get(obj, obj)
    return typed(obj)


def typed(obj: Any) -> Any:
    """Numbers tagged with their JSON type, so that 1 != 1.0 in comparisons."""
    if isinstance(obj, dict):
        return {k: typed(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [typed(v) for v in obj]
    if isinstance(obj, int | float) and not isinstance(obj, bool):
        return (type(obj).__name__, obj)
    return obj


def tokens(recorded_ids: list[str], fake_ids: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Id maps giving the n-th recorded id and the n-th fake id the same token."""
    return (
        {pid: f"<prompt {i}>" for i, pid in enumerate(recorded_ids)},
        {pid: f"<prompt {i}>" for i, pid in enumerate(fake_ids)},
    )


def unpath(obj: Any, fake: FakeComfyUI) -> Any:
    """Path and traceback normalisation (see module docstring)."""
    if isinstance(obj, dict):
        return {k: unpath(v, fake) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unpath(v, fake) for v in obj]
    if isinstance(obj, str):
        assert fake.state is not None
        text = obj.replace(fake.state.catalog.venv, "<VENV>").replace(
            fake.state.catalog.root, "<COMFYUI_ROOT>"
        )
        match = _TRACEBACK_ENTRY.match(text)
        return match.group(1) if match else text
    return obj


def skeleton(obj: Any, key: str | None = None) -> Any:
    """Data with varying leaf values replaced by their type names."""
    if isinstance(obj, dict):
        return {k: skeleton(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [skeleton(v, key) for v in obj]
    if key in VARYING:
        return type(obj).__name__
    return obj


def binary_summary(data: bytes) -> dict[str, Any]:
    """A binary frame summarised like the fixtures do."""
    event_type = struct.unpack(">I", data[:4])[0]
    out: dict[str, Any] = {"frame": "binary", "length": len(data), "event_type": event_type}
    if event_type == 1:
        out["image_format_code"] = struct.unpack(">I", data[4:8])[0]
        image = data[8:]
    else:
        length = struct.unpack(">I", data[4:8])[0]
        out["metadata_length"] = length
        out["metadata"] = json.loads(data[8 : 8 + length])
        image = data[8 + length :]
    out["image"] = image_summary(image)
    return out


def image_summary(image: bytes) -> dict[str, Any]:
    """Geometry and chunk list of a PNG (head only for other formats)."""
    summary: dict[str, Any] = {"head_hex": image[:16].hex()}
    if image.startswith(b"\x89PNG"):
        chunks = png_chunks(image)
        width, height, depth, color_type = struct.unpack(">IIBB", chunks[0][1][:10])
        summary["png"] = {
            "width": width,
            "height": height,
            "bit_depth": depth,
            "color_type": color_type,
            "chunk_types": [kind for kind, _ in chunks],
            "text_keys": [p.split(b"\0")[0].decode() for k, p in chunks if k == "tEXt"],
        }
    return summary


def frame_shape(frame: dict[str, Any]) -> Any:
    """What must be equal between a recorded frame and the fake's."""
    if frame["frame"] == "text":
        return ("text", frame["message"]["type"], typed(skeleton(frame["message"]["data"])))
    png = frame.get("image", {}).get("png", {})
    geometry = (png.get("width"), png.get("height"), png.get("color_type"))
    if frame["event_type"] == 1:
        return ("binary", 1, frame["image_format_code"], geometry)
    return ("binary", 4, json.dumps(skeleton(frame["metadata"]), sort_keys=True), geometry)


def kind(frame: dict[str, Any]) -> str:
    """progress_state, progress, binary... (the keys of an `elided` entry)."""
    return "binary" if frame["frame"] == "binary" else str(frame["message"]["type"])


def assert_frames(
    recorded: list[dict[str, Any]], got: list[dict[str, Any]], loose_tail: bool = False
) -> None:
    """The fake's frames follow the recorded sequence (elided runs match any length).

    loose_tail: the recording ends mid-run (a socket closed on purpose); the frames after
    the elision only need to be of the elided kinds or of the kinds recorded there.
    """
    elided = [i for i, f in enumerate(recorded) if "elided" in f]
    shapes = [frame_shape(f) for f in got]
    if not elided:
        assert shapes == [frame_shape(f) for f in recorded]
        return
    assert len(elided) == 1, "one elision per sequence in these fixtures"
    head, tail = recorded[: elided[0]], recorded[elided[0] + 1 :]
    allowed = set(recorded[elided[0]]["elided"])
    assert shapes[: len(head)] == [frame_shape(f) for f in head]
    if loose_tail:
        allowed |= {kind(f) for f in tail}
        middle = got[len(head) :]
    else:
        assert shapes[len(shapes) - len(tail) :] == [frame_shape(f) for f in tail]
        middle = got[len(head) : len(got) - len(tail)]
    assert middle, "the elided run must not be empty"
    assert {kind(f) for f in middle} <= allowed


class WsRecorder:
    """A websocket client that keeps every frame it receives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, session: aiohttp.ClientSession, url: str, **kwargs: Any) -> WsRecorder:
        """Open a socket (aiohttp client, as the recorder did)."""
        return cls(await session.ws_connect(url, **kwargs))

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.frames.append({"frame": "text", "message": json.loads(msg.data)})
            elif msg.type == aiohttp.WSMsgType.BINARY:
                self.frames.append(binary_summary(msg.data))
            self._changed.set()
        self._changed.set()

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], start: int = 0, within_s: float = 10.0
    ) -> int:
        """Index of the first frame from `start` on that satisfies `predicate`."""
        async with asyncio.timeout(within_s):
            while True:
                for index in range(start, len(self.frames)):
                    if predicate(self.frames[index]):
                        return index
                if self._task.done():
                    raise AssertionError(f"socket closed; frames: {self.frames[-5:]}")
                self._changed.clear()
                await self._changed.wait()

    async def send_json(self, data: Any) -> None:
        """Send a text message."""
        await self.ws.send_str(json.dumps(data))

    async def wait_closed(self, within_s: float = 10.0) -> None:
        """Wait until the server closes (or resets) the socket."""
        await asyncio.wait_for(asyncio.shield(self._task), within_s)

    async def close(self) -> None:
        """Close the socket and stop reading."""
        await self.ws.close()
        await self._task


def text(kind: str, **data: Any) -> Callable[[dict[str, Any]], bool]:
    """A predicate for a text frame of this type whose data contains these items."""

    def check(frame: dict[str, Any]) -> bool:
        if frame["frame"] != "text" or frame["message"]["type"] != kind:
            return False
        return all(frame["message"]["data"].get(k) == v for k, v in data.items())

    return check


def done(prompt_id: str) -> Callable[[dict[str, Any]], bool]:
    """The last frame of a prompt: executing with node null."""
    return text("executing", node=None, prompt_id=prompt_id)
