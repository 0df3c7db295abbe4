"""Compare the capacity planner's predictions with published measurements.

    python bench/planner_accuracy.py [CSV] [--context N] [--fit [--write]]

Reads ../shared/data/spark-measurements.csv (relative to the repository root)
unless a path is given, and prints per row predicted vs measured decode tokens/s,
memory (weight bytes) and prefill tokens/s, then the median absolute percentage
errors, a leave-one-out decode error, and the error of the naive baseline
(a constant share of peak bandwidth over the weight size).

``--fit`` refits the efficiency factors from the batch-1 rows (one set per
engine and device kind, never per row) and ``--write`` stores them in
src/sparkplane/planner/data/efficiency.toml. The procedure is in docs/planner.md.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sparkplane.planner import (
    DeviceProfile,
    Efficiency,
    ModelSpec,
    builtin_profiles,
    find_device,
    load_catalog,
    parse_engine,
    parse_quant,
    prepare,
    spec_from_numbers,
)
from sparkplane.planner.engines import fitted_factors
from sparkplane.planner.speed import decode, prefill

ROOT = Path(__file__).resolve().parents[1]
_CSV_NAME = "shared/data/spark-measurements.csv"
# ../shared next to the repository; from a worktree nested one level deeper, the
# nearest ancestor that has it.
DEFAULT_CSV = next(
    (p / _CSV_NAME for p in ROOT.parents if (p / _CSV_NAME).is_file()), ROOT.parent / _CSV_NAME
)
EFFICIENCY_FILE = ROOT / "src/sparkplane/planner/data/efficiency.toml"
# Rows do not state their context; decode is predicted at this many tokens in the
# KV cache and prefill for a prompt of PROMPT tokens (llama-bench's pp2048).
DEFAULT_CONTEXT = 1024
PROMPT = 2048
# Harness names in the CSV that are not engines: Jeff Geerling's ai-benchmarks
# harness runs llama.cpp's llama-bench.
ENGINE_ALIASES = {"geerling harness": "llama.cpp"}
Key = tuple[str, str]


@dataclass(frozen=True)
class Row:
    """One measurement with everything needed to predict it."""

    label: str
    device: DeviceProfile
    engine: str
    batch: int
    model: ModelSpec
    decode_tps: float | None
    prefill_tps: float | None
    memory_gb: float | None
    x: float = 0.0  # seconds per step at 100% bandwidth (weights + KV)
    layers: int = 0


def _engine(text: str) -> str:
    low = text.strip().lower()
    return ENGINE_ALIASES.get(low) or parse_engine(low)


def _num(text: str) -> float | None:
    return float(text) if text.strip() else None


def load_rows(path: Path, context: int) -> list[Row]:
    """The CSV's rows, each resolved to a device profile, engine and model."""
    profiles, catalog = builtin_profiles(), load_catalog()
    rows: list[Row] = []
    with path.open(newline="") as fh:
        for raw in csv.DictReader(fh):
            engine = _engine(raw["engine"])
            entry = catalog.find(raw["model"])
            spec = (
                entry.spec()
                if entry
                else spec_from_numbers(
                    float(raw["params_b"]), float(raw["active_params_b"]), name=raw["model"]
                )
            )
            device = find_device(profiles, raw["device"])
            model = prepare(spec, parse_quant(raw["quant"]), engine)
            batch = int(raw["batch"])
            probe = decode(
                model, device, Efficiency(1.0, 0.0, 1e9, ""), context, batch, "fp16", engine
            )
            rows.append(
                Row(
                    label=f"{device.id} {raw['model']} {raw['quant']} {raw['engine']} b{batch}",
                    device=device,
                    engine=engine,
                    batch=batch,
                    model=model,
                    decode_tps=_num(raw["decode_tps"]),
                    prefill_tps=_num(raw["prefill_tps"]),
                    memory_gb=_num(raw["memory_gb"]),
                    x=probe.memory_ms / 1e3,
                    layers=model.layers,
                )
            )
    return rows


def _keys(r: Row) -> list[Key]:
    return [(r.engine, r.device.kind), (r.engine, "*"), ("*", r.device.kind), ("*", "*")]


def _compute_efficiency(r: Row, bandwidth: float) -> float | None:
    """The compute share that makes the row's prefill time come out as measured."""
    if not r.prefill_tps:
        return None
    ideal = prefill(r.model, r.device, Efficiency(bandwidth, 0.0, 1.0, ""), PROMPT, r.engine)
    read_only = prefill(r.model, r.device, Efficiency(bandwidth, 0.0, 1e12, ""), PROMPT, r.engine)
    spare = PROMPT / r.prefill_tps - PROMPT / read_only.tokens_per_s
    compute_s = PROMPT / ideal.tokens_per_s - PROMPT / read_only.tokens_per_s
    return compute_s / spare if spare > 0 else None


