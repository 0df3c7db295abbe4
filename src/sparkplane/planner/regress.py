"""The small regression behind the decode factors: robust, bounded, two unknowns.

Each row ``i`` gives one equation ``p_i * a + q_i * o + m_i = 1`` (its step
time divided by the measured step time: ``p`` the weight and KV reads at full
bandwidth, ``q`` the layers, ``m`` the math). ``a`` (1 / bandwidth share) must be
at least 1 and ``o`` (seconds per layer) at least 0.
"""

from __future__ import annotations

from collections.abc import Sequence

Equation = tuple[float, float, float]  # (p, q, m)
# Reweighting rounds of the least-absolute-error fit; the weights settle in a few.
ROUNDS = 10
# Residuals below 2% weigh as 2%, so a row fitted exactly cannot take all the weight.
FLOOR = 0.02


def robust_fit(eqs: Sequence[Equation], fixed_o: float | None = None) -> tuple[float, float]:
    """``(a, o)`` minimising the sum of absolute residuals (least absolute deviations).

    Solved by iteratively reweighted least squares. Absolute rather than
    squared error: one row that breaks the physics (an engine that reads fewer
    bytes than the layout says) moves the fit of its group less. With
    ``fixed_o`` only ``a`` is fitted.
    """
    w = [1.0] * len(eqs)
    a, o = weighted_fit(eqs, w, fixed_o)
    for _ in range(ROUNDS):
        w = [1.0 / max(abs(p * a + q * o + m - 1.0), FLOOR) for p, q, m in eqs]
        a, o = weighted_fit(eqs, w, fixed_o)
    return a, o


def weighted_fit(
    eqs: Sequence[Equation], w: Sequence[float], fixed_o: float | None = None
) -> tuple[float, float]:
    """Weighted least squares of ``p * a + q * o = 1 - m`` with ``a >= 1``, ``o >= 0``.

    Where the two-unknown solution breaks a bound (or the rows cannot tell the
    unknowns apart), ``o`` is held at ``fixed_o`` or 0 and only ``a`` is fitted.
    """
    rows = list(zip(w, eqs, strict=True))
    if fixed_o is None:
        sxx = sum(wi * p * p for wi, (p, _, _) in rows)
        sxy = sum(wi * p * q for wi, (p, q, _) in rows)
        syy = sum(wi * q * q for wi, (_, q, _) in rows)
        bx = sum(wi * p * (1.0 - m) for wi, (p, _, m) in rows)
        by = sum(wi * q * (1.0 - m) for wi, (_, q, m) in rows)
        det = sxx * syy - sxy * sxy
        if det > 1e-9 * sxx * syy:
            a, o = (bx * syy - by * sxy) / det, (sxx * by - sxy * bx) / det
            if o >= 0 and a >= 1:
                return a, o
        fixed_o = 0.0
    num = sum(wi * p * (1.0 - m - q * fixed_o) for wi, (p, q, m) in rows)
    a = num / sum(wi * p * p for wi, (p, _, _) in rows)
    return max(a, 1.0), fixed_o
