"""ComfyUI's JSON shapes as sparkplane serves them: history entries, queue items,
and frames with the device's prompt_id replaced by the client's."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from typing import Any

import orjson

from sparkplane.jobs.artifacts import output_subfolder
from sparkplane.jobs.records import Job

PREVIEW_WITH_METADATA = 4


def rewrite_ids(value: Any, device_prompt_id: str, prompt_id: str) -> Any:
    """`value` with every occurrence of the device's prompt id replaced."""
    if isinstance(value, str):
        return prompt_id if value == device_prompt_id else value
    if isinstance(value, dict):
        return {k: rewrite_ids(v, device_prompt_id, prompt_id) for k, v in value.items()}
    if isinstance(value, list):
        return [rewrite_ids(v, device_prompt_id, prompt_id) for v in value]
    return value


def rewrite_binary(data: bytes, device_prompt_id: str, prompt_id: str) -> bytes:
    """A binary frame for the client: type-4 metadata gets the client's prompt_id."""
    if len(data) < 8 or struct.unpack(">I", data[:4])[0] != PREVIEW_WITH_METADATA:
        return data
    length = struct.unpack(">I", data[4:8])[0]
    try:
        metadata = orjson.loads(data[8 : 8 + length])
    except orjson.JSONDecodeError:
        return data
    fixed = orjson.dumps(rewrite_ids(metadata, device_prompt_id, prompt_id))
    return data[:4] + struct.pack(">I", len(fixed)) + fixed + data[8 + length :]


def files_in(output: Any) -> Iterator[dict[str, Any]]:
    """The file entries ({filename, subfolder, type}) of a node's UI output."""
    if not isinstance(output, dict):
        return
    for values in output.values():
        if isinstance(values, list):
            for item in values:
                if isinstance(item, dict) and isinstance(item.get("filename"), str):
                    yield item


def client_output(output: Any, job_id: str) -> Any:
    """A node's UI output as clients see it: files under the job's subfolder."""
    if not isinstance(output, dict):
        return output
    out: dict[str, Any] = {}
    for key, values in output.items():
        if isinstance(values, list):
            out[key] = [
                {**v, "subfolder": output_subfolder(job_id, str(v.get("subfolder") or ""))}
                if isinstance(v, dict) and isinstance(v.get("filename"), str)
                else v
                for v in values
            ]
        else:
            out[key] = values
    return out


def history_entry(job: Job) -> dict[str, Any]:
    """The value of `/history/{prompt_id}` for a finished job."""
    result = job.result or {}
    return {
        "prompt": job.queue_item(),
        "outputs": result.get("outputs", {}),
        "status": result.get("status", {}),
        "meta": result.get("meta", {}),
    }


def device_result(entry: dict[str, Any], job: Job, device_prompt_id: str) -> dict[str, Any]:
    """What sparkplane keeps of a device's history entry (ids and subfolders rewritten)."""
    outputs = {
        node: client_output(output, job.id) for node, output in (entry.get("outputs") or {}).items()
    }
    status = rewrite_ids(entry.get("status") or {}, device_prompt_id, job.prompt_id)
    return {"outputs": outputs, "status": status, "meta": entry.get("meta") or {}}


def final_status(result: dict[str, Any]) -> str:
    """success, error or interrupted, from a history status (as ComfyUI tells them apart)."""
    status = result.get("status") or {}
    if status.get("status_str") == "success":
        return "success"
    messages = status.get("messages") or []
    if messages and messages[-1][0] == "execution_interrupted":
        return "interrupted"
    return "error"


def failure_message(job: Job, detail: str) -> dict[str, Any]:
    """The execution_error sparkplane sends when it gives a job up."""
    return {
        "prompt_id": job.prompt_id,
        "node_id": None,
        "node_type": None,
        "executed": [],
        "exception_message": f"sparkplane could not run this prompt: {detail}",
        "exception_type": "sparkplane.JobFailed",
        "traceback": [],
        "current_inputs": {},
        "current_outputs": [],
        "timestamp": int(time.time() * 1000),
    }


def failure_result(job: Job, detail: str) -> dict[str, Any]:
    """History of a job sparkplane gave up on (attempts used up, device refused it)."""
    return {
        "outputs": {},
        "status": {
            "status_str": "error",
            "completed": False,
            "messages": [["execution_error", failure_message(job, detail)]],
        },
        "meta": {},
    }
