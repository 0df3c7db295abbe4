"""Errors raised by the capacity planner.

Every planner error is a ``ValueError`` so callers that only know "bad input" can
catch that; the subclasses say which input was bad::

    PlannerError(ValueError)
     +-- SpecError            a model file or folder is malformed, truncated or unsupported
     +-- UnknownModelError    a model name is not in the catalog (carries close names)
     +-- UnknownDeviceError   a device id is not among the profiles (carries close ids)
     +-- InvalidRequestError  a precision, engine or number is out of range

``param`` names the request field at fault, so HTTP and CLI layers can report it.
"""

from __future__ import annotations

from collections.abc import Sequence


class PlannerError(ValueError):
    """Base class of every error the planner raises on bad input."""

    param: str | None = None
    code: str = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if param is not None:
            self.param = param


class SpecError(PlannerError):
    """A model file (GGUF, safetensors, config.json) is malformed or unsupported."""

    param = "model"
    code = "invalid_model_file"


class UnknownModelError(PlannerError):
    """A model name matched nothing in the catalog."""

    param = "model"
    code = "model_not_found"

    def __init__(self, name: str, suggestions: Sequence[str]) -> None:
        hint = f"; closest: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"unknown model {name!r}{hint}")
        self.name = name
        self.suggestions = tuple(suggestions)


class UnknownDeviceError(PlannerError):
    """A device id matched none of the known profiles."""

    param = "device"
    code = "device_not_found"

    def __init__(self, device_id: str, suggestions: Sequence[str]) -> None:
        hint = f"; known: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"unknown device {device_id!r}{hint}")
        self.device_id = device_id
        self.suggestions = tuple(suggestions)


class InvalidRequestError(PlannerError):
    """A precision, engine or numeric argument cannot be used."""
