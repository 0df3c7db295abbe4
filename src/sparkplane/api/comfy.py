"""The ComfyUI-compatible API: ComfyUI's paths, query parameters and JSON shapes,
also under `/api` as ComfyUI serves them. The websocket is in `comfy_ws.py`.

Permissions: submitting (`POST /prompt`, `/upload/image`) and reading what the
fleet offers (`/object_info`, `/system_stats`, `/features`) need `inference`;
queue, history, files and interrupts need `jobs:own` and act on the caller's
tenant (`jobs:all` may also name other tenants' prompts and files by id);
`/free` acts on every device and needs `jobs:all`. Answers follow ComfyUI:
a body that is not JSON gets its plain-text 500, state-changing calls answer
200 with an empty body, unknown prompts `{}`.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson
from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import FileResponse, JSONResponse, Response

from sparkplane.api.auth import require
from sparkplane.api.deps import runtime
from sparkplane.errors import PayloadTooLarge
from sparkplane.jobs import control
from sparkplane.jobs.artifacts import TYPES, UnsafePath, clean_parts
from sparkplane.jobs.service import ComfyService
from sparkplane.security.principal import Principal
from sparkplane.security.rbac import Permission

router = APIRouter(tags=["comfyui"])
PREFIXES = ("", "/api")
TROUBLE = b"500 Internal Server Error\n\nServer got itself in trouble"
_JSON = "application/json; charset=utf-8"
_COPY_CHUNK = 1024 * 1024


def comfy_json(body: Any, status: int = 200) -> Response:
    """A JSON answer with ComfyUI's Content-Type."""
    return Response(orjson.dumps(body), status_code=status, headers={"content-type": _JSON})


def trouble() -> Response:
    """aiohttp's plain-text 500, which ComfyUI sends for a body that is not JSON."""
    return Response(TROUBLE, status_code=500, headers={"content-type": "text/plain; charset=utf-8"})


def empty(status: int = 200) -> Response:
    """An empty answer (no Content-Type), as ComfyUI's state-changing routes give."""
    return Response(status_code=status)


async def _body(request: Request) -> Any:
    raw = await request.body()
    return orjson.loads(raw)


def _svc(request: Request) -> ComfyService:
    return runtime(request).comfy


def _scope(principal: Principal) -> str | None:
    """Tenant to act on when naming jobs by id: every tenant for JOBS_ALL."""
    return None if principal.can(Permission.JOBS_ALL) else principal.tenant_id


def _devices(request: Request, principal: Principal) -> list[Any]:
    rt = runtime(request)
    return rt.comfy.devices(rt.policy_for(principal))


async def post_prompt(
    request: Request, principal: Principal = require(Permission.INFERENCE)
) -> Response:
    """Queue a prompt (stored before this answers). `Idempotency-Key` makes repeats safe."""
    try:
        body = await _body(request)
    except orjson.JSONDecodeError:
        return trouble()
    if not isinstance(body, dict):
        if isinstance(body, list | str):
            return comfy_json({"error": _no_prompt(), "node_errors": {}}, 400)
        return trouble()
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= 200:
        return comfy_json({"error": "Idempotency-Key must be 1-200 characters"}, 400)
    rt = runtime(request)
    await rt.ledger.admit_job(principal)
    status, answer = await rt.comfy.submit(principal, rt.policy_for(principal), body, key)
    return comfy_json(answer, status)


def _no_prompt() -> dict[str, Any]:
    return {
        "type": "no_prompt",
        "message": "No prompt provided",
        "details": "No prompt provided",
        "extra_info": {},
    }


async def get_prompt(
    request: Request, principal: Principal = require(Permission.JOBS_OWN)
) -> Response:
    """`{"exec_info": {"queue_remaining": N}}` for the caller's tenant."""
    return comfy_json(await control.prompt_info(_svc(request), principal.tenant_id))


async def get_queue(
    request: Request, principal: Principal = require(Permission.JOBS_OWN)
) -> Response:
    """The caller's running and pending prompts."""
    return comfy_json(await control.queue_view(_svc(request), principal.tenant_id))


async def post_queue(
    request: Request, principal: Principal = require(Permission.JOBS_OWN)
) -> Response:
    """`{"delete": [ids]}` or `{"clear": true}`: pending prompts only."""
    try:
        body = await _body(request)
    except orjson.JSONDecodeError:
        return trouble()
    svc = _svc(request)
    if isinstance(body, dict):
        if body.get("clear"):
            await control.delete_pending(svc, principal.tenant_id, None)
        if isinstance(body.get("delete"), list):
            await control.delete_pending(svc, _scope(principal), [str(i) for i in body["delete"]])
    return empty()


