"""Moving files between sparkplane and a device: a prompt's uploads to the device
before it runs, its outputs into the artifact store as they are reported."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sparkplane.backends.workflow import WorkflowBackend
from sparkplane.jobs import shapes
from sparkplane.jobs.artifacts import ArtifactStore
from sparkplane.jobs.records import Artifact, Job

# Uploaded files sit on devices here, named by content (tenants never overwrite
# each other's files, and the same image is sent once).
DEVICE_SUBFOLDER = "sparkplane"
UploadLookup = Callable[[str], Awaitable[tuple[Path, str] | None]]


async def with_inputs(
    backend: WorkflowBackend, prompt: dict[str, Any], lookup: UploadLookup, sent: set[str]
) -> dict[str, Any]:
    """`prompt` with every input that names an upload copied to the device and renamed
    to the copy; `sent` remembers what this device already has."""
    caps = backend.capabilities
    if caps is None or not caps.uploads:
        return prompt
    out = dict(prompt)
    for node_id, node in prompt.items():
        names = caps.uploads.get(node.get("class_type", ""), frozenset())
        inputs = node.get("inputs") or {}
        for name in names:
            value = inputs.get(name)
            if not isinstance(value, str):
                continue
            found = await lookup(value)
            if found is None:
                continue
            path, sha256 = found
            device_name = f"{sha256[:32]}{path.suffix.lower()}"
            if device_name not in sent:
                await backend.upload(device_name, path, DEVICE_SUBFOLDER, "input")
                sent.add(device_name)
            inputs = {**inputs, name: f"{DEVICE_SUBFOLDER}/{device_name}"}
            out[node_id] = {**node, "inputs": inputs}
    return out


async def copy_outputs(
    artifacts: ArtifactStore,
    backend: WorkflowBackend,
    job: Job,
    attempt: int,
    node_id: Any,
    output: Any,
    copied: dict[tuple[str, str, str], Artifact],
) -> None:
    """Copy the files of one node's output into the artifact store (once each)."""
    for item in shapes.files_in(output):
        type_ = str(item.get("type") or "output")
        subfolder = str(item.get("subfolder") or "")
        key = (type_, subfolder, item["filename"])
        if key in copied:
            continue
        filename = item["filename"]
        path = artifacts.output_path(job.tenant_id, job.id, attempt, type_, subfolder, filename)
        size = await artifacts.write_stream(path, backend.download(filename, subfolder, type_))
        shown = shapes.client_output({"files": [item]}, job.id)["files"][0]["subfolder"]
        copied[key] = Artifact(str(node_id), type_, shown, filename, artifacts.relative(path), size)
