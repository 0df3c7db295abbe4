"""The prompt queue and history, as ComfyUI's PromptQueue keeps them.

Pending items live in a binary heap of (number, prompt_id, prompt, extra_data,
outputs_to_execute, sensitive) tuples, so /queue lists them in heap order, not run
order. Every change calls `on_change` (the `status` broadcast); deleting the last
pending item wipes the queue and so broadcasts twice, as ComfyUI does.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import heapq
from collections.abc import Callable
from typing import Any

MAXIMUM_HISTORY_SIZE = 10000

QueueItem = tuple[Any, ...]


class PromptQueue:
    """Pending heap, running items, history and worker flags."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change
        self.queue: list[QueueItem] = []
        self.running: dict[int, QueueItem] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self.flags: dict[str, Any] = {}
        self._counter = 0
        self._wakeup = asyncio.Event()

    def put(self, item: QueueItem) -> None:
        """Queue a prompt."""
        heapq.heappush(self.queue, item)
        self.on_change()
        self._wakeup.set()

    async def get(self, wait_s: float | None = None) -> tuple[QueueItem, int] | None:
        """Take the next prompt; None if woken (flags) or timed out with nothing queued."""
        while not self.queue:
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), wait_s)
            if wait_s is not None and not self.queue:
                return None
        item = heapq.heappop(self.queue)
        item_id = self._counter
        self._counter += 1
        self.running[item_id] = copy.deepcopy(item)
        self.on_change()
        return item, item_id

    def task_done(self, item_id: int, result: dict[str, Any], status: dict[str, Any]) -> None:
        """Move a finished prompt into history (without its sensitive part)."""
        prompt = self.running.pop(item_id)
        if len(self.history) > MAXIMUM_HISTORY_SIZE:
            self.history.pop(next(iter(self.history)))
        self.history[prompt[1]] = {"prompt": prompt[:5], "outputs": {}, "status": status, **result}
        self.on_change()

    def drop_running(self) -> None:
        """Forget running items (the server died)."""
        self.running.clear()

    def current(self) -> tuple[list[QueueItem], list[QueueItem]]:
        """(running, pending) items without their sensitive part, pending in heap order."""
        return [x[:5] for x in self.running.values()], [x[:5] for x in self.queue]

    def remaining(self) -> int:
        """queue_remaining: pending plus running."""
        return len(self.queue) + len(self.running)

    def running_ids(self) -> list[str]:
        """prompt_ids being executed."""
        return [item[1] for item in self.running.values()]

    def wipe_queue(self) -> None:
        """Drop every pending prompt."""
        self.queue = []
        self.on_change()

    def delete_pending(self, prompt_id: Any) -> bool:
        """Drop one pending prompt by id (running ones are not touched)."""
        for index, item in enumerate(self.queue):
            if item[1] == prompt_id:
                if len(self.queue) == 1:
                    self.wipe_queue()
                else:
                    self.queue.pop(index)
                    heapq.heapify(self.queue)
                self.on_change()
                return True
        return False

    def get_history(
        self, prompt_id: str | None = None, max_items: int | None = None, offset: int = -1
    ) -> dict[str, Any]:
        """GET /history and /history/{id} bodies, with ComfyUI's max_items/offset rules."""
        if prompt_id is not None:
            if prompt_id in self.history:
                return {prompt_id: copy.deepcopy(self.history[prompt_id])}
            return {}
        out: dict[str, Any] = {}
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        for index, key in enumerate(self.history):
            if index >= offset:
                out[key] = self.history[key]
                if max_items is not None and len(out) >= max_items:
                    break
        return out

    def wipe_history(self) -> None:
        """POST /history {"clear": true}."""
        self.history = {}

    def delete_history(self, prompt_id: Any) -> None:
        """POST /history {"delete": [id]}."""
        self.history.pop(prompt_id, None)

    def set_flag(self, name: str, value: Any) -> None:
        """POST /free flags, acted on by the worker when it is next free."""
        self.flags[name] = value
        self._wakeup.set()

    def take_flags(self) -> dict[str, Any]:
        """The flags set since the last call."""
        flags, self.flags = self.flags, {}
        return flags
