"""A comparison as a Rich table, as JSON, and as a PNG plot (matplotlib, no display needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from rich.table import Table

from sparkplane.sim.run import GOODPUT_TARGET, UPPER, Comparison


def table(comparison: Comparison, title: str = "Simulated policies") -> Table:
    """One row per policy: goodput, then the figures of the run at the trace's own rate."""
    t = Table(title=title)
    for col in (
        "policy",
        "goodput req/s",
        "of upper",
        "SLO attained",
        "p50 s",
        "p99 s",
        "cold loads",
        "GB moved",
        "cloud $",
        "energy Wh",
        "rejected",
        "timed out",
        "OOM",
        "failed",
    ):
        t.add_column(col, justify="left" if col == "policy" else "right", no_wrap=col == "policy")
    upper = comparison.goodput.get(UPPER)
    for policy, s in comparison.nominal.items():
        good = comparison.goodput.get(policy)
        share = f"{good / upper:.0%}" if good is not None and upper else "-"
        t.add_row(
            policy,
            f"{good:.2f}" if good is not None else "-",
            share,
            f"{s.attainment:.1%}",
            f"{s.p50_s:.2f}",
            f"{s.p99_s:.2f}",
            str(s.cold_loads),
            f"{s.gb_moved:,.0f}",
            f"{s.cloud_spend:.2f}",
            f"{s.energy_wh:,.0f}",
            str(s.rejected),
            str(s.timed_out),
            str(s.oom),
            str(s.failed),
        )
    return t


def to_json(comparison: Comparison) -> dict[str, Any]:
    """JSON-ready: per policy its goodput, attainment curve and nominal-rate figures."""
    return {
        "goodput_target": GOODPUT_TARGET,
        "policies": {
            policy: {
                "goodput": comparison.goodput.get(policy),
                "curve": [
                    {"rate": r, "attainment": a} for r, a in comparison.curves.get(policy, [])
                ],
                "nominal": s.to_dict(),
            }
            for policy, s in comparison.nominal.items()
        },
    }


def write_json(comparison: Comparison, path: Path) -> None:
    """Write `to_json(comparison)` to `path`."""
    path.write_text(json.dumps(to_json(comparison), indent=2) + "\n", encoding="utf-8")


def plot(comparison: Comparison, path: Path, title: str = "SLO attainment by arrival rate") -> None:
    """A PNG: attainment against arrival rate per policy, with the goodput target line."""
    fig = Figure(figsize=(9, 5), dpi=110)
    ax = fig.add_subplot(1, 2, 1)
    for policy, curve in comparison.curves.items():
        if curve:
            rates, attain = zip(*curve, strict=True)
            ax.plot(
                rates, attain, marker="o", label=policy, linestyle="--" if policy == UPPER else "-"
            )
    ax.axhline(GOODPUT_TARGET, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("arrivals per second")
    ax.set_ylabel("SLO attainment")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    bars = fig.add_subplot(1, 2, 2)
    names = list(comparison.nominal)
    bars.bar(names, [comparison.goodput.get(n, 0.0) for n in names], color="tab:blue")
    bars.set_ylabel("goodput (req/s at >= 90% attainment)")
    bars.tick_params(axis="x", labelrotation=45, labelsize=7)
    bars.set_title("goodput", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