def _fit_decode(rows: list[Row], fixed_o: float | None) -> tuple[float, float]:
    """Least squares on relative error of 1/decode = a * x + o * layers.

    Batch-1 decode is bandwidth-bound, so the roofline's compute term does not
    enter; ``a`` is 1 / bandwidth share, ``o`` the per-layer overhead (seconds).
    """
    eqs = []
    for r in rows:
        assert r.decode_tps
        t = 1.0 / r.decode_tps
        eqs.append((r.x / t, r.layers / t))
    if fixed_o is None:
        sxx = sum(p * p for p, _ in eqs)
        sxy = sum(p * q for p, q in eqs)
        syy = sum(q * q for _, q in eqs)
        bx, by = sum(p for p, _ in eqs), sum(q for _, q in eqs)
        det = sxx * syy - sxy * sxy
        if det > 1e-9 * sxx * syy:
            a, o = (bx * syy - by * sxy) / det, (sxx * by - sxy * bx) / det
            if o >= 0 and a >= 1:
                return a, o
        fixed_o = 0.0
    a = sum(p * (1.0 - q * fixed_o) for p, q in eqs) / sum(p * p for p, _ in eqs)
    return max(a, 1.0), fixed_o


def fit(rows: list[Row]) -> dict[Key, tuple[Efficiency, int]]:
    """Efficiency factors per engine and device kind, with pooled fallbacks.

    Decode: least squares of relative error over the batch-1 rows of each group
    for the bandwidth share and the per-layer overhead (a group under three rows
    borrows the overhead of its parent pool). Compute: the median over the
    group's prefill rows of the share that reproduces the measured prefill time,
    given the group's bandwidth share for the weight reads.
    """
    groups: dict[Key, list[Row]] = {}
    for r in rows:
        for k in _keys(r):
            groups.setdefault(k, []).append(r)
    # Rows of models outside the catalog have guessed architectures: they are
    # predicted and reported, but not fitted on (that would fit to our guesses).
    decode_rows = {
        k: [r for r in rs if r.batch == 1 and r.decode_tps and r.model.source != "numbers"]
        for k, rs in groups.items()
    }
    bw: dict[Key, tuple[float, float]] = {}
    # Pools first, so that a small group can borrow its parent's overhead.
    for k in sorted(groups, key=lambda k: (k[0] != "*", k[1] != "*", k)):
        rs = decode_rows[k]
        if not rs:
            continue
        fixed = None
        if len(rs) < 3:
            parent = (k[0], "*") if k[1] != "*" else ("*", "*")
            fixed = bw[parent][1] if parent in bw else 0.0
        a, o = _fit_decode(rs, fixed)
        bw[k] = (1 / a, o)
    compute: dict[Key, float] = {}
    for k, rs in groups.items():
        share = next(bw[j][0] for j in _keys(rs[0]) if j in bw)
        found = [c for r in rs if (c := _compute_efficiency(r, share)) is not None]
        if found:
            compute[k] = statistics.median(found)
    out: dict[Key, tuple[Efficiency, int]] = {}
    for k, (e_bw, o) in bw.items():
        chain = [k, (k[0], "*"), ("*", k[1]), ("*", "*")]
        c = next(compute[j] for j in chain if j in compute)
        eff = Efficiency(round(e_bw, 4), round(o * 1e6, 2), round(c, 4), "")
        out[k] = (eff, len(decode_rows[k]))
    return out


def predict(
    r: Row, table: dict[Key, tuple[Efficiency, int]], context: int
) -> tuple[float | None, float | None]:
    """(decode, prefill) tokens/s for a row with the given factors."""
    eff = next(table[k][0] for k in _keys(r) if k in table)
    dec = decode(r.model, r.device, eff, context, r.batch, "fp16", r.engine).total_tokens_per_s
    pre = prefill(r.model, r.device, eff, PROMPT, r.engine).tokens_per_s
    return dec, pre


def ape(pred: float, meas: float) -> float:
    """Absolute percentage error."""
    return abs(pred / meas - 1.0) * 100.0


def _median(xs: Iterable[float]) -> float:
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")


