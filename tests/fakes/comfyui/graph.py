"""Execution order and cache keys for a validated prompt.

Order follows ComfyUI's ExecutionList: nodes are added depth-first from each output
(skipping inputs whose outputs are cached), and among the ready nodes an output node
goes first, then a node feeding an output, then one two steps away, else the first
ready one. Cache keys follow its input-signature cache: class, IS_CHANGED value and
inputs, with linked inputs replaced by the linked node's own key, so a node is cached
when the same sub-graph ran in the previous prompt.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from typing import Any

from tests.fakes.comfyui.catalog import Catalog


def is_link(value: Any) -> bool:
    """An input value of the form [node_id, output_index]."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int | float)
    )


class ExecutionList:
    """Which node runs next (a port of the scheduling, not of lazy or async nodes)."""

    def __init__(self, prompt: dict[str, Any], catalog: Catalog, is_cached: Callable[[str], bool]):
        self.prompt = prompt
        self.catalog = catalog
        self.is_cached = is_cached
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, set[str]] = {}

    def add_node(self, node_id: str) -> None:
        """Add a node and, depth first, its uncached inputs."""
        stack = [node_id]
        links: list[tuple[str, str]] = []
        while stack:
            current = stack.pop()
            if current in self.pending:
                continue
            self.pending[current] = True
            self.block_count[current] = 0
            self.blocking[current] = set()
            for value in self.prompt[current]["inputs"].values():
                if is_link(value):
                    source = value[0]
                    if not self.is_cached(source):
                        stack.append(source)
                    links.append((source, current))
        for source, target in links:
            if self.is_cached(source):
                continue
            if target not in self.blocking[source]:
                self.blocking[source].add(target)
                self.block_count[target] += 1

    def is_empty(self) -> bool:
        """True when every added node has completed."""
        return not self.pending

    def _is_output(self, node_id: str) -> bool:
        return self.catalog.spec(self.prompt[node_id]["class_type"]).output_node

    def stage(self) -> str:
        """The next node to run."""
        ready = [n for n in self.pending if self.block_count[n] == 0]
        if not ready:
            raise RuntimeError("dependency cycle in prompt")
        for node in ready:
            if self._is_output(node):
                return node
        for node in ready:
            if any(self._is_output(b) for b in self.blocking[node]):
                return node
        for node in ready:
            for blocked in self.blocking[node]:
                if any(self._is_output(b) for b in self.blocking[blocked]):
                    return node
        return ready[0]

    def complete(self, node_id: str) -> None:
        """Mark a staged node done and unblock its dependents."""
        del self.pending[node_id]
        for target in self.blocking.pop(node_id, set()):
            self.block_count[target] -= 1


def signatures(
    prompt: dict[str, Any], is_changed: Callable[[str], Hashable]
) -> dict[str, Hashable]:
    """The cache key of every node of the prompt."""
    memo: dict[str, Hashable] = {}

    def key(node_id: str, seen: frozenset[str]) -> Hashable:
        if node_id in memo:
            return memo[node_id]
        node = prompt.get(node_id)
        if not isinstance(node, dict) or node_id in seen:
            return ("missing", str(node_id))
        parts: list[tuple[str, Any]] = []
        for name in sorted(node.get("inputs", {})):
            value = node["inputs"][name]
            if is_link(value):
                parts.append((name, ("link", key(value[0], seen | {node_id}), value[1])))
            else:
                parts.append((name, json.dumps(value, sort_keys=True, default=str)))
        result = (node.get("class_type"), is_changed(node_id), tuple(parts))
        memo[node_id] = result
        return result

    return {node_id: key(node_id, frozenset()) for node_id in prompt}
