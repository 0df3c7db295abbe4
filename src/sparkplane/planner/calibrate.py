"""Fit the efficiency factors on published measurements, and test the fit honestly.

Physics first: decode time is bytes read / bandwidth plus a fixed cost per
layer, prefill time FLOPs / tensor peak plus weight reads. Fitted second: per
engine and device kind, a bandwidth share, a per-layer overhead and a compute
share (three numbers), with pools ("*") for engines or kinds without rows.

The test of a fit is :func:`leave_one_source_out`: every source (a blog post,
a benchmark file) is predicted by factors fitted on the other sources only, so
a fit that merely learns its rows shows up as error. The same residuals give
each factor set its spread (the error bar ``plan`` prints).

Pure: rows come in as dicts (a CSV's rows), nothing is read here.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from .catalog import load_catalog
from .devices import DeviceProfile, builtin_profiles, find_device
from .engines import Efficiency, parse_engine
from .plan import prepare
from .precision import parse_quant
from .resolve import spec_from_numbers
from .specs import ModelSpec
from .speed import decode, prefill

Key = tuple[str, str]
FitTable = dict[Key, tuple[Efficiency, int]]
# Harness names that are not engines: Jeff Geerling's ai-benchmarks harness
# runs llama.cpp's llama-bench.
ENGINE_ALIASES = {"geerling harness": "llama.cpp"}
# Rows state no prompt; prefill is predicted for llama-bench's pp2048.
PREFILL_PROMPT = 2048


@dataclass(frozen=True)
class Measurement:
    """One published measurement, resolved to what the planner needs."""

    label: str
    source: str
    device: DeviceProfile
    engine: str
    batch: int
    model: ModelSpec
    context: int  # tokens in the cache while decoding
    decode_tps: float | None
    prefill_tps: float | None
    memory_gb: float | None
    x: float = 0.0  # seconds per step at 100% bandwidth (weights + KV)

    @property
    def fittable(self) -> bool:
        """Batch-1 decode rows of models whose architecture is known, not guessed."""
        return self.batch == 1 and bool(self.decode_tps) and self.model.source != "numbers"


def _engine(text: str) -> str:
    low = text.strip().lower()
    return ENGINE_ALIASES.get(low) or parse_engine(low)


def _num(text: str | None) -> float | None:
    return float(text) if text and text.strip() else None


def measurements(rows: Iterable[Mapping[str, str]], context: int) -> list[Measurement]:
    """Rows of ``spark-measurements.csv`` resolved to devices, engines and models."""
    profiles, catalog = builtin_profiles(), load_catalog()
    out: list[Measurement] = []
    for raw in rows:
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
        probe = decode(model, device, Efficiency(1.0, 0.0, 1e9, ""), context, batch, "fp16", engine)
        out.append(
            Measurement(
                label=f"{device.id} {raw['model']} {raw['quant']} {raw['engine']} b{batch}",
                source=raw.get("source", "").strip(),
                device=device,
                engine=engine,
                batch=batch,
                model=model,
                context=context,
                decode_tps=_num(raw.get("decode_tps")),
                prefill_tps=_num(raw.get("prefill_tps")),
                memory_gb=_num(raw.get("memory_gb")),
                x=probe.memory_ms / 1e3,
            )
        )
    return out


def keys(m: Measurement) -> list[Key]:
    """The factor sets that serve ``m``, most specific first."""
    return [(m.engine, m.device.kind), (m.engine, "*"), ("*", m.device.kind), ("*", "*")]


def _fit_decode(rows: list[Measurement], fixed_o: float | None) -> tuple[float, float]:
    """Least squares on relative error of 1/decode = a * x + o * layers.

    Batch-1 decode is bandwidth-bound, so the roofline's compute term does not
    enter; ``a`` is 1 / bandwidth share, ``o`` the per-layer overhead (seconds).
    """
    eqs = []
    for r in rows:
        assert r.decode_tps
        t = 1.0 / r.decode_tps
        eqs.append((r.x / t, r.model.layers / t))
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


def _compute_share(r: Measurement, bandwidth: float) -> float | None:
    """The compute share that makes the row's prefill time come out as measured."""
    if not r.prefill_tps:
        return None
    p = PREFILL_PROMPT
    ideal = prefill(r.model, r.device, Efficiency(bandwidth, 0.0, 1.0, ""), p, r.engine)
    read_only = prefill(r.model, r.device, Efficiency(bandwidth, 0.0, 1e12, ""), p, r.engine)
    spare = p / r.prefill_tps - p / read_only.tokens_per_s
    compute_s = p / ideal.tokens_per_s - p / read_only.tokens_per_s
    return compute_s / spare if spare > 0 else None


