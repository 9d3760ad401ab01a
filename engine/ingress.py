"""HTTP ingress: the same handlers, callable over HTTP at Restate's paths."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import unquote

from aiohttp import web
from headway.sdk import ids
from headway.sdk.journal import Outcome, Target
from headway.sdk.protocol.signals import awakeable_slot
from headway.sdk.serde import BytesSerde

from . import keys
from .durations import parse_duration_ms
from .engine import Engine
from .entries import Complete, Invoke
from .http_errors import error, json_errors
from .registry import ServiceInfo

_SKIP_HEADERS = frozenset(
    ("host", "content-length", "connection", "user-agent", "accept", "accept-encoding",
     "content-type", "idempotency-key", "keep-alive")
)  # fmt: skip


# Delays beyond this are mistakes, and their due times would not fit the timer keys.
_MAX_DELAY_DAYS = 36_500
_MAX_DELAY_MS = _MAX_DELAY_DAYS * 86_400_000


def _request_headers(request: web.Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items() if k.lower() not in _SKIP_HEADERS}


def _undecodable_header(request: web.Request) -> str | None:
    """The name of a header whose value is not UTF-8 (the log could not store it), if any."""
    for name, value in request.headers.items():
        try:
            value.encode()
        except UnicodeEncodeError:
            return name.lower()
    return None


def _path_parts(request: web.Request) -> list[str]:
    """The path's segments, each percent-decoded on its own (so a key may hold `%2F`).

    Raises UnicodeDecodeError if a segment does not decode to UTF-8.
    """
    raw = request.rel_url.raw_path.strip("/").split("/")
    return [unquote(part, errors="strict") for part in raw]


def _outcome_response(outcome: Outcome) -> web.Response:
    if outcome.failure is not None:
        code = outcome.failure.code if 400 <= outcome.failure.code <= 599 else 500
        return web.json_response(
            {"code": outcome.failure.code, "message": outcome.failure.message}, status=code
        )
    return web.Response(body=outcome.value or b"", content_type="application/json")


class Ingress:
    """Routes `/{service}[/{key}]/{handler}[/send]` and the `/restate/...` paths."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.app = web.Application(
            client_max_size=engine.config.max_body_bytes, middlewares=[json_errors]
        )
        self.app.router.add_route("*", "/{tail:.*}", self.route)

    async def route(self, request: web.Request) -> web.StreamResponse:
        try:
            parts = _path_parts(request)
        except UnicodeDecodeError:
            return error(400, f"the path is not valid UTF-8: {request.rel_url.raw_path}")
        if parts and parts[0] == "restate":
            return await self.restate_path(request, parts[1:])
        if request.method != "POST":
            return error(405, f"use POST to invoke a handler, not {request.method}")
        send = len(parts) >= 3 and parts[-1] == "send"
        if send:
            parts = parts[:-1]
        return await self.invoke(request, parts, send)

    async def restate_path(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        if len(parts) >= 3 and parts[0] in ("call", "send") and request.method == "POST":
            return await self.invoke(request, parts[1:], parts[0] == "send")
        if len(parts) == 3 and parts[0] == "invocation" and request.method == "GET":
            return await self.attach(parts[1], parts[2])
        if len(parts) == 4 and parts[0] == "workflow" and request.method == "GET":
            return await self.attach_workflow(parts[1], parts[2], parts[3])
        if len(parts) == 3 and parts[0] == "awakeables" and request.method == "POST":
            return await self.complete_awakeable(request, parts[1], parts[2])
        return error(404, f"no such path: {request.method} {request.path}")

    def _resolve(self, parts: list[str]) -> tuple[ServiceInfo, Target] | web.Response:
        if len(parts) not in (2, 3) or not parts[0]:
            return error(404, "expected /{service}/{handler} or /{object}/{key}/{handler}")
        info = self.engine.registry.services.get(parts[0])
        if info is None:
            return error(404, f"service not found: {parts[0]}")
        keyed = info.kind != "service"
        if keyed != (len(parts) == 3):
            shape = "/{name}/{key}/{handler}" if keyed else "/{name}/{handler}"
            article = "an" if info.kind == "object" else "a"
            return error(404, f"{info.name} is {article} {info.kind}: call it as {shape}")
        handler = parts[-1]
        if handler not in info.handlers:
            return error(404, f"handler not found: {info.name}/{handler}")
        if info.handlers[handler].options.ingress_private:
            return error(404, f"handler not found: {info.name}/{handler}")
        key = parts[1] if keyed else None
        if keyed and not key:
            return error(400, f"{info.name} is keyed: the key must not be empty")
        return info, Target(info.name, handler, key)

    async def invoke(self, request: web.Request, parts: list[str], send: bool) -> web.Response:
        resolved = self._resolve(parts)
        if isinstance(resolved, web.Response):
            return resolved
        info, target = resolved
        bad_header = _undecodable_header(request)
        if bad_header is not None:
            return error(400, f"header {bad_header!r} is not valid UTF-8")
        if (request.content_length or 0) > self.engine.config.max_body_bytes:
            return error(413, "request body too large")
        body = await request.read()
        handler = info.handlers[target.handler]
        if not isinstance(handler.input_serde, BytesSerde):
            try:
                value = handler.input_serde.deserialize(body)
            except (ValueError, TypeError) as e:
                return error(400, f"malformed request body for {target}: {e}")
            if value is None and handler.input_required:
                return error(400, f"{target} needs an input: the body is empty or null")
        invoke_at = 0
        delay = request.query.get("delay")
        if delay is not None:
            if not send:
                return error(400, "?delay= is only allowed with /send")
            try:
                delay_ms = parse_duration_ms(delay)
            except ValueError as e:
                return error(400, str(e))
            if delay_ms > _MAX_DELAY_MS:
                return error(400, f"delay {delay!r} is too long: at most {_MAX_DELAY_DAYS}d")
            invoke_at = int(time.time() * 1000) + delay_ms
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None or handler.kind == "workflow":
            invocation_id = ids.deterministic_invocation_id(
                target.service,
                target.handler,
                target.key,
                idempotency_key,
                workflow_run=handler.kind == "workflow",
            )
        else:
            invocation_id = ids.new_invocation_id(ids.partition_key_for(target.service, target.key))
        entry = Invoke(
            invocation_id, target, body, _request_headers(request), None, invoke_at,
            idempotency_key,
        )  # fmt: skip
        if send:
            existed = self.engine.outcome(invocation_id) is not None or self._exists(invocation_id)
            await self.engine.submit(entry)
            status = "PreviouslyAccepted" if existed else "Accepted"
            return web.json_response({"invocationId": invocation_id, "status": status}, status=202)
        lane = self.engine.express
        minted = idempotency_key is None and handler.kind != "workflow"
        if not minted:
            lane = None  # it may join an invocation that exists: only the ordinary way does
        waiter = self.engine.wait_for(invocation_id, new=minted)
        try:
            await (self.engine.submit(entry) if lane is None else lane.submit_durable(entry))
            outcome = await waiter
        finally:
            self.engine.forget_waiter(invocation_id, waiter)
        return _outcome_response(outcome)

    def _exists(self, invocation_id: str) -> bool:
        assert self.engine.store is not None
        return self.engine.store.get(keys.invocation(invocation_id)) is not None

    async def attach(self, invocation_id: str, mode: str) -> web.Response:
        if mode not in ("attach", "output"):
            return error(404, f"unknown invocation operation {mode!r}: use attach or output")
        if not self._exists(invocation_id):
            return error(404, f"invocation not found: {invocation_id}")
        if mode == "output":
            outcome = self.engine.outcome(invocation_id)
            if outcome is None:
                return error(470, f"invocation {invocation_id} has not completed yet")
            return _outcome_response(outcome)
        waiter = self.engine.wait_for(invocation_id)
        try:
            return _outcome_response(await waiter)
        finally:
            self.engine.forget_waiter(invocation_id, waiter)

    async def attach_workflow(self, name: str, key: str, mode: str) -> web.Response:
        info = self.engine.registry.services.get(name)
        if info is None or info.kind != "workflow":
            return error(404, f"workflow not found: {name}")
        main = next(h.name for h in info.handlers.values() if h.kind == "workflow")
        invocation_id = ids.deterministic_invocation_id(name, main, key, None, workflow_run=True)
        return await self.attach(invocation_id, mode)

    async def complete_awakeable(
        self, request: web.Request, awakeable_id: str, mode: str
    ) -> web.Response:
        if mode not in ("resolve", "reject"):
            return error(404, f"unknown awakeable operation {mode!r}: use resolve or reject")
        try:
            owner, index = awakeable_slot(awakeable_id)
        except ValueError as e:
            return error(400, f"invalid awakeable id: {e}")
        body = await request.read()
        if mode == "resolve":
            try:
                if body:
                    json.loads(body)
            except ValueError as e:
                return error(400, f"malformed awakeable value: {e}")
            outcome = Outcome.ok(body)
        else:
            outcome = Outcome.fail(500, body.decode(errors="replace") or "rejected")
        if not self._exists(str(owner)):
            return error(404, f"awakeable not found: {awakeable_id}")
        await self.engine.submit(Complete(str(owner), index, outcome))
        return web.json_response({}, status=202)


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Hosts an aiohttp app inside the running loop (AppRunner/TCPSite, not run_app)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    await asyncio.sleep(0)
    return runner
