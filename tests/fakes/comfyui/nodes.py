"""What each node class does when the fake "executes" it.

Recorded classes have their own runner (files written where ComfyUI writes them, named
as ComfyUI names them); every other class runs `generic`: it waits its configured time,
reports progress steps if it has a progress input, and returns opaque values (IMAGE
outputs are solid frames sized from the width/height found upstream).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.comfyui import tracebacks
from tests.fakes.comfyui.catalog import Catalog
from tests.fakes.comfyui.config import NodeSpec
from tests.fakes.comfyui.files import Folders
from tests.fakes.comfyui.images import Frame, ImageDecodeError, load_frame

Preview = tuple[str, Frame]  # ("PNG" | "JPEG", image)
ProgressHook = Callable[[int, int, Preview | None], Awaitable[None]]


class NodeError(Exception):
    """A node failed the way a Python exception inside ComfyUI would."""

    def __init__(
        self, exception_type: str, message: str, traceback: list[str], tips: str = ""
    ) -> None:
        super().__init__(message)
        self.exception_type = exception_type
        self.message = message
        self.traceback = traceback
        self.tips = tips


@dataclass(frozen=True)
class Mask:
    """A MASK value (the fake never looks at mask pixels)."""

    width: int
    height: int
    value: float = 0.0

    def __str__(self) -> str:
        return f"tensor(shape=[1, {self.height}, {self.width}], dtype=float32)"


@dataclass(frozen=True)
class Opaque:
    """Any other value (MODEL, CLIP, LATENT...), with the sizes it implies downstream."""

    type: str
    node_id: str
    meta: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"<{self.type} from node {self.node_id}>"


@dataclass
class NodeCall:
    """Everything a runner needs for one execution of one node."""

    node_id: str
    spec: NodeSpec
    inputs: dict[str, Any]
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    folders: Folders
    catalog: Catalog
    signature: Hashable
    work_seconds: float
    step_seconds: float
    sleep: Callable[[float], Awaitable[None]]
    progress: ProgressHook


@dataclass
class NodeResult:
    """Output values by slot, and the UI dict (history "outputs") if any."""

    outputs: tuple[Any, ...]
    ui: dict[str, Any] = field(default_factory=dict)


Runner = Callable[[NodeCall], Awaitable[NodeResult]]


async def empty_image(call: NodeCall) -> NodeResult:
    await call.sleep(call.work_seconds)
    i = call.inputs
    color = ((i["color"] >> 16) & 0xFF, (i["color"] >> 8) & 0xFF, i["color"] & 0xFF)
    frame = Frame.solid(i["width"], i["height"], color)
    return NodeResult(((frame,) * i["batch_size"],))


async def image_invert(call: NodeCall) -> NodeResult:
    await call.sleep(call.work_seconds)
    done: dict[int, Frame] = {}
    out = []
    for frame in call.inputs["image"]:
        if id(frame) not in done:
            done[id(frame)] = frame.inverted()
        out.append(done[id(frame)])
    return NodeResult((tuple(out),))


async def image_scale(call: NodeCall) -> NodeResult:
    await call.sleep(call.work_seconds)
    frames, width, height = call.inputs["image"], call.inputs["width"], call.inputs["height"]
    out = []
    for frame in frames:
        w, h = width, height
        if w == 0 and h == 0:
            out.append(frame)
            continue
        w = w or max(1, round(frame.width * h / frame.height))
        h = h or max(1, round(frame.height * w / frame.width))
        out.append(frame.scaled(w, h))
    return NodeResult((tuple(out),))


async def solid_mask(call: NodeCall) -> NodeResult:
    await call.sleep(call.work_seconds)
    i = call.inputs
    return NodeResult((Mask(i["width"], i["height"], i["value"]),))


async def load_image(call: NodeCall) -> NodeResult:
    await call.sleep(call.work_seconds)
    path = call.folders.annotated_path(call.inputs["image"])
    try:
        data = path.read_bytes()
    except OSError as exc:
        frames = tracebacks.node_failure(call.catalog.root, "load_image")
        raise NodeError(type(exc).__qualname__, str(exc), frames) from exc
    try:
        frame, alpha = load_frame(data)
    except ImageDecodeError as exc:
        frames = tracebacks.load_image_failure(call.catalog.root, call.catalog.venv)
        raise NodeError(
            "PIL.UnidentifiedImageError", f"cannot identify image file '{path}'", frames
        ) from exc
    mask = Mask(frame.width, frame.height) if alpha is not None else Mask(64, 64)
    return NodeResult(((frame,), mask))


async def save_image(call: NodeCall, *, preview: bool = False) -> NodeResult:
    await call.sleep(call.work_seconds)
    frames: tuple[Frame, ...] = call.inputs["images"]
    if preview:
        # ComfyUI's alphabet (sic: no "w", two "p"), picked once per PreviewImage object.
        letters = "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
        prefix, folder, kind, level = f"ComfyUI_temp_{letters}", call.folders.temp, "temp", 1
    else:
        prefix, folder, kind, level = (
            call.inputs["filename_prefix"],
            call.folders.output,
            "output",
            4,
        )
    first = frames[0] if frames else Frame.solid(0, 0, (0, 0, 0))
    target, stem, counter, subfolder = call.folders.save_target(
        prefix, folder, first.width, first.height
    )
    texts = [("prompt", json.dumps(call.prompt))]
    extra = call.extra_data.get("extra_pnginfo")
    if isinstance(extra, dict):
        texts += [(key, json.dumps(value)) for key, value in extra.items()]
    results = []
    for batch_number, frame in enumerate(frames):
        name = f"{stem.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
        (target / name).write_bytes(frame.png(level, tuple(texts)))
        results.append({"filename": name, "subfolder": subfolder, "type": kind})
        counter += 1
    return NodeResult((), {"images": results})


async def preview_image(call: NodeCall) -> NodeResult:
    return await save_image(call, preview=True)


async def save_image_websocket(call: NodeCall) -> NodeResult:
    await call.sleep(call.work_seconds)
    frames = call.inputs["images"]
    for step, frame in enumerate(frames):
        await call.sleep(call.step_seconds)
        await call.progress(step, len(frames), ("PNG", frame))
    return NodeResult(())


async def generic(call: NodeCall) -> NodeResult:
    await call.sleep(call.work_seconds)
    meta: dict[str, int] = {}
    for value in call.inputs.values():
        if isinstance(value, Opaque) and value.meta and not meta:
            meta = dict(value.meta)
        elif isinstance(value, tuple) and value and isinstance(value[0], Frame) and not meta:
            meta = {"width": value[0].width, "height": value[0].height, "batch_size": len(value)}
    for name in ("width", "height", "batch_size"):
        if isinstance(call.inputs.get(name), int):
            meta[name] = call.inputs[name]
    spec = call.spec
    steps = int(call.inputs.get(spec.progress_input, 0)) if spec.progress_input else 0
    digest = hashlib.sha256(repr(call.signature).encode()).digest()
    color = (digest[0], digest[1], digest[2])
    for step in range(steps):
        await call.sleep(call.step_seconds)
        preview = ("JPEG", Frame.solid(64, 64, color)) if spec.previews else None
        await call.progress(step + 1, steps, preview)
    outputs: list[Any] = []
    for kind in spec.return_types:
        if kind == "IMAGE":
            frame = Frame.solid(meta.get("width", 64), meta.get("height", 64), color)
            outputs.append((frame,) * meta.get("batch_size", 1))
        else:
            outputs.append(Opaque(str(kind), call.node_id, meta))
    return NodeResult(tuple(outputs))


RUNNERS: dict[str, Runner] = {
    "EmptyImage": empty_image,
    "ImageInvert": image_invert,
    "ImageScale": image_scale,
    "SolidMask": solid_mask,
    "LoadImage": load_image,
    "SaveImage": save_image,
    "PreviewImage": preview_image,
    "SaveImageWebsocket": save_image_websocket,
    "generic": generic,
}


def is_changed(spec: NodeSpec, node: dict[str, Any], folders: Folders) -> Hashable:
    """IS_CHANGED: LoadImage hashes its file, always_changed classes never repeat."""
    if spec.always_changed:
        return ("always", random.random())
    if spec.behavior == "LoadImage":
        try:
            path = folders.annotated_path(node["inputs"]["image"])
            return hashlib.sha256(path.read_bytes()).hexdigest()
        except (OSError, KeyError, TypeError):
            return "missing"
    return False
