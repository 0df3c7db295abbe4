"""Devices and fleets backed by `FakeBackend`, for unit tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sparkplane.backends.base import Backend
from sparkplane.backends.registry import KINDS
from sparkplane.fleet.breaker import CircuitBreaker
from sparkplane.fleet.device import Device, DeviceRecord
from sparkplane.fleet.registry import Fleet
from tests.fakes.backend import FakeBackend


def record(name: str, models: Sequence[str] = ("m",), **fields: Any) -> DeviceRecord:
    """A device record called `name` (id `id-<name>`) advertising `models`."""
    values: dict[str, Any] = {
        "id": f"id-{name}",
        "url": f"http://{name}.invalid",
        "kind": "openai",
    }
    values.update(fields)
    return DeviceRecord(name=name, models=list(models), **values)


def device(
    name: str,
    models: Sequence[str] = ("m",),
    backend: FakeBackend | None = None,
    threshold: int = 3,
    cooldown_s: float = 10.0,
    **fields: Any,
) -> Device:
    """A live device with a fake backend and a closed breaker."""
    rec = record(name, models, **fields)
    return Device(
        record=rec,
        backend=backend or FakeBackend(models=list(models), kind=rec.kind, url=rec.url),
        breaker=CircuitBreaker(threshold, cooldown_s),
        models=frozenset(models),
    )


class FakeFleet:
    """A `Fleet` whose adapters are `FakeBackend`s looked up by device name."""

    def __init__(
        self,
        backends: Mapping[str, FakeBackend] | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
        threshold: int = 3,
        cooldown_s: float = 10.0,
    ) -> None:
        self.backends = dict(backends or {})
        self.made: list[str] = []
        self.fleet = Fleet(
            make_backend=self._make,
            make_breaker=lambda: CircuitBreaker(threshold, cooldown_s),
            aliases=aliases or {},
            kinds=KINDS,
        )

    def _make(self, rec: DeviceRecord) -> Backend:
        self.made.append(rec.name)
        return self.backends.setdefault(rec.name, FakeBackend(kind=rec.kind, url=rec.url))
