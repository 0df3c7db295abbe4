"""The fleet simulator: sparkplane's scheduler and the peers' policies on planner profiles.

Discrete-event; the policy is `scheduler.choose` itself (see `ours.py`), the
baselines model the peers' documented behaviour (`baselines.py`). Typical use::

    from sparkplane.sim import FigureTable, compare, load_fleet, load_jsonl

    result = compare(load_fleet(path), load_jsonl(trace), POLICIES, FigureTable())
"""

from sparkplane.sim.fleetfile import FleetFile, FleetFileError, load_fleet, parse_fleet
from sparkplane.sim.metrics import Summary
from sparkplane.sim.profiles import FigureTable
from sparkplane.sim.run import (
    BASELINES,
    IDEAL,
    OURS,
    POLICIES,
    UPPER,
    Comparison,
    Options,
    compare,
    goodput,
    simulate,
)
from sparkplane.sim.trace import Mix, Trace, TraceError, load_jsonl, save_jsonl, synthesize
from sparkplane.sim.traces_public import load_azure, load_burstgpt

__all__ = [
    "BASELINES",
    "IDEAL",
    "OURS",
    "POLICIES",
    "UPPER",
    "Comparison",
    "FigureTable",
    "FleetFile",
    "FleetFileError",
    "Mix",
    "Options",
    "Summary",
    "Trace",
    "TraceError",
    "compare",
    "goodput",
    "load_azure",
    "load_burstgpt",
    "load_fleet",
    "load_jsonl",
    "parse_fleet",
    "save_jsonl",
    "simulate",
    "synthesize",
]
