"""HTTP routes of the fake: prompt, queue, history, interrupt, free, info, websocket.

Handlers follow ComfyUI 0.3.64's server.py: bodies that are not JSON make
`request.json()` raise, which aiohttp turns into its plain-text 500; POST routes that
change state answer 200 with an empty body; every route is also served under /api.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.fakes.comfyui import memory, routes_files
from tests.fakes.comfyui.state import State
from tests.fakes.comfyui.validation import validate_prompt

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


def route_table(state: State) -> list[tuple[str, str, Handler]]:
    """(method, path, handler) of every route, without the /api prefix."""
    queue, stats = state.queue, state.stats

    async def websocket(request: web.Request) -> web.StreamResponse:
        stats.ws_connects += 1
        return await state.hub.handle(request, state.queue_info)

    async def features(request: web.Request) -> web.StreamResponse:
        return web.json_response(server_features(state))

    async def system_stats(request: web.Request) -> web.StreamResponse:
        return web.json_response(memory.system_stats(state.config.system_stats, state.resident))

    async def object_info(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {name: state.catalog.definition(name) for name in state.catalog.names()}
        )

    async def object_info_node(request: web.Request) -> web.StreamResponse:
        name = request.match_info["node_class"]
        return web.json_response(
            {name: state.catalog.definition(name)} if name in state.catalog else {}
        )

    async def get_prompt(request: web.Request) -> web.StreamResponse:
        return web.json_response(state.queue_info())

    async def post_prompt(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        stats.prompt_bodies.append(copy.deepcopy(body))
        if "number" in body:
            number: float = float(body["number"])
        else:
            number = state.number
            if "front" in body and body["front"]:  # noqa: RUF019 - the body may not be a dict
                number = -number
            state.number += 1
        if "prompt" not in body:
            missing = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            return web.json_response({"error": missing, "node_errors": {}}, status=400)
        prompt = body["prompt"]
        prompt_id = str(body.get("prompt_id", uuid.uuid4()))
        valid, error, outputs, node_errors = validate_prompt(
            prompt, state.catalog, body.get("partial_execution_targets")
        )
        extra_data = body["extra_data"] if "extra_data" in body else {}  # noqa: SIM401
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        if not valid:
            return web.json_response({"error": error, "node_errors": node_errors}, status=400)
        sensitive = {k: extra_data.pop(k) for k in SENSITIVE_EXTRA_DATA_KEYS if k in extra_data}
        queue.put((number, prompt_id, prompt, extra_data, outputs, sensitive))
        stats.accepted.append(prompt_id)
        return web.json_response(
            {"prompt_id": prompt_id, "number": number, "node_errors": node_errors}
        )

    async def get_queue(request: web.Request) -> web.StreamResponse:
        running, pending = queue.current()
        return web.json_response({"queue_running": running, "queue_pending": pending})

    async def post_queue(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if "clear" in body and body["clear"]:  # noqa: RUF019 - the body may not be a dict
            queue.wipe_queue()
        if "delete" in body:
            for prompt_id in body["delete"]:
                queue.delete_pending(prompt_id)
        return web.Response(status=200)

    async def post_interrupt(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = {}
        stats.interrupts.append(body)
        prompt_id = body.get("prompt_id")
        if not prompt_id or prompt_id in queue.running_ids():
            state.interrupt.set()
        return web.Response(status=200)

    async def post_free(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        stats.frees.append(body)
        for flag in ("unload_models", "free_memory"):
            if body.get(flag, False):
                queue.set_flag(flag, body[flag])
        return web.Response(status=200)

    async def get_history(request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        max_items = int(query["max_items"]) if "max_items" in query else None
        offset = int(query["offset"]) if "offset" in query else -1
        return web.json_response(queue.get_history(max_items=max_items, offset=offset))

    async def get_history_prompt(request: web.Request) -> web.StreamResponse:
        return web.json_response(queue.get_history(prompt_id=request.match_info["prompt_id"]))

    async def post_history(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if "clear" in body and body["clear"]:  # noqa: RUF019 - the body may not be a dict
            queue.wipe_history()
        if "delete" in body:
            for prompt_id in body["delete"]:
                queue.delete_history(prompt_id)
        return web.Response(status=200)

    return [
        ("GET", "/ws", websocket),
        ("GET", "/features", features),
        ("GET", "/system_stats", system_stats),
        ("GET", "/object_info", object_info),
        ("GET", "/object_info/{node_class}", object_info_node),
        ("GET", "/prompt", get_prompt),
        ("POST", "/prompt", post_prompt),
        ("GET", "/queue", get_queue),
        ("POST", "/queue", post_queue),
        ("POST", "/interrupt", post_interrupt),
        ("POST", "/free", post_free),
        ("GET", "/history", get_history),
        ("GET", "/history/{prompt_id}", get_history_prompt),
        ("POST", "/history", post_history),
        *routes_files.route_table(state),
    ]


def server_features(state: State) -> dict[str, Any]:
    """GET /features, also the feature_flags websocket reply."""
    return {"supports_preview_metadata": True, "max_upload_size": state.config.max_upload_size}
