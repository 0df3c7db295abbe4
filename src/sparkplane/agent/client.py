"""The agent's calls to the server: join, then heartbeats, each authenticated
(the join token or the node key as a bearer credential) and, for an https
server URL, over TLS verified against the system's or the given CA."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from sparkplane.agent.protocol import Heartbeat, HeartbeatAnswer, JoinAnswer, JoinRequest
from sparkplane.errors import Unauthorized, UpstreamError

Answer = TypeVar("Answer", bound=BaseModel)


def client_ssl(ca_file: Path | None) -> ssl.SSLContext:
    """Certificate checks for the server: the system's CAs, or only `ca_file`'s."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class ServerClient:
    """Calls from an agent to its server."""

    def __init__(self, server_url: str, http: aiohttp.ClientSession, timeout: float = 30) -> None:
        self.server_url = server_url.rstrip("/")
        self._http = http
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def join(self, credential: str, request: JoinRequest) -> JoinAnswer:
        """Join with a join token, or rejoin with this node's key."""
        return await self._post("/api/agent/join", credential, request, JoinAnswer)

    async def heartbeat(self, node_key: str, beat: Heartbeat) -> HeartbeatAnswer:
        """Report; the answer lists the deployments the server wants here."""
        return await self._post("/api/agent/heartbeat", node_key, beat, HeartbeatAnswer)

    async def _post(
        self, path: str, credential: str, body: BaseModel, answer: type[Answer]
    ) -> Answer:
        url = self.server_url + path
        headers = {"Authorization": f"Bearer {credential}", "content-type": "application/json"}
        try:
            async with self._http.post(
                url, data=body.model_dump_json(), headers=headers, timeout=self._timeout
            ) as response:
                text = await response.text()
                if response.status in (401, 403):
                    raise Unauthorized(f"the server refused this agent: {_message(text)}")
                if response.status >= 300:
                    raise UpstreamError(f"{path} answered {response.status}: {_message(text)}")
                return answer.model_validate_json(text)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"cannot reach the server at {self.server_url}: {exc!r}") from exc
        except ValidationError as exc:
            raise UpstreamError(f"{path} answered something unexpected: {exc}") from exc


def _message(text: str) -> str:
    try:
        doc: Any = json.loads(text)
        return str(doc["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return text[:300]
