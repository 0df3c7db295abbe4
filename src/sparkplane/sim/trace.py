"""Workload traces: the simulator's input, one request a line of JSON, and a generator.

A line of a trace file::

    {"t": 12.5, "model": "llama-3.1-8b", "tenant": "acme",
     "prompt_tokens": 812, "output_tokens": 240, "images": 0, "priority": 0}

`t` is seconds from the start; `model` is required; the rest default to an
empty tenant, 0 tokens, 0 images and priority 0. An image job names a
diffusion model and `images` >= 1.

Requests are kept column by column (plain lists), sorted by arrival: the event
loop reads them by index without building an object per request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class TraceError(ValueError):
    """A trace cannot be read or is not valid."""


@dataclass(slots=True)
class Trace:
    """Requests in arrival order, one list per field."""

    t: list[float] = field(default_factory=list)
    model: list[str] = field(default_factory=list)
    tenant: list[str] = field(default_factory=list)
    prompt: list[int] = field(default_factory=list)
    output: list[int] = field(default_factory=list)
    images: list[int] = field(default_factory=list)
    priority: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.t)

    @property
    def duration_s(self) -> float:
        """Seconds from the first arrival to the last (at least 1)."""
        return max(self.t[-1] - self.t[0], 1.0) if self.t else 1.0

    @property
    def rate(self) -> float:
        """Mean arrivals per second."""
        return len(self) / self.duration_s

    def append(
        self,
        t: float,
        model: str,
        tenant: str = "",
        prompt: int = 0,
        output: int = 0,
        images: int = 0,
        priority: int = 0,
    ) -> None:
        """Add one request (callers sort with `sorted_by_time` afterwards if needed)."""
        self.t.append(t)
        self.model.append(model)
        self.tenant.append(tenant)
        self.prompt.append(prompt)
        self.output.append(output)
        self.images.append(images)
        self.priority.append(priority)

    def sorted_by_time(self) -> Trace:
        """The same requests in arrival order (stable), starting at t = 0."""
        order = sorted(range(len(self)), key=self.t.__getitem__)
        t0 = self.t[order[0]] if order else 0.0
        return Trace(
            [self.t[i] - t0 for i in order],
            [self.model[i] for i in order],
            [self.tenant[i] for i in order],
            [self.prompt[i] for i in order],
            [self.output[i] for i in order],
            [self.images[i] for i in order],
            [self.priority[i] for i in order],
        )

    def scaled(self, factor: float) -> Trace:
        """The same requests arriving `factor` times as fast."""
        return Trace(
            [t / factor for t in self.t],
            self.model,
            self.tenant,
            self.prompt,
            self.output,
            self.images,
            self.priority,
        )

    def where(self, keep: Iterable[bool]) -> Trace:
        """Only the requests where `keep` is true."""
        picked = [i for i, k in enumerate(keep) if k]
        return Trace(
            [self.t[i] for i in picked],
            [self.model[i] for i in picked],
            [self.tenant[i] for i in picked],
            [self.prompt[i] for i in picked],
            [self.output[i] for i in picked],
            [self.images[i] for i in picked],
            [self.priority[i] for i in picked],
        )

    def concat(self, other: Trace) -> Trace:
        """Both traces' requests merged in arrival order."""
        both = Trace(
            self.t + other.t,
            self.model + other.model,
            self.tenant + other.tenant,
            self.prompt + other.prompt,
            self.output + other.output,
            self.images + other.images,
            self.priority + other.priority,
        )
        order = sorted(range(len(both)), key=both.t.__getitem__)
        return Trace(*([col[i] for i in order] for col in _columns(both)))


def _columns(t: Trace) -> tuple[list[Any], ...]:
    return (t.t, t.model, t.tenant, t.prompt, t.output, t.images, t.priority)


def _int(row: Mapping[str, Any], key: str, where: str) -> int:
    value = row.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TraceError(f"{where}: {key} must be a whole number >= 0, got {value!r}")
    return value


