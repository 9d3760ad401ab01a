"""Express entries in the processor, and the validation they rely on, over an in-memory store.

An express entry is a Kafka record whose handler already ran ahead of the log. It must take
effect whole (state, emits, offset; no invocation record) only when every read it made still
holds and nothing holds or waits for the key; in every other case it must become the ordinary
invocation of its record, in log order, so per-key order and exactly-once are kept.
"""

from __future__ import annotations

from typing import Any

import pytest
from dict_store import DictStore, apply_batch
from headway.engine import keys
from headway.engine.actions import Action, KafkaRecordDone, OutboxReady, RunAttempt
from headway.engine.entries import End, Entry, Express, Invoke
from headway.engine.express_check import replay_reads
from headway.engine.processor import Processor
from headway.engine.registry import Registry
from headway.sdk import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    Service,
    VirtualObject,
    Workflow,
)
from headway.sdk.ids import InvocationId
from headway.sdk.journal import (
    Awakeable,
    ClearAllState,
    ClearState,
    Command,
    Emit,
    GetState,
    Outcome,
    Run,
    SetState,
    StateKeys,
    Target,
)

NOW = 1_700_000_000_000

counts = VirtualObject("Counts")


@counts.handler()
async def on_record(ctx: ObjectContext, data: bytes) -> None:
    return None


@counts.handler(kind="shared")
async def peek(ctx: ObjectSharedContext, data: bytes) -> None:
    return None


relay = Service("Relay")


@relay.handler()
async def forward(ctx: Context, data: bytes) -> None:
    return None


signup = Workflow("Signup")


@signup.main()
async def run(ctx: Any, data: bytes) -> None:
    return None


KEY_A = Target("Counts", "on_record", "a")


def inv(n: int) -> str:
    return str(InvocationId(n, (n + 7000).to_bytes(16, "big")))


def source(offset: int, partition: int = 0) -> dict[str, Any]:
    return {
        "sub": "sub_1", "group": "g1", "cluster": "local", "topic": "clicks",
        "partition": partition, "offset": offset, "timestamp": 1, "key": b"a", "headers": {},
    }  # fmt: skip


def express(n: int, offset: int, journal: tuple[Command, ...], target: Target = KEY_A) -> Express:
    invoke = Invoke(inv(n), target, b'{"v": 1}', {}, None, 0, None, source(offset))
    return Express(invoke, journal, NOW - 5)


def count(name: str, before: int | None, after: int) -> tuple[Command, ...]:
    """A counter's run: read `name` (absent if `before` is None), write it, emit it."""
    read = None if before is None else str(before).encode()
    return (
        GetState(name, read),
        SetState(name, str(after).encode()),
        Emit("out", str(after).encode(), b"a", {}, None),
    )


class Partition:
    def __init__(self) -> None:
        self.store = DictStore()
        self.processor = Processor(Registry([counts, relay, signup]))
        self.expressed: list[Express] = []

    def batch(self, *entries: Entry) -> list[Action]:
        effects = apply_batch(self.processor, self.store, entries, NOW)[1]
        self.expressed = effects.expressed
        return effects.actions

    def state(self, service: str = "Counts", key: str = "a") -> dict[str, bytes] | None:
        return self.store.get(keys.state(service, key))  # type: ignore[no-any-return]

    def outbox(self) -> list[list[Any]]:
        return [self.store.get(k) for k in self.store.keys(keys.outbox_prefix("local"))]

    def offset(self) -> int | None:
        return self.store.get(keys.kafka_offset("g1", "clicks", 0))  # type: ignore[no-any-return]

    def status(self, n: int) -> dict[str, Any] | None:
        return self.store.get(keys.invocation(inv(n)))  # type: ignore[no-any-return]

    def lock(self, service: str = "Counts", key: str = "a") -> Any:
        return self.store.get(keys.object_lock(service, key))


@pytest.fixture
def p() -> Partition:
    return Partition()


# -- replay_reads: validation by value -----------------------------------------------------


@pytest.mark.parametrize(
    ("state", "journal", "expected"),
    [
        ({}, (), {}),
        ({}, (GetState("n", None),), {}),
        ({"n": b"1"}, (GetState("n", b"1"), SetState("n", b"2")), {"n": b"2"}),
        ({}, (SetState("n", b"1"), GetState("n", b"1")), {"n": b"1"}),  # reads its own write
        ({"n": b"1", "m": b"x"}, (ClearState("n"),), {"m": b"x"}),
        ({"n": b"1"}, (ClearState("absent"),), {"n": b"1"}),
        ({"n": b"1", "m": b"x"}, (ClearAllState(), GetState("n", None)), {}),
        ({"b": b"1", "a": b"2"}, (StateKeys(["a", "b"]),), {"a": b"2", "b": b"1"}),
        ({}, (SetState("z", b""), StateKeys(["z"])), {"z": b""}),
    ],
)
def test_reads_that_hold_give_the_state_after_the_run(
    state: dict[str, bytes], journal: tuple[Command, ...], expected: dict[str, bytes]
) -> None:
    result = replay_reads(state, journal)
    assert result is not None and result[0] == expected
    assert state == dict(state)  # the input is not changed in place


