"""The fleet in memory: devices by id, kept in step with the database, and the
model catalog built from them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from sparkplane.backends.base import Backend
from sparkplane.fleet.breaker import CircuitBreaker
from sparkplane.fleet.catalog import ModelCatalog
from sparkplane.fleet.device import Device, DeviceRecord

BackendMaker = Callable[[DeviceRecord], Backend]
BreakerMaker = Callable[[], CircuitBreaker]

# Settings whose change needs a new adapter (a new URL, kind or key).
_ADAPTER_FIELDS = ("url", "kind", "api_key")


class Fleet:
    """Devices the process knows, their live state, and the model catalog."""

    def __init__(
        self,
        make_backend: BackendMaker,
        make_breaker: BreakerMaker,
        aliases: Mapping[str, Sequence[str]],
        kinds: Iterable[str],
    ) -> None:
        self._make_backend = make_backend
        self._make_breaker = make_breaker
        self._aliases = aliases
        self._kinds = tuple(kinds)
        self._devices: dict[str, Device] = {}
        self.catalog = ModelCatalog.build((), aliases, self._kinds)
        # Told after every catalog rebuild (the scheduler's snapshot is rebuilt then).
        self.listeners: list[Callable[[], None]] = []

    def __len__(self) -> int:
        return len(self._devices)

    def devices(self) -> list[Device]:
        """Every device, by name."""
        return sorted(self._devices.values(), key=lambda d: d.name)

    def by_name(self, name: str) -> Device | None:
        """The device called `name`, if any."""
        return next((d for d in self._devices.values() if d.name == name), None)

    def sync(self, records: Iterable[DeviceRecord]) -> bool:
        """Make memory match the database; returns True if anything changed.

        Live state (breaker, in-flight count, latency average) survives for
        devices whose adapter settings did not change.
        """
        seen: set[str] = set()
        changed = False
        for record in records:
            seen.add(record.id)
            current = self._devices.get(record.id)
            if current is None or any(
                getattr(current.record, f) != getattr(record, f) for f in _ADAPTER_FIELDS
            ):
                self._devices[record.id] = self._new_device(record)
                changed = True
            elif _settings(current.record) != _settings(record):
                _copy_settings(record, current.record)
                changed = True
        for gone in set(self._devices) - seen:
            del self._devices[gone]
            changed = True
        if changed:
            self.rebuild_catalog()
        return changed

    def rebuild_catalog(self) -> None:
        """Rebuild the model index after devices or their model lists changed."""
        self.catalog = ModelCatalog.build(self._devices.values(), self._aliases, self._kinds)
        for listener in self.listeners:
            listener()

    def _new_device(self, record: DeviceRecord) -> Device:
        device = Device(
            record=record, backend=self._make_backend(record), breaker=self._make_breaker()
        )
        # Until the first probe the last stored model list stands in, so requests
        # can be routed at once after a restart.
        device.models = frozenset(record.models)
        return device


def _settings(record: DeviceRecord) -> tuple[object, ...]:
    return (record.name, record.priority, record.off_prem, record.enabled, record.extra)


def _copy_settings(source: DeviceRecord, target: DeviceRecord) -> None:
    target.name = source.name
    target.priority = source.priority
    target.off_prem = source.off_prem
    target.enabled = source.enabled
    target.extra = source.extra
