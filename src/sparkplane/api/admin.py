"""The admin API for devices: `/api/devices` (the JSON twin of `sparkplane devices`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from sparkplane.api.auth import require
from sparkplane.api.deps import record_admin, runtime
from sparkplane.fleet import service
from sparkplane.fleet.device import Device, DeviceRecord
from sparkplane.fleet.load import LoadBook
from sparkplane.planner import profiles_with
from sparkplane.security.principal import Principal
from sparkplane.security.rbac import Permission

router = APIRouter(prefix="/api/devices", tags=["devices"])

Kind = Literal["auto", "openai", "ollama", "comfyui"]


class DeviceCreate(BaseModel):
    """A device to register."""

    url: Annotated[
        str, Field(min_length=8, max_length=500, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\s]+")
    ]
    name: (
        Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
        | None
    ) = None
    kind: Kind = "auto"
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    off_prem: bool = False
    api_key: Annotated[str, Field(max_length=4096)] | None = None


class DeviceUpdate(BaseModel):
    """Settings that can change after registration."""

    priority: Annotated[int, Field(ge=-1000, le=1000)] | None = None
    enabled: bool | None = None
    off_prem: bool | None = None
    power_w: Annotated[float, Field(gt=0, le=100_000)] | None = Field(
        None, description="Power figure in watts, for the energy estimate of usage records."
    )
    profile: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        None, description="Planner device profile (e.g. rtx-4090, dgx-spark) for the scheduler."
    )
    memory_gib: Annotated[float, Field(gt=0, le=100_000)] | None = Field(
        None, description="Memory models may use, GiB (default: the engine's or the profile's)."
    )
    parallel: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        None, description="Requests the device serves at once."
    )
    load_gbs: Annotated[float, Field(gt=0, le=10_000)] | None = Field(
        None, description="GB/s a model is read into memory."
    )
    quant: Annotated[str, Field(min_length=1, max_length=40)] | None = Field(
        None, description="Precision its models run at (e.g. q4_k_m), for the planner's figures."
    )
    price_per_mtok: Annotated[float, Field(gt=0, le=1_000_000)] | None = Field(
        None, description="A cloud device's price per million tokens."
    )


def memory_view(book: LoadBook, device: Device) -> dict[str, Any]:
    """The scheduler's view of a device's memory: models resident or cold, free bytes."""
    state = device.state
    known = state.memory_bytes > 0
    return {
        "total_bytes": state.memory_bytes if known else None,
        "free_bytes": state.free_bytes if known else None,
        "pressure_bytes": state.pressure_bytes,
        "reserved_bytes": state.reserved_bytes,
        "unified": state.unified,
        "parallel": state.parallel,
        "can_load": state.can_load,
        "models": [
            {
                "model": s.model,
                "resident": s.resident,
                "loading": s.loading,
                "bytes": s.bytes,
                "inflight": s.inflight,
                "load_s": round(s.load_s, 2),
                "seconds_per_request": s.pace_s,
                "correction": s.correction,
            }
            for s in book.slots_of(device)
        ],
    }


def _view(record: DeviceRecord, live: Device | None) -> dict[str, Any]:
    doc = record.public()
    if live is not None:
        doc["health"] = live.health
        doc["inflight"] = live.inflight
        doc["circuit"] = live.breaker.state.value
        doc["seconds_per_request"] = live.ewma_s
    return doc


@router.get("", summary="List devices")
async def list_devices(
    request: Request, _: Principal = require(Permission.DEVICES_READ)
) -> dict[str, Any]:
    """Every device with its health, models and latency."""
    rt = runtime(request)
    records = await rt.store.list_devices()
    return {"data": [_view(r, rt.fleet.by_name(r.name)) for r in records]}


@router.post("", status_code=201, summary="Register a device")
async def add_device(
    body: DeviceCreate, request: Request, who: Principal = require(Permission.DEVICES_WRITE)
) -> dict[str, Any]:
    """Register a device; with kind `auto` its engine is detected by probing."""
    rt = runtime(request)
    rt.audit.raise_if_closed()
    record = await service.register(
        rt.store,
        rt.http,
        url=body.url,
        name=body.name,
        kind=body.kind,
        priority=body.priority,
        off_prem=body.off_prem,
        api_key=body.api_key,
        probe_timeout=rt.settings.probe_timeout_s,
    )
    rt.fleet.sync(await rt.store.list_devices())
    record_admin(
        request,
        who,
        "devices.add",
        record.name,
        url=record.url,
        kind=record.kind,
        priority=record.priority,
        off_prem=record.off_prem,
        has_api_key=bool(body.api_key),
    )
    return _view(record, rt.fleet.by_name(record.name))


@router.get("/{name}", summary="Show a device")
async def get_device(
    name: str, request: Request, _: Principal = require(Permission.DEVICES_READ)
) -> dict[str, Any]:
    """One device, with what sits in its memory and its history of loads and evictions."""
    rt = runtime(request)
    record = await rt.store.get(name)
    live = rt.fleet.by_name(name)
    doc = _view(record, live)
    doc["memory"] = memory_view(rt.book, live) if live is not None else None
    doc["residency"] = [r.public() for r in await rt.residency.residents(record.id)]
    doc["history"] = [e.public() for e in await rt.residency.history(record.id)]
    return doc


@router.patch("/{name}", summary="Change a device")
async def update_device(
    name: str,
    body: DeviceUpdate,
    request: Request,
    who: Principal = require(Permission.DEVICES_WRITE),
) -> dict[str, Any]:
    """Change priority, enabled, off-premises, the power figure, or what the scheduler
    knows of the hardware (profile, memory, parallel places, load speed, precision, price)."""
    rt = runtime(request)
    rt.audit.raise_if_closed()
    changes = body.model_dump(exclude_none=True)
    audited = dict(changes)
    power = changes.pop("power_w", None)
    if power is not None:
        await service.set_power(rt.store, name, power)
    hardware = {k: changes.pop(k) for k in service.HARDWARE_KEYS if k in changes}
    if hardware:
        profiles = profiles_with(rt.settings.device_profiles)
        await service.set_hardware(rt.store, name, hardware, profiles)
    record = await rt.store.edit(name, **changes) if changes else await rt.store.get(name)
    rt.fleet.sync(await rt.store.list_devices())
    record_admin(request, who, "devices.update", name, **audited)
    return _view(record, rt.fleet.by_name(name))


@router.delete("/{name}", status_code=204, summary="Remove a device")
async def remove_device(
    name: str, request: Request, who: Principal = require(Permission.DEVICES_WRITE)
) -> None:
    """Unregister a device; requests in flight on it finish."""
    rt = runtime(request)
    rt.audit.raise_if_closed()
    await rt.store.remove(name)
    rt.fleet.sync(await rt.store.list_devices())
    record_admin(request, who, "devices.remove", name)


@router.post("/{name}/probe", summary="Probe a device now")
async def probe_device(
    name: str, request: Request, _: Principal = require(Permission.DEVICES_WRITE)
) -> dict[str, Any]:
    """Probe one device at once and return what it said."""
    rt = runtime(request)
    await rt.store.get(name)
    rt.fleet.sync(await rt.store.list_devices())
    device = rt.fleet.by_name(name)
    assert device is not None
    if await rt.health.probe(device):
        rt.fleet.rebuild_catalog()
    await rt.store.save_probes([device.record])
    return _view(device.record, device)
