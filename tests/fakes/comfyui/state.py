"""What one running instance of the fake holds, and what tests can inspect.

`State` is rebuilt on every (re)start, like a ComfyUI process: queue, history, caches,
sockets and the prompt counter start empty; the folders (and files in them) persist.
`FakeStats` lives on the FakeComfyUI object and accumulates across restarts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.comfyui.catalog import Catalog
from tests.fakes.comfyui.config import FakeComfyConfig, Fault
from tests.fakes.comfyui.files import Folders
from tests.fakes.comfyui.hub import Hub
from tests.fakes.comfyui.queue import PromptQueue


@dataclass(frozen=True)
class Upload:
    """One POST /upload/image the fake accepted."""

    name: str
    subfolder: str
    type: str
    size: int
    written: bool


@dataclass(frozen=True)
class JobRecord:
    """One prompt the worker finished (success, error or interrupt)."""

    prompt_id: str
    number: float
    status_str: str
    executed: tuple[str, ...]
    cached: tuple[str, ...]


@dataclass
class FakeStats:
    """Counters for tests, cumulative across restarts."""

    prompt_bodies: list[Any] = field(default_factory=list)  # every POST /prompt body parsed
    accepted: list[str] = field(default_factory=list)  # prompt_ids answered 200
    jobs: list[JobRecord] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)
    interrupts: list[Any] = field(default_factory=list)  # POST /interrupt bodies
    frees: list[Any] = field(default_factory=list)  # POST /free bodies
    ws_connects: int = 0
    starts: int = 0

    @property
    def jobs_executed(self) -> int:
        """Prompts the worker finished, whatever their outcome."""
        return len(self.jobs)


class OutputCache:
    """Node outputs and UI entries keyed by input signature (ComfyUI's classic cache)."""

    def __init__(self) -> None:
        self.outputs: dict[Hashable, tuple[Any, ...]] = {}
        self.ui: dict[Hashable, dict[str, Any]] = {}

    def retain(self, keys: set[Hashable]) -> None:
        """Keep only entries used by the new prompt (set_prompt + clean_unused)."""
        self.outputs = {k: v for k, v in self.outputs.items() if k in keys}
        self.ui = {k: v for k, v in self.ui.items() if k in keys}

    def reset(self) -> None:
        """Forget everything (POST /free with free_memory)."""
        self.outputs.clear()
        self.ui.clear()


class FaultBook:
    """Faults still armed, with their remaining counts."""

    def __init__(self, faults: list[Fault]) -> None:
        self._armed: list[list[Any]] = [[fault, fault.times] for fault in faults]

    def add(self, fault: Fault) -> None:
        """Arm one more fault."""
        self._armed.append([fault, fault.times])

    def take(self, node_id: str, class_type: str, step: int | None) -> Fault | None:
        """The first armed fault matching this point, consuming one of its uses."""
        for slot in self._armed:
            fault, remaining = slot
            if remaining != 0 and fault.matches(node_id, class_type, step):
                if remaining is not None:
                    slot[1] = remaining - 1
                return fault  # type: ignore[no-any-return]
        return None


@dataclass
class Controls:
    """Ways a fault reaches the server around the worker."""

    kill: Callable[[], Coroutine[Any, Any, None]]
    freeze: Callable[[], None]
    http_error: Callable[[int], Awaitable[None]]


@dataclass
class State:
    """One incarnation of the server process."""

    config: FakeComfyConfig
    folders: Folders
    catalog: Catalog
    hub: Hub
    queue: PromptQueue
    stats: FakeStats
    faults: FaultBook
    controls: Controls
    caches: OutputCache = field(default_factory=OutputCache)
    number: int = 0
    interrupt: asyncio.Event = field(default_factory=asyncio.Event)  # nodes.interrupt_processing
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # nothing queued or running
    http_error_status: int | None = None
    frozen: bool = False
    resident: dict[str, int] = field(default_factory=dict)  # model file -> bytes (memory.py)

    def queue_info(self) -> dict[str, Any]:
        """The `status` payload: {"exec_info": {"queue_remaining": N}}."""
        return {"exec_info": {"queue_remaining": self.queue.remaining()}}

    def broadcast_status(self) -> None:
        """ComfyUI's queue_updated(): a status frame to every socket."""
        self.hub.send_sync("status", {"status": self.queue_info()}, None)
        if self.queue.remaining():
            self.idle.clear()
        else:
            self.idle.set()
