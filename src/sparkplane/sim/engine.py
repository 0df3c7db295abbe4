"""The discrete-event loop: arrivals, loads, request starts and ends, outages.

The engine owns the clock and executes; a `Router` (our policy or a
baseline) decides. Every change to fleet state goes through the accounting
functions of `fleet/snapshot.py` (`acquire`, `release`, `observe`,
`begin_load`, `end_load`, `evict`), as in the live server.

A device (`Node`) runs up to `parallel` requests at once. Requests routed
to it wait in its own line: a FIFO node (the peers' engines) starts only the
head, a non-FIFO node starts the first request whose model is resident.
Service time is the planner's: prompt / prefill speed + output / decode
speed, or images x seconds per image. A request not started within the
client timeout is dropped (a miss), however it waited.

Arrivals are read from the trace in order and merged with the event heap, so
the heap holds only what is in flight.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol, cast

from sparkplane.fleet.snapshot import (
    DeviceState,
    Slot,
    acquire,
    begin_load,
    end_load,
    evict,
    observe,
    release,
)
from sparkplane.sim.trace import Trace
from sparkplane.sim.world import World

# Outcome of each request.
SERVED, REJECTED, TIMED_OUT, OOM, FAILED = 0, 1, 2, 3, 4
OUTCOMES = ("served", "rejected", "timed_out", "oom", "failed")
# Event kinds.
_FINISH, _LOADED, _TIMER, _DOWN, _UP = 0, 1, 2, 3, 4
PROGRESS_EVERY = 8192


class Job:
    """One request routed to a node: its index in the trace and the slot it runs on."""

    __slots__ = ("epoch", "est", "images", "r", "service", "slot")

    def __init__(self, r: int, slot: Slot, est: float, images: int = 0) -> None:
        self.r = r
        self.slot = slot
        self.est = est  # the router's estimate, as acquired
        self.images = images  # a part of an image batch split across devices; 0: all of it
        self.service = 0.0  # the simulated truth, set when it starts
        self.epoch = 0  # its node's epoch when it started


class Node:
    """A device's execution: its line of routed requests, what runs, busy time."""

    __slots__ = ("active", "busy_s", "busy_since", "epoch", "fifo", "pending", "running", "state")

    def __init__(self, state: DeviceState, fifo: bool) -> None:
        self.state = state
        self.fifo = fifo
        self.pending: deque[Job] = deque()
        self.running: set[Job] = set()
        self.active = 0  # requests running plus loads under way (for energy)
        self.busy_since = 0.0
        self.busy_s = 0.0
        self.epoch = 0  # bumped by an outage: events of an older epoch are void


class Router(Protocol):
    """A placement policy driven by the engine.

    `arrive` places request `r` (dispatch it, queue it, or reject it);
    `freed` is called when a node may take more work; `timer` when a timer the
    router set with `Engine.timer` fires; `prepare` only for FIFO nodes, to
    make the head's model resident (load, evict, or fail it as out of memory).
    """

    def arrive(self, r: int) -> None: ...
    def freed(self, node: Node) -> None: ...
    def timer(self, payload: object) -> None: ...
    def prepare(self, node: Node, job: Job) -> None: ...


