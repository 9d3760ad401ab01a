"""JSON error responses shared by the ingress and the admin API: `{"code", "message"}`."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

log = logging.getLogger("headway.http")


def error(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turns aiohttp's own HTTP errors (405, 413, ...) and unexpected failures into JSON bodies;
    never a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error(e.status, e.reason if e.status != 413 else "request body too large")
    except ConnectionResetError:
        raise  # the client went away: there is nobody to answer
    except Exception as e:  # a bug: log it, and still answer in JSON
        log.exception("error handling %s %s", request.method, request.path)
        return error(500, f"internal error: {type(e).__name__}: {e}")
