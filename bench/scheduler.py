"""Scheduler benchmark: three scenarios, every baseline in the same run, plus the scale figure.

(A) long-tail multi-model chat on 2 DGX Spark + 2 RTX 4090, 16 models from 3B to a
    120B MoE, Zipf popularity, bursty arrivals;
(B) LLM and image jobs with 3x bursts, one RTX 4090 out for 10 minutes, a priced
    cloud endpoint allowed for one tenant;
(C) three tenants, one flooding.
Each prints a table and checks its target; the upper bound is every model resident
everywhere it fits (our policy, memory never short). Then 1,000 devices and
1,000,000 requests under sparkplane's policy, timed. Writes JSON and PNGs to
bench/out/. Figures are printed as measured, targets missed included.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from rich.console import Console

from sparkplane.sim import (
    IDEAL,
    UPPER,
    FigureTable,
    Mix,
    Options,
    compare,
    parse_fleet,
    simulate,
    synthesize,
)
from sparkplane.sim.report import plot, table, to_json
from sparkplane.sim.run import POLICIES

OUT = Path(__file__).resolve().parent / "out"
ALL = (*POLICIES, UPPER, IDEAL)
console = Console(width=160)

DEVICES = """
[[device]]
name = "spark"
profile = "dgx-spark"
count = 2
parallel = 4

