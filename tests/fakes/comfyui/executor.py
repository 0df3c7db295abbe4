"""Running one queued prompt, with the frames and history ComfyUI produces.

Sequence for a client's prompt: execution_start, execution_cached, then per node
progress_state(running), executing, [progress_state/progress/previews],
[executed], progress_state(finished); then execution_success, execution_error or
execution_interrupted. A cached output node only replays `executed` and a finished
progress_state. Without a client_id, only progress_state/progress/previews (to every
socket) and execution_interrupted (to every socket) are sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from tests.fakes.comfyui import memory, tracebacks
from tests.fakes.comfyui.config import Fault
from tests.fakes.comfyui.graph import ExecutionList, is_link, signatures
from tests.fakes.comfyui.images import Frame
from tests.fakes.comfyui.nodes import RUNNERS, NodeCall, NodeError, Preview, is_changed
from tests.fakes.comfyui.progress import ProgressRegistry
from tests.fakes.comfyui.state import JobRecord, State
from tests.fakes.comfyui.validation import full_type_name

OOM_TIPS = (
    "This error means you ran out of memory on your GPU.\n\nTIPS: If the workflow worked "
    "before you might have accidentally set the batch_size to a large number."
)


class Interrupted(Exception):
    """InterruptProcessingException."""


@dataclass
class _Failure:
    node_id: str
    error: NodeError | None  # None: interrupted
    current_inputs: dict[str, Any]


def format_value(value: Any) -> Any:
    """How ComfyUI formats input values in an execution_error."""
    if value is None or isinstance(value, int | float | bool | str):
        return value
    if isinstance(value, tuple) and value and isinstance(value[0], Frame):
        first = value[0]
        return f"tensor(shape=[{len(value)}, {first.height}, {first.width}, 3], dtype=float32)"
    return str(value)


class PromptRun:
    """The execution of one queue item."""

    def __init__(self, state: State, item: tuple[Any, ...]) -> None:
        self.state = state
        self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs = item[:5]
        self.client_id: str | None = self.extra_data.get("client_id")
        self.messages: list[list[Any]] = []
        self.progress = ProgressRegistry(state.hub, self.prompt_id, self.client_id)
        self.executed: list[str] = []
        self.values: dict[str, tuple[Any, ...]] = {}
        self.signatures: dict[str, Hashable] = {}
        self.cached_nodes: list[str] = []

    def add_message(self, event: str, data: dict[str, Any], broadcast: bool = False) -> None:
        """Record a history status message and send it to the client (or everyone)."""
        data = {**data, "timestamp": int(time.time() * 1000)}
        self.messages.append([event, data])
        if self.client_id is not None or broadcast:
            self.state.hub.send_sync(event, data, self.client_id)

    def _send(self, event: str, data: dict[str, Any]) -> None:
        if self.client_id is not None:
            self.state.hub.send_sync(event, data, self.client_id)

    async def execute(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run the prompt; returns (history outputs/meta, history status)."""
        state, caches = self.state, self.state.caches
        state.interrupt.clear()
        state.hub.client_id = self.client_id
        self.add_message("execution_start", {"prompt_id": self.prompt_id})
        self.signatures = signatures(
            self.prompt,
            lambda n: is_changed(
                state.catalog.spec(self.prompt[n]["class_type"]), self.prompt[n], state.folders
            ),
        )
        caches.retain(set(self.signatures.values()))
        self.cached_nodes = [n for n in self.prompt if self.signatures[n] in caches.outputs]
        self.add_message(
            "execution_cached", {"nodes": self.cached_nodes, "prompt_id": self.prompt_id}
        )
        order = ExecutionList(
            self.prompt, state.catalog, lambda n: self.signatures.get(n) in caches.outputs
        )
        for output in self.outputs:
            order.add_node(output)
        success = True
        while not order.is_empty():
            node_id = order.stage()
            failure = await self._execute_node(node_id)
            if failure is not None:
                self._report_failure(failure)
                success = False
                break
            order.complete(node_id)
        else:
            self.add_message("execution_success", {"prompt_id": self.prompt_id})
        result: dict[str, Any] = {"outputs": {}, "meta": {}}
        for node_id in self.prompt:
            ui = caches.ui.get(self.signatures[node_id])
            if ui is not None:
                result["outputs"][node_id] = ui["output"]
                result["meta"][node_id] = ui["meta"]
        state.hub.last_node_id = None
        status = {
            "status_str": "success" if success else "error",
            "completed": success,
            "messages": self.messages,
        }
        return result, status

    async def _execute_node(self, node_id: str) -> _Failure | None:
        state = self.state
        class_type = self.prompt[node_id]["class_type"]
        spec = state.catalog.spec(class_type)
        key = self.signatures[node_id]
        if key in state.caches.outputs:
            ui = state.caches.ui.get(key) or {}
            self._send(
                "executed",
                {
                    "node": node_id,
                    "display_node": node_id,
                    "output": ui.get("output"),
                    "prompt_id": self.prompt_id,
                },
            )
            self.progress.finish(node_id)
            self.values[node_id] = state.caches.outputs[key]
            return None
        self.progress.start(node_id)
        inputs, formatted = self._gather_inputs(node_id)
        if self.client_id is not None:
            state.hub.last_node_id = node_id
        self._send(
            "executing", {"node": node_id, "display_node": node_id, "prompt_id": self.prompt_id}
        )
        steps = 0

        async def hook(value: int, total: int, preview: Preview | None) -> None:
            nonlocal steps
            steps += 1
            self._check_interrupt()
            await self._apply_fault(node_id, class_type, steps)
            self.progress.step(node_id, value, total, preview)

        call = NodeCall(
            node_id=node_id,
            spec=spec,
            inputs=inputs,
            prompt=self.prompt,
            extra_data=self.extra_data,
            folders=state.folders,
            catalog=state.catalog,
            signature=key,
            work_seconds=state.config.node_time(spec),
            step_seconds=state.config.step_time(spec),
            sleep=_sleep,
            progress=hook,
        )
        try:
            self._check_interrupt()
            await self._apply_fault(node_id, class_type, None)
            result = await RUNNERS[spec.behavior](call)
        except Interrupted:
            return _Failure(node_id, None, {})
        except NodeError as exc:
            return _Failure(node_id, exc, formatted)
        except Exception as exc:  # any exception in a node is an execution_error in ComfyUI
            frames = tracebacks.node_failure(state.catalog.root, spec.behavior)
            return _Failure(node_id, NodeError(full_type_name(exc), str(exc), frames), formatted)
        if result.ui:
            entry = {
                "meta": {
                    "node_id": node_id,
                    "display_node": node_id,
                    "parent_node": None,
                    "real_node_id": node_id,
                },
                "output": result.ui,
            }
            state.caches.ui[key] = entry
            self._send(
                "executed",
                {
                    "node": node_id,
                    "display_node": node_id,
                    "output": result.ui,
                    "prompt_id": self.prompt_id,
                },
            )
        state.caches.outputs[key] = result.outputs
        memory.note_loads(state.resident, state.config.model_bytes, inputs)
        self.values[node_id] = result.outputs
        self.progress.finish(node_id)
        self.executed.append(node_id)
        return None

    def _gather_inputs(self, node_id: str) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        node = self.prompt[node_id]
        declared = self.state.catalog.input_types(node["class_type"])
        known = {**declared.get("required", {}), **declared.get("optional", {})}
        values: dict[str, Any] = {}
        for name, value in node["inputs"].items():
            if is_link(value):
                source = self.values.get(value[0])
                if source is None:
                    source = self.state.caches.outputs.get(self.signatures.get(value[0]), ())
                values[name] = source[int(value[1])] if int(value[1]) < len(source) else None
            elif name in known:
                values[name] = value
        for name, kind in declared.get("hidden", {}).items():
            if kind == "PROMPT":
                values[name] = self.prompt
            elif kind == "EXTRA_PNGINFO":
                values[name] = self.extra_data.get("extra_pnginfo")
            elif kind == "UNIQUE_ID":
                values[name] = node_id
        return values, {name: [format_value(v)] for name, v in values.items()}

    def _check_interrupt(self) -> None:
        if self.state.interrupt.is_set():
            raise Interrupted()

    async def _apply_fault(self, node_id: str, class_type: str, step: int | None) -> None:
        fault = self.state.faults.take(node_id, class_type, step)
        if fault is not None:
            await self._fire(fault, class_type)

    async def _fire(self, fault: Fault, class_type: str) -> None:
        controls = self.state.controls
        frames = tracebacks.node_failure(self.state.catalog.root, class_type.lower())
        if fault.action == "error":
            raise NodeError(fault.exception_type, fault.message, frames)
        if fault.action == "oom":
            raise NodeError("torch.OutOfMemoryError", "Allocation on device ", frames, OOM_TIPS)
        if fault.action == "hang":
            await (self.state.interrupt.wait() if fault.interruptible else asyncio.Event().wait())
            raise Interrupted()
        if fault.action == "die":
            asyncio.get_running_loop().create_task(controls.kill())
        elif fault.action == "freeze":
            controls.freeze()
        elif fault.action == "http_error":
            await controls.http_error(fault.http_status)
        await asyncio.Event().wait()  # the worker never comes back

    def _report_failure(self, failure: _Failure) -> None:
        node_type = self.prompt[failure.node_id]["class_type"]
        base = {
            "prompt_id": self.prompt_id,
            "node_id": failure.node_id,
            "node_type": node_type,
            "executed": list(self.executed),
        }
        if failure.error is None:
            self.add_message("execution_interrupted", base, broadcast=True)
            return
        self.add_message(
            "execution_error",
            {
                **base,
                "exception_message": f"{failure.error.message}\n{failure.error.tips}",
                "exception_type": failure.error.exception_type,
                "traceback": failure.error.traceback,
                "current_inputs": failure.current_inputs,
                # ComfyUI sends the ids of its cache key set (every node of the prompt).
                "current_outputs": list(reversed(list(self.prompt))),
            },
        )

    def record(self, status: dict[str, Any]) -> JobRecord:
        """What the stats keep about this run."""
        return JobRecord(
            self.prompt_id,
            self.number,
            status["status_str"],
            tuple(self.executed),
            tuple(self.cached_nodes),
        )


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)
