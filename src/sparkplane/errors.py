"""sparkplane's exceptions: one tree, mapped to HTTP in one place (`api/errors.py`).

    SparkplaneError                    500 internal_error
    ├── BadRequest                     400 invalid_request_error
    │   └── PayloadTooLarge            413 invalid_request_error
    ├── Unauthorized                   401 authentication_error
    │   └── KeyRefused                 401 invalid_api_key (carries the reason, for the audit log)
    ├── Forbidden                      403 permission_error
    ├── NotFound                       404 not_found_error
    │   └── ModelNotFound              404 invalid_request_error / model_not_found
    ├── Conflict                       409 conflict_error
    ├── RateLimited                    429 rate_limit_error (carries retry_after)
    ├── UpstreamError                  502 upstream_error
    │   └── UpstreamTimeout            504 timeout_error
    └── Unavailable                    503 service_unavailable
        ├── NoHealthyDevice            503 no_healthy_device
        ├── PolicyForbids              503 policy_forbids
        └── ShuttingDown               503 shutting_down

Every error knows its HTTP status, an OpenAI-style `type`, and a stable
machine-readable `code`; the message is for people and never carries secrets.
"""

from __future__ import annotations


class SparkplaneError(Exception):
    """Root of every error sparkplane raises on purpose."""

    status: int = 500
    type: str = "internal_error"
    code: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class BadRequest(SparkplaneError):
    """The request is malformed or names something invalid."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class PayloadTooLarge(BadRequest):
    """The request body is over the configured limit."""

    status = 413
    code = "payload_too_large"


class Unauthorized(SparkplaneError):
    """No credentials, or credentials that are not valid."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class KeyRefused(Unauthorized):
    """A missing or invalid key; `reason` (e.g. `revoked`) is for the audit log, not
    the caller, who learns only that the key is not valid."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class Forbidden(SparkplaneError):
    """Valid credentials without the right to do this."""

    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(SparkplaneError):
    """The thing named does not exist (or is not visible to the caller)."""

    status = 404
    type = "not_found_error"
    code = "not_found"


class ModelNotFound(NotFound):
    """No device in the fleet serves this model name."""

    type = "invalid_request_error"
    code = "model_not_found"


class Conflict(SparkplaneError):
    """The request conflicts with existing state (e.g. a duplicate name)."""

    status = 409
    type = "conflict_error"
    code = "conflict"


class RateLimited(SparkplaneError):
    """A rate limit or quota is exhausted; retry after `retry_after` seconds."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class UpstreamError(SparkplaneError):
    """A device answered with an error or broke the connection."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    """A device did not answer (or went silent) within the configured time."""

    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


class Unavailable(SparkplaneError):
    """sparkplane cannot serve this now; the client may retry later."""

    status = 503
    type = "service_unavailable"
    code = "unavailable"


class NoHealthyDevice(Unavailable):
    """Devices serve the model but none of them is healthy."""

    code = "no_healthy_device"


class PolicyForbids(Unavailable):
    """Only devices the caller's policy forbids could serve the request."""

    code = "policy_forbids"


class ShuttingDown(Unavailable):
    """The process is draining before exit and takes no new work."""

    code = "shutting_down"
