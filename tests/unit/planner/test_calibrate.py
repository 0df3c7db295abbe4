"""The fit is tested on sources it has not seen (leave-one-source-out)."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest

from sparkplane.planner.calibrate import (
    Measurement,
    fit,
    leave_one_source_out,
    measurements,
    predict,
    with_spreads,
)
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


def test_batch_one_decode_within_ten_percent_on_unseen_sources(rows: list[Measurement]) -> None:
    held = [h for h in leave_one_source_out(rows) if h.row.decode_tps and h.row.batch == 1]
    median = statistics.median(_err(h.decode, h.row.decode_tps or 1) for h in held)
    assert median <= 0.10


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
