"""Errors to HTTP, in one place. Bodies follow OpenAI's error format:
`{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from sparkplane.errors import RateLimited, SparkplaneError

log = structlog.get_logger("sparkplane.api")

_HTTP_TYPES = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "forbidden"),
    404: ("not_found_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "payload_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    503: ("service_unavailable", "unavailable"),
}


def error_body(message: str, type_: str, code: str, param: str | None = None) -> dict[str, Any]:
    """The OpenAI-format error document."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def json_error(
    status: int,
    message: str,
    type_: str,
    code: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An OpenAI-format error response."""
    return Response(
        orjson.dumps(error_body(message, type_, code, param)),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def sparkplane_error_response(exc: SparkplaneError) -> Response:
    """The response for one of sparkplane's own errors."""
    headers: dict[str, str] = dict(getattr(exc, "headers", None) or {})
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if exc.status >= 500:
        log.warning("request_failed", action="api.error", status=exc.status, code=exc.code)
    return json_error(exc.status, exc.message, exc.type, exc.code, exc.param, headers)


def _sparkplane_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SparkplaneError)
    return sparkplane_error_response(exc)


def validation_error_response(errors: Sequence[Any]) -> Response:
    """A 400 naming the first invalid field, from pydantic's error list."""
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid request"))
    if first.get("type") == "json_invalid":
        message, param = "the request body is not valid JSON", None
    elif param:
        message = f"{param}: {message}"
    return json_error(400, message, "invalid_request_error", "invalid_request", param)


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return validation_error_response(exc.errors())


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    type_, code = _HTTP_TYPES.get(exc.status_code, ("invalid_request_error", "http_error"))
    return json_error(exc.status_code, str(exc.detail), type_, code, None, dict(exc.headers or {}))


def refused_value(exc: DBAPIError) -> bool:
    """Whether the database refused a value (not failed): a NUL character in text
    for PostgreSQL, a number past 64 bits. SQLAlchemy's asyncpg dialect raises
    these as a plain DBAPIError, so PostgreSQL's SQLSTATE class 22 (data
    exception) is read as well."""
    return isinstance(exc, DataError) or str(getattr(exc.orig, "sqlstate", "")).startswith("22")


_INT64 = range(-(2**63), 2**63)


def _unstorable(value: str) -> bool:
    """Whether a URL value is one no database column takes: a NUL, or an integer
    past 64 bits (SQLite raises a bare OverflowError, PostgreSQL a data error)."""
    if "\x00" in value:
        return True
    digits = value.removeprefix("-")
    return digits.isdigit() and int(value) not in _INT64


def _culprit(request: Request) -> str | None:
    """The path or query parameter holding a value no database takes, if one does."""
    for name, value in [*request.path_params.items(), *request.query_params.multi_items()]:
        if isinstance(value, str) and _unstorable(value):
            return str(name)
    return None


def _refused(request: Request) -> Response:
    param = _culprit(request)
    where = f"{param}: " if param else ""
    return json_error(
        400,
        f"{where}a value in the request cannot be stored or looked up "
        "(text with NUL, a number past 64 bits, or too long)",
        "invalid_request_error",
        "invalid_value",
        param,
    )


def _database_error(request: Request, exc: Exception) -> Response:
    # A value the API let through and the database refused: the caller's input, so a 400.
    assert isinstance(exc, DBAPIError)
    if not refused_value(exc):
        return _unexpected(request, exc)
    return _refused(request)


def _overflow(request: Request, exc: Exception) -> Response:
    # SQLite's driver refuses an integer past 64 bits with a bare OverflowError
    # (not a DBAPIError), before the query runs: the caller's value, so a 400.
    # Any other overflow is a fault of ours.
    if "SQLite INTEGER" not in str(exc):
        return _unexpected(request, exc)
    return _refused(request)


def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled_error", action="api.error", path=request.url.path, exc_info=exc)
    return json_error(500, "internal error", "internal_error", "internal_error")


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(OverflowError, _overflow)
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(SparkplaneError, _sparkplane_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
