"""Where workflow (ComfyUI) jobs run: the job worker's placement, through the
same `choose()` as every inference request.

`WorkflowPlacer` answers the worker's three questions: which queued job to
claim and on which device (`choose`), whether any device has room at all
(`has_room`), and what a finished job taught (`observe`: seconds per job,
kept per device AND per workflow signature). A job resumed after a restart
stays on the device it ran on; a device that gave up on a job is avoided for
it while another device can run it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sparkplane.backends.workflow import WorkflowBackend
from sparkplane.fleet.device import EWMA_ALPHA, Device
from sparkplane.fleet.registry import Fleet
from sparkplane.jobs.records import Job
from sparkplane.jobs.store import Choice
from sparkplane.scheduler import placement
from sparkplane.scheduler.placement import DeviceView
from sparkplane.scheduler.policy import Policy


class WorkflowPlacer:
    """See the module docstring."""

    def __init__(self, fleet: Fleet, device_queue: int) -> None:
        self._fleet = fleet
        self._depth = device_queue
        self._pace: dict[tuple[str, str], float] = {}  # (device, signature) -> seconds per job
        self._avoid: dict[str, set[str]] = {}  # job id -> devices that gave up on it

    def devices(self, policy: Policy | None = None) -> list[Device]:
        """Workflow devices (ComfyUI), only those `policy` allows when given."""
        found = [d for d in self._fleet.devices() if isinstance(d.backend, WorkflowBackend)]
        if policy is None:
            return found
        allowed = policy.allowed_devices
        return [
            d
            for d in found
            if (allowed is None or d.name in allowed)
            and (policy.allow_off_prem or not d.record.off_prem)
        ]

    def views(self, devices: Sequence[Device], signature: str) -> list[DeviceView]:
        """Placement's view of `devices` for a workflow of `signature`."""
        return [
            DeviceView(
                name=d.name,
                priority=d.record.priority,
                off_prem=d.record.off_prem,
                available=d.available,
                queue=d.inflight,
                seconds_per_job=self._pace.get((d.name, signature), d.ewma_s),
                capabilities=backend_of(d).capabilities,
            )
            for d in devices
        ]

    def choose(self, jobs: Sequence[Job]) -> Choice | None:
        """The first of `jobs` some device can take now, with its device."""
        for job in jobs:
            if job.resume and job.device is not None:
                device = self._fleet.by_name(job.device)
                if device is not None and device.available:
                    return job, device.name, True
            policy = stored_policy(job.policy)
            devices = [d for d in self.devices(policy) if d.inflight < self._depth]
            avoid = self._avoid.get(job.id, set())
            preferred = [d for d in devices if d.name not in avoid] or devices
            decision = placement.place(job.prompt, self.views(preferred, job.signature), policy)
            if decision.best is not None:
                return job, decision.best.device, False
        return None

    def has_room(self) -> bool:
        """Whether any workflow device could take one more job now."""
        return any(d.available and d.inflight < self._depth for d in self.devices())

    def gave_up(self, job: Job, device: str) -> None:
        """`device` gave up on `job`: place it elsewhere next time if possible."""
        self._avoid.setdefault(job.id, set()).add(device)

    def forget(self, job: Job) -> None:
        """`job` ended: drop what was kept for it."""
        self._avoid.pop(job.id, None)

    def observe(self, device: Device, signature: str, seconds: float) -> None:
        """A job of `signature` took `seconds` on `device`."""
        device.observe(seconds)
        key = (device.name, signature)
        old = self._pace.get(key)
        self._pace[key] = seconds if old is None else old + EWMA_ALPHA * (seconds - old)


def backend_of(device: Device) -> WorkflowBackend:
    """The workflow adapter of a workflow device."""
    backend = device.backend
    assert isinstance(backend, WorkflowBackend)
    return backend


def stored_policy(stored: dict[str, object]) -> Policy:
    """The policy a job was submitted under, as the job store keeps it."""
    allowed = stored.get("allowed_devices")
    return Policy(
        allow_off_prem=bool(stored.get("allow_off_prem", False)),
        allowed_devices=frozenset(str(a) for a in allowed) if isinstance(allowed, list) else None,
    )
