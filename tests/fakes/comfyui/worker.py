"""The prompt worker loop (ComfyUI's prompt_worker), one per server incarnation.

After each prompt: history entry and `status` (task_done), then `executing` with
node null to the prompt's client. Flags from POST /free are handled when the worker
is free: free_memory empties the node cache, unload_models (or free_memory) drops the
resident models (memory.py). The GC model: after the first prompt,
and after any prompt ending more than gc_interval_s after the last pause, the worker
stalls the whole server for gc_pause_s (frames and HTTP wait), as gc.collect() holding
the GIL does in ComfyUI.
"""

from __future__ import annotations

import asyncio

from tests.fakes.comfyui.executor import PromptRun
from tests.fakes.comfyui.state import State


class Worker:
    """Takes prompts off the queue and executes them, one at a time."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.last_gc: float | None = None  # None: no pause yet since start
        self.need_gc = False

    async def run(self) -> None:
        """Loop forever (cancelled when the server stops or dies)."""
        state = self.state
        loop = asyncio.get_running_loop()
        while True:
            timeout = 1000.0
            if self.need_gc and self.last_gc is not None:
                timeout = max(state.config.gc_interval_s - (loop.time() - self.last_gc), 0.0)
            got = await state.queue.get(wait_s=timeout)
            if got is not None:
                item, item_id = got
                run = PromptRun(state, item)
                result, status = await run.execute()
                state.queue.task_done(item_id, result, status)
                if run.client_id is not None:
                    state.hub.send_sync(
                        "executing", {"node": None, "prompt_id": run.prompt_id}, run.client_id
                    )
                state.stats.jobs.append(run.record(status))
                self.need_gc = True
            flags = state.queue.take_flags()
            if flags.get("free_memory", False):
                state.caches.reset()
            if flags.get("unload_models", flags.get("free_memory", False)):
                state.resident.clear()
                self.need_gc, self.last_gc = True, None
            await self._maybe_gc(loop.time())

    async def _maybe_gc(self, now: float) -> None:
        pause = self.state.config.gc_pause_s
        if not self.need_gc:
            return
        if pause <= 0:
            self.need_gc = False
            return
        if self.last_gc is None or now - self.last_gc > self.state.config.gc_interval_s:
            self.state.hub.stall(pause)
            await asyncio.sleep(pause)
            self.last_gc = asyncio.get_running_loop().time()
            self.need_gc = False
