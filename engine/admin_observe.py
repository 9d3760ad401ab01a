"""The admin API's observability endpoints: SQL (`POST /query`), Prometheus (`GET /metrics`),
and the web UI (`/ui`, see `admin_ui`)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import admin_ui
from .engine import Engine
from .http_errors import error


class ObserveRoutes:
    """Handlers added to the admin app by `add_routes`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def query(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            query = body["query"]
            if not isinstance(query, str):
                raise TypeError("query must be a string")
        except (ValueError, KeyError, TypeError) as e:
            return error(400, f'expected {{"query": "SQL"}}: {e}')
        store = self.engine.store
        if store is None:
            return error(503, "the engine is not running")
        # DuckDB and pyarrow load with the first query, so that start-up (and recovery after a
        # crash) does not wait ~0.1 s for them.
        from .sql import ARROW_STREAM, SqlError, run_query, to_arrow_stream, to_json

        arrow = ARROW_STREAM in request.headers.get("accept", "")
        encode = to_arrow_stream if arrow else to_json

        def run() -> bytes:
            return encode(
                run_query(store.db, self.engine.registry, query, self.engine.kafka.end_offset)
            )

        try:
            # Built and encoded in a worker thread: the engine's loop keeps committing.
            payload = await asyncio.to_thread(run)
        except SqlError as e:
            return error(400, str(e))
        content_type = ARROW_STREAM if arrow else "application/json"
        return web.Response(body=payload, content_type=content_type)

    async def metrics(self, request: web.Request) -> web.Response:
        observability = self.engine.observability
        if observability.metrics is None:
            return error(404, "metrics are off (HEADWAY_METRICS=0)")
        await observability.ready()
        return web.Response(
            body=generate_latest(observability.metrics.registry),
            headers={"content-type": CONTENT_TYPE_LATEST},
        )


def add_routes(app: web.Application, engine: Engine) -> None:
    routes = ObserveRoutes(engine)
    app.router.add_post("/query", routes.query)
    app.router.add_get("/metrics", routes.metrics)
    admin_ui.add_routes(app, engine)
