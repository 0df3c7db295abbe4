"""The decode factors' regression: exact on consistent rows, robust to one that is not."""

from __future__ import annotations

import pytest

from sparkplane.planner.regress import robust_fit, weighted_fit


def _rows(a: float, o: float) -> list[tuple[float, float, float]]:
    # Rows whose step times are exactly a * bytes + o * layers (+ 2% of math).
    out = []
    for x, layers in ((0.02, 28), (0.05, 48), (0.20, 80), (0.01, 24)):
        t = a * x + o * layers + 0.02 * x
        out.append((x / t, layers / t, 0.02 * x / t))
    return out


def test_consistent_rows_give_back_their_factors() -> None:
    a, o = robust_fit(_rows(1.25, 20e-6))
    assert a == pytest.approx(1.25, rel=1e-6)
    assert o == pytest.approx(20e-6, rel=1e-4)


def test_one_row_that_breaks_the_physics_moves_the_fit_less() -> None:
    rows = _rows(1.25, 20e-6)
    p, q, m = rows[1]
    rows[1] = (p * 0.6, q * 0.6, m * 0.6)  # measured 1.67x faster than the others suggest
    robust, _ = robust_fit(rows)
    plain, _ = weighted_fit(rows, [1.0] * len(rows))
    assert abs(robust - 1.25) < abs(plain - 1.25)


def test_the_bounds_hold() -> None:
    # Rows faster than full bandwidth would allow: the share is capped at 1.
    a, o = weighted_fit([(2.0, 0.0, 0.0), (1.5, 0.0, 0.0)], [1.0, 1.0])
    assert a == 1.0
    assert o == 0.0
    a, o = weighted_fit(_rows(1.25, 20e-6), [1.0] * 4, fixed_o=0.0)
    assert o == 0.0
    assert a > 1.25
