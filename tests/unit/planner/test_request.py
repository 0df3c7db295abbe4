"""Decode is reported at the context a request uses; the window's speed is shown beside it."""

from __future__ import annotations

import pytest

from sparkplane.planner import InvalidRequestError, PlanRequest, load_model, plan


def _spark(**kw: object):  # type: ignore[no-untyped-def]
    return plan(load_model("qwen3-8b"), devices="dgx-spark", quant="q4_k_m", **kw).devices[0]


def test_decode_is_at_prompt_plus_output_not_at_the_reserved_window() -> None:
    short = _spark()
    assert short.decode is not None
    assert short.decode.context == 512 + 128 // 2
    window = short.decode_window
    assert [w.share for w in window] == [0.0, 0.5, 1.0]
    assert window[-1].context == 8192
    speeds = [w.tokens_per_s for w in window]
    assert speeds[0] > short.decode.tokens_per_s > speeds[-1]
    assert speeds == sorted(speeds, reverse=True)


def test_the_window_reserves_memory_but_does_not_slow_a_short_request() -> None:
    small, big = _spark(context=4096), _spark(context=32768)
    assert big.memory.total > small.memory.total
    assert small.decode is not None
    assert big.decode is not None
    assert big.decode.tokens_per_s == pytest.approx(small.decode.tokens_per_s)


def test_a_long_prompt_decodes_slower() -> None:
    short, long = _spark(), _spark(prompt_tokens=8000, output_tokens=100)
    assert short.decode is not None
    assert long.decode is not None
    assert long.decode.tokens_per_s < 0.95 * short.decode.tokens_per_s
    assert long.decode.context == 8050


def test_a_prompt_longer_than_the_window_is_refused() -> None:
    with pytest.raises(InvalidRequestError):
        _spark(context=1024, prompt_tokens=2000)


def test_request_object_and_keywords_plan_the_same() -> None:
    spec = load_model("llama-3.1-8b")
    a = plan(spec, PlanRequest(devices="rtx-4090", quant="q4_k_m", context=4096))
    b = plan(spec, devices="rtx-4090", quant="q4_k_m", context=4096)
    assert a == b


def test_an_unknown_keyword_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequestError):
        plan(load_model("llama-3.1-8b"), contxt=4096)


def test_every_speed_has_a_range_around_it() -> None:
    d = _spark()
    assert d.decode is not None
    assert d.prefill is not None
    assert d.decode.likely_low < d.decode.tokens_per_s < d.decode.likely_high
    assert d.prefill.likely_low <= d.prefill.tokens_per_s <= d.prefill.likely_high
    assert d.efficiency.sources
