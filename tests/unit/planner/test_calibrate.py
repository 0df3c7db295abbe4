"""The fit is tested on sources it has not seen (leave-one-source-out)."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest

from sparkplane.planner.calibrate import (
    Held,
    Measurement,
    compute_fits,
    compute_share,
    factors_for,
    fit,
    leave_one_source_out,
    measurements,
    predict,
    with_spreads,
)
from sparkplane.planner.conditions import compute_priors, decode_priors
from sparkplane.planner.request import DEFAULT_OUTPUT_TOKENS, DEFAULT_PROMPT_TOKENS

_NAME = "shared/data/spark-measurements.csv"
_CSV = next((p / _NAME for p in Path(__file__).resolve().parents if (p / _NAME).is_file()), None)
pytestmark = pytest.mark.skipif(_CSV is None, reason="shared measurements not present")
CONTEXT = DEFAULT_PROMPT_TOKENS + DEFAULT_OUTPUT_TOKENS // 2


@pytest.fixture(scope="module")
def rows() -> list[Measurement]:
    assert _CSV is not None
    return measurements(list(csv.DictReader(_CSV.read_text().splitlines())), CONTEXT)


def _err(pred: float, meas: float) -> float:
    return abs(pred / meas - 1.0)


def test_every_row_names_its_source(rows: list[Measurement]) -> None:
    assert all(r.source.startswith("http") for r in rows)
    assert len({r.source for r in rows}) >= 5


def test_a_held_out_source_is_predicted_without_its_rows(rows: list[Measurement]) -> None:
    held = leave_one_source_out(rows)
    assert len(held) == len(rows)
    # Changing one source's measurements leaves that source's predictions alone.
    source = rows[0].source
    doubled = [
        r.__class__(**{**r.__dict__, "decode_tps": (r.decode_tps or 0) * 2 or None})
        if r.source == source
        else r
        for r in rows
    ]
    again = leave_one_source_out(doubled)
    for a, b in zip(held, again, strict=True):
        if a.row.source == source:
            assert a.decode == pytest.approx(b.decode)


# The bar: median decode error of sources the fit has not seen.
DECODE_BAR = 0.10
# Prefill has no target in the issue; the bar is what the physics reached
# (leave-one-source-out 43%, 56% before the sources' conditions and the
# additive roofline), so that a change that makes it worse shows up.
PREFILL_BAR = 0.45


@pytest.fixture(scope="module")
def held(rows: list[Measurement]) -> list[Held]:
    return leave_one_source_out(rows)


def test_decode_within_ten_percent_on_unseen_sources_over_every_row(held: list[Held]) -> None:
    decoded = [h for h in held if h.row.decode_tps]
    assert len(decoded) >= 45  # every row of the file, batched ones included
    median = statistics.median(_err(h.decode, h.row.decode_tps or 1) for h in decoded)
    assert median <= DECODE_BAR


def test_batch_one_decode_within_ten_percent_on_unseen_sources(held: list[Held]) -> None:
    ones = [h for h in held if h.row.decode_tps and h.row.batch == 1]
    median = statistics.median(_err(h.decode, h.row.decode_tps or 1) for h in ones)
    assert median <= DECODE_BAR


def test_prefill_on_unseen_sources_stays_under_its_bar(held: list[Held]) -> None:
    filled = [h for h in held if h.row.prefill_tps]
    median = statistics.median(_err(h.prefill, h.row.prefill_tps or 1) for h in filled)
    assert median <= PREFILL_BAR


def test_the_batched_rows_of_a_dense_model_follow_from_its_batch_one_row(
    held: list[Held],
) -> None:
    # llama-batched-bench, Qwen2.5-Coder-7B Q8_0, 32 sequences: weights once per
    # step, 32 KV caches and 32 tokens of math; no batched row is ever fitted.
    row = next(h for h in held if h.row.batch == 32 and "Qwen2.5" in h.row.label)
    assert _err(row.decode, row.row.decode_tps or 1) < 0.10


def test_error_bars_cover_most_unseen_measurements(
    rows: list[Measurement],
    held: list[Held],
) -> None:
    table = with_spreads(fit(rows), held)
    inside = total = 0
    for h in held:
        if not h.row.decode_tps or h.row.batch != 1:
            continue
        lo, hi = factors_for(h.row, table).decode_spread
        total += 1
        inside += lo * h.decode <= h.row.decode_tps <= hi * h.decode
    # 10th to 90th percentile of the held-out ratios: about 80% inside.
    assert inside / total >= 0.7


def test_in_sample_is_no_worse_than_held_out(rows: list[Measurement]) -> None:
    table = fit(rows)
    decode = [r for r in rows if r.decode_tps]
    inside = statistics.median(_err(predict(r, table)[0], r.decode_tps or 1) for r in decode)
    held = [h for h in leave_one_source_out(rows) if h.row.decode_tps]
    outside = statistics.median(_err(h.decode, h.row.decode_tps or 1) for h in held)
    assert inside <= outside


def test_weights_match_the_measured_files(rows: list[Measurement]) -> None:
    sized = [r for r in rows if r.memory_gb]
    median = statistics.median(_err(r.model.weight_bytes / 1e9, r.memory_gb or 1) for r in sized)
    assert median <= 0.03


def test_spreads_bracket_one_and_come_from_held_out_errors(rows: list[Measurement]) -> None:
    table = with_spreads(fit(rows), leave_one_source_out(rows))
    for eff, _ in table.values():
        lo, hi = eff.decode_spread
        assert lo <= 1.0 <= hi
    assert any(e.decode_spread != (1.0, 1.0) for e, _ in table.values())


def test_rows_are_taken_at_their_sources_conditions(rows: list[Measurement]) -> None:
    bench = [r for r in rows if r.source.endswith("benches/dgx-spark.md")]
    batched = [r for r in bench if r.batch == 32]
    assert batched
    assert all(r.conditions.prefill_sequences == 32 for r in batched)
    assert all(r.context == 528 and r.conditions.chunk_tokens == 2048 for r in batched)
    assert all(
        r.context == 16 and r.conditions.prompt_tokens == 2048 for r in bench if r.batch == 1
    )
    # A source that states nothing is predicted as `plan` predicts by default.
    ollama = [r for r in rows if "ollama.com" in r.source]
    assert all(r.context == CONTEXT and not r.conditions.how for r in ollama)


def test_prefill_faster_than_the_devices_peak_allows_is_not_fitted(
    rows: list[Measurement],
) -> None:
    # The Ollama blog's Llama 3.1 70B prefill (1911 tokens/s on a DGX Spark)
    # needs 2 x 70.6e9 x 1911 = 270 TFLOPS, more than the GB10's int8 peak.
    row = next(r for r in rows if "Llama-3.1-70B q4_K_M" in r.label)
    assert compute_share(row, 1.0) is None
    sane = next(r for r in rows if "Gemma-3-27B q4_K_M" in r.label)
    share = compute_share(sane, 0.7)
    assert share is not None
    assert 0.0 < share < 1.0


def test_one_compute_share_per_kernel_family(rows: list[Measurement]) -> None:
    table = fit(rows)
    # Ollama runs llama.cpp's kernels: one share for both on NVIDIA GPUs.
    ollama, llama = table[("ollama", "unified")][0], table[("llama.cpp", "unified")][0]
    assert ollama.compute == llama.compute
    assert table[("ollama", "discrete")][0].compute == llama.compute
    # No row measures prefill on a Mac: its ALUs take the stored prior.
    shares = compute_fits(rows)
    assert shares[("ggml", "apple")] == compute_priors()[("ggml", "apple")]
    assert table[("llama.cpp", "apple")][0].compute == pytest.approx(shares[("ggml", "apple")])


def test_a_mac_held_out_with_its_only_source_is_predicted_from_the_metal_prior(
    rows: list[Measurement],
) -> None:
    # Jeff Geerling's harness is the only source with a Mac; without it the
    # Mac's factors come from the stored prior (llama.cpp PR 10238, an M2
    # Ultra), not from CUDA rows.
    source = "https://github.com/geerlingguy/ai-benchmarks"
    table = fit([r for r in rows if r.source != source])
    eff, n = table[("llama.cpp", "apple")]
    prior = decode_priors()[("ggml", "apple")]
    assert n == 0
    assert (eff.bandwidth, eff.layer_overhead_us) == (prior.bandwidth, prior.layer_overhead_us)
    assert eff.basis.startswith("prior")
    macs = [r for r in rows if r.device.kind == "apple"]
    errors = [_err(predict(r, table)[0], r.decode_tps or 1) for r in macs]
    assert statistics.median(errors) < 0.15
    # With the Mac rows in the fit, the fit wins over the prior.
    assert fit(rows)[("llama.cpp", "apple")][1] == len(macs)
