"""Access to the running process's parts from a request."""

from __future__ import annotations

from typing import cast

from starlette.requests import HTTPConnection

from sparkplane.runtime import Runtime


def runtime(request: HTTPConnection) -> Runtime:
    """The Runtime the app's lifespan put into the request state."""
    return cast(Runtime, request.state.runtime)
