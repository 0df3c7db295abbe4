"""The server's calls to an agent's API, each carrying the agent's key; an https
agent URL is verified against the system's CAs or `agent_ca`."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp

from sparkplane.agent.protocol import DeploymentSpec, DeploymentStatus
from sparkplane.agent.records import NodeRecord
from sparkplane.errors import BadRequest, NotFound, UpstreamError


def agent_session(ca_file: Path | None) -> aiohttp.ClientSession:
    """An HTTP session for agent calls (open it inside the event loop)."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))


class AgentLink:
    """Calls to agents."""

    def __init__(self, http: aiohttp.ClientSession, timeout: float = 30) -> None:
        self._http = http
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def run(self, node: NodeRecord, spec: DeploymentSpec) -> DeploymentStatus:
        """Ask the agent to start `spec`; it answers at once, before the engine is up."""
        text = await self._call(
            node, "PUT", f"/v1/deployments/{spec.id}", body=spec.model_dump(mode="json")
        )
        return DeploymentStatus.model_validate_json(text)

    async def stop(self, node: NodeRecord, deployment_id: str) -> None:
        """Ask the agent to stop a deployment (one it does not run is not an error)."""
        try:
            await self._call(node, "DELETE", f"/v1/deployments/{deployment_id}")
        except NotFound:
            return

    async def logs(self, node: NodeRecord, deployment_id: str, lines: int) -> str:
        """The last lines of a deployment's engine log."""
        return await self._call(
            node, "GET", f"/v1/deployments/{deployment_id}/logs", params={"lines": str(lines)}
        )

    async def _call(
        self,
        node: NodeRecord,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> str:
        headers = {"Authorization": f"Bearer {node.agent_key}"}
        try:
            async with self._http.request(
                method, node.url + path, json=body, params=params, headers=headers,
                timeout=self._timeout,
            ) as response:  # fmt: skip
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"cannot reach the agent of {node.name}: {exc!r}") from exc
        if response.status < 300:
            return text
        message = _message(text)
        if response.status == 404:
            raise NotFound(f"{node.name}: {message}", code="agent_not_found")
        if response.status == 400:
            raise BadRequest(f"{node.name} refused: {message}", code="agent_refused")
        raise UpstreamError(f"the agent of {node.name} answered {response.status}: {message}")


def _message(text: str) -> str:
    try:
        return str(json.loads(text)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return text[:300]
