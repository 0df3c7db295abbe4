"""Models known only by their parameter counts."""

from __future__ import annotations

import pytest

from sparkplane.planner import InvalidRequestError, active_params, spec_from_numbers


@pytest.mark.parametrize(
    ("total", "active"), [(8, None), (70, None), (120, 12), (235, 22), (1.5, None)]
)
def test_layout_adds_up(total: float, active: float | None) -> None:
    spec = spec_from_numbers(total, active)
    assert spec.params_total / 1e9 == pytest.approx(total, rel=0.02)
    if active is not None:
        assert spec.arch is not None
        assert spec.arch.is_moe
        assert active_params(spec) / 1e9 == pytest.approx(active, rel=0.1)


def test_given_architecture_numbers_are_used() -> None:
    spec = spec_from_numbers(70, layers=80, kv_heads=8, head_dim=128)
    assert spec.arch is not None
    assert (spec.arch.layers, spec.arch.kv_heads, spec.arch.head_dim) == (80, 8, 128)
    assert not any("layers" in a for a in spec.assumed)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"params_b": 0},
        {"params_b": -5},
        {"params_b": 8, "active_params_b": 9},
        {"params_b": float("nan")},
    ],
)
def test_invalid_numbers(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidRequestError):
        spec_from_numbers(**kwargs)
