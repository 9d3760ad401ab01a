"""Admin API for deployments: register (idempotent), list, describe, remove."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..http_errors import error
from ..registry import ServiceInfo
from .catalog import Deployment
from .discovery import DiscoveryError

if TYPE_CHECKING:
    from ..engine import Engine


def _service_json(info: ServiceInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "kind": info.kind,
        "handlers": [{"name": h.name, "kind": h.kind or "shared"} for h in info.handlers.values()],
    }


def deployment_json(deployment: Deployment, latest: dict[str, str | None]) -> dict[str, Any]:
    return {
        "id": deployment.id,
        "uri": deployment.uri,
        "protocol_version": deployment.protocol,
        "http2": deployment.http2,
        "created_at": deployment.created_at,
        "services": [_service_json(s) for s in deployment.services],
        # whether new invocations of each of its services go here
        "latest_for": [s.name for s in deployment.services if latest.get(s.name) == deployment.id],
    }


class DeploymentRoutes:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_post("/deployments", self.register)
        router.add_get("/deployments", self.list)
        router.add_get("/deployments/{id}", self.describe)
        router.add_delete("/deployments/{id}", self.remove)

    def _latest(self) -> dict[str, str | None]:
        return {name: info.deployment for name, info in self.engine.registry.services.items()}

    async def register(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError as e:
            return error(400, f'expected a JSON body {{"uri": "http://host:port"}}: {e}')
        if not isinstance(body, dict):
            return error(400, 'expected a JSON body {"uri": "http://host:port"}')
        try:
            deployments = self.engine.deployments
            deployment, created = await deployments.register(
                body.get("uri"), body.get("http2", False)
            )
        except DiscoveryError as e:
            return error(e.status, str(e))
        return web.json_response(
            deployment_json(deployment, self._latest()), status=201 if created else 200
        )

    async def list(self, request: web.Request) -> web.Response:
        latest = self._latest()
        deployments = sorted(
            self.engine.deployments.by_id.values(), key=lambda d: (d.created_at, d.id)
        )
        return web.json_response({"deployments": [deployment_json(d, latest) for d in deployments]})

    async def describe(self, request: web.Request) -> web.Response:
        deployment = self.engine.deployments.by_id.get(request.match_info["id"])
        if deployment is None:
            return error(404, f"deployment not found: {request.match_info['id']}")
        return web.json_response(deployment_json(deployment, self._latest()))

    async def remove(self, request: web.Request) -> web.Response:
        deployment = self.engine.deployments.remove(request.match_info["id"])
        if deployment is None:
            return error(404, f"deployment not found: {request.match_info['id']}")
        return web.json_response({"id": deployment.id, "removed": True})
