"""A measurement's conditions come from what its source states."""

from __future__ import annotations

from sparkplane.planner.conditions import (
    Conditions,
    SourceConditions,
    compute_priors,
    conditions_for,
    decode_priors,
    source_conditions,
)

DEFAULT = Conditions(decode_context=576, prompt_tokens=2048)
BENCH = "https://example.org/bench.md"
TABLE = (
    SourceConditions(BENCH, "", Conditions(16, 2048, chunk_tokens=2048, how="pp2048 / tg32")),
    SourceConditions(BENCH, "batched-bench", Conditions(528, 512, prefill_sequences=32)),
)


def test_a_source_without_an_entry_gets_the_default() -> None:
    assert conditions_for("https://example.org/other", "llama.cpp", DEFAULT, TABLE) == DEFAULT


def test_a_matching_entry_wins_over_the_sources_plain_one() -> None:
    batched = conditions_for(BENCH, "llama.cpp b6918 (batched-bench)", DEFAULT, TABLE)
    assert batched.prefill_sequences == 32
    assert batched.decode_context == 528
    plain = conditions_for(BENCH, "llama.cpp b6918", DEFAULT, TABLE)
    assert (plain.decode_context, plain.chunk_tokens) == (16, 2048)


def test_the_shipped_table_names_sources_and_says_how() -> None:
    entries = source_conditions()
    assert entries
    assert all(e.url.startswith("https://") and e.conditions.how for e in entries)
    assert all(e.conditions.prompt_tokens > 0 and e.conditions.decode_context >= 0 for e in entries)


def test_priors_are_shares_of_a_peak() -> None:
    priors = compute_priors()
    assert ("ggml", "apple") in priors
    assert all(0.0 < share <= 1.0 for share in priors.values())


def test_decode_priors_name_their_source() -> None:
    priors = decode_priors()
    assert ("ggml", "apple") in priors
    for p in priors.values():
        assert 0.0 < p.bandwidth <= 1.0
        assert p.layer_overhead_us >= 0.0
        assert p.url.startswith("https://")
