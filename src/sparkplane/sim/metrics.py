"""What a run measured: SLO attainment, latency, loads, bytes moved, cloud spend, energy.

A request attains its SLO when it was served and its time to first token and
time per output token are within its model's objectives (an image job: the
image within its deadline). Rejections, timeouts, out-of-memory failures and
requests lost to an outage are misses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from sparkplane.sim.engine import FAILED, OOM, REJECTED, SERVED, TIMED_OUT, Engine


@dataclass(frozen=True, slots=True)
class TenantStats:
    """One tenant's share of a run."""

    requests: int
    attainment: float
    p50_s: float
    p99_s: float


@dataclass(frozen=True, slots=True)
class Summary:
    """The figures of one run (latencies in seconds, of served requests)."""

    policy: str
    rate: float  # arrivals per second
    requests: int
    attainment: float
    served: int
    rejected: int
    timed_out: int
    oom: int
    failed: int
    p50_s: float
    p99_s: float
    ttft_p99_s: float
    cold_loads: int
    gb_moved: float
    cloud_spend: float
    energy_wh: float
    sim_s: float  # simulated seconds
    tenants: dict[str, TenantStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else 0.0


def attained(engine: Engine) -> np.ndarray:
    """Per request: whether it met its SLO."""
    tr = engine.trace
    models = engine.world.models
    names = sorted(set(tr.model))
    index = {m: i for i, m in enumerate(names)}
    unknown = (np.inf, np.inf, np.inf, False)
    table = [
        (info.ttft_s, info.tpot_s, info.deadline_s, info.image)
        if (info := models.get(m)) is not None
        else unknown
        for m in names
    ]
    which = np.fromiter((index[m] for m in tr.model), dtype=np.int64, count=len(tr))
    ttft_slo, tpot_slo, deadline, image = (np.array(col)[which] for col in zip(*table, strict=True))
    outcome = np.array(engine.outcome)
    ttft, tpot, latency = np.array(engine.ttft), np.array(engine.tpot), np.array(engine.latency)
    images = np.array(tr.images) > 0
    is_image = image.astype(bool) & images
    ok_llm = (ttft <= ttft_slo) & (tpot <= tpot_slo)
    ok_image = latency <= deadline
    ok: np.ndarray = (outcome == SERVED) & np.where(is_image, ok_image, ok_llm)
    return ok


def summarize(engine: Engine, policy: str) -> Summary:
    """The figures of the run `engine` just finished."""
    tr = engine.trace
    outcome = np.array(engine.outcome)
    ok = attained(engine)
    latency = np.array(engine.latency)
    served = outcome == SERVED
    horizon = engine.now
    energy = 0.0
    for name, node in engine.nodes.items():
        busy_w, idle_w = engine.world.watts[name]
        energy += node.busy_s * busy_w + max(horizon - node.busy_s, 0.0) * idle_w
    tenants: dict[str, TenantStats] = {}
    tenant = np.array(tr.tenant)
    for name in sorted(set(tr.tenant)):
        mine = tenant == name
        tenants[name] = TenantStats(
            int(mine.sum()),
            float(ok[mine].mean()),
            _pct(latency[mine & served], 50),
            _pct(latency[mine & served], 99),
        )
    return Summary(
        policy=policy,
        rate=tr.rate,
        requests=len(tr),
        attainment=float(ok.mean()) if len(tr) else 0.0,
        served=int(served.sum()),
        rejected=int((outcome == REJECTED).sum()),
        timed_out=int((outcome == TIMED_OUT).sum()),
        oom=int((outcome == OOM).sum()),
        failed=int((outcome == FAILED).sum()),
        p50_s=_pct(latency[served], 50),
        p99_s=_pct(latency[served], 99),
        ttft_p99_s=_pct(np.array(engine.ttft)[served], 99),
        cold_loads=engine.cold_loads,
        gb_moved=engine.bytes_moved / 1e9,
        cloud_spend=engine.spend,
        energy_wh=energy / 3600.0,
        sim_s=horizon,
        tenants=tenants,
    )
