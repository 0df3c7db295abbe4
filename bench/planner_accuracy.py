"""Compare the capacity planner's predictions with published measurements.

    python bench/planner_accuracy.py [CSV] [--prompt-tokens P] [--output-tokens O] [--fit [--write]]

Reads ../shared/data/spark-measurements.csv (relative to the repository root)
unless a path is given. Every row is predicted leave-one-source-out: by
efficiency factors fitted on the rows of the *other* sources only, so a fit
that learns its own rows cannot hide. Each row is taken at the conditions its
source states (src/sparkplane/planner/data/sources.toml: context, prompt,
micro-batch); a source that states none as `sparkplane plan` predicts by
default. Prints per row predicted vs measured decode tokens/s, weight bytes and
prefill tokens/s (a "!" marks a prefill figure no compute share up to the
device's peak can reproduce), then median and worst absolute errors for decode,
prefill and memory, overall, by batch, device, engine and source, and the
in-sample figures beside them.

``--fit`` refits the stored factors on every row (with each set's error bar
from the leave-one-source-out residuals); ``--write`` stores them in
src/sparkplane/planner/data/efficiency.toml. The procedure is in docs/planner.md.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from sparkplane.planner.calibrate import (
    PREFILL_PROMPT,
    FitTable,
    Held,
    Measurement,
    compute_share,
    factors_for,
    fit,
    leave_one_source_out,
    measurements,
    predict,
    with_spreads,
)
from sparkplane.planner.engines import kernel_family
from sparkplane.planner.request import DEFAULT_OUTPUT_TOKENS, DEFAULT_PROMPT_TOKENS

ROOT = Path(__file__).resolve().parents[1]
_CSV_NAME = "shared/data/spark-measurements.csv"
# ../shared next to the repository; from a worktree nested one level deeper, the
# nearest ancestor that has it.
DEFAULT_CSV = next(
    (p / _CSV_NAME for p in ROOT.parents if (p / _CSV_NAME).is_file()), ROOT.parent / _CSV_NAME
)
EFFICIENCY_FILE = ROOT / "src/sparkplane/planner/data/efficiency.toml"


def ape(pred: float, meas: float) -> float:
    """Absolute percentage error."""
    return abs(pred / meas - 1.0) * 100.0


def _stats(xs: Iterable[float]) -> str:
    xs = list(xs)
    if not xs:
        return f"{'-':>6} {'-':>6} {0:>4}"
    return f"{statistics.median(xs):5.1f}% {max(xs):5.1f}% {len(xs):>4}"


def _short(url: str) -> str:
    """A source's address shortened to fit a table cell."""
    text = url.removeprefix("https://").removeprefix("www.").removeprefix("github.com/")
    return text[:40]


def errors(held: list[Held]) -> dict[str, list[tuple[Held, float]]]:
    """Absolute % errors per quantity, each with its row."""
    out: dict[str, list[tuple[Held, float]]] = {"decode": [], "prefill": [], "memory": []}
    for h in held:
        r = h.row
        if r.decode_tps:
            out["decode"].append((h, ape(h.decode, r.decode_tps)))
        if r.prefill_tps:
            out["prefill"].append((h, ape(h.prefill, r.prefill_tps)))
        if r.memory_gb:
            out["memory"].append((h, ape(r.model.weight_bytes / 1e9, r.memory_gb)))
    return out


def summary(held: list[Held], title: str) -> None:
    """Median and worst error, overall, by device and by engine."""
    errs = errors(held)
    groupings: list[tuple[str, Callable[[Held], str]]] = [
        ("all rows", lambda h: "all"),
        ("rows", lambda h: "batch 1" if h.row.batch == 1 else "batched"),
        ("device", lambda h: h.row.device.id),
        ("engine", lambda h: h.row.engine),
        ("source", lambda h: _short(h.row.source)),
    ]
    print(f"\n{title}")
    print(f"{'':<48} {'decode med  worst rows':>24} {'prefill med worst rows':>24}", end="")
    print(f" {'memory med  worst rows':>24}")
    for name, by in groupings:
        labels = sorted({by(h) for h in held})
        for label in labels:
            cells = [
                _stats(e for h, e in errs[q] if by(h) == label)
                for q in ("decode", "prefill", "memory")
            ]
            head = label if name == "all rows" else f"{name} {label}"
            print(f"{head:<48} " + " ".join(f"{c:>24}" for c in cells))


def in_sample(rows: list[Measurement], table: FitTable) -> list[Held]:
    """Rows predicted by the fit that saw them (for comparison only)."""
    return [Held(r, *predict(r, table), ("", "")) for r in rows]


