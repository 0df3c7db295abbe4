"""File routes: /upload/image, /view, and the (unrecorded) /models and /embeddings.

/view follows ComfyUI: 400 (empty) for a `..` or absolute filename or an unknown type,
403 for a subfolder escaping the folder, 404 (empty) when the file is missing; the file
itself goes out as a FileResponse (ETag, Last-Modified, Accept-Ranges) with
Content-Type from the extension. `preview=jpeg;Q` is re-encoded by the fake's own JPEG
encoder; `preview=webp` needs Pillow (without it the fake answers 500).
"""

from __future__ import annotations

import io
import os
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from aiohttp import web

from tests.fakes.comfyui import files
from tests.fakes.comfyui.images import encode_png, load_frame
from tests.fakes.comfyui.jpeg import encode_jpeg
from tests.fakes.comfyui.state import State, Upload

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FORCED_DOWNLOAD = {
    "text/html",
    "text/html-sandboxed",
    "application/xhtml+xml",
    "text/javascript",
    "text/css",
}
MODEL_FOLDERS = [
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
    "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen",
    "upscale_models", "custom_nodes", "hypernetworks", "photomaker", "classifiers",
]  # fmt: skip


def route_table(state: State) -> list[tuple[str, str, Handler]]:
    """(method, path, handler) of the file routes."""

    async def upload_image(request: web.Request) -> web.StreamResponse:
        post = await request.post()
        image = post.get("image")
        overwrite = post.get("overwrite")
        kind = post.get("type")
        kind = "input" if kind is None else str(kind)
        if state.folders.by_type(kind) is None:
            raise ValueError(f"unknown upload type {kind!r}")  # UnboundLocalError in ComfyUI
        if not isinstance(image, web.FileField):
            if image:  # a plain text field: ComfyUI fails on image.file (500)
                raise AttributeError(f"{type(image).__name__!r} object has no attribute 'file'")
            return web.Response(status=400)
        if not image.filename:
            return web.Response(status=400)
        data = image.file.read()
        subfolder = str(post.get("subfolder", ""))
        result = state.folders.upload(
            image.filename, data, subfolder, kind, overwrite in ("true", "1")
        )
        if result is None:
            return web.Response(status=400)
        state.stats.uploads.append(
            Upload(result.name, result.subfolder, result.type, len(data), result.written)
        )
        return web.json_response(
            {"name": result.name, "subfolder": result.subfolder, "type": result.type}
        )

    async def view(request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        found = _view_path(state, query)
        if isinstance(found, int):
            return web.Response(status=found)
        filename = os.path.basename(found)
        disposition = {"Content-Disposition": f'filename="{filename}"'}
        if "preview" in query:
            return _preview(found, query, disposition)
        channel = query.get("channel", "rgba")
        if channel in ("rgb", "a"):
            return _channel(found, channel, disposition)
        content_type = files.content_type(filename)
        if content_type in FORCED_DOWNLOAD:
            content_type = "application/octet-stream"
        return web.FileResponse(found, headers={**disposition, "Content-Type": content_type})

    async def models(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            MODEL_FOLDERS + [f for f in state.config.model_files if f not in MODEL_FOLDERS]
        )

    async def model_files(request: web.Request) -> web.StreamResponse:
        folder = request.match_info["folder"]
        if folder not in MODEL_FOLDERS and folder not in state.config.model_files:
            return web.Response(status=404)
        return web.json_response(sorted(state.config.model_files.get(folder, [])))

    async def embeddings(request: web.Request) -> web.StreamResponse:
        return web.json_response(sorted(state.config.model_files.get("embeddings", [])))

    return [
        ("POST", "/upload/image", upload_image),
        ("GET", "/view", view),
        ("GET", "/models", models),
        ("GET", "/models/{folder}", model_files),
        ("GET", "/embeddings", embeddings),
    ]


def _view_path(state: State, query: Any) -> str | int:
    """The file /view serves, or the status it answers instead."""
    if "filename" not in query:
        return 404
    filename, folder = state.folders.annotated(query["filename"])
    if not filename or filename[0] == "/" or ".." in filename:
        return 400
    if folder is None:
        folder = state.folders.by_type(query.get("type", "output"))
    if folder is None:
        return 400
    base = str(folder)
    if "subfolder" in query:
        full = os.path.join(base, query["subfolder"])
        if os.path.commonpath((os.path.abspath(full), base)) != base:
            return 403
        base = full
    path = os.path.join(base, os.path.basename(filename))
    return path if os.path.isfile(path) else 404


def _read(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    with open(path, "rb") as f:
        frame, alpha = load_frame(f.read())
    return np.ascontiguousarray(frame.array()), alpha


def _preview(path: str, query: Any, headers: dict[str, str]) -> web.Response:
    parts = query["preview"].split(";")
    image_format = parts[0]
    if image_format not in ("webp", "jpeg") or "a" in query.get("channel", ""):
        image_format = "webp"
    quality = int(parts[-1]) if parts[-1].isdigit() else 90
    rgb, _ = _read(path)
    if image_format == "jpeg":
        body = encode_jpeg(rgb, quality)
    else:
        from PIL import Image  # optional: only webp previews need Pillow

        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="webp", quality=quality)
        body = buffer.getvalue()
    return web.Response(body=body, content_type=f"image/{image_format}", headers=headers)


def _channel(path: str, channel: str, headers: dict[str, str]) -> web.Response:
    rgb, alpha = _read(path)
    if channel == "rgb":
        body = encode_png(rgb)
    else:
        height, width = rgb.shape[:2]
        out = np.zeros((height, width, 4), dtype=np.uint8)
        out[:, :, 3] = alpha if alpha is not None else 255
        body = encode_png(out)
    return web.Response(body=body, content_type="image/png", headers=headers)
