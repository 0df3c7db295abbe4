"""The memory of the fake Ollama: which models are loaded, when they expire, and
what happens when a load does not fit.

It follows Ollama's scheduler where a client can see it: a model becomes resident
on an explicit load (a generate or chat naming only the model) or on its first
inference, after `load_delay_s`; every request sets how long it stays after its
last use (`keep_alive`, default 5 minutes; negative is forever; 0 unloads it once
its requests in flight are done). A load that does not fit the capacity, or the
limit on loaded models (OLLAMA_MAX_LOADED_MODELS), evicts idle models, least
recently used first; when nothing idle can go, the load fails (real Ollama would
wait for a busy model instead: an error is what a test can assert on).

Everything that happens is kept in `events`, and every inference in `runs` with the
model's load generation at its start and end, so tests can prove that nothing in
flight was unloaded under a request.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

DEFAULT_KEEP_ALIVE_S = 300.0
# Ollama turns a negative keep_alive into the largest Go duration (about 292 years).
_FOREVER_S = float(2**63 // 1_000_000_000)
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


class KeepAliveError(ValueError):
    """keep_alive that Ollama's JSON decoding refuses (a 400)."""


class NoRoom(Exception):
    """A load that cannot fit, with Ollama's status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def keep_alive_seconds(value: object) -> float:
    """Seconds from a keep_alive: a number (seconds) or a Go duration string.

    Negative means forever; a string without unit other than "0" is refused, as
    Go's time.ParseDuration refuses it.
    """
    if value is None:
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, bool):
        raise KeepAliveError("json: cannot unmarshal bool into Go value of type api.Duration")
    if isinstance(value, int | float):
        return _FOREVER_S if value < 0 else float(value)
    if not isinstance(value, str):
        raise KeepAliveError("Unsupported type: 'keep_alive'")
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    parts = _PART.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise KeepAliveError(f'time: missing unit in duration "{text}"')
    seconds = sign * sum(float(n) * _UNITS[u] for n, u in parts)
    return _FOREVER_S if seconds < 0 else seconds


def timestamp(seconds: float) -> str:
    """An RFC 3339 time as Ollama writes expires_at."""
    moment = datetime.fromtimestamp(min(seconds, 253402300799.0), UTC)
    return moment.isoformat(timespec="microseconds")


@dataclass
class Resident:
    """One loaded model."""

    name: str
    size: int
    generation: int  # which load of the model this is
    expires_at: float  # wall-clock seconds
    last_used: float  # monotonic, for LRU
    in_flight: int = 0
    unload_when_idle: bool = False


@dataclass(frozen=True)
class Event:
    """A change of residency: load, unload (asked), evict (to make room), expire."""

    kind: str
    model: str
    at: float  # monotonic


@dataclass
class Run:
    """One inference: the model, its load generation at start and at end."""

    model: str
    path: str
    generation_at_start: int
    generation_at_end: int | None = None
    ended: bool = False

    @property
    def undisturbed(self) -> bool:
        """Whether the same load of the model served the whole request."""
        return self.generation_at_end == self.generation_at_start


@dataclass
class MemoryKnobs:
    """The fake's memory; tests may change these while it runs. Bytes; None is unlimited."""

    sizes: dict[str, int] = field(default_factory=dict)  # full model name -> bytes loaded
    default_size: int = 2_000_000_000
    capacity_bytes: int | None = None
    max_loaded: int | None = 3  # OLLAMA_MAX_LOADED_MODELS (Ollama's default: 3 per GPU)
    load_delay_s: float = 0.0


@dataclass
class Memory:
    """Loaded models under the rules above."""

    knobs: MemoryKnobs
    resident: dict[str, Resident] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    _generations: int = 0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def size_of(self, name: str) -> int:
        """Bytes `name` takes once loaded."""
        return self.knobs.sizes.get(name, self.knobs.default_size)

    def used(self) -> int:
        """Bytes the loaded models take."""
        return sum(r.size for r in self.resident.values())

    def expire(self) -> None:
        """Drop idle models whose keep_alive has run out."""
        now = time.time()
        for name, r in list(self.resident.items()):
            if r.in_flight == 0 and r.expires_at <= now:
                self._drop(name, "expire")

    async def load(self, name: str, keep_alive_s: float) -> Resident:
        """Make `name` resident (or refresh it); raises NoRoom when it cannot fit."""
        async with self._lock:  # Ollama's scheduler loads one model at a time
            self.expire()
            held = self.resident.get(name)
            if held is None:
                self._make_room(name)
                if self.knobs.load_delay_s:
                    await asyncio.sleep(self.knobs.load_delay_s)
                self._generations += 1
                held = Resident(name, self.size_of(name), self._generations, 0.0, 0.0)
                self.resident[name] = held
                self.events.append(Event("load", name, time.monotonic()))
            self._touch(held, keep_alive_s)
            return held

    def unload(self, name: str) -> None:
        """keep_alive 0 with no prompt: gone now if idle, else when its requests end."""
        held = self.resident.get(name)
        if held is None:
            return
        if held.in_flight:
            held.unload_when_idle = True
        else:
            self._drop(name, "unload")

    async def begin(self, name: str, path: str, keep_alive_s: float) -> Run:
        """An inference starts: load on first use, count it in flight."""
        held = await self.load(name, keep_alive_s)
        held.in_flight += 1
        run = Run(name, path, held.generation)
        self.runs.append(run)
        return run

    def end(self, run: Run, keep_alive_s: float) -> None:
        """An inference ended (however it ended); later calls for the same run do nothing."""
        if run.ended:
            return
        run.ended = True
        held = self.resident.get(run.model)
        run.generation_at_end = held.generation if held is not None else None
        if held is None or held.generation != run.generation_at_start:
            return
        held.in_flight -= 1
        held.last_used = time.monotonic()
        held.expires_at = time.time() + keep_alive_s
        if held.in_flight == 0 and (held.unload_when_idle or keep_alive_s == 0):
            self._drop(run.model, "unload")

    def _touch(self, held: Resident, keep_alive_s: float) -> None:
        """A new request for the model: it sets the expiry and cancels a pending unload."""
        held.last_used = time.monotonic()
        held.expires_at = time.time() + keep_alive_s
        held.unload_when_idle = held.unload_when_idle and keep_alive_s == 0

    def _make_room(self, name: str) -> None:
        size = self.size_of(name)
        capacity = self.knobs.capacity_bytes
        if capacity is not None and size > capacity:
            raise NoRoom(
                500,
                f"model requires more system memory ({_gib(size)}) "
                f"than is available ({_gib(capacity)})",
            )
        while not self._fits(size):
            idle = [r for r in self.resident.values() if r.in_flight == 0]
            if not idle:
                raise NoRoom(503, f"no idle model can be unloaded to make room for {name}")
            self._drop(min(idle, key=lambda r: r.last_used).name, "evict")

    def _fits(self, size: int) -> bool:
        limit, capacity = self.knobs.max_loaded, self.knobs.capacity_bytes
        count_ok = limit is None or len(self.resident) < limit
        bytes_ok = capacity is None or self.used() + size <= capacity
        return count_ok and bytes_ok

    def _drop(self, name: str, kind: str) -> None:
        self.resident.pop(name, None)
        self.events.append(Event(kind, name, time.monotonic()))


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.1f} GiB"