@pytest.mark.parametrize(
    ("state", "journal"),
    [
        ({"n": b"1"}, (GetState("n", None),)),  # it was absent when the handler ran
        ({}, (GetState("n", b"1"),)),  # it was there
        ({"n": b"2"}, (GetState("n", b"1"),)),  # another value
        ({"n": b"1"}, (SetState("n", b"5"), GetState("n", b"1"))),  # not its own write
        ({"n": b"1"}, (StateKeys([]),)),
        ({"n": b"1", "m": b""}, (StateKeys(["n"]),)),
        ({}, (ClearAllState(), StateKeys(["x"]))),
    ],
)
def test_a_read_that_no_longer_holds_fails_validation(
    state: dict[str, bytes], journal: tuple[Command, ...]
) -> None:
    assert replay_reads(state, journal) is None


@pytest.mark.parametrize("other", [Run("step"), Awakeable()])
def test_any_other_command_fails_validation(other: Command) -> None:
    assert replay_reads({}, (SetState("n", b"1"), other)) is None


def test_emits_come_back_in_order() -> None:
    first, second = Emit("t", b"1", None, {}, None), Emit("u", b"2", b"k", {}, "other")
    result = replay_reads({}, (first, SetState("n", b"1"), second))
    assert result is not None and result[1] == [first, second]


# -- the processor: taking effect whole ----------------------------------------------------


def test_an_express_run_on_a_free_key_takes_effect_whole(p: Partition) -> None:
    actions = p.batch(express(1, 0, count("n", None, 1)))
    assert p.state() == {"n": b"1"}
    assert p.outbox() == [["out", b"a", b"1", {}]]
    assert p.offset() == 0
    assert p.status(1) is None  # no invocation record stays behind
    assert p.lock() is None
    assert actions == [OutboxReady("local"), KafkaRecordDone("g1", "clicks", 0)]
    assert [e.invoke.invocation_id for e in p.expressed] == [inv(1)]


def test_consecutive_runs_of_one_key_in_one_batch_build_on_each_other(p: Partition) -> None:
    p.batch(
        express(1, 0, count("n", None, 1)), express(2, 1, count("n", 1, 2)),
        express(3, 2, count("n", 2, 3)),
    )  # fmt: skip
    assert p.state() == {"n": b"3"}
    assert [r[2] for r in p.outbox()] == [b"1", b"2", b"3"]
    assert p.offset() == 2
    assert len(p.expressed) == 3


def test_a_run_that_clears_the_state_deletes_it(p: Partition) -> None:
    p.batch(express(1, 0, count("n", None, 1)))
    p.batch(express(2, 1, (GetState("n", b"1"), ClearAllState())))
    assert p.state() is None


def test_a_service_sink_has_no_state_to_check(p: Partition) -> None:
    target = Target("Relay", "forward")
    p.batch(express(1, 0, (Emit("out", b"x", None, {}, "other"),), target))
    assert p.store.keys(keys.outbox_prefix("other")) != []
    assert p.offset() == 0 and p.status(1) is None


def test_a_redelivered_record_is_dropped(p: Partition) -> None:
    p.batch(express(1, 4, count("n", None, 1)))
    actions = p.batch(express(2, 4, count("n", 1, 2)))  # offset 4 again, reads hold
    assert p.state() == {"n": b"1"}
    assert len(p.outbox()) == 1
    assert actions == [KafkaRecordDone("g1", "clicks", 0)]
    assert p.expressed == [] and p.status(2) is None


def test_a_redelivered_record_whose_reads_fail_is_dropped_too(p: Partition) -> None:
    p.batch(express(1, 4, count("n", None, 1)))
    p.batch(express(2, 3, count("n", None, 1)))
    assert p.status(2) is None and p.state() == {"n": b"1"} and p.offset() == 4


# -- the processor: becoming an ordinary invocation ----------------------------------------


def test_a_stale_read_makes_it_an_ordinary_invocation(p: Partition) -> None:
    p.batch(express(1, 0, count("n", None, 1)))
    actions = p.batch(express(2, 1, count("n", None, 1)))  # it ran before n was 1
    assert p.state() == {"n": b"1"}  # its writes were not applied
    assert len(p.outbox()) == 1
    status = p.status(2)
    assert status is not None and status["st"] == "running" and status["src"] == source(1)
    assert p.offset() == 1  # the invocation consumed the record
    assert [type(a) for a in actions] == [RunAttempt]
    assert p.expressed == []


