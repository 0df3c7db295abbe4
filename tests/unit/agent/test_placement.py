"""Where `sparkplane deploy` puts a model, and how it says no."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from sparkplane.agent.placement import choose, pending_bytes
from sparkplane.agent.records import DeploymentRecord, NodeRecord
from sparkplane.errors import Conflict

GIB = 1 << 30
NOW = datetime(2026, 12, 3, tzinfo=UTC)


def model(name: str, need_gib: float, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "path": f"/models/{name}.gguf",
        "format": "gguf",
        "bytes": int(need_gib * GIB * 0.9),
        "engine": "llamacpp",
        "need_bytes": int(need_gib * GIB),
        "context": 8192,
        "kv_bytes_per_token": 131072.0,
        **extra,
    }


def node(
    name: str, free_gib: float, models: list[dict[str, Any]], status: str = "online"
) -> NodeRecord:
    hardware = {"memory": {"kind": "gpu", "free_bytes": int(free_gib * GIB), "total_bytes": 1}}
    return NodeRecord(name, name, f"http://{name}:8401", status, hardware, models, NOW, NOW)


def starting(node_id: str, need_gib: float) -> DeploymentRecord:
    return DeploymentRecord(
        "d1", "d1", node_id, "m", "m", "llamacpp", {}, int(need_gib * GIB), "starting",
        None, 0, None, None, NOW, NOW,
    )  # fmt: skip


def test_the_node_with_most_memory_to_spare_is_chosen() -> None:
    nodes = [
        node("spark", 100, [model("llama-70b", 41.2)]),
        node("h100", 60, [model("llama-70b", 41.2)]),
    ]
    chosen = choose(nodes, "llama-70b")
    assert chosen.node.name == "spark"
    assert chosen.model_path == "/models/llama-70b.gguf"
    assert chosen.engine == "llamacpp"
    assert chosen.served_name == "llama-70b"
    assert chosen.need_bytes == int(41.2 * GIB)


@pytest.mark.parametrize("ref", ["llama-70b", "llama-70b.gguf", "/models/llama-70b.gguf"])
def test_a_model_is_named_by_name_file_name_or_path(ref: str) -> None:
    assert choose([node("spark", 100, [model("llama-70b", 41.2)])], ref).node.name == "spark"


def test_a_refusal_gives_each_nodes_reason() -> None:
    nodes = [
        node("spark", 38.0, [model("llama-70b", 41.2)]),
        node("rtx4090", 20, []),
        node("h100", 80, [model("llama-70b", 41.2)], status="lost"),
    ]
    with pytest.raises(Conflict) as refused:
        choose(nodes, "llama-70b")
    assert refused.value.code == "no_node_fits"
    message = refused.value.message
    assert "needs 41.2 GiB, spark has 38.0 free" in message
    assert "rtx4090 has no model file 'llama-70b'" in message
    assert "h100 is lost" in message


def test_memory_promised_to_deployments_still_starting_is_not_free() -> None:
    nodes = [node("spark", 50, [model("m", 30)])]
    assert choose(nodes, "m").node.name == "spark"
    with pytest.raises(Conflict, match=re.escape("needs 30.0 GiB, spark has 20.0 free")):
        choose(nodes, "m", pending=pending_bytes([starting("spark", 30)]))


def test_a_longer_context_needs_more_kv_cache() -> None:
    nodes = [node("spark", 31, [model("m", 30)])]
    assert choose(nodes, "m", context=8192).need_bytes == int(30 * GIB)
    # 131072 bytes per token x 16384 more tokens: 2 GiB more.
    with pytest.raises(Conflict, match=re.escape("needs 32.0 GiB, spark has 31.0 free")):
        choose(nodes, "m", context=8192 + 16384)


def test_a_named_node_only() -> None:
    nodes = [node("spark", 100, [model("m", 1)]), node("h100", 80, [model("m", 1)])]
    assert choose(nodes, "m", node_name="h100").node.name == "h100"
    with pytest.raises(Conflict, match="no node named 'nope'"):
        choose(nodes, "m", node_name="nope")


def test_no_node_at_all() -> None:
    with pytest.raises(Conflict, match="no node has joined"):
        choose([], "m")


def test_engines_the_planner_does_not_size_need_no_listed_file() -> None:
    nodes = [node("small", 4, []), node("big", 90, [])]
    chosen = choose(nodes, "/opt/ComfyUI", engine="comfyui")
    assert chosen.node.name == "big"
    assert chosen.need_bytes is None
    assert chosen.model_path == "/opt/ComfyUI"
