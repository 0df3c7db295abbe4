"""Jobs and their attempts as plain records, shared by the store, the worker and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """Where a job stands. The last four are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"  # ComfyUI's execution_error, or sparkplane gave up (attempts used up)
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"  # deleted while pending: never ran, no history


FINAL = frozenset({JobStatus.SUCCESS, JobStatus.ERROR, JobStatus.INTERRUPTED, JobStatus.CANCELLED})


@dataclass(slots=True)
class NewJob:
    """What `POST /prompt` stores."""

    prompt_id: str
    tenant_id: str
    key_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    node_errors: dict[str, Any]
    signature: str
    client_id: str | None = None
    idempotency_key: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    number: float | None = None  # chosen by the client; else the next in line
    front: bool = False
    secrets: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Job:
    """A stored job."""

    id: str
    seq: int
    prompt_id: str
    tenant_id: str
    key_id: str
    client_id: str | None
    number: float
    status: JobStatus
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    node_errors: dict[str, Any]
    signature: str
    attempts: int
    device: str | None
    device_prompt_id: str | None
    resume: bool
    created_at: datetime
    started_at: datetime | None
    executing_at: datetime | None
    ended_at: datetime | None
    result: dict[str, Any] | None
    error: str | None
    secrets: dict[str, Any] = field(default_factory=dict, repr=False)
    idempotency_key: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    history_hidden: bool = False

    @property
    def number_value(self) -> int | float:
        """`number` as ComfyUI shows it: an int unless a client gave a fraction."""
        return int(self.number) if float(self.number).is_integer() else self.number

    def queue_item(self) -> list[Any]:
        """ComfyUI's queue item: [number, prompt_id, prompt, extra_data, outputs]."""
        return [self.number_value, self.prompt_id, self.prompt, self.extra_data, self.outputs]

    def public(self) -> dict[str, Any]:
        """The job as /api/jobs and the CLI show it (never the secrets)."""
        return {
            "id": self.id,
            "prompt_id": self.prompt_id,
            "tenant_id": self.tenant_id,
            "key_id": self.key_id,
            "client_id": self.client_id,
            "number": self.number_value,
            "status": self.status.value,
            "attempts": self.attempts,
            "device": self.device,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "error": self.error,
        }


@dataclass(slots=True)
class Attempt:
    """One try of a job on one device."""

    job_id: str
    attempt: int
    device: str
    device_prompt_id: str
    worker: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    detail: str | None

    def public(self) -> dict[str, Any]:
        """The attempt as shown by /api/jobs/{id} and `jobs show`."""
        return {
            "attempt": self.attempt,
            "device": self.device,
            "worker": self.worker,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "outcome": self.outcome,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Claim:
    """A job this process now runs: the attempt number is its fencing token."""

    job: Job
    token: int
    device: str
    device_prompt_id: str
    resume: bool  # the previous attempt may still be running on `device`: look first


@dataclass(frozen=True, slots=True)
class Upload:
    """A stored upload."""

    id: str
    tenant_id: str
    key_id: str
    type: str
    subfolder: str
    name: str
    sha256: str
    size: int
    path: str


@dataclass(frozen=True, slots=True)
class Artifact:
    """An output file copied from a device, as the store records it."""

    node_id: str
    type: str
    subfolder: str
    filename: str
    path: str
    size: int


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
