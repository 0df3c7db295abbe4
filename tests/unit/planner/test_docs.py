"""docs/planner.md's worked example and factor table must match what the code computes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkplane.planner import load_catalog, plan
from sparkplane.planner.engines import fitted_factors

DOC = (Path(__file__).resolve().parents[3] / "docs" / "planner.md").read_text()


@pytest.mark.parametrize("quant", ["fp8", "nvfp4"])
def test_worked_example_numbers(quant: str) -> None:
    p = plan(
        load_catalog().get("llama-3.1-70b").spec(), devices=["dgx-spark", "rtx-4090"], quant=quant
    )
    spark, rtx = p.devices
    assert spark.fits
    assert not rtx.fits
    assert f"**{spark.memory.total / 1e9:.2f} GB**" in DOC
    assert f"**{p.model.weight_bytes / 1e9:.2f} GB**" in DOC
    assert spark.decode is not None
    assert spark.prefill is not None
    assert f"**{spark.decode.tokens_per_s:.1f} tokens/s**" in DOC
    assert f"{spark.headroom_bytes / 1e9:.1f} GB" in DOC
    assert f"{round(spark.prefill.tokens_per_s)}" in DOC


def test_factor_table_matches_the_fitted_file() -> None:
    for (engine, kind), e in fitted_factors().items():
        # Pools and sets without rows of their own (an engine on a kind it has
        # no measurements on) are described in the text, not the table.
        if engine == "*" or kind == "*" or e.basis.startswith("pooled"):
            continue
        row = f"| {engine} | {kind}"
        line = next(x for x in DOC.splitlines() if x.startswith(row))
        assert f"| {e.bandwidth:.2f} | {e.layer_overhead_us:.0f} us | {e.compute:.2f} |" in line