def load_jsonl(path: Path) -> Trace:
    """The trace in the JSON-lines file at `path`; `TraceError` names the bad line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise TraceError(f"cannot read trace {path}: {e.strerror or e}") from e
    trace = Trace()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise TraceError(f"{where}: not JSON: {e.msg}") from e
        if not isinstance(row, dict):
            raise TraceError(f"{where}: each line must be a JSON object")
        t, model = row.get("t"), row.get("model")
        if isinstance(t, bool) or not isinstance(t, int | float) or t < 0:
            raise TraceError(f"{where}: t must be seconds >= 0, got {t!r}")
        if not isinstance(model, str) or not model:
            raise TraceError(f"{where}: model must be a non-empty string")
        tenant = row.get("tenant", "")
        if not isinstance(tenant, str):
            raise TraceError(f"{where}: tenant must be a string")
        trace.append(
            float(t),
            model,
            tenant,
            _int(row, "prompt_tokens", where),
            _int(row, "output_tokens", where),
            _int(row, "images", where),
            _int(row, "priority", where),
        )
    if not trace.t:
        raise TraceError(f"{path}: the trace has no requests")
    return trace.sorted_by_time()


def save_jsonl(trace: Trace, path: Path) -> None:
    """Write `trace` as JSON lines."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(len(trace)):
            row = {
                "t": round(trace.t[i], 6),
                "model": trace.model[i],
                "tenant": trace.tenant[i],
                "prompt_tokens": trace.prompt[i],
                "output_tokens": trace.output[i],
                "images": trace.images[i],
                "priority": trace.priority[i],
            }
            f.write(json.dumps(row) + "\n")


@dataclass(frozen=True, slots=True)
class Mix:
    """What a synthetic trace looks like.

    Models are asked for with Zipf popularity (the i-th of `models` with weight
    1 / i^zipf_s); arrivals are Poisson at `rate` per second, `burst` times that
    during bursts of `burst_s` seconds starting on average every `burst_every_s`.
    Prompt and output lengths are log-normal around the given medians. A share
    `image_share` of requests are one-image jobs on `image_models`.
    """

    models: Sequence[str]
    rate: float
    duration_s: float
    zipf_s: float = 1.1
    burst: float = 1.0
    burst_s: float = 60.0
    burst_every_s: float = 600.0
    prompt_median: int = 600
    output_median: int = 180
    image_models: Sequence[str] = ()
    image_share: float = 0.0
    tenants: Mapping[str, float] = field(default_factory=lambda: {"": 1.0})
    seed: int = 0


def synthesize(mix: Mix) -> Trace:
    """A reproducible synthetic trace of `mix` (the same seed gives the same trace)."""
    rng = np.random.default_rng(mix.seed)
    peak = mix.rate * max(mix.burst, 1.0)
    n = int(rng.poisson(peak * mix.duration_s))
    times = np.sort(rng.uniform(0.0, mix.duration_s, n))
    if mix.burst > 1.0:
        # Thinning: keep an arrival with probability rate(t) / peak.
        starts = np.cumsum(
            rng.exponential(mix.burst_every_s, int(mix.duration_s / mix.burst_every_s) + 2)
        )
        inside = np.zeros(n, dtype=bool)
        for s in starts:
            inside |= (times >= s) & (times < s + mix.burst_s)
        keep = inside | (rng.uniform(size=n) < 1.0 / mix.burst)
        times = times[keep]
        n = len(times)
    ranks = np.arange(1, len(mix.models) + 1, dtype=float)
    popularity = ranks**-mix.zipf_s
    model_idx = rng.choice(len(mix.models), size=n, p=popularity / popularity.sum())
    prompt = np.clip(rng.lognormal(np.log(mix.prompt_median), 1.0, n), 16, 16000).astype(int)
    output = np.clip(rng.lognormal(np.log(mix.output_median), 0.8, n), 8, 2048).astype(int)
    image = rng.uniform(size=n) < mix.image_share if mix.image_models else np.zeros(n, dtype=bool)
    image_idx = rng.integers(0, max(len(mix.image_models), 1), n)
    names = list(mix.tenants)
    shares = np.array([mix.tenants[k] for k in names], dtype=float)
    tenant_idx = rng.choice(len(names), size=n, p=shares / shares.sum())
    trace = Trace()
    for i in range(n):
        if image[i]:
            trace.append(
                float(times[i]), mix.image_models[image_idx[i]], names[tenant_idx[i]], 0, 0, 1
            )
        else:
            trace.append(
                float(times[i]),
                mix.models[model_idx[i]],
                names[tenant_idx[i]],
                int(prompt[i]),
                int(output[i]),
            )
    return trace
