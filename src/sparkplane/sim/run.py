"""Running policies on a fleet and a trace: one run, the nominal-rate comparison, goodput.

Goodput is the highest arrival rate at which a policy still attains the SLO
for at least `GOODPUT_TARGET` of requests. The trace is replayed faster or
slower (arrival times divided by a factor from `RATE_FACTORS`) and the factor
is found by bisection over that grid, assuming attainment falls as the rate
rises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sparkplane.scheduler.choose import Tuning
from sparkplane.sim.baselines import Binpack, LeastBusy, Ollama, RoundRobin
from sparkplane.sim.engine import Engine, Router
from sparkplane.sim.fleetfile import FleetFile
from sparkplane.sim.metrics import Summary, summarize
from sparkplane.sim.ours import SIM_TUNING, Sparkplane
from sparkplane.sim.profiles import FigureTable
from sparkplane.sim.trace import Trace
from sparkplane.sim.world import build_world

GOODPUT_TARGET = 0.9
# A geometric grid, sqrt(2) apart, from 1/16 to 16 times the trace's own rate.
RATE_FACTORS = tuple(2.0 ** (k / 2) for k in range(-8, 9))
# The upper bound: every model always resident on its best device (the one
# the planner says serves it fastest), memory never short, nothing ever loaded.
UPPER = "upper-bound"
# A looser, unreachable ideal: every model resident on every device it fits on.
IDEAL = "ideal"
BOUNDS = (UPPER, IDEAL)
OURS = "sparkplane"
BASELINES = ("round-robin", "least-busy", "ollama", "binpack")
POLICIES = (OURS, *BASELINES)

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Options:
    """The knobs of a simulation."""

    tuning: Tuning = SIM_TUNING
    queue_limit: int = 4096


def _router(policy: str, engine: Engine, options: Options) -> Router:
    if policy in (OURS, *BOUNDS):
        return Sparkplane(engine, options.tuning, options.queue_limit)
    if policy == "round-robin":
        return RoundRobin(engine)
    if policy == "least-busy":
        return LeastBusy(engine)
    if policy == "ollama":
        return Ollama(engine)
    if policy == "binpack":
        return Binpack(engine)
    raise ValueError(f"unknown policy {policy!r} (known: {', '.join((*POLICIES, *BOUNDS))})")


def simulate(
    fleet: FleetFile,
    trace: Trace,
    policy: str,
    table: FigureTable,
    options: Options = Options(),
    progress: Progress | None = None,
) -> Summary:
    """One run of `policy` over `trace`; the bounds are our policy with every model
    resident on its best device (`UPPER`) or everywhere it fits (`IDEAL`), memory
    never short."""
    resident = {UPPER: "best", IDEAL: "everywhere"}.get(policy)
    world = build_world(fleet, table, resident=resident)
    engine = Engine(world, trace)
    engine.run(_router(policy, engine, options), progress)
    return summarize(engine, policy)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Each policy at the trace's own rate, and its goodput."""

    nominal: dict[str, Summary]
    goodput: dict[str, float]  # requests per second; 0.0: below target at every rate tried
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (rate, attainment)


def goodput(
    fleet: FleetFile,
    trace: Trace,
    policy: str,
    table: FigureTable,
    options: Options = Options(),
    factors: Sequence[float] = RATE_FACTORS,
    progress: Progress | None = None,
) -> tuple[float, list[tuple[float, float]]]:
    """The highest rate (of `factors` x the trace's) at which `policy` attains the SLO
    for `GOODPUT_TARGET` of requests, and the (rate, attainment) points tried."""
    points: dict[int, float] = {}

    def attainment(i: int) -> float:
        if i not in points:
            points[i] = simulate(
                fleet, trace.scaled(factors[i]), policy, table, options, progress
            ).attainment
        return points[i]

    lo, hi = -1, len(factors)  # attainment(lo) >= target (or none), attainment(hi) < target
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if attainment(mid) >= GOODPUT_TARGET:
            lo = mid
        else:
            hi = mid
    curve = sorted((trace.rate * factors[i], a) for i, a in points.items())
    return (trace.rate * factors[lo] if lo >= 0 else 0.0), curve


def compare(
    fleet: FleetFile,
    trace: Trace,
    policies: Sequence[str],
    table: FigureTable,
    options: Options = Options(),
    factors: Sequence[float] = RATE_FACTORS,
    progress: Progress | None = None,
) -> Comparison:
    """Every policy in `policies` on the same fleet and trace: the nominal run and goodput."""
    nominal: dict[str, Summary] = {}
    rates: dict[str, float] = {}
    curves: dict[str, list[tuple[float, float]]] = {}
    for policy in policies:
        nominal[policy] = simulate(fleet, trace, policy, table, options, progress)
        if factors:
            rates[policy], curves[policy] = goodput(
                fleet, trace, policy, table, options, factors, progress
            )
    return Comparison(nominal, rates, curves)
