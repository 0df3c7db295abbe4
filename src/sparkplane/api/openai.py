"""The OpenAI-compatible API: chat, completions, embeddings (the hot path) and models.

The three inference endpoints are one small ASGI app, called straight from the
gateway middleware: every proxied request skips the framework's routing and
dependency machinery, which cost more than the proxying itself (measured in
docs/benchmarks.md). Bodies are validated by the pydantic models in
`schemas.py` and forwarded as the client sent them (only the model name may be
rewritten for a device). The same models generate these paths' OpenAPI entry.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from sparkplane.api.auth import principal_of, require
from sparkplane.api.deps import runtime
from sparkplane.api.errors import sparkplane_error_response, validation_error_response
from sparkplane.api.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from sparkplane.backends.base import InferenceRequest, Operation
from sparkplane.errors import BadRequest, Forbidden, ModelNotFound, SparkplaneError, Unavailable
from sparkplane.runtime import Runtime
from sparkplane.security.principal import Principal
from sparkplane.security.rbac import Permission

router = APIRouter(prefix="/v1", tags=["openai"])

_Validator = TypeAdapter[Any]
INFERENCE_ROUTES: dict[str, tuple[Operation, type[BaseModel], str]] = {
    "/v1/chat/completions": (Operation.CHAT, ChatCompletionRequest, "Create a chat completion"),
    "/v1/completions": (Operation.COMPLETION, CompletionRequest, "Create a text completion"),
    "/v1/embeddings": (Operation.EMBEDDING, EmbeddingRequest, "Create embeddings"),
}
_VALIDATORS: dict[str, tuple[Operation, _Validator]] = {
    path: (op, TypeAdapter(model)) for path, (op, model, _) in INFERENCE_ROUTES.items()
}
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def inference(scope: Scope, receive: Receive, send: Send, body: bytes) -> None:
    """Serve one POST to an inference route whose body has been read."""
    rt: Runtime = scope["state"]["runtime"]
    principal = principal_of(scope)
    if not principal.can(Permission.INFERENCE):
        forbidden = Forbidden(f"the {principal.role.value} role may not run inference")
        await sparkplane_error_response(forbidden)(scope, receive, send)
        return
    op, validator = _VALIDATORS[scope["path"]]
    try:
        request = validator.validate_json(body)
    except ValidationError as exc:
        await validation_error_response(exc.errors())(scope, receive, send)
        return
    stream = op is not Operation.EMBEDDING and request.stream
    entry = None
    try:
        if not principal.may_use_model(request.model):
            # As if it did not exist: a tenant learns nothing of models it may not use.
            missing = ModelNotFound(f"The model '{request.model}' does not exist", param="model")
            rt.ledger.refused(principal, op, request.model, missing, stream=stream)
            raise missing
        max_tokens = getattr(request, "max_completion_tokens", None) or getattr(
            request, "max_tokens", None
        )
        entry = await rt.ledger.open(
            principal, op, request.model, body, stream=stream, max_tokens=max_tokens
        )
        answer = await rt.dispatcher.open(
            InferenceRequest(op=op, model=request.model, raw=body, stream=stream),
            request.model,
            rt.policy_for(principal),
            tenant=principal.tenant,
            max_tokens=max_tokens,
            deadline_s=_deadline(scope),
        )
    except SparkplaneError as exc:
        await sparkplane_error_response(exc)(scope, receive, send)
        if entry is not None:
            await rt.ledger.close(entry, device=None, status=exc.status, error=exc.code)
        return
    except BaseException:
        if entry is not None:
            await asyncio.shield(rt.ledger.close(entry, device=None, status=499))
        raise
    if answer.stream is None:
        rt.dispatcher.finish(answer)
        try:
            # The answer leaves only once its audit entry is durable (journal or database).
            await rt.ledger.close_body(
                entry,
                device=answer.device.name,
                status=answer.status,
                body=answer.body,
                attempts=answer.attempts,
            )
        except Unavailable as exc:
            await sparkplane_error_response(exc)(scope, receive, send)
            return
        # Raw ASGI messages: the most common response in the product, kept lean.
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", answer.upstream.content_type.encode("latin-1")),
                    (b"content-length", str(len(answer.body)).encode()),
                    (b"x-sparkplane-device", answer.device.name.encode()),
                    (b"x-sparkplane-attempts", str(answer.attempts).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})
        return
    headers = {
        "x-sparkplane-device": answer.device.name,
        "x-sparkplane-attempts": str(answer.attempts),
        **_SSE_HEADERS,
    }
    relay = rt.dispatcher.relay(answer)
    try:
        await StreamingResponse(
            rt.ledger.tallied(entry, answer, relay),
            headers=headers,
            media_type="text/event-stream",
        )(scope, receive, send)
    finally:
        # A client gone before the first chunk leaves the relay unstarted, so its
        # own cleanup never ran: close it and settle the request here (idempotent).
        await relay.aclose()
        answer.upstream.close()
        rt.dispatcher.finish(answer)
        await asyncio.shield(
            rt.ledger.close(entry, device=answer.device.name, status=499, error="client_closed")
        )


def _deadline(scope: Scope) -> float | None:
    """`X-Sparkplane-Deadline: SECONDS`: when the caller needs the answer by. A local
    device expected to miss it lets the request go to an allowed cloud device."""
    for key, value in scope["headers"]:
        if key == b"x-sparkplane-deadline":
            try:
                seconds = float(value)
            except ValueError:
                raise BadRequest(
                    "X-Sparkplane-Deadline must be a number of seconds", param="deadline"
                ) from None
            if not 0 < seconds < 1e9:
                raise BadRequest("X-Sparkplane-Deadline must be above 0", param="deadline")
            return seconds
    return None


def openapi_paths() -> dict[str, Any]:
    """OpenAPI path items for the inference routes, from the validating models."""
    from pydantic.json_schema import models_json_schema

    refs, defs = models_json_schema(
        [(model, "validation") for _, model, _ in INFERENCE_ROUTES.values()],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, Any] = {}
    for path, (_, model, summary) in INFERENCE_ROUTES.items():
        paths[path] = {
            "post": {
                "tags": ["openai"],
                "summary": summary,
                "operationId": path.strip("/").replace("/", "_"),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": refs[(model, "validation")]}},
                },
                "responses": {
                    "200": {"description": "The engine's answer (JSON, or SSE when streaming)"},
                    "502": {"description": "The device failed or dropped the connection"},
                    "504": {"description": "The device did not answer in time"},
                },
            }
        }
    return {"paths": paths, "schemas": defs.get("$defs", {})}


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
async def list_models(
    request: Request, principal: Principal = require(Permission.MODELS_READ)
) -> Response:
    """Every public model name (the caller may use) with the devices that serve it."""
    catalog = runtime(request).fleet.catalog
    data = [
        _model_doc(e.name, sorted({r.device.name for r in e.routes}), e.alias)
        for e in catalog.listed()
        if principal.may_use_model(e.name)
    ]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


@router.get("/models/{model:path}", summary="Retrieve a model")
async def get_model(
    model: str, request: Request, principal: Principal = require(Permission.MODELS_READ)
) -> Response:
    """One model, as in the list; 404 if no device has it."""
    routes = runtime(request).fleet.catalog.routes(model)
    if routes is None or not principal.may_use_model(model):
        raise ModelNotFound(f"The model '{model}' does not exist", param="model")
    doc = _model_doc(model, sorted({r.device.name for r in routes}), False)
    return Response(orjson.dumps(doc), media_type="application/json")
