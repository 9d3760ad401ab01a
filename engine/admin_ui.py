"""The web UI at `/ui` on the admin port, and the playground route it invokes handlers through.

The UI is plain HTML, CSS and JavaScript shipped in the package (`engine/ui/`): no build step,
no CDN, nothing fetched at run time. It talks to the admin API on its own origin; to invoke a
handler it posts to `/playground/...`, which forwards to the engine's ingress, so the browser
needs no cross-origin access to the ingress port.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web

from .engine import Engine
from .http_errors import error

UI_DIR = Path(__file__).parent / "ui"
_FORWARDED = ("content-type", "idempotency-key", "traceparent")


class UiRoutes:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def index(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/ui":
            raise web.HTTPFound("/ui/")
        return web.FileResponse(UI_DIR / "index.html")

    async def playground(self, request: web.Request) -> web.Response:
        """Forwards `POST /playground/{path}` to the ingress as `POST /{path}`."""
        config = self.engine.config
        host = "127.0.0.1" if config.ingress_host in ("0.0.0.0", "::", "") else config.ingress_host
        url = f"http://{host}:{config.ingress_port}/{request.match_info['tail']}"
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED}
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(url, data=await request.read(), headers=headers) as resp,
            ):
                return web.Response(
                    status=resp.status, body=await resp.read(), content_type=resp.content_type
                )
        except aiohttp.ClientError as e:
            return error(502, f"the ingress did not answer: {e}")


def add_routes(app: web.Application, engine: Engine) -> None:
    routes = UiRoutes(engine)
    app.router.add_get("/ui", routes.index)
    app.router.add_get("/ui/", routes.index)
    app.router.add_static("/ui/", UI_DIR)
    app.router.add_post("/playground/{tail:.+}", routes.playground)