def write_table(table: dict[Key, tuple[Efficiency, int]], path: Path) -> None:
    """Store fitted factors as TOML."""
    lines = [
        "# Efficiency factors fitted by `python bench/planner_accuracy.py --fit --write`",
        "# on ../shared/data/spark-measurements.csv (batch-1 decode rows; prefill rows for",
        "# `compute`). One set per engine and device kind; '*' rows pool all rows of an",
        "# engine, of a device kind, or of everything. See docs/planner.md.",
    ]
    for (engine, kind), (e, n) in sorted(table.items()):
        lines += [
            "",
            "[[factor]]",
            f'engine = "{engine}"',
            f'device_kind = "{kind}"',
            f"bandwidth = {e.bandwidth}",
            f"layer_overhead_us = {e.layer_overhead_us}",
            f"compute = {e.compute}",
            f"rows = {n}",
        ]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Print the accuracy table; optionally refit and store the factors."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="?", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--context", type=int, default=DEFAULT_CONTEXT)
    ap.add_argument("--fit", action="store_true", help="refit efficiency factors")
    ap.add_argument("--write", action="store_true", help="with --fit: store them")
    args = ap.parse_args(argv)
    if not args.csv.is_file():
        print(f"measurements not found: {args.csv}", file=sys.stderr)
        return 2
    rows = load_rows(args.csv, args.context)
    if args.fit:
        table = fit(rows)
        if args.write:
            write_table(table, EFFICIENCY_FILE)
            print(f"wrote {EFFICIENCY_FILE}")
    else:
        table = {k: (e, 0) for k, e in fitted_factors().items()}
    report(rows, table, args.context)
    return 0


def report(rows: list[Row], table: dict[Key, tuple[Efficiency, int]], context: int) -> None:
    """Print per-row predictions and the summary errors."""
    head = "  ".join(
        [
            f"{'row':<74}",
            f"{'decode pred':>11} {'meas':>7} {'err%':>6}",
            f"{'mem pred':>8} {'meas':>6} {'err%':>5}",
            f"{'prefill pred':>12} {'meas':>7} {'err%':>6}",
        ]
    )
    print(head)
    print("-" * len(head))
    dec_err, mem_err, pre_err, loo_err, base_err = [], [], [], [], []
    b1 = [r for r in rows if r.batch == 1 and r.decode_tps]
    share = statistics.median(
        r.decode_tps * r.model.weight_bytes / r.device.bandwidth_bytes for r in b1 if r.decode_tps
    )
    for r in rows:
        dec, pre = predict(r, table, context)
        cells = [f"{r.label[:74]:<74}"]
        if r.decode_tps and dec:
            dec_err.append(ape(dec, r.decode_tps))
            cells.append(f"{dec:11.2f} {r.decode_tps:7.2f} {dec_err[-1]:6.1f}")
        else:
            cells.append(f"{'':11} {'':7} {'':6}")
        if r.memory_gb:
            mem = r.model.weight_bytes / 1e9
            mem_err.append(ape(mem, r.memory_gb))
            cells.append(f"{mem:8.2f} {r.memory_gb:6.2f} {mem_err[-1]:5.1f}")
        else:
            cells.append(f"{'':8} {'':6} {'':5}")
        if r.prefill_tps and pre:
            pre_err.append(ape(pre, r.prefill_tps))
            cells.append(f"{pre:12.0f} {r.prefill_tps:7.0f} {pre_err[-1]:6.1f}")
        print("  ".join(cells))
        if r in b1 and r.decode_tps and r.model.source != "numbers":
            rest = [x for x in rows if x is not r]
            loo_dec, _ = predict(r, fit(rest), context)
            if loo_dec:
                loo_err.append(ape(loo_dec, r.decode_tps))
            base = share * r.device.bandwidth_bytes / r.model.weight_bytes
            base_err.append(ape(base, r.decode_tps))
    print()
    print(f"rows: {len(rows)}; decode assumed at {context} tokens of context, prefill at {PROMPT}")
    print(
        f"median absolute % error, decode tokens/s ({len(dec_err)} rows): {_median(dec_err):.1f}%"
    )
    print(
        f"median absolute % error, memory ({len(mem_err)} rows):          {_median(mem_err):.1f}%"
    )
    print(
        f"median absolute % error, prefill tokens/s ({len(pre_err)} rows): {_median(pre_err):.1f}%"
    )
    print(f"leave-one-out decode error, fitted rows ({len(loo_err)}):      {_median(loo_err):.1f}%")
    print(
        f"baseline: {share:.2f} x peak bandwidth / weight size, batch-1 rows: "
        f"{_median(base_err):.1f}%"
    )


if __name__ == "__main__":
    sys.exit(main())
