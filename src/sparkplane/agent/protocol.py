"""The documents the agent and the server exchange (both sides validate them).

agent -> server   POST /api/agent/join       JoinRequest  -> JoinAnswer   (join token)
                  POST /api/agent/heartbeat  Heartbeat    -> HeartbeatAnswer (node key)
server -> agent   PUT    /v1/deployments/{id}       DeploymentSpec -> DeploymentStatus
                  DELETE /v1/deployments/{id}
                  GET    /v1/deployments/{id}/logs  -> text                (agent key)
                  GET    /v1/status                 -> AgentStatus
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
EngineName = Literal["llamacpp", "vllm", "sglang", "ollama", "comfyui", "command"]
State = Literal["starting", "running", "restarting", "failed", "stopped"]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Gpu(_Doc):
    """One GPU as NVML reports it; None where NVML says "not supported"."""

    index: int
    name: str
    uuid: str | None = None
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    utilization_pct: float | None = None
    power_w: float | None = None
    temperature_c: float | None = None
    # Memory is the machine's RAM, shared with the CPU (GB10, Jetson, Apple silicon).
    unified: bool = False


class Memory(_Doc):
    """The memory models can use on this node.

    `kind`: `gpu` (sum over discrete GPUs, from NVML), `unified` (RAM shared by
    CPU and GPU, from the operating system) or `system` (no GPU: RAM).
    """

    kind: Literal["gpu", "unified", "system"]
    total_bytes: int
    free_bytes: int
    shared: bool
    source: str


class Power(_Doc):
    """The node's power draw now, and how it was obtained."""

    watts: float | None = None
    measured: bool = False
    basis: str = ""


class Disk(_Doc):
    """Space in the models folder."""

    path: str
    total_bytes: int
    free_bytes: int


class Hardware(_Doc):
    """What the machine is, as the agent sees it."""

    hostname: str
    system: str
    machine: str
    cpu_count: int
    load_1m: float | None = None
    ram_total_bytes: int
    ram_available_bytes: int
    gpus: list[Gpu] = Field(default_factory=list)
    nvml: str = "absent"  # "ok", "absent" (no library or no GPU), or the error
    driver: str | None = None
    memory: Memory
    power: Power = Field(default_factory=Power)
    disk: Disk | None = None


class ModelFile(_Doc):
    """A model file found in the models folder, with the planner's facts."""

    name: str
    path: str
    format: Literal["gguf", "safetensors"]
    bytes: int
    engine: EngineName
    quant: str | None = None
    params: int | None = None
    context: int | None = None
    # Memory the planner says serving it needs at `context` with `engine`.
    need_bytes: int | None = None
    kv_bytes_per_token: float | None = None
    error: str | None = None


class DeploymentSpec(_Doc):
    """What the server asks an agent to run."""

    id: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]
    name: Name
    engine: EngineName
    model_path: Annotated[str, Field(max_length=1000)] = ""
    served_name: Annotated[str, Field(min_length=1, max_length=300)]
    args: list[Annotated[str, Field(max_length=4000)]] = Field(default_factory=list)
    env: dict[str, Annotated[str, Field(max_length=4000)]] = Field(default_factory=dict)
    # For engine `command`: a template such as "my-server --port {port} {model}".
    command: Annotated[str, Field(max_length=4000)] | None = None
    context: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None


class DeploymentStatus(_Doc):
    """How a deployment is doing on its node."""

    id: str
    state: State
    port: int | None = None
    pid: int | None = None
    restarts: int = 0
    error: str | None = None


class JoinRequest(_Doc):
    """An agent asking to join (with a join token) or to rejoin (with its node key)."""

    name: Name
    url: Annotated[str, Field(min_length=8, max_length=500, pattern=r"^https?://")]
    agent_key: Annotated[str, Field(min_length=20, max_length=200)]
    hardware: Hardware
    models: list[ModelFile] = Field(default_factory=list)


class JoinAnswer(_Doc):
    """The node's id and key, and how often to send heartbeats."""

    node_id: str
    node_key: str
    heartbeat_s: float


class Heartbeat(_Doc):
    """What an agent reports every `heartbeat_s` seconds."""

    hardware: Hardware
    models: list[ModelFile] = Field(default_factory=list)
    deployments: list[DeploymentStatus] = Field(default_factory=list)


class HeartbeatAnswer(_Doc):
    """The deployments the server wants on this node (a restarted agent resumes them)."""

    deployments: list[DeploymentSpec] = Field(default_factory=list)


class AgentStatus(_Doc):
    """The agent's own view, for the server and for people."""

    name: str
    hardware: Hardware
    deployments: list[DeploymentStatus]
