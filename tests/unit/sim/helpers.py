"""Hand-built fleets for the simulator's tests: explicit numbers, no planner."""

from __future__ import annotations

from sparkplane.fleet.snapshot import GIB, Demand, DeviceState, FleetSnapshot, Slot
from sparkplane.scheduler.policy import Policy
from sparkplane.sim.engine import Engine
from sparkplane.sim.fleetfile import CloudSpec
from sparkplane.sim.trace import Trace
from sparkplane.sim.world import ModelInfo, World


def device(name: str, gib: float = 24, parallel: int = 1, **kw: object) -> DeviceState:
    return DeviceState(
        name=name, memory_bytes=int(gib * GIB), parallel=parallel, can_load=True, **kw
    )  # type: ignore[arg-type]


def world(
    placements: list[tuple[DeviceState, str, float, float]],
    *,
    decode_tps: float = 100.0,
    prefill_tps: float = 1000.0,
    resident: bool = False,
    timeout_s: float = 600.0,
    cloud: DeviceState | None = None,
    tenants_with_cloud: tuple[str, ...] = (),
) -> World:
    """`placements`: (device, model, GiB, load seconds); one Demand per model."""
    demand: dict[str, Demand] = {}
    routes: dict[str, list[Slot]] = {}
    devices: dict[str, DeviceState] = {}
    for dev, model, gib, load_s in placements:
        slot = Slot(
            device=dev,
            model=model,
            bytes=int(gib * GIB),
            resident=resident,
            load_s=load_s,
            decode_tps=decode_tps,
            prefill_tps=prefill_tps,
            demand=demand.setdefault(model, Demand()),
        )
        dev.slots[model] = slot
        routes.setdefault(model, []).append(slot)
        devices[dev.name] = dev
    prices: dict[str, CloudSpec] = {}
    if cloud is not None:
        devices[cloud.name] = cloud
        prices[cloud.name] = CloudSpec(name=cloud.name, price_per_mtok=cloud.price_per_mtok)
        for model in routes:
            slot = Slot(
                device=cloud, model=model, resident=True, decode_tps=50.0, prefill_tps=1000.0
            )
            cloud.slots[model] = slot
            routes[model].append(slot)
    models = {m: ModelInfo(m, False, 10.0, 0.05, 60.0) for m in routes}
    return World(
        snapshot=FleetSnapshot.build(devices.values(), routes),
        devices=list(devices.values()),
        models=models,
        group={d: d for d in devices},
        watts={d: (100.0, 10.0) for d in devices},
        prices=prices,
        policies={t: Policy(allow_off_prem=True) for t in tenants_with_cloud},
        weights={},
        timeout_s=timeout_s,
    )


def trace(*rows: tuple[float, str, int, int]) -> Trace:
    """Requests (t, model, prompt tokens, output tokens)."""
    tr = Trace()
    for t, model, prompt, output in rows:
        tr.append(t, model, "", prompt, output)
    return tr


def engine(w: World, tr: Trace) -> Engine:
    return Engine(w, tr)
