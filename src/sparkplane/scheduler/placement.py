"""Where a workflow can run: pure functions over plain data.

A device can run a prompt when its `/object_info` lists every node class the
prompt uses and every option it names in a combo input (checkpoints, LoRAs,
VAEs, ControlNets, upscalers, samplers...). Among capable devices the order
comes from the scheduler's one decision, `choose()`: least estimated
completion, the device's queue times its observed seconds per job of this
workflow's signature plus this job's own, then priority. Inputs that name
uploads are not checked here: sparkplane copies the upload to whichever device
runs the job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sparkplane.backends.workflow import Capabilities
from sparkplane.fleet.snapshot import DeviceState, FleetSnapshot, Slot
from sparkplane.scheduler.choose import Ask, Decision, Tuning, choose
from sparkplane.scheduler.policy import Policy

# Literal inputs that make one run of a graph cost more or less than another.
_SIZE_INPUTS = ("width", "height", "batch_size", "steps", "length", "scale_by", "megapixels")


@dataclass(frozen=True, slots=True)
class Missing:
    """Something a device lacks: a node class, or an option of a combo input."""

    node_id: str
    class_type: str
    input_name: str | None = None
    value: str | None = None

    def describe(self) -> str:
        """For error messages."""
        if self.input_name is None:
            return f"node class {self.class_type}"
        return f"{self.input_name} '{self.value}' of {self.class_type}"


@dataclass(frozen=True, slots=True)
class DeviceView:
    """A workflow device as placement sees it."""

    name: str
    priority: int
    off_prem: bool
    available: bool
    queue: int  # jobs this process has on the device now
    seconds_per_job: float | None  # observed for this workflow (or any, if never seen)
    capabilities: Capabilities | None


def missing(prompt: Mapping[str, Any], caps: Capabilities) -> list[Missing]:
    """What `caps` lacks to run `prompt` (empty: it can run it)."""
    lacking: list[Missing] = []
    for node_id, node in prompt.items():
        class_type = node.get("class_type") if isinstance(node, dict) else None
        if not isinstance(class_type, str):
            continue
        if class_type not in caps.definitions:
            lacking.append(Missing(node_id, class_type))
            continue
        combos = caps.combos.get(class_type, {})
        for name, value in (node.get("inputs") or {}).items():
            options = combos.get(name)
            if options is None or isinstance(value, list | dict):
                continue
            if str(value) not in options:
                lacking.append(Missing(node_id, class_type, name, str(value)))
    return lacking


def capable(prompt: Mapping[str, Any], devices: Sequence[DeviceView]) -> list[DeviceView]:
    """The devices whose capabilities cover the prompt."""
    return [
        d for d in devices if d.capabilities is not None and not missing(prompt, d.capabilities)
    ]


# The queue limit is the job worker's (comfy_device_queue): choose() never refuses here.
_TUNING = Tuning(allow_load=False, max_plans=1_000_000, saturation=1_000_000)
_WORKFLOW = "workflow"


def place(prompt: Mapping[str, Any], devices: Sequence[DeviceView], policy: Policy) -> Decision:
    """Capable devices in the order to use them (see `choose()`); one prompt runs at a
    time on a ComfyUI device, so the wait is its queue times its pace."""
    slots: list[Slot] = []
    for d in capable(prompt, devices):
        state = DeviceState(
            name=d.name, priority=d.priority, off_prem=d.off_prem, available=d.available
        )
        slot = Slot(device=state, model=_WORKFLOW, resident=True, pace_s=d.seconds_per_job)
        state.slots[_WORKFLOW] = slot
        state.inflight = d.queue
        slots.append(slot)
    known = [s.pace_s for s in slots if s.pace_s is not None]
    for s in slots:
        # The work ahead: its queue at its pace (a device never measured counts as
        # fast as the fastest measured one, as choose() assumes for the job itself).
        pace = s.pace_s if s.pace_s is not None else (min(known) if known else 1.0)
        s.device.outstanding_s = s.device.inflight * pace
    snapshot = FleetSnapshot.build((s.device for s in slots), {_WORKFLOW: slots})
    return choose(Ask(_WORKFLOW), snapshot, policy, _TUNING)


def closest_gap(prompt: Mapping[str, Any], devices: Sequence[DeviceView]) -> list[Missing]:
    """What the device that lacks least is missing (for the 400 that names it)."""
    gaps = [missing(prompt, d.capabilities) for d in devices if d.capabilities is not None]
    return min(gaps, key=len) if gaps else []


def merged(capabilities: Sequence[Capabilities]) -> dict[str, dict[str, Any]]:
    """One `/object_info` for several devices: every class, combo options unioned."""
    out: dict[str, dict[str, Any]] = {}
    for caps in capabilities:
        for name, entry in caps.definitions.items():
            if name not in out:
                out[name] = entry
                continue
            extra = caps.combos.get(name, {})
            if not extra:
                continue
            entry = out[name] = _copy_inputs(out[name])
            for section in ("required", "optional"):
                specs = entry["input"].get(section) or {}
                for input_name, options in extra.items():
                    spec = specs.get(input_name)
                    if isinstance(spec, list) and spec and isinstance(spec[0], list):
                        known = set(spec[0])
                        spec[0] = spec[0] + [o for o in options if o not in known]
    return out


def _copy_inputs(entry: dict[str, Any]) -> dict[str, Any]:
    inputs = entry.get("input") or {}
    copied = {
        section: {k: list(v) if isinstance(v, list) else v for k, v in specs.items()}
        for section, specs in inputs.items()
        if isinstance(specs, dict)
    }
    for specs in copied.values():
        for spec in specs.values():
            if isinstance(spec, list) and spec and isinstance(spec[0], list):
                spec[0] = list(spec[0])
    return {**entry, "input": copied}


def signature(prompt: Mapping[str, Any]) -> str:
    """A key for "the same kind of job": node classes plus the size-like literals."""
    parts: list[str] = []
    for node in prompt.values():
        if not isinstance(node, dict):
            continue
        inputs = node.get("inputs") or {}
        sizes = [f"{k}={inputs[k]}" for k in _SIZE_INPUTS if isinstance(inputs.get(k), int | float)]
        parts.append(f"{node.get('class_type')}({','.join(sizes)})")
    return hashlib.sha256("|".join(sorted(parts)).encode()).hexdigest()[:32]
