"""The OpenAI-compatible API: chat, completions, embeddings, models.

Bodies are validated by the schemas in `schemas.py` and then forwarded as the
client sent them (only the model name may be rewritten for a device).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from sparkplane.api.deps import runtime
from sparkplane.api.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from sparkplane.backends.base import InferenceRequest, Operation
from sparkplane.errors import ModelNotFound

router = APIRouter(prefix="/v1", tags=["openai"])

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def _forward(request: Request, op: Operation, model: str, stream: bool) -> Response:
    rt = runtime(request)
    raw = await request.body()  # cached by the framework: no second read
    payload: dict[str, Any] = orjson.loads(raw)
    inference = InferenceRequest(op=op, payload=payload, raw=raw, stream=stream)
    answer = await rt.dispatcher.open(inference, model, rt.default_policy)
    headers = {
        "x-sparkplane-device": answer.device.name,
        "x-sparkplane-attempts": str(answer.attempts),
    }
    if answer.stream is None:
        rt.dispatcher.finish(answer)
        return Response(
            answer.body,
            status_code=answer.status,
            media_type=answer.upstream.content_type,
            headers=headers,
        )
    headers.update(_SSE_HEADERS)
    return StreamingResponse(
        rt.dispatcher.relay(answer), media_type="text/event-stream", headers=headers
    )


@router.post("/chat/completions", summary="Create a chat completion")
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    """OpenAI's chat completions, on the least-loaded healthy device serving the model."""
    return await _forward(request, Operation.CHAT, body.model, body.stream)


@router.post("/completions", summary="Create a text completion")
async def completions(body: CompletionRequest, request: Request) -> Response:
    """OpenAI's legacy completions."""
    return await _forward(request, Operation.COMPLETION, body.model, body.stream)


@router.post("/embeddings", summary="Create embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> Response:
    """OpenAI's embeddings."""
    return await _forward(request, Operation.EMBEDDING, body.model, False)


def _model_doc(name: str, devices: list[str], alias: bool) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": "sparkplane",
        "alias": alias,
        "devices": devices,
    }


@router.get("/models", summary="List models")
async def list_models(request: Request) -> Response:
    """Every public model name with the devices that serve it."""
    catalog = runtime(request).fleet.catalog
    data = [
        _model_doc(e.name, sorted({r.device.name for r in e.routes}), e.alias)
        for e in catalog.listed()
    ]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


@router.get("/models/{model:path}", summary="Retrieve a model")
async def get_model(model: str, request: Request) -> Response:
    """One model, as in the list; 404 if no device has it."""
    routes = runtime(request).fleet.catalog.routes(model)
    if routes is None:
        raise ModelNotFound(f"The model '{model}' does not exist", param="model")
    doc = _model_doc(model, sorted({r.device.name for r in routes}), False)
    return Response(orjson.dumps(doc), media_type="application/json")
