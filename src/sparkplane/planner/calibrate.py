"""Fit the efficiency factors on published measurements, and test the fit honestly.

Physics first: decode time is bytes read / bandwidth plus the math plus a
fixed cost per layer, prefill time FLOPs / tensor peak plus one weight read per
forward pass, each row at the conditions its source states
(:mod:`~sparkplane.planner.conditions`). Fitted second: per engine and device
kind a bandwidth share and a per-layer overhead, per kernel family a compute
share, with pools ("*") for engines or kinds without rows and cited priors for
devices no row covers.

The test of a fit is :func:`leave_one_source_out`: every source (a blog post,
a benchmark file) is predicted by factors fitted on the other sources only, so
a fit that merely learns its rows shows up as error. The same residuals give
each factor set its spread (the error bar ``plan`` prints).

Pure: rows come in as dicts (a CSV's rows); the only file read is the
planner's own ``data/sources.toml``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from .catalog import load_catalog
from .conditions import Conditions, compute_priors, conditions_for, decode_priors
from .devices import DeviceProfile, builtin_profiles, find_device
from .engines import Efficiency, kernel_family, parse_engine
from .plan import prepare
from .precision import parse_quant
from .regress import robust_fit
from .resolve import spec_from_numbers
from .specs import ModelSpec
from .speed import decode, prefill

Key = tuple[str, str]
FitTable = dict[Key, tuple[Efficiency, int]]
# Harness names that are not engines: Jeff Geerling's ai-benchmarks harness
# runs llama.cpp's llama-bench.
ENGINE_ALIASES = {"geerling harness": "llama.cpp"}
# A source that states no prompt: its prefill rate is taken as a throughput
# figure for a long prompt (llama-bench's pp2048). With plan's 512 the weight
# reads of one pass would dominate, and the lmsys SGLang rows would need 88% of
# the GB10's FP8 peak, more than any GEMM reaches; at 2048 they need 54%.
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
    conditions: Conditions  # context, prompt and batch the source measured at
    decode_tps: float | None
    prefill_tps: float | None
    memory_gb: float | None
    x: float = 0.0  # seconds per step at 100% bandwidth (weights + KV)
    peak_compute_s: float = 0.0  # seconds of the step's math at 100% of the tensor peak

    @property
    def context(self) -> int:
        """Tokens in each sequence's cache while decoding."""
        return self.conditions.decode_context

    @property
    def fittable(self) -> bool:
        """Batch-1 decode rows of models whose architecture is known, not guessed."""
        return self.batch == 1 and bool(self.decode_tps) and self.model.source != "numbers"


def _engine(text: str) -> str:
    low = text.strip().lower()
    return ENGINE_ALIASES.get(low) or parse_engine(low)


def _num(text: str | None) -> float | None:
    return float(text) if text and text.strip() else None


def measurements(
    rows: Iterable[Mapping[str, str]], context: int, prompt_tokens: int = PREFILL_PROMPT
) -> list[Measurement]:
    """Rows of ``spark-measurements.csv`` resolved to devices, engines and models.

    Each row is taken at the conditions its source states
    (:mod:`~sparkplane.planner.conditions`); a source that states none at
    ``context`` tokens in the cache and a ``prompt_tokens`` prompt.
    """
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
        source = raw.get("source", "").strip()
        cond = conditions_for(source, raw["engine"], Conditions(context, prompt_tokens))
        ctx = cond.decode_context
        probe = decode(model, device, Efficiency(1.0, 0.0, 1.0, ""), ctx, batch, "fp16", engine)
        out.append(
            Measurement(
                label=f"{device.id} {raw['model']} {raw['quant']} {raw['engine']} b{batch}",
                source=source,
                device=device,
                engine=engine,
                batch=batch,
                model=model,
                conditions=cond,
                decode_tps=_num(raw.get("decode_tps")),
                prefill_tps=_num(raw.get("prefill_tps")),
                memory_gb=_num(raw.get("memory_gb")),
                x=probe.memory_ms / 1e3,
                peak_compute_s=probe.compute_ms / 1e3,
            )
        )
    return out


def keys(m: Measurement) -> list[Key]:
    """The factor sets that serve ``m``, most specific first."""
    return [(m.engine, m.device.kind), (m.engine, "*"), ("*", m.device.kind), ("*", "*")]