async def get_history(
    request: Request,
    max_items: int | None = None,
    offset: int = -1,
    principal: Principal = require(Permission.JOBS_OWN),
) -> Response:
    """Finished prompts of the caller's tenant, oldest first (ComfyUI's max_items/offset)."""
    return comfy_json(await control.history(_svc(request), principal.tenant_id, max_items, offset))


async def get_history_prompt(
    prompt_id: str, request: Request, principal: Principal = require(Permission.JOBS_OWN)
) -> Response:
    """One finished prompt; `{}` while it runs or if it is unknown."""
    return comfy_json(await control.history_one(_svc(request), _scope(principal), prompt_id))


async def post_history(
    request: Request, principal: Principal = require(Permission.JOBS_OWN)
) -> Response:
    """`{"delete": [ids]}` or `{"clear": true}`."""
    try:
        body = await _body(request)
    except orjson.JSONDecodeError:
        return trouble()
    store = _svc(request).store
    if isinstance(body, dict):
        if body.get("clear"):
            await store.hide_history(principal.tenant_id, None)
        if isinstance(body.get("delete"), list):
            await store.hide_history(_scope(principal), [str(i) for i in body["delete"]])
    return empty()


async def post_interrupt(
    request: Request, principal: Principal = require(Permission.JOBS_OWN)
) -> Response:
    """Interrupt the named prompt if it is executing; no body: every executing prompt of
    the caller's tenant."""
    try:
        body = await _body(request)
    except orjson.JSONDecodeError:
        body = {}
    prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
    if prompt_id is not None:
        await control.interrupt(_svc(request), _scope(principal), str(prompt_id))
    else:
        await control.interrupt(_svc(request), principal.tenant_id, None)
    return empty()


async def post_free(request: Request, _: Principal = require(Permission.JOBS_ALL)) -> Response:
    """`{"unload_models": bool, "free_memory": bool}` to every device."""
    try:
        body = await _body(request)
    except orjson.JSONDecodeError:
        return trouble()
    if not isinstance(body, dict):
        return trouble()
    await control.free(_svc(request), body)
    return empty()


async def get_view(
    request: Request,
    filename: str | None = None,
    type: str = "output",
    subfolder: str = "",
    principal: Principal = require(Permission.JOBS_OWN),
) -> Response:
    """An output or uploaded file, from the artifact store (also after its device is gone).
    `preview` and `channel` are accepted; the original file is served."""
    if filename is None:
        return empty(404)
    found = await control.view_path(_svc(request), _scope(principal), filename, type, subfolder)
    if isinstance(found, int):
        return empty(found)
    name = os.path.basename(found)
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if name.lower().endswith(".webp"):
        media = "image/webp"
    return FileResponse(
        found, media_type=media, headers={"Content-Disposition": f'filename="{name}"'}
    )


async def post_upload_image(
    request: Request, principal: Principal = require(Permission.INFERENCE)
) -> Response:
    """Multipart `image` (+ `overwrite`, `subfolder`, `type`), named as ComfyUI names it."""
    settings = runtime(request).settings
    form = await request.form(max_files=1, max_fields=16)
    try:
        image = form.get("image")
        if not isinstance(image, UploadFile):
            return empty(500 if image else 400)
        if not image.filename:
            return empty(400)
        type_ = str(form.get("type") or "input")
        subfolder = str(form.get("subfolder") or "")
        overwrite = str(form.get("overwrite") or "") in ("true", "1")
        filename = unquote(image.filename)  # a client may have percent-encoded a path
        if type_ not in TYPES:
            return trouble()  # ComfyUI fails on an unknown type
        try:
            clean_parts(subfolder, filename)
        except UnsafePath:
            return empty(400)
        svc = _svc(request)
        temp = await _spool(image, svc.artifacts.root, settings.max_upload_bytes)
        try:
            upload = await svc.artifacts.save_upload(
                principal.tenant_id,
                principal.key_id,
                type_,
                subfolder,
                filename,
                temp,
                overwrite,
            )
        finally:
            temp.unlink(missing_ok=True)
    finally:
        await form.close()
    return comfy_json({"name": upload.name, "subfolder": upload.subfolder, "type": upload.type})


