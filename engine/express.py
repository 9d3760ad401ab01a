"""The express lane: a Kafka record's handler runs before the record is logged, when it can
finish without waiting.

Most stream handlers read their key's state, write it and emit records; none of that needs the
log until the handler returns. The lane runs such a handler at once, in the consumer, against
the key's committed state plus what the key's earlier records' runs wrote (submitted, not yet
applied), and submits one `Express` entry carrying the run's journal. The processor checks
the reads and applies the writes, the emits and the record's offset in one batch, or turns the
entry back into an ordinary invocation (see express_check.py): one log entry per record and
no invocation record, instead of an invocation's whole life in the store.

A handler that issues anything else (`ctx.run`, sleep, a call, an awakeable), awaits anything
that is not ready, or fails, is abandoned without effect and its record goes the durable way,
where all of that is handled; its code before that point runs again there, as on any replay.
Runs are driven by hand and finish in one step, so the consumer still submits each partition's
records in offset order, which exactly-once ingestion depends on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any

from headway.sdk.context import Request
from headway.sdk.definitions import Handler
from headway.sdk.journal import Command, Outcome, Target
from headway.sdk.server_context import ServerContext
from headway.sdk.state_machine import StateMachine

from . import keys
from .committer import Committer
from .entries import Express, Invoke
from .express_check import EXPRESS_COMMANDS, runs_ahead
from .invoker import DURABLE
from .registry import Registry
from .store import ReadableStore
from .trace_ids import CARRIERS, EXPRESS_ATTEMPT

if TYPE_CHECKING:
    from .observability import Observability


class NotExpress(BaseException):
    """Raised into a handler that issues a command the lane cannot run. A BaseException, so
    that handler code catching Exception does not swallow it."""


class _Recorder:
    """The run's transport: keeps the commands the lane can run, refuses every other one."""

    def __init__(self, observer: Observability | None, invoke: Invoke) -> None:
        # Only tracing changes outgoing commands (it adds their trace context).
        self.observer = observer if observer is not None and observer.tracing is not None else None
        self.invocation_id, self.headers = invoke.invocation_id, invoke.headers
        self.journal: list[Command] = []

    def append(self, index: int, command: Command) -> Awaitable[None]:
        if not isinstance(command, EXPRESS_COMMANDS):
            raise NotExpress(type(command).__name__)
        if self.observer is not None and isinstance(command, CARRIERS):
            command = self.observer.outgoing(
                command, self.invocation_id, self.headers, EXPRESS_ATTEMPT
            )
        self.journal.append(command)
        return DURABLE

    def propose_run_outcome(self, index: int, outcome: Outcome) -> None:
        raise NotExpress("run")

    def blocked(self) -> None:
        raise NotExpress("waits")


_GIVE_UP_AFTER = 8  # runs of a handler in a row that went the durable way before it is skipped
_RETRY_EVERY = 256  # calls of a skipped handler between two tries


def _now_ms() -> int:
    return int(time.time() * 1000)


