"""The in-process invoker: runs handler attempts against their journal, with no encoding.

An attempt loads the invocation's journal, completions and (for keyed handlers) state from the
committed store, then drives the handler through the SDK's replay state machine. New commands
go to the committer; completions come back as Notify actions. An attempt blocked only on
completions for `suspend_after` seconds suspends: its task is dropped and the invocation holds
no resources until a completion resumes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol

from headway.sdk.context import Request
from headway.sdk.definitions import Handler
from headway.sdk.errors import SuspendedError, TerminalError
from headway.sdk.journal import (
    ClearAllState,
    ClearState,
    Command,
    Emit,
    GetState,
    Outcome,
    SetState,
    StateKeys,
    Target,
    decode_command,
)
from headway.sdk.server_context import ServerContext
from headway.sdk.state_machine import StateMachine

from . import keys
from .committer import Committer
from .entries import Append, AttemptFailed, Complete, End, Suspend
from .registry import Registry
from .store import Store
from .trace_ids import CARRIERS

if TYPE_CHECKING:
    from .observability import Observability

log = logging.getLogger("headway.invoker")

# Commands nobody waits on and that act on nothing outside the invocation until it completes:
# an attempt holds them and journals them with its End (or before its next other command).
_DEFERRABLE = (GetState, StateKeys, SetState, ClearState, ClearAllState, Emit)


class _Durable:
    """An awaitable that is already done: the write it stands for needs no wait."""

    def __await__(self) -> Generator[None, None, None]:
        return
        yield


DURABLE = _Durable()


def _now_ms() -> int:
    return int(time.time() * 1000)


class AttemptDriver(Protocol):
    """One running attempt, in-process or on a deployment."""

    def begin(self) -> None: ...

    def stop(self) -> None: ...

    def notify(self, index: int, seq: int, outcome: Outcome) -> None: ...


# Starts an attempt of an invocation pinned to a deployment (status "dp"): invoker, id, status.
RemoteStarter = Callable[["Invoker", str, dict[str, Any]], AttemptDriver]


class Invoker:
    """Starts, feeds, suspends and aborts attempts."""

    def __init__(
        self,
        store: Store,
        committer: Committer,
        registry: Registry,
        *,
        suspend_after: float = 1.0,
        always_replay: bool = False,
    ) -> None:
        self.store = store
        self.committer = committer
        self.registry = registry
        self.suspend_after = suspend_after
        self.always_replay = always_replay
        self.attempts: dict[str, AttemptDriver] = {}
        self.started = 0
        self.retries = 0
        self.observer: Observability | None = None
        self.remote: RemoteStarter | None = None

    def start(self, invocation_id: str, status: dict[str, Any] | None = None) -> None:
        """Runs an attempt from the committed status (read from the store if not given)."""
        old = self.attempts.pop(invocation_id, None)
        if old is not None:
            old.stop()
        if status is None:
            status = self.store.get(keys.invocation(invocation_id))
        if status is None or status["st"] != "running":
            return
        if status.get("dp") is not None and self.remote is not None:
            remote = self.remote(self, invocation_id, status)
            self.attempts[invocation_id] = remote
            self.started += 1
            remote.begin()
            return
        target = Target.decode(status["t"])
        found = self.registry.lookup(target.service, target.handler)
        if found is None:
            self.committer.submit_nowait(
                End(invocation_id, status["a"], Outcome.fail(404, f"no handler for {target}"))
            )
            return
        attempt = Attempt(self, invocation_id, status, target, found[1])
        self.attempts[invocation_id] = attempt
        self.started += 1
        attempt.begin()

    def notify(self, invocation_id: str, index: int, seq: int, outcome: Outcome) -> None:
        attempt = self.attempts.get(invocation_id)
        if attempt is not None:
            attempt.notify(index, seq, outcome)

    def abort(self, invocation_id: str) -> None:
        attempt = self.attempts.pop(invocation_id, None)
        if attempt is not None:
            attempt.stop()

    def finished(self, invocation_id: str) -> None:
        self.attempts.pop(invocation_id, None)

    def stop_all(self) -> None:
        for attempt in list(self.attempts.values()):
            attempt.stop()
        self.attempts.clear()


class Attempt:
    """One run of a handler; the transport its state machine writes through."""

    def __init__(
        self, invoker: Invoker, invocation_id: str, status: dict[str, object], target: Target,
        handler: Handler,
    ) -> None:  # fmt: skip
        self.invoker = invoker
        self.invocation_id = invocation_id
        self.status = status
        self.attempt = int(status["a"])  # type: ignore[call-overload]
        self.target = target
        self.handler = handler
        self.task: asyncio.Task[None] | None = None
        self.last_write: asyncio.Future[None] | None = None
        self.deferred: list[tuple[int, Command]] = []
        self.defers = not invoker.always_replay
        self._check: asyncio.TimerHandle | None = None
        self.failure: BaseException | None = None
        self.sm = StateMachine(
            self._load_journal(), self._load_completions(), self,
            always_replay=invoker.always_replay,
        )  # fmt: skip

    def _load_journal(self) -> list[Command]:
        store = self.invoker.store
        length = int(self.status["jl"])  # type: ignore[call-overload]
        return [
            decode_command(store.get(keys.journal(self.invocation_id, i))) for i in range(length)
        ]

    def _load_completions(self) -> dict[int, tuple[int, Outcome]]:
        if not self.status["jl"]:
            return {}  # completions exist only for journal entries: skip the store scan
        prefix = keys.completion_prefix(self.invocation_id)
        return {
            int(key[len(prefix) :], 16): (raw[0], Outcome.decode(raw[1]))
            for key, raw in self.invoker.store.scan(prefix)
        }

    def begin(self) -> None:
        state: dict[str, bytes] = {}
        if self.target.key is not None:
            state = dict(
                self.invoker.store.get(keys.state(self.target.service, self.target.key)) or {}
            )
        request = Request(
            id=self.invocation_id,
            headers=dict(self.status["h"]),  # type: ignore[call-overload]
            body=bytes(self.status["in"]),  # type: ignore[call-overload]
            attempt=self.attempt,
            kafka=self.status["src"],  # type: ignore[arg-type]
        )
        read_only = self.handler.kind == "shared"
        ctx = ServerContext(self.sm, request, self.target, state, _now_ms, read_only=read_only)
        run = self._run(ctx, request.body)
        observer = self.invoker.observer
        self.task = asyncio.get_running_loop().create_task(
            run if observer is None else observer.run_attempt(self, run)
        )

    def notify(self, index: int, seq: int, outcome: Outcome) -> None:
        self.sm.complete(index, seq, outcome)

    def stop(self) -> None:
        if self._check is not None:
            self._check.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def _run(self, ctx: ServerContext, body: bytes) -> None:
        handler = self.handler
        try:
            value = await handler.call(ctx, body, self.target)
            if self.sm.failure is not None:
                raise self.sm.failure
            outcome = Outcome.ok(value)
        except TerminalError as e:
            if self.sm.failure is not None:
                self._failed(self.sm.failure)
                return
            outcome = Outcome.fail(e.status_code, e.message)
        except SuspendedError:
            await self._replay()
            return
        except asyncio.CancelledError:
            return
        except Exception as e:
            self._failed(self.sm.failure or e)
            return
        journal = tuple(command for _, command in self.deferred)
        self.deferred = []
        self.invoker.committer.submit_nowait(
            End(self.invocation_id, self.attempt, outcome, journal)
        )

    async def _replay(self) -> None:
        """Always-replay mode: start over from the journal once every write is durable."""
        if self.last_write is not None:
            await self.last_write
        if self.invoker.attempts.get(self.invocation_id) is self:
            self.invoker.start(self.invocation_id)

    def _failed(self, error: BaseException) -> None:
        failures = int(self.status["rc"]) + 1  # type: ignore[call-overload]
        policy = self.invoker.registry.retry_policy(self.target.service, self.target.handler)
        message = f"{type(error).__name__}: {error}"
        self.failure = error
        self.invoker.retries += 1
        if policy.exhausted(failures):
            outcome = Outcome.fail(500, f"gave up after {failures} attempts: {message}")
            self.invoker.committer.submit_nowait(End(self.invocation_id, self.attempt, outcome))
            return
        log.info(
            "%s attempt %d failed: %s", self.invocation_id, self.attempt, message,
            extra={"invocation_id": self.invocation_id, "attempt": self.attempt},
        )  # fmt: skip
        retry_at = _now_ms() + int(policy.delay_after(failures) * 1000)
        self.invoker.committer.submit_nowait(
            AttemptFailed(self.invocation_id, self.attempt, message, retry_at)
        )

    # -- Transport -------------------------------------------------------------------------

    def append(self, index: int, command: Command) -> Awaitable[None]:
        if self.invoker.observer is not None and isinstance(command, CARRIERS):
            headers: dict[str, str] = self.status["h"]  # type: ignore[assignment]
            command = self.invoker.observer.outgoing(
                command, self.invocation_id, headers, self.attempt
            )
        if self.defers and isinstance(command, _DEFERRABLE):
            self.deferred.append((index, command))
            return DURABLE
        self._flush()
        self.last_write = self.invoker.committer.submit(
            Append(self.invocation_id, self.attempt, index, command)
        )
        return self.last_write

    def _flush(self) -> None:
        """Journals the deferred commands ahead of one that others may see or wait on."""
        for index, command in self.deferred:
            self.invoker.committer.submit_nowait(
                Append(self.invocation_id, self.attempt, index, command)
            )
        self.deferred = []

    def propose_run_outcome(self, index: int, outcome: Outcome) -> None:
        self.invoker.committer.submit_nowait(Complete(self.invocation_id, index, outcome))

    def blocked(self) -> None:
        self._flush()  # what the handler did before it waits is visible while it waits
        if self._check is None:
            loop = asyncio.get_running_loop()
            self._check = loop.call_later(
                self.invoker.suspend_after, self._maybe_suspend, self.sm.progress
            )

    def _maybe_suspend(self, progress: int) -> None:
        self._check = None
        if self.task is None or self.task.done() or not self.sm.awaiting:
            return
        if self.sm.runs_in_flight or self.sm.progress != progress:
            self.blocked()
            return
        self.task.cancel()
        if self.invoker.attempts.get(self.invocation_id) is self:
            del self.invoker.attempts[self.invocation_id]
        waiting = sorted(self.sm.awaiting)
        self.invoker.committer.submit_nowait(Suspend(self.invocation_id, self.attempt, waiting))