def test_a_held_key_queues_it_behind_the_holder_even_if_its_reads_hold(p: Partition) -> None:
    holder = Invoke(inv(9), KEY_A, b"{}", {}, None, 0, None, None)
    p.batch(holder)
    assert p.lock() == [inv(9), []]
    p.batch(express(1, 0, count("n", None, 1)))
    assert p.state() is None
    assert p.status(1)["st"] == "pending"  # type: ignore[index]
    assert p.lock() == [inv(9), [inv(1)]]
    actions = p.batch(End(inv(9), 1, Outcome.ok()))
    assert p.lock() == [inv(1), []]
    assert any(isinstance(a, RunAttempt) and a.invocation_id == inv(1) for a in actions)


def test_after_one_record_becomes_an_invocation_later_ones_of_its_key_queue_behind_it(
    p: Partition,
) -> None:
    p.batch(express(1, 0, count("n", None, 1)))
    # Record 1 ran against a state that changed: it becomes an invocation and takes the lock.
    # Record 2's reads happen to hold (it did not build on record 1), yet it must not overtake.
    p.batch(express(2, 1, count("n", None, 5)), express(3, 2, count("n", 1, 2)))
    assert p.state() == {"n": b"1"}
    assert p.status(2)["st"] == "running"  # type: ignore[index]
    assert p.status(3)["st"] == "pending"  # type: ignore[index]
    assert p.lock() == [inv(2), [inv(3)]]
    assert p.offset() == 2


def test_other_keys_are_not_held_up_by_a_held_key(p: Partition) -> None:
    p.batch(Invoke(inv(9), KEY_A, b"{}", {}, None, 0, None, None))
    p.batch(express(1, 0, count("n", None, 1), Target("Counts", "on_record", "b")))
    assert p.state(key="b") == {"n": b"1"} and p.status(1) is None


def test_a_shared_handler_does_not_wait_for_the_lock(p: Partition) -> None:
    p.batch(Invoke(inv(9), KEY_A, b"{}", {}, None, 0, None, None))
    p.batch(express(1, 0, (GetState("n", None),), Target("Counts", "peek", "a")))
    assert p.status(1) is None and p.offset() == 0


@pytest.mark.parametrize(
    "target",
    [Target("Counts", "missing", "a"), Target("Signup", "run", "w1"), Target("Nope", "x", "a")],
)
def test_an_unknown_handler_or_a_workflow_goes_the_ordinary_way(
    p: Partition, target: Target
) -> None:
    p.batch(express(1, 0, (), target))
    status = p.status(1)
    assert status is not None and p.expressed == []


# -- the processor: invocations from HTTP (no Kafka source) --------------------------------


def http_express(n: int, journal: tuple[Command, ...], output: bytes = b"7") -> Express:
    invoke = Invoke(inv(n), KEY_A, b"1", {"h": "v"}, None, 0, None, None)
    return Express(invoke, journal, NOW - 5, output)


def test_an_http_run_is_created_and_completed_at_once(p: Partition) -> None:
    actions = p.batch(http_express(1, count("n", None, 1)))
    status = p.status(1)
    assert status is not None
    assert (status["st"], status["a"], status["rc"], status["jl"]) == ("completed", 1, 0, 3)
    assert Outcome.decode(status["o"]) == Outcome.ok(b"7")
    assert status["ca"] == NOW - 5 and status["ma"] == NOW
    assert p.store.get(keys.journal(inv(1), 0)) == GetState("n", None).encode()
    assert p.state() == {"n": b"1"}
    assert p.lock() is None and p.store.get(keys.active(inv(1))) is None
    assert p.store.keys(keys.outbox_prefix("")) != []  # its emit, to the default cluster
    kinds = [type(a).__name__ for a in actions]
    assert kinds == ["ScheduleTimer", "OutboxReady", "Completed"]  # purge, emit, answer
    assert p.expressed == []  # counted like any invocation, from its status


def test_an_http_run_that_read_stale_state_runs_the_ordinary_way(p: Partition) -> None:
    p.batch(http_express(1, count("n", None, 1)))
    actions = p.batch(http_express(2, count("n", None, 1)))
    status = p.status(2)
    assert status is not None and status["st"] == "running" and status["jl"] == 0
    assert [type(a) for a in actions] == [RunAttempt]
    assert p.state() == {"n": b"1"}


def test_an_http_run_on_a_held_key_queues_behind_the_holder(p: Partition) -> None:
    p.batch(Invoke(inv(9), KEY_A, b"{}", {}, None, 0, None, None))
    p.batch(http_express(1, count("n", None, 1)))
    assert p.status(1)["st"] == "pending"  # type: ignore[index]
    assert p.lock() == [inv(9), [inv(1)]]