async def _spool(image: UploadFile, root: Path, limit: int) -> Path:
    incoming = root / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=incoming)
    size = 0
    with os.fdopen(handle, "wb") as out:
        while chunk := await image.read(_COPY_CHUNK):
            size += len(chunk)
            if size > limit:
                raise_too_large(limit)
            out.write(chunk)
    return Path(name)


def raise_too_large(limit: int) -> None:
    """The upload is over `max_upload_bytes`."""
    raise PayloadTooLarge(f"upload is over the {limit}-byte limit")


async def get_system_stats(
    request: Request, principal: Principal = require(Permission.INFERENCE)
) -> Response:
    """`system` of the first device and one `devices` entry per device."""
    return comfy_json(control.system_stats(_svc(request), _devices(request, principal)))


async def get_object_info(
    request: Request, principal: Principal = require(Permission.INFERENCE)
) -> Response:
    """Every node class of the devices the caller may use, with combo options unioned."""
    svc = _svc(request)
    uploads = await svc.artifacts.upload_names(principal.tenant_id)
    return comfy_json(control.object_info(svc, _devices(request, principal), uploads))


async def get_object_info_node(
    node_class: str, request: Request, principal: Principal = require(Permission.INFERENCE)
) -> Response:
    """One node class, `{}` if no device has it."""
    svc = _svc(request)
    uploads = await svc.artifacts.upload_names(principal.tenant_id)
    info = control.object_info(svc, _devices(request, principal), uploads)
    return comfy_json({node_class: info[node_class]} if node_class in info else {})


async def get_features(request: Request, _: Principal = require(Permission.INFERENCE)) -> Response:
    """Server features, as the websocket's feature_flags reply."""
    return comfy_json(features(runtime(request).settings.max_upload_bytes))


def features(max_upload: int) -> dict[str, Any]:
    """GET /features."""
    return {"supports_preview_metadata": True, "max_upload_size": max_upload}


Handler = Callable[..., Awaitable[Response]]


def _operation_id(prefix: str, method: str, path: str) -> str:
    words = (prefix + path).replace("{", "").replace("}", "").replace("/", "_")
    return f"comfy{words}_{method.lower()}"


ROUTES: list[tuple[str, str, Handler, str]] = [
    ("POST", "/prompt", post_prompt, "Queue a prompt"),
    ("GET", "/prompt", get_prompt, "Queue length"),
    ("GET", "/queue", get_queue, "Running and pending prompts"),
    ("POST", "/queue", post_queue, "Delete pending prompts"),
    ("GET", "/history", get_history, "Finished prompts"),
    ("GET", "/history/{prompt_id}", get_history_prompt, "One finished prompt"),
    ("POST", "/history", post_history, "Delete history entries"),
    ("POST", "/interrupt", post_interrupt, "Interrupt a running prompt"),
    ("POST", "/free", post_free, "Free devices' memory"),
    ("GET", "/view", get_view, "An output or uploaded file"),
    ("POST", "/upload/image", post_upload_image, "Upload an input image"),
    ("GET", "/system_stats", get_system_stats, "Devices and versions"),
    ("GET", "/object_info", get_object_info, "Node classes"),
    ("GET", "/object_info/{node_class}", get_object_info_node, "One node class"),
    ("GET", "/features", get_features, "Server features"),
]
# ComfyUI answers these with 200 and an empty body (recorded), not JSON.
EMPTY_ANSWERS = frozenset(
    {("POST", "/queue"), ("POST", "/history"), ("POST", "/interrupt"), ("POST", "/free")}
)
# GET /view answers the file itself, typed by its extension.
FILE_ANSWERS = frozenset({("GET", "/view")})


def _documented(method: str, path: str) -> dict[int | str, dict[str, Any]]:
    if (method, path) in EMPTY_ANSWERS:
        return {200: {"description": "Done (an empty body, as ComfyUI answers)", "content": {}}}
    if (method, path) in FILE_ANSWERS:
        return {200: {"description": "The file", "content": {"*/*": {}}}}
    return {}


for _prefix in PREFIXES:
    for _method, _path, _handler, _summary in ROUTES:
        router.add_api_route(
            _prefix + _path,
            _handler,
            methods=[_method],
            summary=f"ComfyUI: {_summary}" + (" (/api)" if _prefix else ""),
            response_model=None,
            operation_id=_operation_id(_prefix, _method, _path),
            responses=_documented(_method, _path),
            # Plain Response: the schema then states only the media types given above.
            response_class=Response
            if (_method, _path) in EMPTY_ANSWERS | FILE_ANSWERS
            else JSONResponse,
        )
