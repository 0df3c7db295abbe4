"""The agent's state on its machine: the hardware report, the models folder and
the engine processes it runs for the server."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from sparkplane.agent.engines import Engine, builtin_engines, with_overrides
from sparkplane.agent.hardware import read_hardware
from sparkplane.agent.models_dir import ModelShelf
from sparkplane.agent.process import EngineProcess, Timing
from sparkplane.agent.protocol import DeploymentSpec, DeploymentStatus, Hardware, ModelFile
from sparkplane.errors import BadRequest, NotFound


@dataclass
class NodeConfig:
    """How this agent runs engines."""

    name: str
    models_dir: Path
    home: Path
    host: str = "127.0.0.1"
    memory_cap_bytes: int | None = None
    engine_commands: dict[str, str] = field(default_factory=dict)
    timing: Timing = field(default_factory=Timing)


class NodeAgent:
    """Deployments by id, the hardware and the models folder."""

    def __init__(self, config: NodeConfig, http: aiohttp.ClientSession) -> None:
        self.config = config
        self.engines: dict[str, Engine] = with_overrides(builtin_engines(), config.engine_commands)
        self._http = http
        self._shelf = ModelShelf(config.models_dir)
        self._running: dict[str, EngineProcess] = {}
        # Deployments the server wants that could not even start here, with why.
        self._refused: dict[str, DeploymentStatus] = {}
        # When each deployment was last stopped on request (time.monotonic()).
        self._stopped: dict[str, float] = {}
        self._lock = asyncio.Lock()
        # Set whenever a deployment changes state, so a heartbeat goes out at once.
        self.changed = asyncio.Event()

    @property
    def log_dir(self) -> Path:
        """Where engine logs are kept."""
        return self.config.home / "logs"

    async def hardware(self) -> Hardware:
        """A fresh hardware report (NVML and file reads, off the event loop)."""
        return await asyncio.to_thread(
            read_hardware, self.config.models_dir, cap_bytes=self.config.memory_cap_bytes
        )

    async def models(self) -> list[ModelFile]:
        """The models folder's contents with the planner's facts."""
        return await asyncio.to_thread(self._shelf.scan)

    def statuses(self) -> list[DeploymentStatus]:
        """Every deployment's state."""
        return [p.status() for p in self._running.values()] + list(self._refused.values())

    def status(self, deployment_id: str) -> DeploymentStatus:
        """One deployment's state; NotFound if this agent does not run it."""
        return self._get(deployment_id).status()

    def _get(self, deployment_id: str) -> EngineProcess:
        try:
            return self._running[deployment_id]
        except KeyError:
            raise NotFound(
                f"no deployment {deployment_id} here", code="deployment_not_found"
            ) from None

    async def run(self, spec: DeploymentSpec) -> DeploymentStatus:
        """Start `spec` (a deployment already running with the same spec is left alone)."""
        engine = self.engines.get(spec.engine)
        if engine is None:
            raise BadRequest(f"this agent does not know engine {spec.engine!r}", param="engine")
        needs_file = spec.engine not in ("command", "ollama")
        if needs_file and not await asyncio.to_thread(Path(spec.model_path).exists):
            raise NotFound(f"no model file {spec.model_path} on this node", code="model_not_found")
        async with self._lock:
            current = self._running.get(spec.id)
            if current is not None and current.spec == spec:
                return current.status()
            if current is not None:
                await current.stop()
            process = EngineProcess(
                spec,
                engine,
                host=self.config.host,
                log_dir=self.log_dir,
                http=self._http,
                on_change=self.changed.set,
                timing=self.config.timing,
            )
            self._running[spec.id] = process
            process.start()
            self.changed.set()
            return process.status()

    async def stop(self, deployment_id: str) -> None:
        """Stop a deployment and forget it."""
        async with self._lock:
            process = self._get(deployment_id)
            await process.stop()
            del self._running[deployment_id]
            self._stopped[deployment_id] = time.monotonic()
        self.changed.set()

    def logs(self, deployment_id: str, lines: int) -> str:
        """The last `lines` lines of a deployment's engine output."""
        return self._get(deployment_id).log.tail(lines)

    async def reconcile(self, wanted: list[DeploymentSpec], asked_at: float) -> None:
        """Run what the server wants and stop what it no longer does (after a
        restart of this agent, or a deployment removed while it was away).

        `asked_at` (time.monotonic()) is when the heartbeat this answers was sent:
        a deployment started since then may be missing from the answer only
        because the server had not recorded it yet, so it is left running.
        """
        wanted_ids = {s.id for s in wanted}
        self._refused = {k: v for k, v in self._refused.items() if k in wanted_ids}
        unwanted = [i for i, p in self._running.items() if i not in wanted_ids]
        for deployment_id in unwanted:
            if self._running[deployment_id].created < asked_at:
                await self.stop(deployment_id)
        # Likewise one stopped since then is not started again from a stale answer.
        self._stopped = {k: t for k, t in self._stopped.items() if t >= asked_at}
        for spec in wanted:
            if spec.id not in self._running and spec.id not in self._stopped:
                try:
                    await self.run(spec)
                except (BadRequest, NotFound) as exc:
                    self._refused[spec.id] = DeploymentStatus(
                        id=spec.id, state="failed", error=exc.message
                    )

    async def close(self) -> None:
        """Stop every engine (the agent is stopping)."""
        async with self._lock:
            processes = list(self._running.values())
            self._running.clear()
        await asyncio.gather(*(p.stop() for p in processes))
