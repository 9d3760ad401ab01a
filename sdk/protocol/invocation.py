"""Serving one invocation over the protocol: the SDK side of a request/response exchange.

This is the second driver of the replay state machine (the in-process invoker is the first):
the request's journal and notifications become the machine's journal and completions, the
handler runs, and its new commands, run proposals and end (output, suspension or error) are
written as the response. The request is complete before the handler starts, so a handler that
needs a completion it has not got suspends, and the engine calls again once it is durable.

Cancellation arrives as the cancel signal (1) among the request's notifications; the state
machine fails what the handler waits on with it, as the engine does in-process. Every
suspension also waits for that signal until it has come, so a cancel that reaches the engine
while an attempt runs resumes the invocation at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable

from ..context import Request
from ..definitions import Handler
from ..errors import JournalMismatchError, SuspendedError, TerminalError
from ..journal import Call, Command, Outcome, PeekPromise, Send, Target
from ..server_context import ServerContext
from ..state_machine import StateMachine
from . import journal_codec as codec
from . import messages as m
from .signals import CANCEL_SIGNAL, SIGNAL_BASE, is_signal_slot, signal_slot
from .wire import ProtocolError

_PLACEHOLDER_ID = ""  # a replayed call's id arrives in the notification after it


def _done() -> asyncio.Future[None]:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    return fut


@dataclasses.dataclass
class Replay:
    """What a request carried: the start, the input and the journal so far."""

    start: m.StartMessage
    input: m.InputCommandMessage
    journal: list[Command]
    completions: dict[int, tuple[int, Outcome]]
    cids: codec.CompletionIds


def read_request(frames: list[m.Frame]) -> Replay:
    """Splits a request's messages into the journal and its completions. Raises ProtocolError."""
    if not frames or not isinstance(frames[0], m.StartMessage):
        raise ProtocolError("the request must begin with StartMessage")
    start = frames[0]
    entries = frames[1:]
    if len(entries) != start.known_entries:
        raise ProtocolError(
            f"StartMessage announced {start.known_entries} entries, got {len(entries)}"
        )
    if not entries or not isinstance(entries[0], m.InputCommandMessage):
        raise ProtocolError("the journal must begin with InputCommandMessage")
    cids = codec.CompletionIds()
    journal: list[Command] = []
    completions: dict[int, tuple[int, Outcome]] = {}
    for entry in entries[1:]:
        if isinstance(entry, m.CallInvocationIdCompletionNotificationMessage):
            index = cids.by_id.get(entry.completion_id or 0, -1)
            command = journal[index] if index >= 0 else None
            if not isinstance(command, Call | Send):
                raise ProtocolError(f"invocation id for unknown call {entry.completion_id}")
            journal[index] = dataclasses.replace(command, invocation_id=entry.invocation_id or "")
        elif isinstance(entry, m.SignalNotificationMessage):
            outcome = codec.outcome_from(entry.value, entry.failure)
            completions[codec.signal_slot_of(entry)] = (len(completions), outcome)
        elif isinstance(entry, m.NotificationMessage):
            if entry.completion_id not in cids.by_id:
                raise ProtocolError(f"notification for unknown completion {entry.completion_id}")
            index = cids.by_id[entry.completion_id]
            outcome = codec.outcome_from(entry.value, entry.failure)
            if entry.void is not None:  # an unresolved peek, or a plain "done"
                peek = isinstance(journal[index], PeekPromise)
                outcome = Outcome(value=None) if peek else Outcome.ok()
            completions[index] = (len(completions), outcome)
        elif isinstance(entry, m.CommandMessage) and not isinstance(entry, m.InputCommandMessage):
            command = codec.decode_command(entry, cids.next_id, lambda *_: _PLACEHOLDER_ID)
            cids.allocate(len(journal), command)
            journal.append(command)
        else:
            raise ProtocolError(f"{type(entry).__name__} cannot appear in a journal")
    return Replay(start, entries[0], journal, completions, cids)


class ProtocolInvocation:
    """Runs a handler for one request and collects the response's messages."""

    def __init__(self, replay: Replay, target: Target, handler: Handler) -> None:
        self.replay = replay
        self.target = target
        self.handler = handler
        self.out: list[m.Frame] = []
        self.cids = replay.cids
        self.sm = StateMachine(
            list(replay.journal), dict(replay.completions), self, signal_awakeables=True,
            cancel_slot=signal_slot(CANCEL_SIGNAL),
        )  # fmt: skip
        self.task: asyncio.Task[None] | None = None
        self._suspended = False

    async def run(self) -> list[m.Frame]:
        start, request_input = self.replay.start, self.replay.input
        request = Request(
            id=start.debug_id,
            headers={h.key: h.value for h in request_input.headers},
            body=request_input.value.content if request_input.value else b"",
            attempt=start.retry_count_since_last_stored_entry,
        )
        state = {e.key.decode(): e.value for e in start.state_map}
        ctx = ServerContext(
            self.sm, request, self.target, state, lambda: int(time.time() * 1000),
            read_only=self.handler.kind == "shared",
        )  # fmt: skip
        self.task = asyncio.get_running_loop().create_task(self._call(ctx, request.body))
        try:
            await self.task
        except asyncio.CancelledError:
            if not self._suspended:
                raise
        return self.out

    async def _call(self, ctx: ServerContext, body: bytes) -> None:
        handler = self.handler
        try:
            value = await handler.call(ctx, body, self.target)
            if self.sm.failure is not None:
                raise self.sm.failure
            output = m.OutputCommandMessage(value=m.Value(value))
        except TerminalError as e:
            if self.sm.failure is not None:
                self._error(self.sm.failure)
                return
            output = m.OutputCommandMessage(failure=m.Failure(e.status_code, e.message))
        except SuspendedError:
            return
        except Exception as e:
            self._error(self.sm.failure or e)
            return
        self.out += [output, m.EndMessage()]

    def _error(self, error: BaseException) -> None:
        code = 570 if isinstance(error, JournalMismatchError) else 500
        self.out.append(m.ErrorMessage(code=code, message=f"{type(error).__name__}: {error}"))

    # -- Transport -------------------------------------------------------------------------

    def append(self, index: int, command: Command) -> Awaitable[None]:
        self.out.append(codec.encode_command(command, self.cids.allocate(index, command)))
        return _done()  # the engine makes it durable before anything can depend on it

    def propose_run_outcome(self, index: int, outcome: Outcome) -> None:
        value, failure = codec.outcome_message(outcome)
        self.out.append(
            m.ProposeRunCompletionMessage(
                result_completion_id=self.cids.first[index],
                value=value.content if value is not None else None,
                failure=failure,
            )
        )
        self.blocked()  # its result comes back only in the next request

    def blocked(self) -> None:
        """Nothing more can arrive on a closed request: suspend on what the handler awaits."""
        asyncio.get_running_loop().call_soon(self._suspend)

    def _suspend(self) -> None:
        if self.task is None or self.task.done() or not self.sm.awaiting or self.sm.runs_in_flight:
            return
        journal, awaiting = self.sm.journal, sorted(self.sm.awaiting)
        signals = [i - SIGNAL_BASE for i in awaiting if is_signal_slot(i)]
        if signal_slot(CANCEL_SIGNAL) not in self.sm.completions:
            # A cancel that reached the engine while this attempt ran must resume it at once.
            signals.append(CANCEL_SIGNAL)
        self.out.append(
            m.SuspensionMessage(
                waiting_completions=[
                    self.cids.result_id(i, journal[i]) for i in awaiting if not is_signal_slot(i)
                ],
                waiting_signals=signals,
            )
        )
        self._suspended = True
        self.task.cancel()
