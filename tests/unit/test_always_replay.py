"""Always-replay test mode: an attempt ends after every new step, so each one is replayed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta

import pytest
from headway.sdk.context import Request
from headway.sdk.errors import SuspendedError
from headway.sdk.journal import Command, Outcome, Run, SetState, Sleep, Target
from headway.sdk.server_context import ServerContext
from headway.sdk.state_machine import StateMachine

INV = "inv_1test"


class Transport:
    """Every append is durable at once; run outcomes come back as completions."""

    def __init__(self) -> None:
        self.appends: list[tuple[int, Command]] = []
        self.sm: StateMachine | None = None

    def append(self, index: int, command: Command) -> Awaitable[None]:
        self.appends.append((index, command))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def propose_run_outcome(self, index: int, outcome: Outcome) -> None:
        assert self.sm is not None
        self.sm.complete(index, index, outcome)

    def blocked(self) -> None:
        pass


def make(
    journal: list[Command] | None = None,
    completions: dict[int, tuple[int, Outcome]] | None = None,
) -> tuple[ServerContext, Transport]:
    transport = Transport()
    sm = StateMachine(list(journal or []), dict(completions or {}), transport, always_replay=True)
    transport.sm = sm
    request = Request(id=INV, headers={}, body=b"")
    return ServerContext(sm, request, Target("Obj", "h", "k"), {}, lambda: 0), transport


async def test_a_new_state_write_ends_the_attempt_once_journaled() -> None:
    ctx, transport = make()
    with pytest.raises(SuspendedError):
        ctx.set("x", 1)
    assert transport.appends == [(0, SetState("x", b"1"))]


async def test_a_run_ends_the_attempt_after_its_outcome_arrives() -> None:
    ctx, transport = make()
    future = ctx.run("step", lambda: 7)
    with pytest.raises(SuspendedError):
        await future
    assert transport.appends == [(0, Run("step"))]
    # The replay finds the outcome in the journal and goes on without ending the attempt.
    replay, again = make([Run("step")], {0: (0, Outcome.ok(b"7"))})
    assert await replay.run("step", lambda: 8) == 7
    assert again.appends == []


async def test_a_completion_arriving_while_waiting_ends_the_attempt() -> None:
    ctx, _ = make()
    waiter = asyncio.get_running_loop().create_task(_await(ctx.sleep(timedelta(seconds=1))))
    await asyncio.sleep(0)
    ctx.sm.complete(0, 0, Outcome.ok())
    with pytest.raises(SuspendedError):
        await waiter
    replay, _ = make([Sleep("", 1000)], {0: (0, Outcome.ok())})
    await replay.sleep(timedelta(seconds=1))  # the recorded wake-up: no suspension


async def _await(future: Awaitable[object]) -> object:
    return await future


async def test_no_replay_while_a_run_is_still_executing() -> None:
    """A replay then would find the step without an outcome and run it a second time."""
    ctx, _ = make()
    release = asyncio.Event()
    calls: list[int] = []

    async def slow() -> int:
        calls.append(1)
        await release.wait()
        return 1

    future = ctx.run("slow", slow)
    await asyncio.sleep(0)
    ctx.set("x", 1)  # no SuspendedError: the run is in flight
    assert await ctx.get("x") == 1
    release.set()
    with pytest.raises(SuspendedError):  # its outcome arrived: now replay
        await future
    assert calls == [1]
