"""An aiohttp app that serves Headway services over the service protocol.

`GET /discover` answers the manifest (its version negotiated through the Accept header),
`POST /invoke/{service}/{handler}` runs one request/response exchange, `GET /health` says it
is up. Any engine speaking the protocol (Headway's, or Restate's) can register it.
"""

from __future__ import annotations

import json

from aiohttp import web

from ..definitions import ServiceDefinition
from ..journal import Target
from . import versions
from .framing import decode_frames, encode_frames
from .invocation import ProtocolInvocation, read_request
from .manifest import build_manifest
from .wire import ProtocolError


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


def _manifest_version(accept: str) -> int | None:
    """The newest manifest version the Accept header lists that this endpoint writes."""
    offered = {versions.parse_manifest_content_type(part) for part in accept.split(",")}
    both = {v for v in offered if v in versions.MANIFEST_VERSIONS}
    return max(both) if both else None


def make_app(services: list[ServiceDefinition]) -> web.Application:
    """The endpoint for these services."""
    by_name = {s.name: s for s in services}

    async def discover(request: web.Request) -> web.Response:
        version = _manifest_version(request.headers.get("accept", ""))
        if version is None:
            accepted = ", ".join(
                versions.manifest_content_type(v) for v in versions.MANIFEST_VERSIONS
            )
            return _error(415, f"unsupported manifest version; this endpoint writes {accepted}")
        return web.Response(
            body=json.dumps(build_manifest(services, version)).encode(),
            content_type=versions.manifest_content_type(version),
        )

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def invoke(request: web.Request) -> web.Response:
        version = versions.parse_invocation_content_type(request.headers.get("content-type", ""))
        if version not in versions.ENDPOINT_VERSIONS:
            supported = ", ".join(f"v{v}" for v in versions.ENDPOINT_VERSIONS)
            return _error(415, f"unsupported protocol version; this endpoint speaks {supported}")
        service, name = request.match_info["service"], request.match_info["handler"]
        definition = by_name.get(service)
        if definition is None or name not in definition.handlers:
            return _error(404, f"no handler {service}/{name} here")
        try:
            replay = read_request(decode_frames(await request.read()))
        except ProtocolError as e:
            return _error(400, f"bad protocol request: {e}")
        target = Target(service, name, replay.start.key if definition.kind != "service" else None)
        out = await ProtocolInvocation(replay, target, definition.handlers[name]).run()
        return web.Response(
            body=encode_frames(out), content_type=versions.invocation_content_type(version)
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/discover", discover)
    app.router.add_get("/health", health)
    app.router.add_post("/invoke/{service}/{handler}", invoke)
    return app