def fit(rows: Sequence[Measurement]) -> FitTable:
    """Efficiency factors per engine and device kind, with pooled fallbacks.

    Decode: least squares of relative error over the fittable rows of each group
    for the bandwidth share and the per-layer overhead (a group under three rows
    borrows the overhead of its parent pool). Compute: the median over the
    group's prefill rows of the share that reproduces the measured prefill time.
    """
    groups: dict[Key, list[Measurement]] = {}
    for r in rows:
        for k in keys(r):
            groups.setdefault(k, []).append(r)
    decode_rows = {k: [r for r in rs if r.fittable] for k, rs in groups.items()}
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
        share = next((bw[j][0] for j in keys(rs[0]) if j in bw), 0.7)
        found = [c for r in rs if (c := _compute_share(r, share)) is not None]
        if found:
            compute[k] = statistics.median(found)
    out: FitTable = {}
    for k, (e_bw, o) in bw.items():
        chain = [k, (k[0], "*"), ("*", k[1]), ("*", "*")]
        c = next((compute[j] for j in chain if j in compute), 0.2)
        sources = tuple(sorted({r.source for r in decode_rows[k]}))
        eff = Efficiency(round(e_bw, 4), round(o * 1e6, 2), round(c, 4), "", sources=sources)
        out[k] = (eff, len(decode_rows[k]))
    return out


def factors_for(m: Measurement, table: FitTable) -> Efficiency:
    """The most specific factor set of ``table`` that serves ``m``."""
    return next(table[k][0] for k in keys(m) if k in table)


def predict(m: Measurement, table: FitTable) -> tuple[float, float]:
    """(decode tokens/s of all sequences, prefill tokens/s) for ``m``."""
    eff = factors_for(m, table)
    dec = decode(m.model, m.device, eff, m.context, m.batch, "fp16", m.engine)
    pre = prefill(m.model, m.device, eff, PREFILL_PROMPT, m.engine)
    return dec.total_tokens_per_s, pre.tokens_per_s


@dataclass(frozen=True)
class Held:
    """A measurement predicted by factors fitted without its source."""

    row: Measurement
    decode: float
    prefill: float
    key: Key  # the factor set that served it


def leave_one_source_out(rows: Sequence[Measurement]) -> list[Held]:
    """Every row predicted by a fit made on the other sources only."""
    out: list[Held] = []
    for source in sorted({r.source for r in rows}):
        table = fit([r for r in rows if r.source != source])
        for r in rows:
            if r.source == source:
                dec, pre = predict(r, table)
                key = next(k for k in keys(r) if k in table)
                out.append(Held(r, dec, pre, key))
    return out


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _spread(ratios: list[float]) -> tuple[float, float]:
    """10th and 90th percentile of measured / predicted, widened to include 1."""
    return (
        round(min(_quantile(ratios, 0.1), 1.0), 3),
        round(max(_quantile(ratios, 0.9), 1.0), 3),
    )


MIN_SPREAD_ROWS = 4


def with_spreads(table: FitTable, held: Sequence[Held]) -> FitTable:
    """``table`` with each set's spread from the held-out residuals of its rows.

    A set whose rows are too few for percentiles takes the spread of its pool.
    """
    dec: dict[Key, list[float]] = {}
    pre: dict[Key, list[float]] = {}
    for h in held:
        r = h.row
        for k in keys(r):
            if r.decode_tps and r.batch == 1:
                dec.setdefault(k, []).append(r.decode_tps / h.decode)
            if r.prefill_tps:
                pre.setdefault(k, []).append(r.prefill_tps / h.prefill)

    def pick(k: Key, found: dict[Key, list[float]]) -> tuple[float, float]:
        for j in (k, (k[0], "*"), ("*", k[1]), ("*", "*")):
            if len(found.get(j, ())) >= MIN_SPREAD_ROWS:
                return _spread(found[j])
        return 1.0, 1.0

    return {
        k: (replace(e, decode_spread=pick(k, dec), prefill_spread=pick(k, pre)), n)
        for k, (e, n) in table.items()
    }
