"""The context handlers get at run time, implemented over the replay state machine."""

from __future__ import annotations

import asyncio
import inspect
import random as random_module
import time as time_module
import uuid as uuid_module
from collections.abc import Awaitable, Callable, Generator
from datetime import timedelta
from typing import Any, TypeVar

from . import ids
from .context import (
    DurableFuture,
    DurablePromise,
    Request,
    RunOptions,
    SendHandle,
    WorkflowContext,
)
from .definitions import HANDLER_ATTRIBUTE, Handler
from .errors import TerminalError
from .journal import (
    Awakeable,
    Call,
    CancelInvocation,
    ClearAllState,
    ClearState,
    CompleteAwakeable,
    CompletePromise,
    Emit,
    GetPromise,
    GetState,
    Outcome,
    PeekPromise,
    Run,
    Send,
    SetState,
    Sleep,
    StateKeys,
    Target,
)
from .protocol.signals import signal_slot
from .serde import DEFAULT_SERDE, Serde, serde_for
from .state_machine import StateMachine

T = TypeVar("T")


def _outcome_value(outcome: Outcome, serde: Serde[Any]) -> Any:
    if outcome.failure is not None:
        raise TerminalError(outcome.failure.message, outcome.failure.code)
    return serde.deserialize(outcome.value or b"")


class ServerDurableFuture(DurableFuture[T]):
    """A completable journal entry; awaiting it may suspend the invocation."""

    def __init__(self, sm: StateMachine, index: int, serde: Serde[Any]) -> None:
        self.sm = sm
        self.index = index
        self.serde = serde

    def done(self) -> bool:
        return self.sm.future(self.index).done()

    async def _result(self) -> T:
        await self.sm.wait([self.index], first=False)
        return _outcome_value(self.sm.future(self.index).result(), self.serde)  # type: ignore[no-any-return]

    def __await__(self) -> Generator[Any, None, T]:
        return self._result().__await__()


class _RunFuture(ServerDurableFuture[T]):
    """A `ctx.run` step; its action runs now unless the journal already has its outcome."""

    def __init__(self, sm: StateMachine, index: int, serde: Serde[Any]) -> None:
        super().__init__(sm, index, serde)
        self.task: asyncio.Task[None] | None = None


class _SendHandle(SendHandle):
    def __init__(self, invocation_id: str) -> None:
        self._id = invocation_id

    async def invocation_id(self) -> str:
        return self._id


class _Promise(DurablePromise[Any]):
    def __init__(self, ctx: ServerContext, name: str, serde: Serde[Any]) -> None:
        self.ctx = ctx
        self.name = name
        self.serde = serde

    def value(self) -> DurableFuture[Any]:
        index = self.ctx.sm.issue_pipelined(GetPromise(self.name))
        return ServerDurableFuture(self.ctx.sm, index, self.serde)

    async def peek(self) -> Any:
        index = self.ctx.sm.issue_pipelined(PeekPromise(self.name))
        outcome = await _wait_outcome(self.ctx.sm, index)
        if outcome.failure is None and outcome.value is None:
            return None
        return _outcome_value(outcome, self.serde)

    async def resolve(self, value: Any) -> None:
        command = CompletePromise(self.name, Outcome.ok(self.serde.serialize(value)))
        await _wait_outcome_value(self.ctx.sm, self.ctx.sm.issue_pipelined(command))

    async def reject(self, message: str, code: int = 500) -> None:
        command = CompletePromise(self.name, Outcome.fail(code, message))
        await _wait_outcome_value(self.ctx.sm, self.ctx.sm.issue_pipelined(command))


async def _wait_outcome(sm: StateMachine, index: int) -> Outcome:
    await sm.wait([index], first=False)
    return sm.future(index).result()


async def _wait_outcome_value(sm: StateMachine, index: int) -> None:
    _outcome_value(await _wait_outcome(sm, index), DEFAULT_SERDE)


