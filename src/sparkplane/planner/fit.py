"""Fit and capacity: does it fit, how much context, how many sequences, several models at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .devices import DeviceProfile
from .memory import MemoryBreakdown, llm_memory
from .specs import ModelSpec

MAX_SEQUENCES = 1 << 16


def _fits(
    spec: ModelSpec, device: DeviceProfile, engine: str, kv: str, ctx: int, seqs: int
) -> bool:
    return llm_memory(spec, engine, ctx, seqs, kv).total <= device.usable_bytes


def max_context(
    spec: ModelSpec, device: DeviceProfile, engine: str, kv_dtype: str, sequences: int = 1
) -> int:
    """The longest context (up to the model's own limit) that fits; 0 if nothing fits."""
    a = spec.arch
    if a is None or a.encoder:
        return 0
    limit = max(a.max_context, 1)
    if not _fits(spec, device, engine, kv_dtype, 1, sequences):
        return 0
    if _fits(spec, device, engine, kv_dtype, limit, sequences):
        return limit
    lo, hi = 1, limit  # lo fits, hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _fits(spec, device, engine, kv_dtype, mid, sequences) else (lo, mid)
    return lo


def max_sequences(
    spec: ModelSpec, device: DeviceProfile, engine: str, kv_dtype: str, context: int
) -> int:
    """The most concurrent sequences of ``context`` tokens that fit; 0 if not even one."""
    if spec.arch is None or not _fits(spec, device, engine, kv_dtype, context, 1):
        return 0
    lo, hi = 1, 2
    while hi <= MAX_SEQUENCES and _fits(spec, device, engine, kv_dtype, context, hi):
        lo, hi = hi, hi * 2
    if hi > MAX_SEQUENCES:
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _fits(spec, device, engine, kv_dtype, context, mid) else (lo, mid)
    return lo


@dataclass(frozen=True)
class Load:
    """One model to keep resident: its name and memory.

    Loads with ``shared_process`` (diffusion pipelines in one ComfyUI process)
    share one runtime and run one at a time, so only the largest activations count.
    """

    name: str
    memory: MemoryBreakdown
    shared_process: bool = False


@dataclass(frozen=True)
class GroupMember:
    """A model's share of a group's memory."""

    name: str
    bytes: int


@dataclass(frozen=True)
class GroupFit:
    """Whether several models fit on one device together."""

    device: str
    usable_bytes: int
    total_bytes: int
    members: tuple[GroupMember, ...]
    shared_bytes: int  # runtime and activations of the shared process
    fits: bool
    headroom_bytes: int


def fit_together(device: DeviceProfile, loads: Sequence[Load]) -> GroupFit:
    """Whether ``loads`` fit on ``device`` at the same time."""
    members: list[GroupMember] = []
    shared_act = shared_runtime = 0
    for load in loads:
        if load.shared_process:
            own = sum(i.bytes for i in load.memory.items if i.label.startswith("weights"))
            act = sum(i.bytes for i in load.memory.items if i.label.startswith("activations"))
            shared_act = max(shared_act, act)
            shared_runtime = max(shared_runtime, load.memory.get("runtime"))
        else:
            own = load.memory.total
        members.append(GroupMember(load.name, own))
    shared = shared_act + shared_runtime
    total = sum(m.bytes for m in members) + shared
    usable = device.usable_bytes
    return GroupFit(
        device.id, usable, total, tuple(members), shared, total <= usable, usable - total
    )