class Engine:
    """One run: a world, a trace, a router; `run()` fills the per-request outcome lists."""

    def __init__(self, world: World, trace: Trace) -> None:
        self.world = world
        self.trace = trace
        self.now = 0.0
        self.nodes = {d.name: Node(d, fifo=False) for d in world.devices}
        n = len(trace)
        self.outcome = [SERVED] * n
        self.ttft = [0.0] * n
        self.tpot = [0.0] * n
        self.latency = [0.0] * n
        self.where: list[str] = [""] * n
        self.cold_loads = 0
        self.bytes_moved = 0
        self.oom = 0
        self.spend = 0.0
        self.router: Router | None = None
        # Told of every request that gives its place back (the fair share's count).
        self.on_release: Callable[[int], None] = _nothing
        self._heap: list[tuple[float, int, int, object]] = []
        self._seq = 0

    # -- the loop ---------------------------------------------------------------

    def run(self, router: Router, progress: Callable[[int], None] | None = None) -> None:
        """Simulate the whole trace under `router`; `progress(n)` every few thousand arrivals."""
        with _few_collections():
            self._run_all(router, progress)

    def _run_all(self, router: Router, progress: Callable[[int], None] | None) -> None:
        self.router = router
        for o in self.world.outages:
            self._push(o.at_s, _DOWN, o.device)
            self._push(o.at_s + o.for_s, _UP, o.device)
        times = self.trace.t
        heap = self._heap
        pop = heapq.heappop
        for r, t in enumerate(times):
            while heap and heap[0][0] <= t:
                self._event(pop(heap))
            self.now = t
            router.arrive(r)
            if progress is not None and r % PROGRESS_EVERY == PROGRESS_EVERY - 1:
                progress(PROGRESS_EVERY)
        while heap:
            self._event(pop(heap))
        if progress is not None:
            progress(len(times) % PROGRESS_EVERY)
        for node in self.nodes.values():
            for job in node.pending:
                self.outcome[job.r] = TIMED_OUT

    def _event(self, item: tuple[float, int, int, object]) -> None:
        self.now, _, kind, payload = item
        if kind == _FINISH:
            job = cast(Job, payload)
            node = self.nodes[job.slot.device.name]
            if job.epoch == node.epoch:
                self._finish(node, job)
        elif kind == _LOADED:
            slot, epoch = cast(tuple[Slot, int], payload)
            node = self.nodes[slot.device.name]
            if epoch == node.epoch:
                self._loaded(node, slot)
        elif kind == _TIMER:
            assert self.router is not None
            self.router.timer(payload)
        elif kind == _DOWN:
            self._down(self.nodes[str(payload)])
        else:
            node = self.nodes[str(payload)]
            node.state.available = True
            assert self.router is not None
            self.router.freed(node)

    def _push(self, t: float, kind: int, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, payload))

    def timer(self, at: float, payload: object) -> None:
        """Call the router's `timer(payload)` at time `at`."""
        self._push(at, _TIMER, payload)

    # -- what routers call ------------------------------------------------------

    def dispatch(self, r: int, slot: Slot, est: float, images: int = 0) -> None:
        """Send request `r` (or `images` of its batch) to `slot`'s device, expected to
        take `est` seconds there. A split request is done when its last part is."""
        acquire(slot, est, self.now)
        node = self.nodes[slot.device.name]
        node.pending.append(Job(r, slot, est, images))
        self.start(node)

    def refuse(self, r: int, outcome: int) -> None:
        """Request `r` ends without service (rejected, timed out, out of memory)."""
        self.outcome[r] = outcome

    def drop(self, node: Node, job: Job, outcome: int) -> None:
        """Take `job` out of `node`'s line, ending it with `outcome`."""
        node.pending.remove(job)
        release(job.slot, job.est, self.now)
        self.on_release(job.r)
        self.outcome[job.r] = outcome
        if outcome == OOM:
            self.oom += 1

    def load(self, slot: Slot) -> bool:
        """Start loading `slot`'s model (after any other load on the device).

        Memory is checked as a real device would: a load that does not fit
        fails as out of memory (False; nothing changes).
        """
        device = slot.device
        if device.memory_bytes > 0 and slot.bytes > device.free_bytes:
            return False
        begin_load(slot, self.now)
        node = self.nodes[device.name]
        self._busy(node, 1)
        self.cold_loads += 1
        self.bytes_moved += slot.bytes
        self._push(device.busy_until, _LOADED, (slot, node.epoch))
        return True

    def evict(self, slot: Slot) -> None:
        """`slot`'s model leaves memory."""
        evict(slot)

    def start(self, node: Node) -> None:
        """Start what `node` can start now."""
        state = node.state
        pending = node.pending
        timeout = self.world.timeout_s
        arrivals = self.trace.t
        while pending and len(node.running) < state.parallel and state.available:
            if node.fifo:
                job = pending[0]
                if self.now - arrivals[job.r] > timeout:
                    self.drop(node, job, TIMED_OUT)
                    continue
                if not job.slot.resident:
                    if not job.slot.loading:
                        assert self.router is not None
                        self.router.prepare(node, job)
                        if pending and pending[0] is job and job.slot.resident:
                            continue
                    if pending and pending[0] is job:
                        return
                    continue
                pending.popleft()
            else:
                ready = self._first_ready(node)
                if ready is None:
                    return
                job = ready
            self._run(node, job)

    def _first_ready(self, node: Node) -> Job | None:
        timeout = self.world.timeout_s
        arrivals = self.trace.t
        expired: list[Job] = []
        found = None
        for job in node.pending:
            if self.now - arrivals[job.r] > timeout:
                expired.append(job)
            elif job.slot.resident:
                found = job
                break
        for job in expired:
            self.drop(node, job, TIMED_OUT)
        if found is not None:
            node.pending.remove(found)
        return found

    def _run(self, node: Node, job: Job) -> None:
        r = job.r
        slot = job.slot
        trace = self.trace
        images = job.images or trace.images[r]
        if images and slot.image_s is not None:
            service = images * slot.image_s
            first = service
            self.tpot[r] = 0.0
        else:
            out = trace.output[r] or 1
            prefill = trace.prompt[r] / slot.prefill_tps if slot.prefill_tps else 0.0
            decode = out / slot.decode_tps if slot.decode_tps else 0.0
            service = prefill + decode
            first = prefill + (decode / out)
            self.tpot[r] = decode / out
        wait = self.now - trace.t[r]
        if job.images:  # a part: the request ends with its last part
            self.ttft[r] = max(self.ttft[r], wait + first)
            self.latency[r] = max(self.latency[r], wait + service)
        else:
            self.ttft[r] = wait + first
            self.latency[r] = wait + service
        self.where[r] = node.state.name
        job.service = service
        job.epoch = node.epoch
        node.running.add(job)
        self._busy(node, 1)
        self._push(self.now + service, _FINISH, job)

    def _finish(self, node: Node, job: Job) -> None:
        slot = job.slot
        node.running.discard(job)
        self._busy(node, -1)
        release(slot, job.est, self.now)
        self.on_release(job.r)
        r = job.r
        trace = self.trace
        images = job.images or trace.images[r]
        observe(slot, job.service, slot.planned_s(trace.prompt[r], trace.output[r], images))
        if node.state.off_prem:
            cloud = self.world.prices[node.state.name]
            if images:
                self.spend += images * cloud.price_per_image
            else:
                self.spend += (trace.prompt[r] + trace.output[r]) * cloud.price_per_mtok / 1e6
        self.start(node)
        assert self.router is not None
        self.router.freed(node)

    def _loaded(self, node: Node, slot: Slot) -> None:
        end_load(slot, self.now, True)
        self._busy(node, -1)
        self.start(node)
        assert self.router is not None
        self.router.freed(node)

    def _down(self, node: Node) -> None:
        """An outage: what runs there fails, its memory is lost, its line is routed again."""
        state = node.state
        state.available = False
        node.epoch += 1
        for job in list(node.running):
            release(job.slot, job.est, self.now)
            self.on_release(job.r)
            self.outcome[job.r] = FAILED
        node.running.clear()
        for slot in state.slots.values():
            if slot.loading:
                end_load(slot, self.now, False)
            evict(slot)
        state.busy_until = self.now
        if node.active:
            node.busy_s += self.now - node.busy_since
        node.active = 0
        waiting = list(node.pending)
        node.pending.clear()
        assert self.router is not None
        for job in waiting:
            release(job.slot, job.est, self.now)
            self.on_release(job.r)
            if job.images:
                self.outcome[job.r] = FAILED  # a part: its request is not placed again whole
            else:
                self.router.arrive(job.r)

    def _busy(self, node: Node, delta: int) -> None:
        if node.active == 0 and delta > 0:
            node.busy_since = self.now
        node.active += delta
        if node.active == 0:
            node.busy_s += self.now - node.busy_since


def _nothing(_r: int) -> None:
    return None


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """Fewer cyclic-GC passes while the loop runs: it allocates millions of
    short-lived, acyclic objects (events, plans), and the collector's passes over
    everything alive cost about a third of a large run. Restored afterwards."""
    threshold = gc.get_threshold()
    gc.freeze()  # what exists before the run (trace, world) is never scanned
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
