"""sparkplane's errors as HTTP responses: status, OpenAI-format body, headers."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from starlette.responses import Response

from sparkplane import errors
from sparkplane.api.errors import install, sparkplane_error_response, validation_error_response
from sparkplane.backends.base import DeviceUnreachable

# The documented mapping (the tree drawn in sparkplane/errors.py).
EXPECTED: list[tuple[type[errors.SparkplaneError], int, str, str]] = [
    (errors.SparkplaneError, 500, "internal_error", "internal_error"),
    (errors.BadRequest, 400, "invalid_request_error", "invalid_request"),
    (errors.PayloadTooLarge, 413, "invalid_request_error", "payload_too_large"),
    (errors.Unauthorized, 401, "authentication_error", "invalid_api_key"),
    (errors.Forbidden, 403, "permission_error", "forbidden"),
    (errors.NotFound, 404, "not_found_error", "not_found"),
    (errors.ModelNotFound, 404, "invalid_request_error", "model_not_found"),
    (errors.Conflict, 409, "conflict_error", "conflict"),
    (errors.UpstreamError, 502, "upstream_error", "upstream_error"),
    (errors.UpstreamTimeout, 504, "timeout_error", "upstream_timeout"),
    (DeviceUnreachable, 502, "upstream_error", "device_unreachable"),
    (errors.Unavailable, 503, "service_unavailable", "unavailable"),
    (errors.NoHealthyDevice, 503, "service_unavailable", "no_healthy_device"),
    (errors.PolicyForbids, 503, "service_unavailable", "policy_forbids"),
    (errors.ShuttingDown, 503, "service_unavailable", "shutting_down"),
]


def body_of(response: Response) -> dict[str, Any]:
    data = orjson.loads(bytes(response.body))
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(("cls", "status", "type_", "code"), EXPECTED)
def test_each_error_maps_to_its_status_and_openai_body(
    cls: type[errors.SparkplaneError], status: int, type_: str, code: str
) -> None:
    response = sparkplane_error_response(cls("something went wrong", param="model"))
    assert response.status_code == status
    assert response.media_type == "application/json"
    assert body_of(response) == {
        "error": {"message": "something went wrong", "type": type_, "param": "model", "code": code}
    }
    assert "retry-after" not in response.headers


def test_every_error_class_is_covered() -> None:
    def subclasses(cls: type[errors.SparkplaneError]) -> set[type[errors.SparkplaneError]]:
        found = {cls}
        for sub in cls.__subclasses__():
            found |= subclasses(sub)
        return found

    declared = {
        c
        for c in subclasses(errors.SparkplaneError)
        if c.__module__ in ("sparkplane.errors", "sparkplane.backends.base")
    }
    covered = {cls for cls, *_ in EXPECTED} | {errors.RateLimited, errors.KeyRefused}
    assert declared <= covered, declared - covered


def test_a_refused_key_is_a_401_that_keeps_its_reason_to_itself() -> None:
    refused = errors.KeyRefused("the API key is not valid", reason="wrong_secret")
    response = sparkplane_error_response(refused)
    assert response.status_code == 401
    assert body_of(response)["error"] == {
        "message": "the API key is not valid",
        "type": "authentication_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert refused.reason == "wrong_secret"  # for the audit log only


def test_code_given_at_raise_time_replaces_the_default() -> None:
    response = sparkplane_error_response(errors.BadRequest("no", code="context_length_exceeded"))
    assert body_of(response)["error"] == {
        "message": "no",
        "type": "invalid_request_error",
        "param": None,
        "code": "context_length_exceeded",
    }


@pytest.mark.parametrize(
    ("retry_after", "header"), [(0.2, "1"), (1.0, "1"), (2.1, "3"), (30, "30")]
)
def test_rate_limited_is_429_with_retry_after_in_whole_seconds(
    retry_after: float, header: str
) -> None:
    response = sparkplane_error_response(errors.RateLimited("slow down", retry_after=retry_after))
    assert response.status_code == 429
    assert response.headers["retry-after"] == header
    assert body_of(response)["error"] == {
        "message": "slow down",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }


def test_validation_error_names_the_first_invalid_field() -> None:
    response = validation_error_response(
        [{"loc": ("body", "messages", 0, "role"), "msg": "Input should be 'user'", "type": "x"}]
    )
    assert response.status_code == 400
    assert body_of(response)["error"] == {
        "message": "messages.0.role: Input should be 'user'",
        "type": "invalid_request_error",
        "param": "messages.0.role",
        "code": "invalid_request",
    }


def test_invalid_json_is_a_400_without_a_param() -> None:
    response = validation_error_response([{"loc": (), "msg": "bad", "type": "json_invalid"}])
    assert response.status_code == 400
    error = body_of(response)["error"]
    assert isinstance(error, dict)
    assert error["param"] is None
    assert "not valid JSON" in str(error["message"])


async def test_installed_handlers_answer_raised_errors_in_openai_format() -> None:
    app = FastAPI()
    install(app)

    @app.get("/limited")
    async def limited() -> None:
        raise errors.RateLimited("too many requests", retry_after=7)

    @app.get("/upstream")
    async def upstream() -> None:
        raise errors.UpstreamTimeout("device 'a' did not answer in time")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/limited")
        assert r.status_code == 429
        assert r.headers["retry-after"] == "7"
        assert r.json()["error"]["type"] == "rate_limit_error"
        r = await client.get("/upstream")
        assert r.status_code == 504
        assert r.json()["error"]["code"] == "upstream_timeout"
        r = await client.get("/missing")
        assert r.status_code == 404
        assert r.json()["error"] == {
            "message": "Not Found",
            "type": "not_found_error",
            "param": None,
            "code": "not_found",
        }
