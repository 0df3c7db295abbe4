"""The OpenAPI document: the framework's, plus the hot-path inference routes
(served outside the router), with error answers documented as sparkplane
sends them (OpenAI's error body; 400 for invalid input, never 422)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from sparkplane.api import openai

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
# What any route may answer besides its success: auth, validation, limits, state.
ERRORS = {
    "400": "Invalid request: the first bad field is named in `error.param`",
    "401": "No API key, or one that is unknown, revoked or expired",
    "403": "The key's role may not do this",
    "404": "Not found (or not visible to the caller's tenant)",
    "409": "Conflicts with what exists (a name in use)",
    "413": "Request body too large",
    "429": "A rate limit or quota is exhausted; see Retry-After",
    "503": "Unavailable: no healthy device, a policy forbids it, draining, audit log down",
}


def install(app: FastAPI) -> None:
    """Make `app.openapi()` return sparkplane's complete, accurate document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            extra = openai.openapi_paths()
            schema["paths"] = {**extra["paths"], **schema.get("paths", {})}
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(extra["schemas"])
            components["Error"] = ERROR_SCHEMA
            for path, item in schema["paths"].items():
                for operation in item.values():
                    _document_errors(path, operation)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_errors(path: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    public = path in ("/healthz", "/readyz")
    # The ComfyUI drop-in answers its own errors as ComfyUI does (often an empty
    # body); sparkplane's own refusals (auth, limits) still use the error body.
    comfyui = "comfyui" in operation.get("tags", ())
    for status, description in ERRORS.items():
        if public and status in ("401", "403"):
            continue
        answer: dict[str, Any] = {"description": description}
        if not comfyui or status in ("401", "429", "503"):
            answer["content"] = {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
            }
        responses.setdefault(status, answer)
