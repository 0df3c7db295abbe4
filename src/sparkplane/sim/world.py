"""The simulated fleet: `DeviceState`s and `Slot`s built from a fleet file and planner figures.

Built fresh for every run (the accounting in `fleet/snapshot.py` mutates them).
A cold load takes ``bytes / load bandwidth + ENGINE_START_S``. Every slot of a
model shares one `Demand`, so eviction cost sees the model's fleet-wide rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sparkplane.fleet.snapshot import Demand, DeviceState, FleetSnapshot, Slot
from sparkplane.scheduler.policy import Policy
from sparkplane.sim.fleetfile import IDLE_SHARE, CloudSpec, FleetFile, OutageSpec
from sparkplane.sim.profiles import FigureTable

# Seconds an engine takes to start serving a model beyond reading its bytes
# (process start, CUDA context, graph capture); a rounded figure.
ENGINE_START_S = 2.0


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model's kind and service-level objectives."""

    name: str
    image: bool
    ttft_s: float
    tpot_s: float
    deadline_s: float


@dataclass(slots=True)
class World:
    """Everything one run of the simulator works on."""

    snapshot: FleetSnapshot
    devices: list[DeviceState]
    models: dict[str, ModelInfo]
    group: dict[str, str]  # device name -> its group (fleet-file name)
    watts: dict[str, tuple[float, float]]  # device name -> (busy, idle)
    prices: dict[str, CloudSpec]  # off-premises device name -> its prices
    policies: dict[str, Policy]  # tenant -> policy (absent: local only)
    weights: dict[str, float]
    timeout_s: float
    outages: list[OutageSpec] = field(default_factory=list)

    def policy(self, tenant: str) -> Policy:
        """`tenant`'s policy: the cloud only where its fleet-file entry allows it."""
        return self.policies.get(tenant, LOCAL)


LOCAL = Policy()


def build_world(fleet: FleetFile, table: FigureTable, *, resident: str | None = None) -> World:
    """A fresh fleet for one run. `resident` makes a bound: "everywhere", every model
    resident from the start on every device it fits; "best", only on its best device
    (the fastest the planner knows for it, ties by name), and routed nowhere else.
    Memory is then never short and nothing is loaded."""
    unlimited = resident is not None
    models = {
        m.name: ModelInfo(
            m.name,
            False,
            m.ttft_s or fleet.slo.ttft_s,
            m.tpot_s or fleet.slo.tpot_s,
            m.deadline_s or fleet.slo.deadline_s,
        )
        for m in fleet.model
    }
    demand = {m.name: Demand() for m in fleet.model}
    routes: dict[str, list[Slot]] = {m.name: [] for m in fleet.model}
    devices: list[DeviceState] = []
    group: dict[str, str] = {}
    watts: dict[str, tuple[float, float]] = {}
    for spec in fleet.device:
        profile = table.profile(spec.profile)
        idle = spec.idle_w if spec.idle_w is not None else profile.power_w * IDLE_SHARE
        allowed = [m for m in fleet.model if m.devices is None or spec.name in m.devices]
        figures = {m.name: table.figures(m, profile.id, spec.parallel) for m in allowed}
        for name in spec.names():
            usable = profile.usable_bytes
            device = DeviceState(
                name=name,
                priority=spec.priority,
                memory_bytes=0 if unlimited else usable,
                can_load=not unlimited,
                unified=profile.kind != "discrete",
                parallel=spec.parallel,
                watts=profile.power_w,
            )
            devices.append(device)
            group[name] = spec.name
            watts[name] = (profile.power_w, idle)
            for m in allowed:
                f = figures[m.name]
                if not f.fits:
                    continue
                if f.image:
                    models[m.name] = replace(models[m.name], image=True)
                slot = Slot(
                    device=device,
                    model=m.name,
                    bytes=f.bytes,
                    resident=unlimited,
                    load_s=f.bytes / (spec.load_gbs * 1e9) + ENGINE_START_S,
                    prefill_tps=f.prefill_tps,
                    decode_tps=f.decode_tps,
                    image_s=f.image_s,
                    image_bytes=f.image_bytes,
                    demand=demand[m.name],
                )
                device.slots[m.name] = slot
                routes[m.name].append(slot)
    if resident == "best":
        for name, slots in routes.items():
            if slots:
                routes[name] = [min(slots, key=_best_first)]
        for device in devices:
            device.slots = {
                m: s for m, s in device.slots.items() if routes[m] and routes[m][0] is s
            }
    prices: dict[str, CloudSpec] = {}
    for cloud in fleet.cloud:
        device = DeviceState(
            name=cloud.name,
            off_prem=True,
            parallel=cloud.parallel,
            price_per_mtok=cloud.price_per_mtok,
        )
        devices.append(device)
        group[cloud.name] = cloud.name
        watts[cloud.name] = (0.0, 0.0)
        prices[cloud.name] = cloud
        for name in cloud.models or list(models):
            image = models[name].image
            slot = Slot(
                device=device,
                model=name,
                resident=True,
                prefill_tps=None if image else cloud.prefill_tps,
                decode_tps=None if image else cloud.decode_tps,
                image_s=cloud.image_s if image else None,
                demand=demand[name],
            )
            device.slots[name] = slot
            routes[name].append(slot)
    policies = {
        t.name: Policy(allow_off_prem=True, owner=t.name) for t in fleet.tenant if t.allow_cloud
    }
    return World(
        snapshot=FleetSnapshot.build(devices, routes),
        devices=devices,
        models=models,
        group=group,
        watts=watts,
        prices=prices,
        policies=policies,
        weights={t.name: t.weight for t in fleet.tenant},
        timeout_s=fleet.slo.timeout_s,
        outages=list(fleet.outage),
    )


def _best_first(slot: Slot) -> tuple[float, str]:
    """Fastest first: seconds per image, or per output token."""
    if slot.image_s is not None:
        return (slot.image_s, slot.device.name)
    return (1.0 / slot.decode_tps if slot.decode_tps else float("inf"), slot.device.name)