def _fit_decode(
    rows: list[Measurement], fixed_o: float | None, compute: Mapping[ComputeKey, float]
) -> tuple[float, float]:
    """Fit of 1/decode = a * x + o * layers + math, on relative error.

    ``a`` is 1 / bandwidth share, ``o`` the per-layer overhead (seconds); the
    step's math (a percent or two at one sequence on a GPU, more on a Mac) is
    known from the ``compute`` share of the row's kernel family.
    """
    eqs = []
    for r in rows:
        assert r.decode_tps
        share = compute_for(r.engine, r.device.kind, compute) if compute else 1e12
        math = r.peak_compute_s / share
        t = 1.0 / r.decode_tps
        eqs.append((r.x / t, r.model.layers / t, math / t))
    return robust_fit(eqs, fixed_o)


def _prefill(m: Measurement, eff: Efficiency) -> float:
    """Prefill tokens/s of ``m`` at its source's conditions."""
    c = m.conditions
    return prefill(
        m.model,
        m.device,
        eff,
        c.prompt_tokens,
        m.engine,
        sequences=c.prefill_sequences,
        chunk_tokens=c.chunk_tokens,
    ).tokens_per_s


def compute_share(r: Measurement, bandwidth: float) -> float | None:
    """The compute share that makes the row's prefill time come out as measured.

    ``None`` where no share can: the row has no prefill figure, or it is faster
    than the weight reads alone allow, or it needs more than the device's peak
    (a share above 1). Such a row breaks the physics, and is reported, not fitted.
    """
    if not r.prefill_tps:
        return None
    ideal = 1.0 / _prefill(r, Efficiency(bandwidth, 0.0, 1.0, ""))
    read_only = 1.0 / _prefill(r, Efficiency(bandwidth, 0.0, 1e12, ""))
    measured = 1.0 / r.prefill_tps
    # Reads and math add (speed._combine): the math took what the reads left.
    spare = measured - read_only
    share = (ideal - read_only) / spare if spare > 0 else None
    return share if share is not None and share <= 1.0 else None


def _bandwidth_fits(
    decode_rows: Mapping[Key, list[Measurement]], compute: Mapping[ComputeKey, float]
) -> dict[Key, tuple[float, float]]:
    """(bandwidth share, per-layer overhead in seconds) per group with decode rows."""
    bw: dict[Key, tuple[float, float]] = {}
    # Pools first, so that a small group can borrow its parent's overhead.
    for k in sorted(decode_rows, key=lambda k: (k[0] != "*", k[1] != "*", k)):
        rs = decode_rows[k]
        if not rs:
            continue
        fixed = None
        if len(rs) < 3:
            parent = (k[0], "*") if k[1] != "*" else ("*", "*")
            fixed = bw[parent][1] if parent in bw else 0.0
        a, o = _fit_decode(rs, fixed, compute)
        bw[k] = (1 / a, o)
    return bw


ComputeKey = tuple[str, str]  # (kernel family, device kind); "*" pools


def compute_keys(engine: str, device_kind: str) -> list[ComputeKey]:
    """The compute shares that serve ``engine`` on a ``device_kind`` device, most specific first.

    The share belongs to the kernels and the units they run on, not to the
    memory: NVIDIA's discrete and unified GPUs share tensor cores (one share);
    an Apple GPU runs the math on its ALUs (a share of its own).
    """
    family = kernel_family(engine)
    units = [(family, "apple")] if device_kind == "apple" else []
    return [*units, (family, "*"), ("*", "*")]


def compute_fits(
    rows: Sequence[Measurement], bw: Mapping[Key, tuple[float, float]] | None = None
) -> dict[ComputeKey, float]:
    """Compute share per kernel family and device kind, median over prefill rows.

    Few numbers: the device's tensor peak at the precision used carries the
    rest. Each row's weight reads use its own group's bandwidth share (from
    ``bw``, else a fit of the rows). A (family, kind) without prefill rows takes
    its prior (:func:`~sparkplane.planner.conditions.compute_priors`) if one is
    stored, else its family's pool.
    """
    if bw is None:
        bw = _bandwidth_fits(_decode_groups(rows), {})
    found: dict[ComputeKey, list[float]] = {}
    for r in rows:
        share = next((bw[j][0] for j in keys(r) if j in bw), 0.7)
        if (c := compute_share(r, share)) is not None:
            for k in compute_keys(r.engine, r.device.kind):
                found.setdefault(k, []).append(c)
    fitted = {k: statistics.median(cs) for k, cs in found.items()}
    return {**compute_priors(), **fitted}


