"""Where a deployment goes: the node where the model fits with the most memory to
spare, or a refusal that gives each node's reason ("needs 41.2 GiB, spark has
38.0 free"). Pure: plain records in, a choice or an error out.

A node's free memory is what its agent last reported, less what deployments
still starting there were planned to take (their memory is not in use yet).
A model's need is the planner's figure, computed by the agent for the files it
lists (`models_dir.py`) and moved to the context asked for (`sizing.py`).
Engines the planner does not model (ComfyUI, a command, Ollama's own models)
are not checked for fit: they go to the online node with the most free memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePath

from sparkplane.agent.protocol import ModelFile
from sparkplane.agent.records import DeploymentRecord, NodeRecord
from sparkplane.agent.sizing import PLANNER_ENGINES, at_context
from sparkplane.errors import Conflict

GIB = 1 << 30
# Engines whose model is a file the node must have.
FILE_ENGINES = frozenset({"llamacpp", "vllm", "sglang"})


@dataclass(frozen=True)
class Placement:
    """The chosen node, the file it runs, and the memory planned for it."""

    node: NodeRecord
    model_path: str
    served_name: str
    engine: str
    need_bytes: int | None
    context: int | None


def gib(n: int) -> str:
    """Bytes as GiB with one decimal, as the refusals print them."""
    return f"{n / GIB:.1f}"


def find_model(node: NodeRecord, ref: str) -> ModelFile | None:
    """The file of `node`'s listing that `ref` names: its path, file name, or name."""
    for raw in node.models:
        entry = ModelFile.model_validate(raw)
        if ref in (entry.path, entry.name, PurePath(entry.path).name):
            return entry
    return None


def pending_bytes(deployments: Iterable[DeploymentRecord]) -> dict[str, int]:
    """Memory promised, per node id, to deployments that are still starting."""
    out: dict[str, int] = {}
    for d in deployments:
        if d.state == "starting" and d.need_bytes:
            out[d.node_id] = out.get(d.node_id, 0) + d.need_bytes
    return out


@dataclass(frozen=True)
class _Option:
    placement: Placement
    spare: int


def _consider(
    node: NodeRecord, ref: str, engine: str | None, context: int | None, pending: int
) -> _Option | str:
    """A placement on `node`, or the reason there is none."""
    if node.status != "online":
        return f"{node.name} is {node.status}"
    free = node.free_bytes
    if free is None:
        return f"{node.name} reports no memory figures"
    free = max(0, free - pending)
    entry = find_model(node, ref)
    chosen = engine or (entry.engine if entry else None)
    if chosen is None or (chosen in FILE_ENGINES and entry is None):
        return f"{node.name} has no model file {ref!r} in its models folder"
    path = entry.path if entry is not None else ref
    served = entry.name if entry is not None else PurePath(ref).name or ref
    need: int | None = None
    if entry is not None and chosen in PLANNER_ENGINES and entry.need_bytes is not None:
        need = entry.need_bytes
        if context and entry.context and entry.kv_bytes_per_token is not None:
            need = at_context(need, entry.kv_bytes_per_token, entry.context, context)
    elif entry is not None and entry.error and chosen in FILE_ENGINES:
        return f"{node.name} cannot size {entry.name}: {entry.error}"
    if need is not None and need > free:
        return f"needs {gib(need)} GiB, {node.name} has {gib(free)} free"
    placement = Placement(node, path, served, chosen, need, context)
    return _Option(placement, free - (need or 0))


def choose(
    nodes: Iterable[NodeRecord],
    ref: str,
    *,
    engine: str | None = None,
    context: int | None = None,
    node_name: str | None = None,
    pending: Mapping[str, int] | None = None,
) -> Placement:
    """The best node for `ref`; Conflict (code `no_node_fits`) listing why not each."""
    candidates = [n for n in nodes if node_name is None or n.name == node_name]
    if not candidates:
        where = f"no node named {node_name!r}" if node_name else "no node has joined"
        raise Conflict(f"cannot deploy {ref}: {where}", code="no_node_fits")
    options: list[_Option] = []
    reasons: list[str] = []
    for node in candidates:
        found = _consider(node, ref, engine, context, (pending or {}).get(node.id, 0))
        if isinstance(found, str):
            reasons.append(found)
        else:
            options.append(found)
    if not options:
        raise Conflict(f"cannot deploy {ref}: " + "; ".join(reasons), code="no_node_fits")
    return max(options, key=lambda o: (o.spare, o.placement.node.name)).placement
