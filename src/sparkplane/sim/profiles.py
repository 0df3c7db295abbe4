"""Planner figures per (model, device profile), computed once per run of the simulator.

The planner is not cheap (tens of milliseconds a call), so a `FigureTable`
keeps one `Figures` per model and device kind; a fleet of 1,000 devices of
two kinds costs two planner calls per model.

Decode speed is the planner's per-sequence figure at the device's `parallel`
sequences (what each request sees when the device is full), and memory is
weights plus a KV cache for `parallel` sequences of the model's context: the
simulator charges the same service time however many requests run at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparkplane.planner import PlannerError, builtin_profiles, load_model, plan
from sparkplane.planner.devices import DeviceProfile
from sparkplane.sim.fleetfile import FleetFileError, ModelSpec


@dataclass(frozen=True, slots=True)
class Figures:
    """What the planner says about one model on one device profile."""

    fits: bool
    bytes: int
    usable_bytes: int
    decode_tps: float | None = None
    prefill_tps: float | None = None
    image_s: float | None = None
    image_bytes: int = 0  # memory each image past the first adds to a batch

    @property
    def image(self) -> bool:
        """Whether this is a diffusion (image) model."""
        return self.image_s is not None


class FigureTable:
    """Planner figures, cached per (model, quant, context, profile, parallel)."""

    def __init__(self) -> None:
        self._profiles = builtin_profiles()
        self._cache: dict[tuple[str, str | None, int, str, int], Figures] = {}

    def profile(self, name: str) -> DeviceProfile:
        """The device profile named `name` (id or alias); `FleetFileError` if unknown."""
        if name in self._profiles:
            return self._profiles[name]
        for p in self._profiles.values():
            if name in p.aliases:
                return p
        known = ", ".join(sorted(self._profiles))
        raise FleetFileError(f"unknown device profile {name!r} (known: {known})")

    def figures(self, model: ModelSpec, profile: str, parallel: int) -> Figures:
        """The planner's figures for `model` on `profile` serving `parallel` requests."""
        key = (model.name, model.quant, model.context, profile, parallel)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._compute(model, profile, parallel)
        return found

    def _compute(self, model: ModelSpec, profile: str, parallel: int) -> Figures:
        device = self.profile(profile)
        try:
            spec = load_model(model.name)
            if spec.diffusion is not None:
                p = plan(spec, profiles=self._profiles, devices=[device.id], quant=model.quant)
            else:
                p = plan(
                    spec,
                    profiles=self._profiles,
                    devices=[device.id],
                    quant=model.quant,
                    context=model.context,
                    sequences=parallel,
                )
        except PlannerError as e:
            raise FleetFileError(f"model {model.name!r}: {e}") from e
        d = p.devices[0]
        if d.diffusion is not None:
            two = plan(
                spec, profiles=self._profiles, devices=[device.id], quant=model.quant, batch=2
            )
            return Figures(
                d.fits,
                d.memory.total,
                d.usable_bytes,
                image_s=d.diffusion.seconds_per_image,
                image_bytes=max(two.devices[0].memory.total - d.memory.total, 0),
            )
        if d.decode is None or d.prefill is None:
            return Figures(False, d.memory.total, d.usable_bytes)
        return Figures(
            d.fits,
            d.memory.total,
            d.usable_bytes,
            decode_tps=d.decode.tokens_per_s,
            prefill_tps=d.prefill.tokens_per_s,
        )