def write_table(table: FitTable, path: Path) -> None:
    """Store fitted factors and their spreads as TOML."""
    lines = [
        "# Efficiency factors fitted by `python bench/planner_accuracy.py --fit --write`",
        "# on ../shared/data/spark-measurements.csv (batch-1 decode rows; prefill rows for",
        "# `compute`). One set per engine and device kind; '*' rows pool all rows of an",
        "# engine, of a device kind, or of everything. The spreads are measured/predicted",
        "# at the 10th and 90th percentile, leave-one-source-out. See docs/planner.md.",
    ]
    for (engine, kind), (e, n) in sorted(table.items()):
        sources = ", ".join(f'"{s}"' for s in e.sources)
        lines += [
            "",
            "[[factor]]",
            f'engine = "{engine}"',
            f'device_kind = "{kind}"',
            f"bandwidth = {e.bandwidth}",
            f"layer_overhead_us = {e.layer_overhead_us}",
            f"compute = {e.compute}",
            f"decode_spread = [{e.decode_spread[0]}, {e.decode_spread[1]}]",
            f"prefill_spread = [{e.prefill_spread[0]}, {e.prefill_spread[1]}]",
            f"rows = {n}",
            f"sources = [{sources}]",
            *([f'prior = "{e.sources[0]}"'] if e.basis.startswith("prior") else []),
        ]
    path.write_text("\n".join(lines) + "\n")


def beyond_physics(r: Measurement, table: FitTable) -> bool:
    """A prefill figure no compute share up to 100% of the device's peak reproduces."""
    return bool(r.prefill_tps) and compute_share(r, factors_for(r, table).bandwidth) is None


def report(held: list[Held], table: FitTable) -> None:
    """Per-row leave-one-source-out predictions."""
    head = (
        f"{'row':<70}  {'decode pred':>11} {'meas':>7} {'err%':>6}  "
        f"{'mem pred':>8} {'meas':>6} {'err%':>5}  {'prefill pred':>12} {'meas':>7} {'err%':>6}"
    )
    print(head)
    print("-" * len(head))
    for h in held:
        r = h.row
        cells = [f"{r.label[:70]:<70}"]
        if r.decode_tps:
            cells.append(f"{h.decode:11.2f} {r.decode_tps:7.2f} {ape(h.decode, r.decode_tps):6.1f}")
        else:
            cells.append(" " * 26)
        if r.memory_gb:
            mem = r.model.weight_bytes / 1e9
            cells.append(f"{mem:8.2f} {r.memory_gb:6.2f} {ape(mem, r.memory_gb):5.1f}")
        else:
            cells.append(" " * 21)
        if r.prefill_tps:
            mark = " !" if beyond_physics(r, table) else ""
            cells.append(
                f"{h.prefill:12.0f} {r.prefill_tps:7.0f} {ape(h.prefill, r.prefill_tps):6.1f}{mark}"
            )
        print("  ".join(cells).rstrip())


def main(argv: list[str] | None = None) -> int:
    """Print the accuracy tables; optionally refit and store the factors."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("csv", nargs="?", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--prompt-tokens", type=int, default=DEFAULT_PROMPT_TOKENS)
    ap.add_argument("--output-tokens", type=int, default=DEFAULT_OUTPUT_TOKENS)
    ap.add_argument("--fit", action="store_true", help="refit the stored efficiency factors")
    ap.add_argument("--write", action="store_true", help="with --fit: store them")
    args = ap.parse_args(argv)
    if not args.csv.is_file():
        print(f"measurements not found: {args.csv}", file=sys.stderr)
        return 2
    with args.csv.open(newline="") as fh:
        raw = list(csv.DictReader(fh))
    missing = [i + 2 for i, r in enumerate(raw) if not r.get("source", "").strip()]
    if missing:
        print(f"rows without a source (lines {missing}) are not accepted", file=sys.stderr)
        return 2
    context = args.prompt_tokens + args.output_tokens // 2
    rows = measurements(raw, context)
    held = leave_one_source_out(rows)
    table = fit(rows)
    report(held, table)
    print(
        f"\n{len(rows)} rows from {len({r.source for r in rows})} sources. Rows are taken at "
        "their source's stated conditions; the others at "
        f"{args.prompt_tokens} + {args.output_tokens}/2 = {context} tokens in the cache "
        f"and a {PREFILL_PROMPT}-token prompt:"
    )
    stated = {(_short(r.source), r.conditions.how) for r in rows if r.conditions.how}
    for src, how in sorted(stated):
        print(f"  {src:<40} {how}")
    summary(held, "leave-one-source-out (each source predicted by a fit on the others)")
    summary(in_sample(rows, table), "in-sample (fit on every row; for comparison)")
    shares = sorted({(kernel_family(e), eff.compute) for (e, _), (eff, _) in table.items()})
    print("\ncompute share of the tensor peak, per kernel family (in-sample fit):")
    for family, share in shares:
        print(f"  {family:<8} {share:.3f}")
    if args.fit:
        table = with_spreads(table, held)
        if args.write:
            write_table(table, EFFICIENCY_FILE)
            print(f"\nwrote {EFFICIENCY_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
