"""``GET /api/plan``: the capacity planner over HTTP.

Only catalog names and numbers are accepted: a model path in a query parameter
would let any client make the server read its files, so paths are refused.
Errors use the OpenAI error body; an unknown model is a 404 listing the
closest catalog names, any other bad input a 400.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from sparkplane.api.auth import require
from sparkplane.planner import (
    DeviceProfile,
    PlannerError,
    PlanRequest,
    UnknownModelError,
    load_model,
    plan,
    plan_to_dict,
    spec_from_numbers,
)
from sparkplane.planner.resolve import is_path_syntax
from sparkplane.security.principal import Principal
from sparkplane.security.rbac import Permission


def _error(status: int, message: str, param: str | None, code: str) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param}}
    body["error"]["code"] = code
    return JSONResponse(status_code=status, content=body)


def planner_error_response(exc: PlannerError) -> JSONResponse:
    """The HTTP answer for a planner error: 404 for an unknown model, else 400."""
    status = 404 if isinstance(exc, UnknownModelError) else 400
    resp = _error(status, exc.message, exc.param, exc.code)
    return resp


class _Route(APIRoute):
    """Reports query validation failures as OpenAI-style 400s, not FastAPI's 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await inner(request)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                loc = first.get("loc", ())
                param = str(loc[-1]) if loc else None
                msg = f"{param}: {first.get('msg', 'invalid value')}"
                return _error(400, msg, param, "invalid_value")

        return handler


def build_router(profiles: Mapping[str, DeviceProfile]) -> APIRouter:
    """A router serving ``GET /api/plan`` over ``profiles``."""
    router = APIRouter(route_class=_Route)

    @router.get("/api/plan", summary="Will a model fit on each device, and how fast")
    def get_plan(
        model: Annotated[str | None, Query(description="Catalog model name.")] = None,
        device: Annotated[list[str] | None, Query(description="Device ids.")] = None,
        quant: Annotated[str | None, Query(description="Precision or GGUF type.")] = None,
        context: Annotated[int | None, Query(ge=1, le=10_000_000)] = None,
        prompt_tokens: Annotated[int | None, Query(ge=0, le=10_000_000)] = None,
        output_tokens: Annotated[int | None, Query(ge=1, le=10_000_000)] = None,
        sequences: Annotated[int | None, Query(ge=1, le=65_536)] = None,
        engine: Annotated[str | None, Query()] = None,
        kv_dtype: Annotated[str | None, Query()] = None,
        params_b: Annotated[float | None, Query(gt=0, le=10_000)] = None,
        active_params_b: Annotated[float | None, Query(gt=0, le=10_000)] = None,
        layers: Annotated[int | None, Query(ge=1, le=10_000)] = None,
        kv_heads: Annotated[int | None, Query(ge=1, le=65_536)] = None,
        head_dim: Annotated[int | None, Query(ge=1, le=65_536)] = None,
        train: Annotated[str | None, Query(description="full, lora or qlora")] = None,
        lora_rank: Annotated[int | None, Query(ge=1, le=4096)] = None,
        width: Annotated[int | None, Query(ge=64, le=8192)] = None,
        height: Annotated[int | None, Query(ge=64, le=8192)] = None,
        batch: Annotated[int | None, Query(ge=1, le=256)] = None,
        steps: Annotated[int | None, Query(ge=1, le=1000)] = None,
        with_: Annotated[list[str] | None, Query(alias="with")] = None,
        _: Principal = require(Permission.PLAN),
    ) -> Any:
        try:
            if params_b is not None:
                spec = spec_from_numbers(
                    params_b, active_params_b, layers=layers, kv_heads=kv_heads, head_dim=head_dim
                )
            elif not model:
                return _error(400, "give model or params_b", "model", "missing_model")
            elif is_path_syntax(model):
                msg = "file paths are not accepted over HTTP; use a catalog name"
                return _error(400, msg, "model", "invalid_model")
            else:
                spec = load_model(model, allow_paths=False)
            request = PlanRequest(
                devices=device or None,
                quant=quant,
                engine=engine,
                context=context,
                prompt_tokens=prompt_tokens,
                output_tokens=output_tokens,
                sequences=sequences,
                kv_dtype=kv_dtype,
                train=train,
                lora_rank=lora_rank,
                width=width,
                height=height,
                batch=batch,
                steps=steps,
            )
            together = [load_model(w, allow_paths=False) for w in with_ or ()]
            result = plan(spec, request, profiles=profiles, together=together)
        except PlannerError as exc:
            return planner_error_response(exc)
        return plan_to_dict(result)

    return router
