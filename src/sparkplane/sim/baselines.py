"""The peers, modelled on their documented behaviour, on the same engine and profiles.

- ``round-robin``: a proxy cycling through the deployments of a model (every
  device where the model fits alone), with no memory or load knowledge.
- ``least-busy``: LiteLLM proxy's ``least-busy`` routing: the deployment with
  the fewest requests in flight; no memory knowledge.
  Behind both, each node's engine loads a model on demand, first unloading
  idle models least recently used; if memory is still short (busy models hold
  it) the load fails out of memory. A priced cloud deployment is used only as
  a fallback when no local deployment is up (LiteLLM ``fallbacks``).
- ``ollama``: one Ollama per node; with no fleet router, each model's apps
  point at one host (models spread over hosts by size at the start). Per node:
  FIFO, one load at a time, at most ``OLLAMA_MAX_LOADED_MODELS`` (3) loaded,
  a model idle for the keep-alive (5 minutes) unloads, and a load that needs
  room evicts the idle model whose keep-alive expires soonest; a load that
  cannot get room waits (the queue's head blocks the rest).
- ``binpack``: GPUStack's static binpack placement: once, at the start, one
  replica per model, largest first, on the device where it leaves the least
  memory free; models never move; round-robin among replicas. A model placed
  nowhere is refused. A device back from an outage redeploys its replicas.

Every node's engine is FIFO, as the peers' engines are.
"""

from __future__ import annotations

from sparkplane.fleet.snapshot import Slot, begin_load, end_load
from sparkplane.sim.engine import OOM, REJECTED, Engine, Job, Node

OLLAMA_MAX_LOADED_MODELS = 3
OLLAMA_KEEP_ALIVE_S = 300.0


class _Baseline:
    """What the peers share: FIFO nodes, local deployments, no queue of their own."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        for node in engine.nodes.values():
            node.fifo = not node.state.off_prem
        routes = engine.world.snapshot.routes
        self.local = {m: [s for s in slots if not s.device.off_prem] for m, slots in routes.items()}
        self.cloud = {m: [s for s in slots if s.device.off_prem] for m, slots in routes.items()}

    def _fallback(self, r: int) -> None:
        e = self.engine
        clouds = self.cloud.get(e.trace.model[r], [])
        if clouds and e.world.policy(e.trace.tenant[r]).allow_off_prem:
            slot = clouds[0]
            e.dispatch(r, slot, _estimate(e, r, slot))
        else:
            e.refuse(r, REJECTED)

    def freed(self, node: Node) -> None:
        """Nothing waits outside the nodes' own lines."""

    def timer(self, payload: object) -> None:
        """No timers."""

    def prepare(self, node: Node, job: Job) -> None:
        """Load on demand: unload idle models, least recently used first; else out of memory."""
        e = self.engine
        slot = job.slot
        device = node.state
        short = slot.bytes - device.free_bytes
        if short > 0:
            idle = [
                s for s in device.slots.values() if s.resident and s.inflight == 0 and not s.loading
            ]
            idle.sort(key=lambda s: s.last_used)
            for victim in idle:
                if short <= 0:
                    break
                e.evict(victim)
                short -= victim.bytes
        if not e.load(slot):
            e.drop(node, job, OOM)


def _running(node: Node) -> set[Slot]:
    # What holds memory in the peers' engines: models with requests running (not
    # ones merely queued for them).
    return {job.slot for job in node.running}


def _estimate(e: Engine, r: int, slot: Slot) -> float:
    return slot.service_s(e.trace.prompt[r], e.trace.output[r], e.trace.images[r])


def _up(slots: list[Slot]) -> list[Slot]:
    return [s for s in slots if s.device.available]


class RoundRobin(_Baseline):
    """Cycle through a model's deployments."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.turn: dict[str, int] = {}

    def arrive(self, r: int) -> None:
        """Send `r` to the model's next deployment."""
        e = self.engine
        model = e.trace.model[r]
        slots = _up(self.local.get(model, []))
        if not slots:
            self._fallback(r)
            return
        i = self.turn.get(model, 0)
        self.turn[model] = i + 1
        slot = slots[i % len(slots)]
        e.dispatch(r, slot, _estimate(e, r, slot))