def compute_for(engine: str, device_kind: str, shares: Mapping[ComputeKey, float]) -> float:
    """The share of ``shares`` that serves ``engine`` on ``device_kind`` (0.2 if none)."""
    return next((shares[k] for k in compute_keys(engine, device_kind) if k in shares), 0.2)


def _decode_groups(rows: Sequence[Measurement]) -> dict[Key, list[Measurement]]:
    groups: dict[Key, list[Measurement]] = {}
    for r in rows:
        for k in keys(r):
            groups.setdefault(k, []).append(r)
    return {k: [r for r in rs if r.fittable] for k, rs in groups.items()}


def fit(rows: Sequence[Measurement]) -> FitTable:
    """Efficiency factors per engine and device kind, with pooled fallbacks.

    Decode: least absolute relative error over the fittable rows of each group
    for the bandwidth share and the per-layer overhead (a group under three rows
    borrows the overhead of its parent pool). Compute: :func:`compute_fits`. A
    group without decode rows takes a stored prior for its kernel family and
    kind (:func:`~sparkplane.planner.conditions.decode_priors`) if there is one,
    else its pool's bandwidth factors with its kind's compute share.
    """
    decode_rows = _decode_groups(rows)
    # Bandwidth needs the math taken off, the compute share needs the reads:
    # a first bandwidth fit without math, the compute shares, then the final fit.
    bw = _bandwidth_fits(decode_rows, {})
    compute = compute_fits(rows, bw)
    bw = _bandwidth_fits(decode_rows, compute)
    out: FitTable = {}
    for k, (e_bw, o) in bw.items():
        c = compute_for(k[0], k[1], compute)
        sources = tuple(sorted({r.source for r in decode_rows[k]}))
        eff = Efficiency(round(e_bw, 4), round(o * 1e6, 2), round(c, 4), "", sources=sources)
        out[k] = (eff, len(decode_rows[k]))
    priors = decode_priors()
    kinds = {r.device.kind for r in rows} | {kind for _, kind in compute if kind != "*"}
    for engine in {e for e, _ in out if e != "*"}:
        for kind in kinds - {k for e, k in out if e == engine}:
            c = round(compute_for(engine, kind, compute), 4)
            prior = priors.get((kernel_family(engine), kind))
            if prior is not None:
                basis = f"prior: {prior.url}"
                eff = Efficiency(prior.bandwidth, prior.layer_overhead_us, c, basis)
                out[(engine, kind)] = (replace(eff, sources=(prior.url,)), 0)
                continue
            # Borrowed: the pool's bandwidth factors, but the math at this kind's
            # compute share (an Apple GPU's ALUs are not a CUDA GPU's tensor cores).
            base = next(out[j][0] for j in ((engine, "*"), ("*", kind), ("*", "*")) if j in out)
            out[(engine, kind)] = (replace(base, compute=c), 0)
    return out


def factors_for(m: Measurement, table: FitTable) -> Efficiency:
    """The most specific factor set of ``table`` that serves ``m``."""
    return next(table[k][0] for k in keys(m) if k in table)


def predict(m: Measurement, table: FitTable) -> tuple[float, float]:
    """(decode tokens/s of all sequences, prefill tokens/s) for ``m``."""
    eff = factors_for(m, table)
    dec = decode(m.model, m.device, eff, m.context, m.batch, "fp16", m.engine)
    return dec.total_tokens_per_s, _prefill(m, eff)


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
    Prefill rows no compute share up to the device's peak reproduces are left
    out of the prefill spread (they are reported, see :func:`compute_share`).
    """
    dec: dict[Key, list[float]] = {}
    pre: dict[Key, list[float]] = {}
    for h in held:
        r = h.row
        # A prefill figure beyond the device's peak says nothing of the spread.
        physical = keys(r) if compute_share(r, factors_for(r, table).bandwidth) else []
        for k in keys(r):
            if r.decode_tps and r.batch == 1:
                dec.setdefault(k, []).append(r.decode_tps / h.decode)
            if r.prefill_tps and k in physical:
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