class ServerContext(WorkflowContext):
    """Every context interface in one class; the handler's kind limits what it may call."""

    def __init__(
        self,
        sm: StateMachine,
        request: Request,
        target: Target,
        state: dict[str, bytes],
        now_ms: Callable[[], int],
        *,
        read_only: bool = False,
    ) -> None:
        self.sm = sm
        self.read_only = read_only
        self._request = request
        self.target = target
        self.state = state
        self._now_ms = now_ms
        self._random: random_module.Random | None = None

    def request(self) -> Request:
        return self._request

    def key(self) -> str:
        if self.target.key is None:
            raise TerminalError("this handler has no key: it is not an object or workflow")
        return self.target.key

    async def get(self, name: str, type_hint: Any = None) -> Any:
        command = GetState(name, self.state.get(name))
        _, recorded = await self.sm.issue(command)
        assert isinstance(recorded, GetState)
        if recorded.value is None:
            return None
        return serde_for(type_hint).deserialize(recorded.value)

    async def state_keys(self) -> list[str]:
        _, recorded = await self.sm.issue(StateKeys(sorted(self.state)))
        assert isinstance(recorded, StateKeys)
        return list(recorded.keys)

    def set(self, name: str, value: Any) -> None:
        self._check_writable()
        data = serde_for(type(value)).serialize(value)
        self.sm.issue_pipelined(SetState(name, data))
        self.state[name] = data

    def clear(self, name: str) -> None:
        self._check_writable()
        self.sm.issue_pipelined(ClearState(name))
        self.state.pop(name, None)

    def clear_all(self) -> None:
        self._check_writable()
        self.sm.issue_pipelined(ClearAllState())
        self.state.clear()

    def _check_writable(self) -> None:
        if self.read_only:
            raise TerminalError("shared handlers may read state but not change it", 400)

    def run(
        self,
        name: str,
        action: Callable[..., T] | Callable[..., Awaitable[T]],
        *args: Any,
        options: RunOptions | None = None,
    ) -> DurableFuture[T]:
        opts = options or RunOptions()
        serde = opts.serde or serde_for(opts.type_hint)
        index = self.sm.issue_pipelined(Run(name))
        future: _RunFuture[T] = _RunFuture(self.sm, index, serde)
        if index not in self.sm.completions:
            # In flight from now on, so awaiting it right away does not report `blocked`.
            self.sm.runs_in_flight += 1
            future.task = asyncio.get_running_loop().create_task(
                self._execute_run(index, name, action, args, opts, serde)
            )
        return future

    async def _execute_run(
        self,
        index: int,
        name: str,
        action: Callable[..., Any],
        args: tuple[Any, ...],
        opts: RunOptions,
        serde: Serde[Any],
    ) -> None:
        failures = 0
        try:
            while True:
                try:
                    if inspect.iscoroutinefunction(action):
                        value = await action(*args)
                    else:
                        value = await asyncio.to_thread(action, *args)
                    outcome = Outcome.ok(serde.serialize(value))
                    break
                except TerminalError as e:
                    outcome = Outcome.fail(e.status_code, e.message)
                    break
                except Exception as e:
                    failures += 1
                    policy = opts.retry_policy
                    if policy.exhausted(failures):
                        outcome = Outcome.fail(500, f"run {name!r} failed {failures} times: {e!r}")
                        break
                    await asyncio.sleep(policy.delay_after(failures))
        finally:
            self.sm.runs_in_flight -= 1
        self.sm.progress += 1
        self.sm.transport.propose_run_outcome(index, outcome)

    def sleep(self, delta: timedelta, name: str | None = None) -> DurableFuture[None]:
        wake_at = self._now_ms() + int(delta.total_seconds() * 1000)
        index = self.sm.issue_pipelined(Sleep(name or "", wake_at))
        return ServerDurableFuture(self.sm, index, DEFAULT_SERDE)

    def _target(self, tpe: Any, key: str | None) -> tuple[Target, Handler | None]:
        if isinstance(tpe, str):
            service, _, handler_name = tpe.partition("/")
            return Target(service, handler_name, key), None
        registered = getattr(tpe, HANDLER_ATTRIBUTE, None)
        if registered is None:
            raise TypeError(f"{tpe!r} is not a handler of a Service, VirtualObject or Workflow")
        service_name, handler = registered
        return Target(service_name, handler.name, key), handler

    def _call(
        self, tpe: Any, key: str | None, arg: Any, idempotency_key: str | None,
        headers: dict[str, str] | None, workflow: bool = False,
    ) -> DurableFuture[Any]:  # fmt: skip
        target, handler = self._target(tpe, key)
        in_serde = handler.input_serde if handler else DEFAULT_SERDE
        out_serde = handler.output_serde if handler else DEFAULT_SERDE
        invocation_id = _mint_id(
            target, idempotency_key, _is_workflow_run(target, handler, workflow)
        )
        command = Call(
            target, in_serde.serialize(arg), headers or {}, idempotency_key, invocation_id
        )
        index = self.sm.issue_pipelined(command)
        return ServerDurableFuture(self.sm, index, out_serde)

    def _send(
        self, tpe: Any, key: str | None, arg: Any, send_delay: timedelta | None,
        idempotency_key: str | None, headers: dict[str, str] | None, workflow: bool = False,
    ) -> SendHandle:  # fmt: skip
        target, handler = self._target(tpe, key)
        in_serde = handler.input_serde if handler else DEFAULT_SERDE
        invocation_id = _mint_id(
            target, idempotency_key, _is_workflow_run(target, handler, workflow)
        )
        return self._issue_send(
            target, in_serde.serialize(arg), invocation_id, send_delay, idempotency_key, headers
        )

    def _issue_send(
        self, target: Target, data: bytes, invocation_id: str, send_delay: timedelta | None,
        idempotency_key: str | None, headers: dict[str, str] | None,
    ) -> SendHandle:  # fmt: skip
        delay_ms = int(send_delay.total_seconds() * 1000) if send_delay else 0
        invoke_at = self._now_ms() + delay_ms if delay_ms else 0
        command = Send(target, data, headers or {}, idempotency_key, invocation_id, invoke_at)
        index = self.sm.issue_pipelined(command)
        recorded = self.sm.journal[index]
        assert isinstance(recorded, Send)
        return _SendHandle(recorded.invocation_id)

    def service_call(self, tpe: Any, arg: Any = None, *, idempotency_key: str | None = None,
                     headers: dict[str, str] | None = None) -> DurableFuture[Any]:  # fmt: skip
        return self._call(tpe, None, arg, idempotency_key, headers)

    def object_call(self, tpe: Any, key: str, arg: Any = None, *,
                    idempotency_key: str | None = None,
                    headers: dict[str, str] | None = None) -> DurableFuture[Any]:  # fmt: skip
        return self._call(tpe, key, arg, idempotency_key, headers)

    def workflow_call(self, tpe: Any, key: str, arg: Any = None, *,
                      idempotency_key: str | None = None,
                      headers: dict[str, str] | None = None) -> DurableFuture[Any]:  # fmt: skip
        return self._call(tpe, key, arg, idempotency_key, headers, workflow=True)

    def service_send(self, tpe: Any, arg: Any = None, *, send_delay: timedelta | None = None,
                     idempotency_key: str | None = None,
                     headers: dict[str, str] | None = None) -> SendHandle:  # fmt: skip
        return self._send(tpe, None, arg, send_delay, idempotency_key, headers)

    def object_send(self, tpe: Any, key: str, arg: Any = None, *,
                    send_delay: timedelta | None = None, idempotency_key: str | None = None,
                    headers: dict[str, str] | None = None) -> SendHandle:  # fmt: skip
        return self._send(tpe, key, arg, send_delay, idempotency_key, headers)

    def workflow_send(self, tpe: Any, key: str, arg: Any = None, *,
                      send_delay: timedelta | None = None, idempotency_key: str | None = None,
                      headers: dict[str, str] | None = None) -> SendHandle:  # fmt: skip
        return self._send(tpe, key, arg, send_delay, idempotency_key, headers, workflow=True)

    def generic_call(self, service: str, handler: str, arg: bytes,
                     key: str | None = None) -> DurableFuture[bytes]:  # fmt: skip
        target = Target(service, handler, key)
        command = Call(target, arg, {}, None, _mint_id(target, None, False))
        index = self.sm.issue_pipelined(command)
        return ServerDurableFuture(self.sm, index, _RAW)

    def generic_send(self, service: str, handler: str, arg: bytes, key: str | None = None,
                     send_delay: timedelta | None = None) -> SendHandle:  # fmt: skip
        target = Target(service, handler, key)
        return self._issue_send(target, arg, _mint_id(target, None, False), send_delay, None, None)

    def awakeable(self, type_hint: Any = None) -> tuple[str, DurableFuture[Any]]:
        signal = self.sm.new_signal()
        if signal is not None:  # served over the protocol: a `sign_1` id and a signal slot
            awakeable_id = ids.awakeable_id(self._request.id, signal)
            return awakeable_id, ServerDurableFuture(
                self.sm, signal_slot(signal), serde_for(type_hint)
            )
        index = self.sm.issue_pipelined(Awakeable())
        # The legacy layout carries the journal index, which is how completions are addressed.
        awakeable_id = ids.awakeable_id(self._request.id, index, legacy=True)
        return awakeable_id, ServerDurableFuture(self.sm, index, serde_for(type_hint))

    def resolve_awakeable(self, name: str, value: Any) -> None:
        data = serde_for(type(value)).serialize(value)
        self.sm.issue_pipelined(CompleteAwakeable(name, Outcome.ok(data)))

    def reject_awakeable(self, name: str, failure_message: str, failure_code: int = 500) -> None:
        self.sm.issue_pipelined(
            CompleteAwakeable(name, Outcome.fail(failure_code, failure_message))
        )

    def cancel_invocation(self, invocation_id: str) -> None:
        self.sm.issue_pipelined(CancelInvocation(invocation_id))

    def emit(
        self,
        topic: str,
        value: Any,
        key: str | bytes | None = None,
        headers: dict[str, str | bytes] | None = None,
        cluster: str | None = None,
    ) -> None:
        data = value if isinstance(value, bytes) else serde_for(type(value)).serialize(value)
        raw_key = key.encode() if isinstance(key, str) else key
        raw_headers = (
            {k: v.encode() if isinstance(v, str) else v for k, v in headers.items()}
            if headers
            else {}
        )
        self.sm.issue_pipelined(Emit(topic, data, raw_key, raw_headers, cluster))

    def random(self) -> random_module.Random:
        if self._random is None:  # seeding hashes the id: only for handlers that use it
            self._random = random_module.Random(self.request().id)
        return self._random

    def uuid(self) -> uuid_module.UUID:
        return uuid_module.UUID(int=self.random().getrandbits(128), version=4)

    async def time(self) -> float:
        return float(await self.run("time", time_module.time))

    def promise(self, name: str, type_hint: Any = None) -> DurablePromise[Any]:
        return _Promise(self, name, serde_for(type_hint))


class _RawSerde:
    def serialize(self, value: Any) -> bytes:
        return bytes(value)

    def deserialize(self, data: bytes) -> bytes:
        return data


_RAW = _RawSerde()


def _is_workflow_run(target: Target, handler: Handler | None, workflow: bool) -> bool:
    if handler is not None:
        return handler.kind == "workflow"
    return workflow and target.handler == "run"


def _mint_id(target: Target, idempotency_key: str | None, workflow_run: bool) -> str:
    """A fresh id, or a derived one where a repeat must land on the same invocation."""
    if idempotency_key is not None or workflow_run:
        return ids.deterministic_invocation_id(
            target.service, target.handler, target.key, idempotency_key, workflow_run=workflow_run
        )
    return ids.new_invocation_id(ids.partition_key_for(target.service, target.key))
