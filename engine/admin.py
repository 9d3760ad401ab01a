"""The admin API (default 127.0.0.1:9070): health, services, invocations, state, OpenAPI."""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web
from headway.connectors.kafka.admin_routes import KafkaAdmin
from headway.sdk.journal import Outcome, Target, decode_command, describe

from . import admin_observe, keys
from .deployments.admin_routes import DeploymentRoutes
from .engine import Engine
from .entries import Cancel, Kill, ReplaceState
from .http_errors import error, json_errors
from .openapi import OPENAPI


def _text_or_base64(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}


def _outcome_json(raw: list[Any] | None) -> Any:
    if raw is None:
        return None
    outcome = Outcome.decode(raw)
    if outcome.failure is not None:
        return {"failure": {"code": outcome.failure.code, "message": outcome.failure.message}}
    return {"value": _text_or_base64(outcome.value)}


def invocation_summary(invocation_id: str, status: dict[str, Any]) -> dict[str, Any]:
    target = Target.decode(status["t"])
    return {
        "id": invocation_id,
        "target": str(target),
        "service": target.service,
        "key": target.key,
        "handler": target.handler,
        "status": status["st"],
        "created_at": status["ca"],
        "modified_at": status["ma"],
        "attempt": status["a"],
        "retry_count": status["rc"],
        "last_failure": status["lf"],
        "idempotency_key": status["ik"],
        "invoked_by": status.get("by"),
        "deployment": status.get("dp"),
        "journal_length": status["jl"],
        "outcome": _outcome_json(status["o"]),
    }


class Admin:
    """JSON endpoints over the engine's committed store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.app = web.Application(middlewares=[json_errors])
        r = self.app.router
        r.add_get("/health", self.health)
        r.add_get("/openapi", self.openapi)
        r.add_get("/services", self.services)
        r.add_get("/invocations", self.invocations)
        r.add_get("/invocations/{id}", self.invocation)
        r.add_patch("/invocations/{id}/{op}", self.invocation_op)
        r.add_get("/services/{service}/state/{key}", self.get_state)
        r.add_put("/services/{service}/state/{key}", self.put_state)
        KafkaAdmin(engine).register(r)
        admin_observe.add_routes(self.app, engine)
        DeploymentRoutes(engine).add_to(r)

    @property
    def store(self) -> Any:
        return self.engine.store

    async def health(self, request: web.Request) -> web.Response:
        if not self.engine.ready:
            return error(503, "recovering")
        return web.json_response({"status": "ok"})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)

    async def services(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "services": [
                    {
                        "name": info.name,
                        "kind": info.kind,
                        "handlers": [
                            {"name": h.name, "kind": h.kind or "shared"}
                            for h in info.handlers.values()
                        ],
                    }
                    for info in self.engine.registry.services.values()
                ]
            }
        )

    async def invocations(self, request: web.Request) -> web.Response:
        wanted_status = request.query.get("status")
        wanted_service = request.query.get("service")
        wanted_key = request.query.get("key")
        try:
            limit = int(request.query.get("limit", "1000"))
        except ValueError:
            return error(400, "limit must be a whole number")
        rows = []
        for key, status in self.store.scan(keys.INVOCATION):
            if wanted_status and status["st"] != wanted_status:
                continue
            if wanted_service and status["t"][0] != wanted_service:
                continue
            if wanted_key is not None and status["t"][2] != wanted_key:
                continue
            rows.append(invocation_summary(key[len(keys.INVOCATION) :].decode(), status))
            if len(rows) >= limit:
                break
        return web.json_response({"invocations": rows})

    async def invocation(self, request: web.Request) -> web.Response:
        invocation_id = request.match_info["id"]
        status = self.store.get(keys.invocation(invocation_id))
        if status is None:
            return error(404, f"invocation not found: {invocation_id}")
        journal = []
        for index in range(status["jl"]):
            raw = self.store.get(keys.journal(invocation_id, index))
            completion = self.store.get(keys.completion(invocation_id, index))
            command = decode_command(raw)
            journal.append(
                {
                    "index": index,
                    "entry_type": type(command).__name__,
                    "name": describe(command),
                    "completed": not command.completable or completion is not None,
                    "result": _outcome_json(completion[1]) if completion else None,
                }
            )
        summary = invocation_summary(invocation_id, status)
        summary["journal"] = journal
        return web.json_response(summary)

    async def invocation_op(self, request: web.Request) -> web.Response:
        invocation_id, op = request.match_info["id"], request.match_info["op"]
        if op not in ("cancel", "kill"):
            return error(404, f"unknown operation {op!r}: use cancel or kill")
        if self.store.get(keys.invocation(invocation_id)) is None:
            return error(404, f"invocation not found: {invocation_id}")
        entry = Cancel(invocation_id) if op == "cancel" else Kill(invocation_id)
        await self.engine.submit(entry)
        return web.json_response({"id": invocation_id, "operation": op}, status=202)

    async def get_state(self, request: web.Request) -> web.Response:
        service, key = request.match_info["service"], request.match_info["key"]
        state = self.store.get(keys.state(service, key)) or {}
        return web.json_response(
            {"service": service, "key": key,
             "state": {name: _text_or_base64(v) for name, v in sorted(state.items())}}
        )  # fmt: skip

    async def put_state(self, request: web.Request) -> web.Response:
        service, key = request.match_info["service"], request.match_info["key"]
        info = self.engine.registry.services.get(service)
        if info is None or info.kind == "service":
            return error(404, f"no virtual object or workflow named {service}")
        try:
            body = await request.json()
            new_state = body["state"]
            if not isinstance(new_state, dict):
                raise TypeError("state must be an object")
        except (ValueError, KeyError, TypeError) as e:
            return error(400, f'expected {{"state": {{name: JSON value}}}}: {e}')
        encoded = {name: json.dumps(value).encode() for name, value in new_state.items()}
        await self.engine.submit(ReplaceState(service, key, encoded))
        return web.json_response({"service": service, "key": key}, status=200)