class LeastBusy(_Baseline):
    """The deployment with the fewest requests in flight (LiteLLM ``least-busy``)."""

    def arrive(self, r: int) -> None:
        """Send `r` to the least busy deployment of its model."""
        e = self.engine
        slots = _up(self.local.get(e.trace.model[r], []))
        if not slots:
            self._fallback(r)
            return
        slot = min(slots, key=lambda s: s.inflight)
        e.dispatch(r, slot, _estimate(e, r, slot))


class Ollama(_Baseline):
    """One Ollama per node, each model pinned to one host."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        assigned: dict[str, float] = {}
        self.home: dict[str, Slot] = {}
        by_size = sorted(
            self.local.items(), key=lambda kv: -max((s.bytes for s in kv[1]), default=0)
        )
        for model, slots in by_size:
            if not slots:
                continue
            best = min(slots, key=lambda s: (assigned.get(s.device.name, 0.0), s.device.name))
            assigned[best.device.name] = assigned.get(best.device.name, 0.0) + best.bytes / max(
                best.device.memory_bytes, 1
            )
            self.home[model] = best

    def arrive(self, r: int) -> None:
        """Send `r` to its model's host, after that host unloads what its keep-alive ended."""
        e = self.engine
        slot = self.home.get(e.trace.model[r])
        if slot is None or not slot.device.available:
            e.refuse(r, REJECTED)
            return
        for s in slot.device.slots.values():
            if s.resident and s.inflight == 0 and e.now - s.last_used > OLLAMA_KEEP_ALIVE_S:
                e.evict(s)
        e.dispatch(r, slot, _estimate(e, r, slot))

    def prepare(self, node: Node, job: Job) -> None:
        """Make room by keep-alive order, within memory and the loaded-model limit; else wait."""
        e = self.engine
        slot = job.slot
        device = node.state
        loaded = [s for s in device.slots.values() if s.resident or s.loading]
        busy = _running(node)
        idle = [s for s in loaded if s.resident and s not in busy]
        idle.sort(key=lambda s: s.last_used)  # keep-alive ends soonest first
        short = slot.bytes - device.free_bytes
        count = len(loaded)
        for victim in idle:
            if short <= 0 and count < OLLAMA_MAX_LOADED_MODELS:
                break
            e.evict(victim)
            short -= victim.bytes
            count -= 1
        if short <= 0 and count < OLLAMA_MAX_LOADED_MODELS:
            e.load(slot)


class Binpack(_Baseline):
    """GPUStack-like static binpack placement, round-robin among replicas."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.replicas: dict[str, list[Slot]] = {}
        self.placed: dict[str, list[Slot]] = {}  # device name -> its replicas
        self.turn: dict[str, int] = {}
        order = sorted(self.local.items(), key=lambda kv: -max((s.bytes for s in kv[1]), default=0))
        for model, slots in order:
            room = [s for s in slots if s.bytes <= s.device.free_bytes]
            if not room:
                continue
            best = min(room, key=lambda s: (s.device.free_bytes - s.bytes, s.device.name))
            begin_load(best, 0.0)  # deployed before the trace starts: not counted as cold loads
            end_load(best, 0.0, True)
            self.replicas[model] = [best]
            self.placed.setdefault(best.device.name, []).append(best)

    def arrive(self, r: int) -> None:
        """Send `r` to the next replica of its model; refuse models placed nowhere."""
        e = self.engine
        model = e.trace.model[r]
        slots = _up(self.replicas.get(model, []))
        if not slots:
            e.refuse(r, REJECTED)
            return
        i = self.turn.get(model, 0)
        self.turn[model] = i + 1
        slot = slots[i % len(slots)]
        e.dispatch(r, slot, _estimate(e, r, slot))

    def freed(self, node: Node) -> None:
        """A device back from an outage redeploys its replicas."""
        if not node.state.available:
            return
        for s in self.placed.get(node.state.name, ()):
            if not (s.resident or s.loading):
                self.engine.load(s)

    def prepare(self, node: Node, job: Job) -> None:
        """Replicas are loaded at placement: the head waits for its replica."""
