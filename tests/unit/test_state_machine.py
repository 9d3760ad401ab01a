"""The replay state machine and the context over it, driven by a fake transport: no engine."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

import pytest
from headway.sdk import (
    JournalMismatchError,
    RetryPolicy,
    RunOptions,
    Service,
    TerminalError,
    VirtualObject,
    Workflow,
    as_completed,
    gather,
    select,
)
from headway.sdk.context import DurableFuture, Request
from headway.sdk.errors import SuspendedError
from headway.sdk.ids import (
    InvocationId,
    awakeable_id,
    deterministic_invocation_id,
    parse_awakeable_id,
    partition_key_for,
)
from headway.sdk.journal import (
    Awakeable,
    Call,
    CancelInvocation,
    ClearAllState,
    ClearState,
    Command,
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
from headway.sdk.server_context import ServerContext
from headway.sdk.state_machine import StateMachine

NOW = 1_700_000_000_000
INV = str(InvocationId(7, bytes(range(16))))
OTHER_INV = str(InvocationId(8, bytes(range(1, 17))))
FAST = RetryPolicy(initial_interval=timedelta(0), max_interval=timedelta(0))


class FakeTransport:
    """Records what the state machine asks for; every append is durable at once."""

    def __init__(self) -> None:
        self.appends: list[tuple[int, Command]] = []
        self.run_outcomes: list[tuple[int, Outcome]] = []
        self.blocked_count = 0
        self.deliver_runs = True
        self.sm: StateMachine | None = None
        self.seq = 100

    def append(self, index: int, command: Command) -> Awaitable[None]:
        self.appends.append((index, command))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def propose_run_outcome(self, index: int, outcome: Outcome) -> None:
        self.run_outcomes.append((index, outcome))
        if self.deliver_runs:
            self.deliver(index, outcome)

    def blocked(self) -> None:
        self.blocked_count += 1

    def deliver(self, index: int, outcome: Outcome) -> None:
        """A completion arriving from the engine, in arrival order."""
        assert self.sm is not None
        self.sm.complete(index, self.seq, outcome)
        self.seq += 1


def make(
    journal: list[Command] | None = None,
    completions: dict[int, tuple[int, Outcome]] | None = None,
    *,
    state: dict[str, bytes] | None = None,
    key: str | None = "k",
    always_replay: bool = False,
    invocation_id: str = INV,
) -> tuple[ServerContext, FakeTransport]:
    transport = FakeTransport()
    sm = StateMachine(
        list(journal or []), dict(completions or {}), transport, always_replay=always_replay
    )
    transport.sm = sm
    request = Request(id=invocation_id, headers={}, body=b"")
    ctx = ServerContext(sm, request, Target("Svc", "h", key), dict(state or {}), lambda: NOW)
    return ctx, transport


async def ticks(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    return asyncio.get_running_loop().create_task(coro)


def ok(value: bytes = b"") -> Outcome:
    return Outcome.ok(value)


@dataclasses.dataclass
class Point:
    x: int
    y: int


# Services whose handlers calls can name by function.
other = Service("Other")


@other.handler()
async def other_h(ctx: Any, n: int) -> int:
    return n


obj = VirtualObject("Obj")


@obj.handler()
async def obj_h(ctx: Any) -> Point:
    return Point(1, 2)


flow = Workflow("Flow")


@flow.main()
async def flow_run(ctx: Any) -> str:
    return ""


# -- replay --------------------------------------------------------------------------------


async def test_replay_returns_recorded_values_without_appending() -> None:
    call_id = str(InvocationId(1, bytes(16)))
    journal: list[Command] = [
        GetState("a", b"1"),
        StateKeys(["a", "b"]),
        Run("r"),
        Sleep("", NOW + 1000),
        Call(Target("Other", "h"), b"", {}, None, call_id),
        Awakeable(),
        SetState("a", b"2"),
        Send(Target("Other", "h"), b"", {}, None, call_id, 0),
    ]
    completions = {
        2: (0, ok(b'"ran"')),
        3: (2, ok()),
        4: (1, ok(b"42")),
        5: (3, ok(b'"woke"')),
    }
    ctx, transport = make(journal, completions, state={"a": b"9", "z": b"0"})
    calls: list[str] = []

    def action() -> str:
        calls.append("ran")
        return "live"

    assert ctx.sm.replaying
    assert await ctx.get("a") == 1  # the journal's value, not the current state's
    assert await ctx.state_keys() == ["a", "b"]
    assert await ctx.run("r", action) == "ran"
    await ctx.sleep(timedelta(seconds=1))
    assert await ctx.generic_call("Other", "h", b"") == b"42"
    name, fut = ctx.awakeable()
    assert name == awakeable_id(INV, 5, legacy=True)
    assert await fut == "woke"
    ctx.set("a", 2)
    handle = ctx.generic_send("Other", "h", b"")
    assert await handle.invocation_id() == call_id  # the journaled id, not a new one
    assert not ctx.sm.replaying
    assert calls == []
    assert transport.appends == []
    assert transport.run_outcomes == []
    assert transport.blocked_count == 0

    ctx.set("b", 3)
    assert transport.appends == [(8, SetState("b", b"3"))]


async def test_replayed_run_without_outcome_executes_again_without_appending() -> None:
    ctx, transport = make([Run("r")])
    assert await ctx.run("r", lambda: 5) == 5
    assert transport.appends == []
    assert transport.run_outcomes == [(0, ok(b"5"))]


@pytest.mark.parametrize(
    "recorded,issue,journal_text,handler_text",
    [
        (Run("a"), lambda ctx: ctx.run("b", lambda: 1), "Run('a')", "Run('b')"),
        (Sleep("", 5), lambda ctx: ctx.get("x"), "Sleep", "GetState('x')"),
        (
            Call(Target("A", "h"), b"", {}, None, INV),
            lambda ctx: ctx.generic_call("B", "h", b""),
            "Call(A/h)",
            "Call(B/h)",
        ),
        (
            Call(Target("A", "h", "k1"), b"", {}, None, INV),
            lambda ctx: ctx.generic_call("A", "h", b"", key="k2"),
            "Call(A/k1/h)",
            "Call(A/k2/h)",
        ),
        (SetState("x", b"1"), lambda ctx: ctx.clear("x"), "SetState('x')", "ClearState('x')"),
        (GetState("x", None), lambda ctx: ctx.get("y"), "GetState('x')", "GetState('y')"),
        (Awakeable(), lambda ctx: ctx.sleep(timedelta(seconds=1)), "Awakeable", "Sleep"),
    ],
)
async def test_a_different_path_raises_journal_mismatch(
    recorded: Command,
    issue: Callable[[ServerContext], Any],
    journal_text: str,
    handler_text: str,
) -> None:
    ctx, transport = make([recorded])
    with pytest.raises(JournalMismatchError) as caught:
        result = issue(ctx)
        if asyncio.iscoroutine(result):
            await result
    message = str(caught.value)
    assert "entry 0" in message
    assert f"the journal has {journal_text}," in message
    assert f"the handler now issued {handler_text}" in message
    assert ctx.sm.failure is caught.value
    assert transport.appends == []


async def test_mismatch_is_remembered_even_if_the_handler_swallows_it() -> None:
    ctx, _ = make([Run("a"), Run("b")])
    with contextlib.suppress(Exception):
        ctx.run("other", lambda: 1)
    assert isinstance(ctx.sm.failure, JournalMismatchError)


async def test_same_name_and_type_but_different_values_still_match() -> None:
    # Results and arguments are not compared: the journal supplies them on replay.
    ctx, transport = make([SetState("x", b"1"), Sleep("", 1), GetState("g", b"5")])
    ctx.set("x", 999)
    ctx.sleep(timedelta(days=1))
    assert await ctx.get("g") == 5
    assert transport.appends == []


# -- new commands --------------------------------------------------------------------------


async def test_new_commands_append_at_the_next_indexes() -> None:
    ctx, transport = make([SetState("a", b"1"), ClearState("a")])
    ctx.set("a", 1)
    ctx.clear("a")
    # replay over; everything from here is new
    ctx.set("b", {"x": 1})
    ctx.clear("c")
    ctx.clear_all()
    ctx.sleep(timedelta(seconds=2), name="nap")
    ctx.emit("topic", {"v": 1}, key="k", headers={"h": "s", "b": b"raw"}, cluster="c1")
    ctx.emit("topic", b"bytes")
    ctx.cancel_invocation(OTHER_INV)
    ctx.resolve_awakeable("prom_1x", [1])
    ctx.reject_awakeable("prom_1y", "nope", 418)
    assert transport.appends == [
        (2, SetState("b", b'{"x":1}')),
        (3, ClearState("c")),
        (4, ClearAllState()),
        (5, Sleep("nap", NOW + 2000)),
        (6, Emit("topic", b'{"v":1}', b"k", {"h": b"s", "b": b"raw"}, "c1")),
        (7, Emit("topic", b"bytes", None, {}, None)),
        (8, CancelInvocation(OTHER_INV)),
        (9, CompleteAwakeable("prom_1x", ok(b"[1]"))),
        (10, CompleteAwakeable("prom_1y", Outcome.fail(418, "nope"))),
    ]
    assert ctx.sm.journal[2:] == [c for _, c in transport.appends]


async def test_calls_and_sends_mint_the_right_invocation_ids() -> None:
    ctx, transport = make()
    ctx.service_call(other_h, 5, headers={"a": "b"})
    ctx.object_call(obj_h, "key-1")
    ctx.workflow_call(flow_run, "wf-1")
    ctx.service_call(other_h, 1, idempotency_key="ik")
    ctx.object_send(obj_h, "key-2", send_delay=timedelta(seconds=3))
    ctx.workflow_send("Flow/run", "wf-2")
    ctx.generic_call("Raw", "h", b"\x00", key="rk")
    commands = [c for _, c in transport.appends]
    assert [i for i, _ in transport.appends] == list(range(7))

    c0 = commands[0]
    assert isinstance(c0, Call)
    assert (c0.target, c0.input, c0.headers, c0.idempotency_key) == (
        Target("Other", "other_h"),
        b"5",
        {"a": "b"},
        None,
    )
    assert InvocationId.parse(c0.invocation_id)  # a fresh, valid id

    c1 = commands[1]
    assert isinstance(c1, Call) and c1.target == Target("Obj", "obj_h", "key-1")
    assert c1.input == b""
    assert InvocationId.parse(c1.invocation_id).partition_key == partition_key_for("Obj", "key-1")

    c2 = commands[2]
    assert isinstance(c2, Call) and c2.target == Target("Flow", "run", "wf-1")
    assert c2.invocation_id == deterministic_invocation_id(
        "Flow", "run", "wf-1", None, workflow_run=True
    )

    c3 = commands[3]
    assert isinstance(c3, Call) and c3.idempotency_key == "ik"
    assert c3.invocation_id == deterministic_invocation_id("Other", "other_h", None, "ik")

    c4 = commands[4]
    assert isinstance(c4, Send) and c4.invoke_at_ms == NOW + 3000
    assert c4.target == Target("Obj", "obj_h", "key-2")

    c5 = commands[5]
    assert isinstance(c5, Send) and c5.invoke_at_ms == 0
    assert c5.invocation_id == deterministic_invocation_id(
        "Flow", "run", "wf-2", None, workflow_run=True
    )

    c6 = commands[6]
    assert isinstance(c6, Call) and c6.target == Target("Raw", "h", "rk")
    assert c6.input == b"\x00"


async def test_send_handle_has_the_journaled_id() -> None:
    ctx, transport = make()
    handle = ctx.service_send(other_h, 1)
    [(_, command)] = transport.appends
    assert isinstance(command, Send)
    assert await handle.invocation_id() == command.invocation_id


async def test_call_result_uses_the_callee_output_serde() -> None:
    ctx, transport = make()
    fut = ctx.object_call(obj_h, "k")
    transport.deliver(0, ok(b'{"x":3,"y":4}'))
    assert await fut == Point(3, 4)


def test_calling_something_that_is_not_a_handler_is_a_type_error() -> None:
    ctx, _ = make()

    async def plain(ctx: Any) -> None:
        return None

    with pytest.raises(TypeError, match="not a handler"):
        ctx.service_call(plain)


# -- completions ---------------------------------------------------------------------------


async def test_completions_delivered_later_resolve_futures() -> None:
    ctx, transport = make()

    async def handler() -> str:
        await ctx.sleep(timedelta(seconds=1))
        _, awk = ctx.awakeable()
        value: str = await awk
        return value

    task = spawn(handler())
    await ticks()
    assert not task.done()
    assert ctx.sm.awaiting == {0}
    assert transport.blocked_count == 1
    transport.deliver(0, ok())
    await ticks()
    assert not task.done()
    assert ctx.sm.awaiting == {1}
    assert transport.blocked_count == 2
    transport.deliver(1, ok(b'"hi"'))
    assert await task == "hi"
    assert ctx.sm.awaiting == set()
    assert ctx.sm.completions == {0: (100, ok()), 1: (101, ok(b'"hi"'))}


async def test_a_failed_completion_raises_terminal_error() -> None:
    ctx, transport = make()
    _, awk = ctx.awakeable()
    transport.deliver(0, Outcome.fail(418, "teapot"))
    with pytest.raises(TerminalError) as caught:
        await awk
    assert caught.value.status_code == 418
    assert caught.value.message == "teapot"


async def test_duplicate_completion_is_ignored() -> None:
    ctx, transport = make()
    _, awk = ctx.awakeable()
    transport.deliver(0, ok(b"1"))
    progress = ctx.sm.progress
    transport.deliver(0, ok(b"2"))
    assert await awk == 1
    assert ctx.sm.completions[0] == (100, ok(b"1"))
    assert ctx.sm.progress == progress


async def test_waiting_on_known_completions_does_not_block() -> None:
    ctx, transport = make([Awakeable()], {0: (0, ok(b"1"))})
    _, awk = ctx.awakeable()
    assert awk.done()
    assert await awk == 1
    assert transport.blocked_count == 0
    assert ctx.sm.completion_order(0) == 0
    assert ctx.sm.completion_order(5) > 1 << 60


# -- combinators ---------------------------------------------------------------------------


@pytest.mark.parametrize("seq_a,seq_b,winner", [(5, 3, "b"), (3, 5, "a")])
async def test_select_on_replay_picks_the_earlier_completion(
    seq_a: int, seq_b: int, winner: str
) -> None:
    journal: list[Command] = [Awakeable(), Awakeable()]
    completions = {0: (seq_a, ok(b'"A"')), 1: (seq_b, ok(b'"B"'))}
    for _ in range(3):  # the same answer every time
        ctx, transport = make(journal, completions)
        _, a = ctx.awakeable()
        _, b = ctx.awakeable()
        name, value = await select(a=a, b=b)
        assert (name, value) == (winner, winner.upper())
        assert transport.blocked_count == 0


async def test_select_live_picks_the_first_to_complete() -> None:
    ctx, transport = make()
    _, a = ctx.awakeable()
    _, b = ctx.awakeable()
    _, c = ctx.awakeable()
    task = spawn(select(a=a, b=b, c=c))
    await ticks()
    assert not task.done()
    assert ctx.sm.awaiting == {0, 1, 2}
    transport.deliver(1, ok(b'"B"'))
    transport.deliver(0, ok(b'"A"'))
    assert await task == ("b", "B")
    # a replay of that journal picks the same one
    replay, _ = make(ctx.sm.journal, ctx.sm.completions)
    _, a2 = replay.awakeable()
    _, b2 = replay.awakeable()
    _, c2 = replay.awakeable()
    assert await select(a=a2, b=b2, c=c2) == ("b", "B")


async def test_select_returns_at_once_if_one_is_known() -> None:
    ctx, transport = make([Awakeable()], {0: (0, ok(b"1"))})
    _, a = ctx.awakeable()
    _, b = ctx.awakeable()
    assert await select(a=a, b=b) == ("a", 1)
    assert transport.blocked_count == 0


async def test_select_needs_futures() -> None:
    with pytest.raises(ValueError):
        await select()


async def test_gather_waits_for_all_and_keeps_argument_order() -> None:
    ctx, transport = make()
    _, a = ctx.awakeable()
    _, b = ctx.awakeable()
    _, c = ctx.awakeable()
    task = spawn(gather(a, b, c))
    await ticks()
    assert transport.blocked_count == 1
    transport.deliver(2, ok(b"3"))
    transport.deliver(0, ok(b"1"))
    await ticks()
    assert not task.done()
    transport.deliver(1, ok(b"2"))
    assert await task == [1, 2, 3]


async def test_gather_raises_a_failure() -> None:
    ctx, transport = make()
    _, a = ctx.awakeable()
    _, b = ctx.awakeable()
    transport.deliver(0, ok(b"1"))
    transport.deliver(1, Outcome.fail(400, "bad"))
    with pytest.raises(TerminalError, match="bad"):
        await gather(a, b)


async def test_gather_of_nothing_and_of_foreign_awaitables() -> None:
    assert await gather() == []

    class Foreign:
        pass

    with pytest.raises(TypeError):
        await gather(Foreign())  # type: ignore[arg-type]


async def test_as_completed_follows_completion_order() -> None:
    journal: list[Command] = [Awakeable(), Awakeable(), Awakeable()]
    completions = {0: (7, ok(b"0")), 1: (2, ok(b"1")), 2: (4, ok(b"2"))}
    ctx, _ = make(journal, completions)
    futures = [ctx.awakeable()[1] for _ in range(3)]
    order = [f async for f in as_completed(*futures)]
    assert [await f for f in order] == [1, 2, 0]


# -- always replay -------------------------------------------------------------------------


async def test_always_replay_suspends_after_a_new_awaited_command() -> None:
    ctx, transport = make(always_replay=True)
    with pytest.raises(SuspendedError):
        await ctx.get("x")
    assert transport.appends == [(0, GetState("x", None))]


async def test_always_replay_replays_recorded_commands_normally() -> None:
    ctx, transport = make([GetState("x", b"1"), StateKeys(["x"])], always_replay=True)
    assert await ctx.get("x") == 1
    assert await ctx.state_keys() == ["x"]
    assert transport.appends == []
    with pytest.raises(SuspendedError):
        await ctx.state_keys()


# -- ctx.run -------------------------------------------------------------------------------


async def test_run_executes_once_and_journals_its_outcome() -> None:
    ctx, transport = make()
    calls: list[int] = []

    async def action() -> dict[str, int]:
        calls.append(1)
        return {"n": 1}

    fut: DurableFuture[dict[str, int]] = ctx.run("step", action)
    assert await fut == {"n": 1}
    assert await fut == {"n": 1}
    assert calls == [1]
    assert transport.appends == [(0, Run("step"))]
    assert transport.run_outcomes == [(0, ok(b'{"n":1}'))]
    assert ctx.sm.runs_in_flight == 0


async def test_run_passes_arguments_and_uses_the_type_hint() -> None:
    ctx, _ = make()

    async def make_point(x: int, y: int) -> Point:
        return Point(x, y)

    fut: DurableFuture[Point] = ctx.run("p", make_point, 1, 2, options=RunOptions(type_hint=Point))
    assert await fut == Point(1, 2)


async def test_run_with_a_sync_function_runs_off_the_loop() -> None:
    ctx, _ = make()
    loop_thread = threading.get_ident()

    def blocking(x: int) -> list[int]:
        return [x, threading.get_ident()]

    x, thread = await ctx.run("sync", blocking, 3)
    assert x == 3
    assert thread != loop_thread

    async def on_loop() -> int:
        return threading.get_ident()

    fut: DurableFuture[int] = ctx.run("async", on_loop)
    assert await fut == loop_thread


async def test_run_retries_until_it_succeeds() -> None:
    ctx, transport = make()
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("try again")
        return "ok"

    options = RunOptions(retry_policy=RetryPolicy(initial_interval=timedelta(0), max_attempts=5))
    assert await ctx.run("flaky", flaky, options=options) == "ok"
    assert len(calls) == 3
    assert transport.run_outcomes == [(0, ok(b'"ok"'))]


async def test_run_retries_forever_by_default() -> None:
    ctx, _ = make()
    calls: list[int] = []

    async def flaky() -> int:
        calls.append(1)
        if len(calls) <= 20:
            raise RuntimeError("again")
        return len(calls)

    fut: DurableFuture[int] = ctx.run("flaky", flaky, options=RunOptions(retry_policy=FAST))
    assert await fut == 21


async def test_run_gives_up_with_a_terminal_failure_after_max_attempts() -> None:
    ctx, transport = make()
    calls: list[int] = []

    async def broken() -> None:
        calls.append(1)
        raise ValueError("nope")

    policy = RetryPolicy(initial_interval=timedelta(0), max_attempts=3)
    with pytest.raises(TerminalError) as caught:
        fut: DurableFuture[None] = ctx.run(
            "broken", broken, options=RunOptions(retry_policy=policy)
        )
        await fut
    assert len(calls) == 3
    assert caught.value.status_code == 500
    assert "failed 3 times" in caught.value.message and "nope" in caught.value.message
    [(index, outcome)] = transport.run_outcomes
    assert index == 0 and outcome.failure is not None and outcome.failure.code == 500


async def test_terminal_error_in_a_run_is_not_retried() -> None:
    ctx, transport = make()
    calls: list[int] = []

    def refuse() -> None:
        calls.append(1)
        raise TerminalError("insufficient funds", 402)

    with pytest.raises(TerminalError) as caught:
        await ctx.run("pay", refuse, options=RunOptions(retry_policy=FAST))
    assert calls == [1]
    assert caught.value.status_code == 402
    assert transport.run_outcomes == [(0, Outcome.fail(402, "insufficient funds"))]


async def test_awaiting_a_run_does_not_report_blocked() -> None:
    # While a run executes the handler is not waiting on completions only: a transport that
    # suspends on `blocked` would abort the run.
    ctx, transport = make()
    release = asyncio.Event()

    async def slow() -> int:
        await release.wait()
        return 1

    async def handler() -> int:
        value: int = await ctx.run("slow", slow)  # awaited before the run's task started
        return value

    task = spawn(handler())
    await ticks()
    assert ctx.sm.runs_in_flight == 1
    assert transport.blocked_count == 0
    release.set()
    assert await task == 1
    assert ctx.sm.runs_in_flight == 0


async def test_run_outcome_arriving_later_is_awaited() -> None:
    ctx, transport = make()
    transport.deliver_runs = False
    fut = ctx.run("r", lambda: 1)
    task = spawn(_result(fut))
    await ticks()
    assert transport.run_outcomes == [(0, ok(b"1"))]
    assert not task.done()
    transport.deliver(0, ok(b"1"))
    assert await task == 1


async def _result(fut: Awaitable[Any]) -> Any:
    return await fut


async def test_time_is_a_journaled_run() -> None:
    ctx, transport = make()
    now = await ctx.time()
    assert now > 1_600_000_000
    assert transport.appends == [(0, Run("time"))]
    replay, replay_transport = make([Run("time")], {0: (0, ok(b"123.5"))})
    assert await replay.time() == 123.5
    assert replay_transport.run_outcomes == []


# -- state ---------------------------------------------------------------------------------


async def test_state_get_set_clear_and_keys() -> None:
    ctx, transport = make(state={"b": b"2", "a": b'"one"'})
    assert await ctx.get("missing") is None
    assert await ctx.get("a") == "one"
    assert await ctx.state_keys() == ["a", "b"]
    ctx.set("c", {"deep": [1, 2]})
    assert await ctx.get("c") == {"deep": [1, 2]}
    assert await ctx.state_keys() == ["a", "b", "c"]
    ctx.clear("a")
    assert await ctx.get("a") is None
    ctx.clear("never-there")
    ctx.set("p", Point(1, 2))
    assert await ctx.get("p", Point) == Point(1, 2)
    ctx.set("raw", b"\x00\x01")
    assert await ctx.get("raw", bytes) == b"\x00\x01"
    ctx.clear_all()
    assert await ctx.state_keys() == []
    assert await ctx.get("b") is None
    assert ctx.state == {}
    kinds = [type(c).__name__ for _, c in transport.appends]
    assert kinds == [
        "GetState", "GetState", "StateKeys", "SetState", "GetState", "StateKeys", "ClearState",
        "GetState", "ClearState", "SetState", "GetState", "SetState", "GetState",
        "ClearAllState", "StateKeys", "GetState",
    ]  # fmt: skip
    # a read journals the value it saw
    assert transport.appends[1] == (1, GetState("a", b'"one"'))
    assert transport.appends[4] == (4, GetState("c", b'{"deep":[1,2]}'))
    assert transport.appends[7] == (7, GetState("a", None))


async def test_state_set_to_none_reads_back_none() -> None:
    ctx, _ = make()
    ctx.set("n", None)
    assert await ctx.get("n") is None
    assert await ctx.state_keys() == ["n"]


def test_key() -> None:
    assert make(key="user-1")[0].key() == "user-1"
    with pytest.raises(TerminalError):
        make(key=None)[0].key()


# -- determinism helpers -------------------------------------------------------------------


def test_random_and_uuid_are_deterministic_per_invocation() -> None:
    def draw(invocation_id: str) -> tuple[list[float], list[uuid.UUID], int]:
        ctx, _ = make(invocation_id=invocation_id)
        floats = [ctx.random().random() for _ in range(3)]
        uuids = [ctx.uuid() for _ in range(3)]
        return floats, uuids, ctx.random().randint(0, 1 << 30)

    first = draw(INV)
    assert draw(INV) == first
    assert draw(OTHER_INV) != first
    floats, uuids, _ = first
    assert len(set(floats)) == 3 and len(set(uuids)) == 3
    assert all(u.version == 4 for u in uuids)


async def test_awakeable_ids_carry_the_invocation_and_journal_index() -> None:
    ctx, transport = make([Run("a"), Run("b")], {0: (0, ok()), 1: (1, ok())})
    ctx.sm.next_index = 2  # as if both runs had been replayed
    name, _ = ctx.awakeable()
    assert name.startswith("prom_1")
    assert name == awakeable_id(INV, 2, legacy=True)
    assert parse_awakeable_id(name) == (InvocationId.parse(INV), 2)
    assert transport.appends == [(2, Awakeable())]


# -- promises ------------------------------------------------------------------------------


async def test_promise_value_peek_resolve_and_reject() -> None:
    ctx, transport = make(key="wf-1")
    promise = ctx.promise("p")

    peek = spawn(promise.peek())
    await ticks()
    transport.deliver(0, Outcome(value=None))
    assert await peek is None

    value = promise.value()
    assert not value.done()
    transport.deliver(1, ok(b'"v"'))
    assert await value == "v"

    resolve = spawn(promise.resolve({"a": 1}))
    await ticks()
    transport.deliver(2, ok())
    await resolve

    reject = spawn(promise.reject("late", 409))
    await ticks()
    transport.deliver(3, Outcome.fail(409, "promise already completed"))
    with pytest.raises(TerminalError) as caught:
        await reject
    assert caught.value.status_code == 409

    assert [c for _, c in transport.appends] == [
        PeekPromise("p"),
        GetPromise("p"),
        CompletePromise("p", ok(b'{"a":1}')),
        CompletePromise("p", Outcome.fail(409, "late")),
    ]


async def test_peek_of_a_resolved_promise_returns_its_value() -> None:
    ctx, _ = make([PeekPromise("p")], {0: (0, ok(b"5"))})
    assert await ctx.promise("p", int).peek() == 5


def test_request() -> None:
    ctx, _ = make()
    assert ctx.request().id == INV
