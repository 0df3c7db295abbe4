"""The agent's own HTTP API, which the server calls to run and stop engines.

Every call must carry the agent key (`Authorization: Bearer spa-...`) the
agent gave the server when it joined; anything else gets 401. Served over
HTTPS when the agent has a certificate (`--tls-cert`, `--tls-key`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.responses import PlainTextResponse

from sparkplane.agent.credentials import same_secret
from sparkplane.agent.node import NodeAgent
from sparkplane.agent.protocol import AgentStatus, DeploymentSpec, DeploymentStatus
from sparkplane.api import errors
from sparkplane.errors import BadRequest, Unauthorized


def build_app(agent: NodeAgent, agent_key: str) -> FastAPI:
    """The agent API over `agent`, open only to holders of `agent_key`."""

    def authenticated(request: Request) -> None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not same_secret(presented.strip(), agent_key):
            raise Unauthorized("this agent answers only its server", code="invalid_agent_key")

    app = FastAPI(
        title="sparkplane agent",
        dependencies=[Depends(authenticated)],
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)

    @app.get("/v1/status")
    async def status() -> AgentStatus:
        return AgentStatus(
            name=agent.config.name, hardware=await agent.hardware(), deployments=agent.statuses()
        )

    @app.put("/v1/deployments/{deployment_id}", status_code=202)
    async def run(deployment_id: str, spec: DeploymentSpec) -> DeploymentStatus:
        if spec.id != deployment_id:
            raise BadRequest("the deployment id in the path and the body differ", param="id")
        return await agent.run(spec)

    @app.get("/v1/deployments/{deployment_id}")
    async def show(deployment_id: str) -> DeploymentStatus:
        return agent.status(deployment_id)

    @app.delete("/v1/deployments/{deployment_id}", status_code=204)
    async def stop(deployment_id: str) -> Response:
        await agent.stop(deployment_id)
        return Response(status_code=204)

    @app.get("/v1/deployments/{deployment_id}/logs")
    async def logs(
        deployment_id: str, lines: Annotated[int, Query(ge=1, le=100_000)] = 200
    ) -> PlainTextResponse:
        return PlainTextResponse(agent.logs(deployment_id, lines))

    return app
