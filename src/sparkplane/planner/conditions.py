"""How a published measurement was taken: the context, prompt and batch it ran at.

A row of the measurements file gives a speed, not the conditions; the sources
state them (llama-bench's ``pp2048``/``tg32``, llama-batched-bench's
``-npp 512 -npl 32``). ``data/sources.toml`` keeps what each source says, so
that a row is predicted at the conditions it was measured at, and a source
that states nothing is predicted as ``sparkplane plan`` predicts by default.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Conditions:
    """What one measurement ran at.

    ``decode_context``: tokens in each sequence's cache while decoding (the
    average over the output). ``prompt_tokens``: the prompt a prefill figure is
    for; ``prefill_sequences`` such prompts were processed together, in forward
    passes of ``chunk_tokens`` tokens (``None``: the engine's default).
    """

    decode_context: int
    prompt_tokens: int
    prefill_sequences: int = 1
    chunk_tokens: int | None = None
    how: str = ""


@dataclass(frozen=True)
class SourceConditions:
    """One entry of ``data/sources.toml``."""

    url: str
    match: str
    conditions: Conditions


def _entry(raw: Mapping[str, Any]) -> SourceConditions:
    chunk = raw.get("chunk_tokens")
    return SourceConditions(
        url=str(raw["url"]),
        match=str(raw.get("match", "")).lower(),
        conditions=Conditions(
            decode_context=int(raw["decode_context"]),
            prompt_tokens=int(raw["prompt_tokens"]),
            prefill_sequences=int(raw.get("prefill_sequences", 1)),
            chunk_tokens=int(chunk) if chunk is not None else None,
            how=str(raw.get("how", "")),
        ),
    )


@cache
def _doc() -> dict[str, Any]:
    raw = resources.files("sparkplane.planner").joinpath("data/sources.toml").read_bytes()
    return tomllib.loads(raw.decode("utf-8"))


def source_conditions() -> tuple[SourceConditions, ...]:
    """Every ``[[source]]`` entry of ``data/sources.toml``, as stored."""
    return tuple(_entry(s) for s in _doc().get("source", ()))


def compute_priors() -> dict[tuple[str, str], float]:
    """Compute shares by (kernel family, device kind) where no row measures prefill.

    Each ``[[prior]]`` of ``data/sources.toml`` is one public measurement's
    share of the device's peak (named there); a fit with rows wins over it.
    """
    return {
        (str(p["family"]), str(p["device_kind"])): float(p["compute"])
        for p in _doc().get("prior", ())
        if "compute" in p
    }


@dataclass(frozen=True)
class DecodePrior:
    """Decode factors for a kernel family on a kind of device, from one public source."""

    bandwidth: float
    layer_overhead_us: float
    url: str


def decode_priors() -> dict[tuple[str, str], DecodePrior]:
    """Decode factors by (kernel family, device kind) where no row measures decode there."""
    return {
        (str(p["family"]), str(p["device_kind"])): DecodePrior(
            float(p["bandwidth"]), float(p["layer_overhead_us"]), str(p["url"])
        )
        for p in _doc().get("prior", ())
        if "bandwidth" in p
    }


def conditions_for(
    source: str,
    engine_text: str,
    default: Conditions,
    table: Sequence[SourceConditions] | None = None,
) -> Conditions:
    """The conditions ``source`` states for a row whose engine column is ``engine_text``.

    An entry with a ``match`` (a word of the engine column, e.g.
    ``batched-bench``) wins over the source's plain entry; a source with no
    entry gets ``default``.
    """
    entries = [e for e in (table if table is not None else source_conditions()) if e.url == source]
    text = engine_text.lower()
    for e in sorted(entries, key=lambda e: not e.match):
        if not e.match or e.match in text:
            return e.conditions
    return default