class ExpressLane:
    """Runs the records of one subscription's sink handler ahead of the log, reading keys'
    committed locks and state from `store` (the committer's `reads`)."""

    def __init__(
        self,
        store: ReadableStore,
        registry: Registry,
        committer: Committer,
        observer: Observability | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.committer = committer
        self.observer = observer
        # Per object key: its state after its last run, and that run's entry number; until the
        # committer has settled that entry, the store does not show the run yet. Runs are kept
        # in two generations, the recent one looked at first: once every run of the older one
        # is settled, it is dropped whole and the recent one takes its place. That bounds
        # memory at a cost of one dict write per run, with no per-run bookkeeping to forget.
        self._recent: dict[tuple[str, str], tuple[dict[str, bytes], int]] = {}
        self._recent_last = 0  # the entry number of its newest run
        self._older: dict[tuple[str, str], tuple[dict[str, bytes], int]] = {}
        self._older_last = 0
        # Per (service, handler): its runs in a row that could not finish in the lane.
        self._gave_up: dict[tuple[str, str], int] = {}
        self.ran = 0
        self.declined = 0

    @staticmethod
    def serves(registry: Registry, service: str, handler: str) -> bool:
        """Whether a sink can use the lane: an in-process handler that is not a workflow's."""
        return runs_ahead(registry.lookup(service, handler))

    def submit(self, invoke: Invoke) -> None:
        """Submits the invocation as an `Express` entry if its handler ran to the end, else as
        itself."""
        entry, state_after = self._entry(invoke)
        self._track(entry, state_after, self.committer.submit_nowait(entry))

    def submit_durable(self, invoke: Invoke) -> asyncio.Future[None]:
        """`submit`, with a future that resolves once the entry is durable."""
        entry, state_after = self._entry(invoke)
        durable = self.committer.submit(entry)
        self._track(entry, state_after, self.committer.submitted)
        return durable

    def _entry(self, invoke: Invoke) -> tuple[Invoke | Express, dict[str, bytes]]:
        """The entry to submit, and the key's state after the run (if there was one)."""
        target = invoke.target
        found = self.registry.lookup(target.service, target.handler)
        if not runs_ahead(found) or not self._worth_trying(target):
            self.declined += 1
            return invoke, {}
        if not invoke.invocation_id and self.observer and self.observer.tracing is not None:
            # Its spans and emits need the record's id (the attempt's, the commit's): derive it
            # once, here, so that a traced run always has it.
            invoke = dataclasses.replace(invoke, invocation_id=invoke.resolved_id)
        state: dict[str, bytes] | None = {}
        if target.key is not None:
            state = self._state(target.service, target.key, found[0].needs_lock(target.handler))
        if state is None:  # the key is held: the call queues behind its holder
            self.declined += 1
            return invoke, {}
        run = self._run(invoke, found[1], state)
        if run is None:
            slot = (target.service, target.handler)
            self._gave_up[slot] = self._gave_up.get(slot, 0) + 1
            self.declined += 1
            return invoke, {}
        if self._gave_up:
            self._gave_up.pop((target.service, target.handler), None)
        self.ran += 1
        journal, ran_at, output = run
        return Express(invoke, journal, ran_at, output), state

    def _worth_trying(self, target: Target) -> bool:
        """False for a handler whose last runs all went the durable way (it takes steps, sleeps
        or calls), except now and then in case that changed: trying costs a run that is thrown
        away, and runs again the handler's code before its first step."""
        given_up = self._gave_up.get((target.service, target.handler), 0)
        if given_up < _GIVE_UP_AFTER:
            return True
        self._gave_up[(target.service, target.handler)] = given_up + 1
        return (given_up - _GIVE_UP_AFTER) % _RETRY_EVERY == _RETRY_EVERY - 1

    def _track(self, entry: Invoke | Express, state_after: dict[str, bytes], number: int) -> None:
        """Until entry `number` is settled, the key's next run starts from this run's state."""
        if not isinstance(entry, Express):
            return
        target = entry.invoke.target
        if target.key is None:
            return
        if self.committer.settled >= self._older_last:  # the older generation is all applied
            self._older, self._older_last = self._recent, self._recent_last
            self._recent = {}
        self._recent[(target.service, target.key)] = (state_after, number)
        self._recent_last = number

    def _state(self, service: str, key: str, locked: bool) -> dict[str, bytes] | None:
        """The state a run of `key` starts from; None if an invocation holds or awaits the key
        (the record must queue behind it, the durable way)."""
        slot = (service, key)
        unapplied = self._recent.get(slot) or self._older.get(slot)
        if unapplied is not None and unapplied[1] > self.committer.settled:
            return dict(unapplied[0])
        if locked and self.store.get(keys.object_lock(service, key)) is not None:
            return None
        return dict(self.store.get(keys.state(service, key)) or {})

    def _run(
        self, invoke: Invoke, handler: Handler, state: dict[str, bytes]
    ) -> tuple[tuple[Command, ...], int, bytes] | None:
        """Runs the handler in one step over `state`, which it changes as it writes: its
        journal, when it ran and its output; None if it cannot finish that way."""
        target = invoke.target
        observer = self.observer
        # A Kafka record's id is derived only if the run reads it.
        invocation_id = invoke.invocation_id or (lambda: invoke.resolved_id)
        request = Request(invocation_id, invoke.headers, invoke.input, 1, invoke.source)
        recorder = _Recorder(observer, invoke)
        ctx = ServerContext(
            StateMachine([], {}, recorder), request, target, state, _now_ms,
            read_only=handler.kind == "shared",
        )  # fmt: skip
        ran_at = _now_ms()
        started = time.perf_counter()
        tracing = observer.tracing if observer is not None else None
        span = None
        if tracing is not None:  # then the id is resolved (`_entry`)
            span = tracing.attempt_started(invoke.invocation_id, invoke.headers, EXPRESS_ATTEMPT)
        output = _run_in_one_step(handler.call(ctx, invoke.input, target))
        if output is None or ctx.sm.failure is not None:
            if tracing is not None:
                tracing.attempt_dropped(span)
            return None
        if tracing is not None:
            tracing.express_ran(span, invoke.invocation_id)
        if observer is not None and observer.metrics is not None:
            observer.metrics.attempt_ended(target.service, target.handler, started)
        return tuple(recorder.journal), ran_at, output


def _run_in_one_step(coroutine: Coroutine[Any, Any, bytes]) -> bytes | None:
    """Drives a handler's coroutine by hand: its encoded output if it returned without
    awaiting anything that was not ready and without failing, else None."""
    try:
        coroutine.send(None)
    except StopIteration as returned:
        return returned.value  # type: ignore[no-any-return]
    except (NotExpress, Exception):
        return None
    coroutine.close()  # it awaits something: the durable way waits properly
    return None
