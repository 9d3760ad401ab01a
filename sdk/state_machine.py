"""The replay state machine: one invocation attempt's view of its journal.

A transport (in-process invoker, or the HTTP protocol) drives it: it feeds the journal and the
completions known so far, receives new commands, and delivers completions as they arrive. On
replay, a command the handler issues is matched against the journal and its recorded result is
returned instead of being redone; a handler that takes another path gets a JournalMismatchError.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol

from .errors import CANCELLED_CODE, JournalMismatchError, SuspendedError
from .ids import FIRST_SIGNAL_INDEX
from .journal import Command, Outcome, Run, describe, same_command
from .protocol.signals import signal_slot


class Transport(Protocol):
    """Where new commands go, and who decides when a blocked attempt suspends."""

    def append(self, index: int, command: Command) -> Awaitable[None]:
        """Journals a new command; the awaitable resolves once it is durable."""
        ...

    def propose_run_outcome(self, index: int, outcome: Outcome) -> None:
        """Journals a run's outcome; it comes back through `complete` once durable."""
        ...

    def blocked(self) -> None:
        """The handler waits on completions only; the transport may suspend the attempt."""
        ...


class StateMachine:
    """Matches issued commands against the journal and tracks their completions."""

    def __init__(
        self,
        journal: list[Command],
        completions: dict[int, tuple[int, Outcome]],
        transport: Transport,
        *,
        always_replay: bool = False,
        signal_awakeables: bool = False,
        cancel_slot: int | None = None,
    ) -> None:
        self.journal = journal
        self.replay_length = len(journal)
        self.completions = completions
        self.transport = transport
        self.always_replay = always_replay
        self.next_index = 0
        self.futures: dict[int, asyncio.Future[Outcome]] = {}
        self.awaiting: set[int] = set()
        self.runs_in_flight = 0
        self.progress = 0
        self.failure: BaseException | None = None
        # Over the service protocol an awakeable is a signal, not a journal command.
        self.signal_awakeables = signal_awakeables
        self.next_signal = FIRST_SIGNAL_INDEX
        # Over the service protocol a cancellation is a signal landing in this slot, and the
        # state machine fails the steps it reaches; in-process the engine fails them itself.
        self.cancel_slot = cancel_slot
        self.cancel_delivered = False

    def new_signal(self) -> int | None:
        """The next awakeable's signal index, or None where awakeables are journal commands.

        Signal indexes are handed out in the order the handler creates awakeables, so a replay
        gives each the same index again.
        """
        if not self.signal_awakeables:
            return None
        self.next_signal += 1
        return self.next_signal - 1

    @property
    def replaying(self) -> bool:
        return self.next_index < self.replay_length

    def _claim(self, command: Command) -> tuple[int, Command | None]:
        """The next index for `command`, and the journal's version of it when replaying.

        Raises JournalMismatchError (and remembers it, in case the handler swallows it) when
        the journal holds a different command at that index.
        """
        index = self.next_index
        self.next_index += 1
        self.progress += 1
        if index >= len(self.journal):
            return index, None
        recorded = self.journal[index]
        if not same_command(recorded, command):
            error = JournalMismatchError(
                f"journal mismatch at entry {index}: the journal has {describe(recorded)}, "
                f"the handler now issued {describe(command)}"
            )
            self.failure = error
            raise error
        return index, recorded

    async def issue(self, command: Command) -> tuple[int, Command]:
        """Records `command` (or replays it) and returns its index and the journaled version."""
        index, recorded = self._claim(command)
        if recorded is not None:
            return index, recorded
        self.journal.append(command)
        durable = self.transport.append(index, command)
        if self.always_replay:
            await durable
            if self.runs_in_flight == 0:  # a replay now would run an unfinished step again
                raise SuspendedError("replay after every step")
        return index, command

    def issue_pipelined(self, command: Command) -> int:
        """Like `issue` for commands whose caller does not wait (state writes, sends)."""
        index, recorded = self._claim(command)
        if recorded is not None:
            return index
        self.journal.append(command)
        self.transport.append(index, command)
        if self.always_replay and not command.completable and self.runs_in_flight == 0:
            # Nothing will complete it, so replay now (once durable); a completable command
            # replays from `wait` when its completion arrives.
            raise SuspendedError("replay after every step")
        return index

    def future(self, index: int) -> asyncio.Future[Outcome]:
        """The future of a completable command, already resolved if its completion is known."""
        fut = self.futures.get(index)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            known = self.completions.get(index)
            if known is not None:
                fut.set_result(known[1])
            self.futures[index] = fut
        return fut

    def complete(self, index: int, seq: int, outcome: Outcome) -> None:
        """Delivers a completion that arrived while the attempt runs."""
        if index in self.completions:
            return
        self.completions[index] = (seq, outcome)
        self.progress += 1
        fut = self.futures.get(index)
        if fut is not None and not fut.done():
            fut.set_result(outcome)

    def completion_order(self, index: int) -> int:
        """The arrival order of a known completion, so `select` picks the same one on replay."""
        known = self.completions.get(index)
        return known[0] if known is not None else 1 << 62

    async def wait(self, indexes: list[int], first: bool) -> None:
        """Waits for all (or the first) of these completions, suspending if nothing else moves."""
        self._deliver_cancel(indexes, first)
        futures = [self.future(i) for i in indexes]
        pending = [f for f in futures if not f.done()]
        if not pending or (first and len(pending) < len(futures)):
            return
        self.awaiting.update(indexes)
        try:
            if self.runs_in_flight == 0:
                self.transport.blocked()
            when = asyncio.FIRST_COMPLETED if first else asyncio.ALL_COMPLETED
            await asyncio.wait(pending, return_when=when)
        finally:
            self.awaiting.difference_update(indexes)
        if self.always_replay and self.runs_in_flight == 0:
            # A completion arrived during this attempt: replay with it from the journal.
            raise SuspendedError("replay after every completion")

    def _deliver_cancel(self, indexes: list[int], first: bool) -> None:
        """Fails the pending steps with 409 `cancelled` if the cancel signal came before this
        wait could be satisfied, once, as the engine does for an in-process invocation.

        Pending means issued and not completed before the cancel arrived (a completion that
        came after it loses, as it does in-process); runs are never cancelled, so a wait on
        runs alone leaves the cancel for the next wait. Deciding by arrival order rather than
        by what a request happens to carry makes every replay deliver it at the same wait.
        """
        if self.cancel_slot is None or self.cancel_delivered:
            return
        cancel = self.completions.get(self.cancel_slot)
        if cancel is None:
            return
        before = {i for i, (seq, _) in self.completions.items() if seq < cancel[0]}
        if (any if first else all)(i in before for i in indexes):
            return
        issued = [i for i in range(self.next_index) if self.journal[i].completable]
        issued += [signal_slot(s) for s in range(FIRST_SIGNAL_INDEX, self.next_signal)]
        cancelled = {i for i in [*issued, *indexes] if i not in before and not self._is_run(i)}
        if not cancelled:
            return
        self.cancel_delivered = True
        failure = Outcome.fail(CANCELLED_CODE, "cancelled")
        for index in cancelled:
            self.completions[index] = (cancel[0], failure)
            fut = self.futures.pop(index, None)
            if fut is not None and not fut.done():
                fut.set_result(failure)
                self.futures[index] = fut

    def _is_run(self, index: int) -> bool:
        return index < len(self.journal) and isinstance(self.journal[index], Run)
