"""The fleet's models: the union of what devices advertise, under public names.

An alias maps one public name to the names the same model has on different
engines. A target written `kind:name` (e.g. `ollama:llama3.1:8b`) only matches
devices of that engine kind; any other target matches every device that
advertises exactly that name. Names no alias claims stay public as they are.

The catalog is rebuilt when devices or their model lists change, never per
request: a lookup is one dict access.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sparkplane.fleet.device import Device


def split_target(target: str, kinds: frozenset[str]) -> tuple[str | None, str]:
    """An alias target as (engine kind or None for any, model name): `ollama:llama3.1:8b`
    -> ("ollama", "llama3.1:8b") when `ollama` is a known kind, else (None, target)."""
    kind, _, name = target.partition(":")
    if name and kind in kinds:
        return kind, name
    return None, target


@dataclass(frozen=True, slots=True)
class Route:
    """One way to serve a public model: this device, under this name."""

    device: Device
    model: str


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A public model and every device that serves it."""

    name: str
    routes: tuple[Route, ...]
    alias: bool


class ModelCatalog:
    """Public model name -> routes. Immutable; build a new one on change."""

    __slots__ = ("_entries", "_hidden")

    def __init__(self, entries: Mapping[str, ModelEntry], hidden: frozenset[str]) -> None:
        self._entries = dict(entries)
        self._hidden = hidden

    @classmethod
    def build(
        cls, devices: Iterable[Device], aliases: Mapping[str, Sequence[str]], kinds: Iterable[str]
    ) -> ModelCatalog:
        """Index `devices` by model name, applying `aliases`.

        `kinds` are the engine kinds a `kind:` prefix may name.
        """
        known_kinds = frozenset(kinds)
        by_name: dict[str, list[Route]] = {}
        for device in devices:
            for model in sorted(device.models):
                by_name.setdefault(model, []).append(Route(device, model))

        entries: dict[str, ModelEntry] = {}
        claimed: set[tuple[str, str]] = set()
        for public, targets in aliases.items():
            routes: dict[tuple[str, str], Route] = {}
            for target in targets:
                kind, name = split_target(target, known_kinds)
                matches = [
                    r for r in by_name.get(name, ()) if kind is None or r.device.record.kind == kind
                ]
                for r in matches:
                    routes.setdefault((r.device.id, r.model), r)
            claimed.update(routes)
            entries[public] = ModelEntry(public, tuple(routes.values()), alias=True)

        hidden: set[str] = set()
        for model, raw_routes in by_name.items():
            if model in entries:
                continue
            # Raw names stay routable even when an alias claims them, so a client
            # using the engine's own name keeps working; only the listing hides them.
            entries[model] = ModelEntry(model, tuple(raw_routes), alias=False)
            if all((r.device.id, r.model) in claimed for r in raw_routes):
                hidden.add(model)
        return cls(entries, frozenset(hidden))

    def routes(self, name: str) -> tuple[Route, ...] | None:
        """Every route for a public or raw model name; None if nothing has it."""
        entry = self._entries.get(name)
        return entry.routes if entry is not None else None

    def entries(self) -> list[ModelEntry]:
        """Every entry, hidden raw names included (the scheduler routes them too)."""
        return list(self._entries.values())

    def listed(self) -> list[ModelEntry]:
        """Public models for /v1/models, sorted by name."""
        return [e for n, e in sorted(self._entries.items()) if n not in self._hidden]
