"""JSON error responses shared by the ingress and the admin API: `{"code", "message"}`."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler


def error(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turns aiohttp's own HTTP errors (405, 413, ...) into JSON bodies; never a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error(e.status, e.reason if e.status != 413 else "request body too large")