[[device]]
name = "rtx4090"
profile = "rtx-4090"
count = 2
parallel = 4
"""
A_MODELS = [
    "llama-3.1-8b", "qwen3-30b-a3b", "llama-3.2-3b", "gpt-oss-120b", "qwen2.5-7b", "gemma-3-12b",
    "mistral-7b", "phi-4", "qwen3-8b", "gemma-2-9b", "mistral-nemo-12b", "qwen2.5-14b",
    "mistral-small-24b", "qwen3-4b", "gemma-3-4b", "phi-3.5-mini",
]  # fmt: skip
B_LLMS = ["llama-3.1-8b", "qwen3-30b-a3b", "llama-3.2-3b", "gpt-oss-120b", "gemma-3-12b", "phi-4"]
B_IMAGES = ["sdxl", "flux.1-dev"]
C_MODELS = ["llama-3.1-8b", "qwen3-30b-a3b", "llama-3.2-3b"]


def _models(names: list[str]) -> str:
    quant = {"gpt-oss-120b": None, "sdxl": None, "flux.1-dev": None}
    out = []
    for n in names:
        q = quant.get(n, "q4_k_m")
        extra = "deadline_s = 150.0\n" if n == "flux.1-dev" else ""
        out.append(f'[[model]]\nname = "{n}"\n' + (f'quant = "{q}"\n' if q else "") + extra)
    return "\n".join(out)


def _show(name: str, result: object) -> None:
    console.print(table(result, name))  # type: ignore[arg-type]


def scenario_a(figures: FigureTable) -> dict[str, object]:
    fleet = parse_fleet(DEVICES + _models(A_MODELS))
    trace = synthesize(
        Mix(
            A_MODELS,
            rate=0.5,
            duration_s=1800,
            zipf_s=1.1,
            burst=3.0,
            burst_s=60,
            burst_every_s=300,
            seed=1,
        )
    )
    result = compare(fleet, trace, ALL, figures)
    _show(f"A: long-tail chat, {len(trace):,} requests at {trace.rate:.2f}/s", result)
    best = max(result.goodput[p] for p in POLICIES[1:])
    ours, upper = result.goodput["sparkplane"], result.goodput[UPPER]
    _target(f"A goodput {ours:.2f}/s vs best baseline {best:.2f}/s (>= 2x)", ours >= 2 * best)
    _target(
        f"A fraction of upper bound {ours / upper if upper else 0:.0%} (>= 80%)",
        upper > 0 and ours >= 0.8 * upper,
    )
    plot(result, OUT / "scenario_a.png", "A: long-tail multi-model chat")
    return to_json(result)


def scenario_b(figures: FigureTable) -> dict[str, object]:
    text = (
        DEVICES
        + _models(B_LLMS + B_IMAGES)
        + '\n[[cloud]]\nname = "cloud"\nprice_per_mtok = 0.6\nprice_per_image = 0.04\n'
        + '\n[[tenant]]\nname = "studio"\nallow_cloud = true\n\n[[tenant]]\nname = "clinic"\n'
        + '\n[[outage]]\ndevice = "rtx4090-2"\nat_s = 600\nfor_s = 600\n'
    )
    fleet = parse_fleet(text)
    mix = Mix(
        B_LLMS,
        rate=0.6,
        duration_s=1800,
        burst=3.0,
        burst_s=90,
        burst_every_s=400,
        image_models=B_IMAGES,
        image_share=0.25,
        tenants={"studio": 1.0, "clinic": 1.0},
        seed=2,
    )
    trace = synthesize(mix)
    result = compare(fleet, trace, ALL, figures)
    _show(f"B: LLM + images, 3x bursts, a 4090 out 10 min, {len(trace):,} requests", result)
    spend, least = result.nominal["sparkplane"].cloud_spend, result.nominal[UPPER].cloud_spend
    _target(
        f"B cloud spend ${spend:.2f} vs ${least:.2f} by the upper bound (<= 1.2x)",
        spend <= 1.2 * least + 1e-9,
    )
    ours, upper = result.goodput["sparkplane"], result.goodput[UPPER]
    _target(
        f"B fraction of upper bound {ours / upper if upper else 0:.0%} (>= 80%)",
        upper > 0 and ours >= 0.8 * upper,
    )
    plot(result, OUT / "scenario_b.png", "B: LLM + image jobs, bursts, an outage")
    return to_json(result)


def scenario_c(figures: FigureTable) -> dict[str, object]:
    fleet = parse_fleet(DEVICES + _models(C_MODELS) + '\n[[tenant]]\nname = "flood"\n')
    quiet = synthesize(
        Mix(C_MODELS, rate=0.6, duration_s=1200, tenants={"quiet-a": 1, "quiet-b": 1}, seed=3)
    )
    flood = synthesize(
        Mix(C_MODELS, rate=4.0, duration_s=600, tenants={"flood": 1}, seed=4)
    ).scaled(1.0)
    flood.t[:] = [t + 300 for t in flood.t]
    trace = quiet.concat(flood)
    result = compare(fleet, trace, ALL, figures)
    _show(f"C: three tenants, one flooding, {len(trace):,} requests", result)
    rows = {}
    for policy in ALL:
        solo = simulate(fleet, quiet, policy, figures, Options())
        mixed = result.nominal[policy]
        ratio = max(
            mixed.tenants[t].p99_s / max(solo.tenants[t].p99_s, 1e-9)
            for t in ("quiet-a", "quiet-b")
        )
        rows[policy] = ratio
        console.print(f"  C {policy}: quiet tenants' p99 {ratio:.2f}x their solo p99")
    _target(f"C quiet p99 {rows['sparkplane']:.2f}x solo (<= 1.10x)", rows["sparkplane"] <= 1.10)
    plot(result, OUT / "scenario_c.png", "C: three tenants, one flooding")
    out = to_json(result)
    out["quiet_p99_vs_solo"] = rows
    return out


def scale(figures: FigureTable, devices: int = 1000, requests: int = 1_000_000) -> dict[str, float]:
    groups = devices // 10
    models = A_MODELS[:12]
    text = "".join(
        f'[[device]]\nname = "g{g}"\nprofile = "{"dgx-spark" if g % 2 else "rtx-4090"}"\n'
        "count = 10\nparallel = 4\n"
        for g in range(groups)
    )
    # Each model may live on a tenth of the groups (as an operator would pin models
    # to device pools in a fleet this size).
    for i, m in enumerate(models):
        allowed = [f'"g{g}"' for g in range(groups) if g % 10 in (i % 10, (i + 3) % 10)]
        q = "" if m == "gpt-oss-120b" else 'quant = "q4_k_m"\n'
        allowed = [a for a in allowed if m != "gpt-oss-120b" or int(a.strip('"g')) % 2]
        text += f'[[model]]\nname = "{m}"\n{q}devices = [{", ".join(allowed)}]\n'
    fleet = parse_fleet(text)
    rate = devices * 0.12
    trace = synthesize(Mix(models, rate=rate, duration_s=requests / rate, burst=1.0, seed=5))
    start = time.perf_counter()
    s = simulate(fleet, trace, "sparkplane", figures)
    elapsed = time.perf_counter() - start
    verdict = "met" if elapsed < 60 else "MISSED"
    console.print(
        f"scale: {devices:,} devices, {len(trace):,} requests simulated in {elapsed:.1f} s "
        f"(target < 60 s: {verdict}); attainment {s.attainment:.1%}, OOM {s.oom}"
    )
    return {
        "devices": devices,
        "requests": len(trace),
        "seconds": elapsed,
        "attainment": s.attainment,
    }


TARGETS: list[tuple[str, bool]] = []


def _target(what: str, ok: bool) -> None:
    TARGETS.append((what, ok))
    console.print(f"  [{'green' if ok else 'red'}]{'met' if ok else 'MISSED'}[/]: {what}")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    figures = FigureTable()
    only = set(sys.argv[1:]) or {"a", "b", "c", "scale"}
    report: dict[str, object] = {}
    for key, fn in (("a", scenario_a), ("b", scenario_b), ("c", scenario_c)):
        if key in only:
            start = time.perf_counter()
            report[key] = fn(figures)
            console.print(f"  ({time.perf_counter() - start:.0f} s)")
    if "scale" in only:
        report["scale"] = scale(figures)
    ooms = {
        f"{k}/{p}": v["nominal"]["oom"]  # type: ignore[index]
        for k, r in report.items()
        if k != "scale"
        for p, v in r["policies"].items()  # type: ignore[index,union-attr]
        if p in ("sparkplane", UPPER)
    }
    _target(f"zero out-of-memory placements by sparkplane: {ooms}", not any(ooms.values()))
    (OUT / "scheduler.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    console.print(f"targets met: {sum(ok for _, ok in TARGETS)} of {len(TARGETS)}; wrote {OUT}")


if __name__ == "__main__":
    main()
