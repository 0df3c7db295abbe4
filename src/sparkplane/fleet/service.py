"""Device registration shared by the CLI and the admin API: validate, detect
the engine, name, store, and keep the probe result."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp
import structlog

from sparkplane.backends.base import ProbeResult
from sparkplane.backends.detect import detect
from sparkplane.backends.registry import KINDS, make_backend
from sparkplane.errors import BadRequest, UpstreamError
from sparkplane.fleet.device import DeviceRecord
from sparkplane.fleet.store import DeviceStore
from sparkplane.planner import DeviceProfile, find_device
from sparkplane.planner.errors import PlannerError

log = structlog.get_logger("sparkplane.fleet")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Where engines listen by default, for a newcomer's first start.
LOCAL_ENGINES = (
    (11434, "ollama"),
    (8188, "comfyui"),
    (8080, "llamacpp"),
    (8000, "vllm"),
    (30000, "sglang"),
    (1234, "lmstudio"),
)


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def check_url(url: str) -> str:
    """Reject anything but an absolute http(s) URL with a host."""
    if _has_control(url):
        # urlsplit keeps them in the host; they would reach the database and the client.
        raise BadRequest(f"device URL must not contain control characters: {url!r}", param="url")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise BadRequest(f"malformed device URL: {url!r}", param="url") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"device URL must be http(s)://host[:port]: {url!r}", param="url")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise BadRequest(f"bad port in device URL: {url!r}", param="url") from exc
    try:
        parts.hostname.encode("idna")  # what the HTTP client does; fails on "a..b"
    except UnicodeError as exc:
        raise BadRequest(f"bad host name in device URL: {url!r}", param="url") from exc
    return url.rstrip("/")


def check_name(name: str) -> str:
    """Names are used on the command line and in metrics: keep them plain."""
    if not NAME_RE.match(name):
        raise BadRequest(
            "device name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            param="name",
        )
    return name


def check_api_key(api_key: str | None) -> str | None:
    """The key goes into an HTTP header: control characters would break (or inject) it."""
    if api_key is not None and _has_control(api_key):
        raise BadRequest("api_key must not contain control characters", param="api_key")
    return api_key


def default_name(url: str, kind: str) -> str:
    """`kind-host-port`, e.g. `ollama-10.0.0.5-11434`."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = re.sub(r"[^A-Za-z0-9.-]", "-", parts.hostname or "device")
    return f"{kind}-{host}-{port}"[:64]


async def register(
    store: DeviceStore,
    session: aiohttp.ClientSession,
    *,
    url: str,
    name: str | None = None,
    kind: str = "auto",
    priority: int = 0,
    off_prem: bool = False,
    api_key: str | None = None,
    probe_timeout: float = 3.0,
) -> DeviceRecord:
    """Register a device. With kind `auto` the engine must answer a probe now;
    with an explicit kind it may be down and is probed by the health loop."""
    url = check_url(url)
    api_key = check_api_key(api_key)
    if kind != "auto" and kind not in KINDS:
        raise BadRequest(
            f"unknown kind {kind!r}; use auto or one of {', '.join(KINDS)}", param="kind"
        )
    probe: ProbeResult | None = None
    if kind == "auto":
        probe = await detect(url, session, timeout=probe_timeout, api_key=api_key)
        if probe is None:
            raise BadRequest(
                f"no engine sparkplane knows answered at {url} (tried Ollama, ComfyUI, "
                "OpenAI-compatible); is it running? Or give --kind",
                param="url",
                code="engine_not_detected",
            )
        kind = probe.kind
    else:
        try:
            probe = await make_backend(
                kind, url, session, api_key=api_key, probe_timeout=probe_timeout
            ).probe()
        except UpstreamError:
            probe = None
    record = await store.add(
        name=check_name(name or default_name(url, kind)),
        url=url,
        kind=kind,
        priority=priority,
        off_prem=off_prem,
        api_key=api_key,
    )
    if probe is not None:
        apply_probe(record, probe)
        await store.save_probes([record])
    log.info("device_added", action="devices.add", device=record.name, kind=kind, url=url)
    return record


def apply_probe(record: DeviceRecord, probe: ProbeResult) -> None:
    """Copy a probe's findings onto a record (before it is saved)."""
    record.health = "healthy"
    record.models = sorted(probe.models)
    record.latency_ms = round(probe.latency_s * 1000, 2)
    record.engine_version = probe.version
    record.last_error = None


async def discover(
    store: DeviceStore,
    session: aiohttp.ClientSession,
    *,
    timeout: float = 1.0,
    host: str = "127.0.0.1",
) -> list[DeviceRecord]:
    """Probe loopback at the engines' usual ports and register what answers."""

    async def one(port: int, label: str) -> DeviceRecord | None:
        url = f"http://{host}:{port}"
        probe = await detect(url, session, timeout=timeout)
        if probe is None:
            return None
        record = await store.add(name=f"local-{label}", url=url, kind=probe.kind)
        apply_probe(record, probe)
        await store.save_probes([record])
        return record

    found = await asyncio.gather(*(one(port, label) for port, label in LOCAL_ENGINES))
    records = [r for r in found if r is not None]
    for r in records:
        log.info(
            "device_discovered",
            action="devices.discover",
            device=r.name,
            kind=r.kind,
            url=r.url,
            models=len(r.models),
        )
    if not records:
        log.info("no_engines_found", action="devices.discover", ports=[p for p, _ in LOCAL_ENGINES])
    return records


async def set_power(store: DeviceStore, name: str, watts: float | None) -> DeviceRecord:
    """Set (or with None clear) a device's power figure, `extra["power_w"]`, in watts.

    The meter turns device-seconds into energy with it (e.g. a DGX Spark: 140 W
    for the SoC alone, 240 W for the whole system).
    """
    if watts is not None and not 0 < watts <= 100_000:
        raise BadRequest("the power figure must be between 0 and 100000 W", param="power_w")
    record = await store.get(name)
    extra = {k: v for k, v in record.extra.items() if k != "power_w"}
    if watts is not None:
        extra["power_w"] = watts
    return await store.edit(name, extra=extra)


# What the scheduler reads from a device's `extra` (see fleet/load.py).
HARDWARE_KEYS = ("profile", "memory_gib", "parallel", "load_gbs", "quant", "price_per_mtok")


async def set_hardware(
    store: DeviceStore,
    name: str,
    values: dict[str, object],
    profiles: Mapping[str, DeviceProfile],
) -> DeviceRecord:
    """Tell the scheduler what a device is: its planner profile, usable memory,
    parallel places, load speed, model precision and (for a cloud) its price.

    Only keys in `values` change; a value of None removes the key. A profile is
    looked up in `profiles` by id or alias, as `sparkplane plan` does.
    """
    unknown = sorted(set(values) - set(HARDWARE_KEYS))
    if unknown:
        raise BadRequest(f"unknown device setting(s): {', '.join(unknown)}", param=unknown[0])
    profile = values.get("profile")
    if isinstance(profile, str):
        try:
            find_device(profiles, profile)
        except PlannerError:
            raise BadRequest(
                f"unknown device profile {profile!r}; see `sparkplane plan --help`",
                param="profile",
            ) from None
    for key in ("memory_gib", "parallel", "load_gbs", "price_per_mtok"):
        value = values.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
        ):
            raise BadRequest(f"{key} must be a number above 0", param=key)
    record = await store.get(name)
    extra = dict(record.extra)
    for key, value in values.items():
        if value is None:
            extra.pop(key, None)
        else:
            extra[key] = value
    return await store.edit(name, extra=extra)
