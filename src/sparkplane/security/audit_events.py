"""What the audit log records: one frozen dataclass per kind of event.

An event names its `action`, the tenant and key behind it, and its `data()`:
the facts an auditor needs (model, device, status, counts, timings), never a
secret and never prompt or image content unless the tenant opted in (the
caller passes `content` only then). Audit events are records kept in the hash
chain (`security/audit.py`); they are not log lines.

    event = InferenceEvent(tenant_id=p.tenant_id, key_id=p.key_id, model="llama3",
                           device="spark", status=200, op="chat", tokens_in=12, ...)
    audit.record(event)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

# Actions admin routes and commands record (AdminEvent.action); others may be added.
ADMIN_ACTIONS = frozenset(
    {
        "auth.bootstrap",
        "devices.add",
        "devices.update",
        "devices.remove",
        "keys.create",
        "keys.revoke",
        "keys.rotate",
        "keys.update",
        "tenants.create",
        "tenants.update",
    }
)
_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class AuditEvent(Protocol):
    """Anything the audit log can record."""

    @property
    def action(self) -> str:
        """What happened, dotted, e.g. `inference` or `keys.revoke` (at most 60 characters)."""

    @property
    def tenant_id(self) -> str | None:
        """The tenant the event concerns, if any: the caller's for requests and jobs,
        the tenant acted on for an admin change. Its entry joins that tenant's chain."""

    @property
    def key_id(self) -> str | None:
        """The public id of the key that acted, if any (never the key itself)."""

    def data(self) -> dict[str, Any]:
        """The event's details as JSON-ready values."""


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass(frozen=True, slots=True)
class InferenceEvent:
    """One OpenAI-compatible request (chat, completion, embedding), served or refused."""

    action: ClassVar[str] = "inference"

    tenant_id: str | None
    key_id: str | None
    model: str
    op: str
    status: int
    device: str | None = None
    stream: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    attempts: int = 0
    duration_ms: float = 0.0
    ttfb_ms: float | None = None
    error: str | None = None  # the error code when refused or failed
    # Prompt and answer, only for a tenant whose policy has `audit_content`.
    content: dict[str, Any] | None = None

    def data(self) -> dict[str, Any]:
        """Model, operation, device, status, counts and timings (and content when given)."""
        doc: dict[str, Any] = {
            "model": self.model,
            "op": self.op,
            "device": self.device,
            "status": self.status,
            "stream": self.stream,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "attempts": self.attempts,
            "duration_ms": _ms(self.duration_ms),
            "ttfb_ms": _ms(self.ttfb_ms),
        }
        if self.error is not None:
            doc["error"] = self.error
        if self.content is not None:
            doc["content"] = self.content
        return doc


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One ComfyUI workflow job reaching an end (completed, failed or cancelled)."""

    action: ClassVar[str] = "job"

    tenant_id: str | None
    key_id: str | None
    prompt_id: str
    status: str
    device: str | None = None
    images: int = 0
    attempts: int = 0
    duration_ms: float = 0.0
    error: str | None = None
    # The workflow graph and its inputs, only for a tenant that opted in.
    content: dict[str, Any] | None = None
    # The job's own id, not recorded: it names the entry (`entry_id`), so a job
    # reported again (after a crash, by a recovery) is stored once.
    job_id: str | None = None

    @property
    def entry_id(self) -> str | None:
        """The entry's id, fixed by the job: one `job` entry per job, however often reported."""
        if self.job_id is None:
            return None
        return hashlib.sha256(f"job:{self.job_id}".encode()).hexdigest()[:32]

    def data(self) -> dict[str, Any]:
        """Prompt id, device, status, image count and duration (and content when given)."""
        doc: dict[str, Any] = {
            "prompt_id": self.prompt_id,
            "device": self.device,
            "status": self.status,
            "images": self.images,
            "attempts": self.attempts,
            "duration_ms": _ms(self.duration_ms),
        }
        if self.error is not None:
            doc["error"] = self.error
        if self.content is not None:
            doc["content"] = self.content
        return doc


@dataclass(frozen=True, slots=True)
class AdminEvent:
    """A change made through the admin API or the CLI.

    `tenant_id` is the tenant the change concerns (the tenant whose key or
    settings changed; the actor's own for fleet changes such as devices) and
    `key_id` the key that acted (None for the CLI on the server's own machine);
    `actor_tenant_id` names the actor's tenant when it is another (a platform
    key acting on a client's tenant). `target` names what was changed (a
    device name, a key id, a tenant name). `details` must not hold secrets: the
    log masks fields named like credentials and anything shaped like a
    sparkplane key, as a backstop.
    """

    action: str
    tenant_id: str | None
    key_id: str | None
    target: str
    details: dict[str, Any] = field(default_factory=dict)
    actor_tenant_id: str | None = None

    def __post_init__(self) -> None:
        if len(self.action) > 60 or not _ACTION.match(self.action):
            raise ValueError(f"not an audit action name: {self.action!r}")

    def data(self) -> dict[str, Any]:
        """The target and the details of the change (and the actor's tenant when another)."""
        doc: dict[str, Any] = {"target": self.target, "details": self.details}
        if self.actor_tenant_id is not None and self.actor_tenant_id != self.tenant_id:
            doc["actor_tenant_id"] = self.actor_tenant_id
        return doc


@dataclass(frozen=True, slots=True)
class AuthFailedEvent:
    """A refused credential (401) or a permission refused to a valid key (403)."""

    action: ClassVar[str] = "auth.failed"

    path: str
    status: int
    reason: str
    tenant_id: str | None = None
    key_id: str | None = None  # the id part of a presented key, when it had one
    client: str | None = None  # the peer address

    def data(self) -> dict[str, Any]:
        """Path, status, reason and client address."""
        return {
            "path": self.path,
            "status": self.status,
            "reason": self.reason,
            "client": self.client,
        }
