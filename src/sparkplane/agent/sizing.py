"""How much memory a deployment needs, from the planner (its one entry point, `plan`).

The planner plans against device profiles; a node is sized here against a
stand-in profile, since only the memory figure is wanted (the fit itself is
judged against the node's reported free memory, in `placement.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sparkplane.planner import DeviceProfile, ModelSpec, PlanRequest, plan

# sparkplane's engine names -> the planner's, for the engines it models.
PLANNER_ENGINES = {"llamacpp": "llama.cpp", "ollama": "ollama", "vllm": "vllm", "sglang": "sglang"}
_STAND_IN = DeviceProfile(id="node", memory_gib=1.0, bandwidth_gbs=1.0)


@dataclass(frozen=True)
class Sizing:
    """The planner's figures for one model on one engine."""

    need_bytes: int
    context: int
    kv_bytes_per_token: float
    quant: str
    params: int


def size(spec: ModelSpec, engine: str, context: int | None = None) -> Sizing | None:
    """Memory to serve `spec` with `engine` at `context` (the planner's default if
    None); None for engines the planner does not model (ComfyUI, commands)."""
    planner_engine = PLANNER_ENGINES.get(engine)
    if planner_engine is None:
        return None
    request = PlanRequest(devices=[_STAND_IN.id], engine=planner_engine, context=context)
    result = plan(spec, request, profiles={_STAND_IN.id: _STAND_IN})
    return Sizing(
        need_bytes=result.devices[0].memory.total,
        context=result.context,
        kv_bytes_per_token=result.model.kv_bytes_per_token,
        quant=result.model.quant,
        params=result.model.params_total,
    )


def at_context(need_bytes: int, kv_bytes_per_token: float, planned: int, wanted: int) -> int:
    """A need planned at `planned` tokens, moved to `wanted` tokens of context (the KV
    cache is the only part of the planner's figure that grows with the context)."""
    return max(0, int(need_bytes + kv_bytes_per_token * (wanted - planned)))
