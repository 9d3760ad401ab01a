"""The express lane's runs, without a broker or a log: which records it runs ahead of the log,
what it submits, and that it never lets a handler do anything the log would not see.

A recording committer stands in for the real one: it numbers the entries submitted, and the
test says when they are settled (written), the way a durable batch would.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from dict_store import DictStore
from headway.engine import keys
from headway.engine.entries import Entry, Express, Invoke
from headway.engine.express import ExpressLane
from headway.engine.registry import Registry
from headway.engine.store import StoreView
from headway.sdk import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    Service,
    TerminalError,
    VirtualObject,
    Workflow,
    ids,
)
from headway.sdk.journal import Emit, GetState, SetState, StateKeys, Target

side_effects: list[str] = []

counter = VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, amount: int) -> int:
    total: int = (await ctx.get("total") or 0) + amount
    ctx.set("total", total)
    ctx.emit("totals", {"total": total}, key=ctx.key())
    return total


@counter.handler()
async def with_step(ctx: ObjectContext, amount: int) -> None:
    side_effects.append("before")
    await ctx.run("step", lambda: side_effects.append("step"))


@counter.handler()
async def swallowing(ctx: ObjectContext, amount: int) -> None:
    try:
        await ctx.sleep(__import__("datetime").timedelta(seconds=1))
    except Exception:
        side_effects.append("swallowed")


@counter.handler()
async def awaiting(ctx: ObjectContext, amount: int) -> None:
    try:
        await asyncio.sleep(0)
        side_effects.append("after sleep")
    finally:
        side_effects.append("closed")


@counter.handler()
async def failing(ctx: ObjectContext, amount: int) -> None:
    ctx.set("total", 99)
    raise ValueError("boom")


@counter.handler()
async def terminal(ctx: ObjectContext, amount: int) -> None:
    raise TerminalError("no", 422)


@counter.handler()
async def listing(ctx: ObjectContext, amount: int) -> list[str]:
    return await ctx.state_keys()


@counter.handler()
async def who_am_i(ctx: ObjectContext, amount: int) -> str:
    return ctx.request().id


@counter.handler(kind="shared")
async def read(ctx: ObjectSharedContext, amount: int) -> int:
    return await ctx.get("total") or 0


@counter.handler(kind="shared")
async def write_from_shared(ctx: ObjectSharedContext, amount: int) -> None:
    ctx.set("total", 1)  # type: ignore[attr-defined]


relay = Service("Relay")


@relay.handler()
async def forward(ctx: Context, data: dict[str, Any]) -> None:
    ctx.emit("forwarded", data, headers={"n": str(ctx.request().kafka["offset"])})  # type: ignore[index]


signup = Workflow("Signup")


@signup.main()
async def start(ctx: Any, data: Any) -> None:
    return None


REGISTRY = Registry([counter, relay, signup])


def record(n: int, handler: str = "add", key: str | None = "a", body: bytes = b"1") -> Invoke:
    service = "Relay" if key is None else "Counter"
    src = {
        "sub": "sub_1", "group": "g", "cluster": "local", "topic": "t", "partition": 0,
        "offset": n, "timestamp": 1, "key": None, "headers": {},
    }  # fmt: skip
    return Invoke(f"inv_{n}", Target(service, handler, key), body, {"h": "v"}, None, 0, None, src)


class RecordingCommitter:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.settled = 0

    def submit_nowait(self, entry: Entry) -> int:
        self.entries.append(entry)
        return len(self.entries)

    def submit(self, entry: Entry) -> asyncio.Future[None]:
        self.entries.append(entry)
        return asyncio.get_running_loop().create_future()

    @property
    def submitted(self) -> int:
        return len(self.entries)


class Harness:
    def __init__(self) -> None:
        self.store = DictStore()
        self.committer = RecordingCommitter()
        self.lane = ExpressLane(self.store, REGISTRY, self.committer)  # type: ignore[arg-type]
        side_effects.clear()

    def entries(self) -> list[Entry]:
        return self.committer.entries

    def last(self) -> Entry:
        return self.committer.entries[-1]

    def put(self, key: bytes, value: Any) -> None:
        view = StoreView(self.store)
        view.put(key, value)
        self.store.commit(view)

    def settle(self, through: int | None = None) -> None:
        """The entries up to `through` (default: all) are written."""
        self.committer.settled = len(self.entries()) if through is None else through


def lane_test(fn: Any) -> Any:
    def wrapper() -> None:
        asyncio.run(fn(Harness()))

    wrapper.__name__ = fn.__name__
    return wrapper


@lane_test
async def test_a_state_and_emit_handler_runs_ahead_of_the_log(h: Harness) -> None:
    h.lane.submit(record(1))
    entry = h.last()
    assert isinstance(entry, Express)
    assert entry.invoke == record(1)
    assert entry.journal == (
        GetState("total", None), SetState("total", b"1"),
        Emit("totals", b'{"total":1}', b"a", {}, None),
    )  # fmt: skip
    assert h.lane.ran == 1 and h.lane.declined == 0


@lane_test
async def test_later_records_of_a_key_build_on_runs_not_yet_applied(h: Harness) -> None:
    h.put(keys.state("Counter", "a"), {"total": b"10"})
    h.lane.submit(record(1))
    h.lane.submit(record(2, body=b"5"))
    h.lane.submit(record(3, key="b"))
    journals = [e.journal[:2] for e in h.entries() if isinstance(e, Express)]
    assert journals == [
        (GetState("total", b"10"), SetState("total", b"11")),
        (GetState("total", b"11"), SetState("total", b"16")),
        (GetState("total", None), SetState("total", b"1")),
    ]


@lane_test
async def test_once_applied_a_key_reads_from_the_store_again(h: Harness) -> None:
    h.lane.submit(record(1))
    h.settle()
    h.put(keys.state("Counter", "a"), {"total": b"40"})  # as if another invocation wrote it
    h.lane.submit(record(2))
    entry = h.last()
    assert isinstance(entry, Express) and entry.journal[0] == GetState("total", b"40")


@lane_test
async def test_a_key_builds_on_its_last_run_until_that_run_is_settled(h: Harness) -> None:
    h.lane.submit(record(1))
    h.lane.submit(record(2))
    h.settle(through=1)  # the first run is in the store, the second not yet
    h.lane.submit(record(3))
    entry = h.last()
    assert isinstance(entry, Express) and entry.journal[0] == GetState("total", b"2")


@lane_test
async def test_keys_seen_long_ago_are_forgotten(h: Harness) -> None:
    for n in range(5000):
        h.lane.submit(record(n, key=f"k{n}"))
    h.settle()
    for n in range(5000, 9000):
        h.lane.submit(record(n, key=f"k{n}"))
    h.lane.submit(record(9000, key="k0"))
    assert len(h.lane._recent) + len(h.lane._older) <= 4096 + 1
    entry = h.last()
    assert isinstance(entry, Express) and entry.journal[0] == GetState("total", None)


@lane_test
async def test_a_held_key_sends_the_record_the_durable_way_without_running_it(
    h: Harness,
) -> None:
    h.put(keys.object_lock("Counter", "a"), ["inv_holder", []])
    h.lane.submit(record(1, "with_step"))
    assert h.entries() == [record(1, "with_step")]
    assert side_effects == []
    assert h.lane.declined == 1


@lane_test
async def test_a_shared_handler_runs_even_while_its_key_is_held(h: Harness) -> None:
    h.put(keys.object_lock("Counter", "a"), ["inv_holder", []])
    h.put(keys.state("Counter", "a"), {"total": b"3"})
    h.lane.submit(record(1, "read"))
    entry = h.last()
    assert isinstance(entry, Express) and entry.journal == (GetState("total", b"3"),)


@lane_test
async def test_a_step_sends_the_record_the_durable_way_before_the_step_runs(
    h: Harness,
) -> None:
    h.lane.submit(record(1, "with_step"))
    assert h.entries() == [record(1, "with_step")]
    assert side_effects == ["before"]  # the code before the step; the step itself never ran


@lane_test
async def test_catching_exception_does_not_keep_a_handler_in_the_lane(h: Harness) -> None:
    h.lane.submit(record(1, "swallowing"))
    assert h.entries() == [record(1, "swallowing")]
    assert side_effects == []


@lane_test
async def test_a_handler_that_awaits_something_is_closed_and_goes_the_durable_way(
    h: Harness,
) -> None:
    h.lane.submit(record(1, "awaiting"))
    assert h.entries() == [record(1, "awaiting")]
    assert side_effects == ["closed"]


@pytest.mark.parametrize("handler", ["failing", "terminal", "write_from_shared"])
def test_a_failing_handler_goes_the_durable_way_where_failures_are_handled(
    handler: str,
) -> None:
    async def run(h: Harness) -> None:
        h.lane.submit(record(1, handler))
        h.lane.submit(record(2))
        # Nothing of the failed run leaks into the next record's state.
        assert h.entries()[0] == record(1, handler)
        second = h.entries()[1]
        assert isinstance(second, Express) and second.journal[0] == GetState("total", None)

    asyncio.run(run(Harness()))


@lane_test
async def test_state_keys_are_journaled_for_validation(h: Harness) -> None:
    h.put(keys.state("Counter", "a"), {"b": b"1", "a": b"2"})
    h.lane.submit(record(1, "listing"))
    entry = h.last()
    assert isinstance(entry, Express) and entry.journal == (StateKeys(["a", "b"]),)


@lane_test
async def test_a_service_sink_sees_the_record_metadata(h: Harness) -> None:
    h.lane.submit(record(7, "forward", key=None, body=b'{"x": 1}'))
    entry = h.last()
    assert isinstance(entry, Express)
    assert entry.journal == (Emit("forwarded", b'{"x":1}', None, {"n": b"7"}, None),)


def test_only_in_process_handlers_that_are_not_workflows_use_the_lane() -> None:
    assert ExpressLane.serves(REGISTRY, "Counter", "add")
    assert ExpressLane.serves(REGISTRY, "Relay", "forward")
    assert not ExpressLane.serves(REGISTRY, "Signup", "start")
    assert not ExpressLane.serves(REGISTRY, "Counter", "missing")
    remote = Registry([VirtualObject("Remote")])
    remote.services["Remote"].deployment = "dp_1"
    assert not ExpressLane.serves(remote, "Remote", "x")


@lane_test
async def test_a_durable_submit_carries_the_output_and_tracks_the_key(h: Harness) -> None:
    durable = h.lane.submit_durable(record(1, body=b"4"))
    assert isinstance(durable, asyncio.Future)
    entry = h.last()
    assert isinstance(entry, Express) and entry.output == b"4"
    h.lane.submit(record(2))
    second = h.last()
    assert isinstance(second, Express) and second.journal[0] == GetState("total", b"4")


@lane_test
async def test_a_handler_that_keeps_taking_steps_stops_being_tried(h: Harness) -> None:
    for n in range(8):
        h.lane.submit(record(n, "with_step", key=f"k{n}"))
    assert side_effects == ["before"] * 8  # each try ran the code before the step
    for n in range(8, 8 + 255):
        h.lane.submit(record(n, "with_step", key=f"k{n}"))
    assert side_effects == ["before"] * 8  # skipped: straight to the durable way
    h.lane.submit(record(263, "with_step", key="k263"))
    assert side_effects == ["before"] * 9  # tried again, now and then
    assert all(isinstance(e, Invoke) for e in h.entries())
    h.lane.submit(record(264))
    assert isinstance(h.last(), Express)  # other handlers are not affected


@lane_test
async def test_a_held_key_does_not_count_against_its_handler(h: Harness) -> None:
    h.put(keys.object_lock("Counter", "a"), ["inv_holder", []])
    for n in range(20):
        h.lane.submit(record(n))
    h.lane.submit(record(20, key="b"))
    assert isinstance(h.last(), Express)


@lane_test
async def test_a_record_without_an_id_runs_as_the_invocation_its_source_names(
    h: Harness,
) -> None:
    unnamed = dataclasses.replace(record(7, "who_am_i"), invocation_id="")
    h.lane.submit(unnamed)
    entry = h.last()
    derived = ids.record_invocation_id("Counter", "a", "g", "t", 0, 7)
    assert isinstance(entry, Express) and entry.output == f'"{derived}"'.encode()
    assert entry.invoke.invocation_id == "" and entry.invoke.resolved_id == derived


@lane_test
async def test_a_record_that_reads_no_id_never_has_one_worked_out(h: Harness) -> None:
    derived: list[str] = []
    real = ids.record_invocation_id

    def counting(*args: Any) -> str:
        derived.append(real(*args))
        return derived[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ids, "record_invocation_id", counting)
        h.lane.submit(dataclasses.replace(record(1), invocation_id=""))
    assert isinstance(h.last(), Express) and derived == []
