"""Finding out which engine answers at a URL (`devices add --kind auto`, discovery)."""

from __future__ import annotations

import aiohttp

from sparkplane.backends.base import ProbeResult
from sparkplane.backends.registry import DETECTION_ORDER, make_backend
from sparkplane.errors import UpstreamError


async def detect(
    url: str, session: aiohttp.ClientSession, *, timeout: float, api_key: str | None = None
) -> ProbeResult | None:
    """Probe `url` as each known engine kind in turn; the first that answers wins.

    Returns None when nothing sparkplane knows answers there.
    """
    for kind in DETECTION_ORDER:
        backend = make_backend(kind, url, session, api_key=api_key, probe_timeout=timeout)
        try:
            return await backend.probe()
        except UpstreamError:
            continue
    return None
