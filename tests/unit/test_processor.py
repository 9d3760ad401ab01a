"""The partition processor, driven entry by entry over an in-memory store: no RocksDB, no I/O.

A `Partition` mimics the committer: each `batch` applies its entries (and the follow-up
entries they produce, in the same batch) over a `StoreView`, then commits the view's changes,
deletions included, into a dict of msgpack-encoded records, as RocksDB would hold them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from dict_store import DictStore
from headway.engine import keys
from headway.engine.actions import (
    AbortAttempt,
    Action,
    Completed,
    Notify,
    RunAttempt,
    ScheduleTimer,
)
from headway.engine.deployments.manifest import parse_manifest
from headway.engine.entries import (
    Append,
    AttemptFailed,
    Caller,
    Cancel,
    Complete,
    End,
    Entry,
    Invoke,
    Kill,
    ReplaceState,
    Suspend,
    TimerFired,
)
from headway.engine.processor import Effects, Processor
from headway.engine.registry import Registry
from headway.engine.store import StoreView
from headway.sdk import (
    Context,
    HandlerOptions,
    ObjectContext,
    ObjectSharedContext,
    Service,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)
from headway.sdk.ids import InvocationId, awakeable_id
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
from headway.sdk.protocol.signals import signal_slot

NOW = 1_700_000_000_000
MINUTE = 60_000
DAY = 86_400_000

# -- the services the registry knows -------------------------------------------------------

greeter = Service("Greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return f"hello {name}"


counter = VirtualObject("Counter", HandlerOptions(journal_retention=timedelta(minutes=1)))


@counter.handler()
async def add(ctx: ObjectContext, n: int) -> int:
    return n


@counter.handler(kind="shared")
async def peek(ctx: ObjectSharedContext) -> int:
    return 0


signup = Workflow("Signup", HandlerOptions(workflow_retention=timedelta(days=1)))


@signup.main()
async def signup_run(ctx: WorkflowContext, email: str) -> str:
    return email


@signup.handler()
async def click(ctx: WorkflowSharedContext, secret: str) -> None:
    return None


def make_registry() -> Registry:
    return Registry([greeter, counter, signup])


GREET = Target("Greeter", "greet")
ADD_A = Target("Counter", "add", "a")
ADD_B = Target("Counter", "add", "b")
PEEK_A = Target("Counter", "peek", "a")
WF_RUN = Target("Signup", "run", "wf-1")
WF_CLICK = Target("Signup", "click", "wf-1")

OK = Outcome.ok()
CANCELLED = Outcome.fail(409, "cancelled")
KILLED = Outcome.fail(409, "killed")


def inv(n: int) -> str:
    """A valid, reproducible invocation id."""
    return str(InvocationId(n, (n + 1000).to_bytes(16, "big")))


# -- the harness ---------------------------------------------------------------------------


class Partition:
    """One partition's processor and store, applying entries the way the committer does."""

    def __init__(self, now: int = NOW) -> None:
        self.store = DictStore()
        self.processor = Processor(make_registry())
        self.now = now
        self.applied: list[Entry] = []
        self.changes: dict[bytes, Any] = {}
        self.deleted: set[bytes] = set()
        self.history: list[tuple[int, list[Entry]]] = []
        self.finished: list[tuple[str, str]] = []  # the last batch's, with their status

    def batch(self, *entries: Entry, now: int | None = None) -> list[Action]:
        when = self.now if now is None else now
        self.history.append((when, list(entries)))
        view = StoreView(self.store)
        effects = Effects()
        self.applied = []
        for entry in entries:
            self._apply(entry, view, when, effects)
            while effects.entries:
                self._apply(effects.entries.popleft(), view, when, effects)
        self.changes = dict(view.changes)
        self.finished = [
            (invocation_id, status["st"]) for invocation_id, status in effects.finished
        ]
        self.deleted = {k for k, v in view.changes.items() if view.deleted(v)}
        self.store.commit(view)
        return effects.actions

    def _apply(self, entry: Entry, view: StoreView, now: int, effects: Effects) -> None:
        self.applied.append(entry)
        self.processor.apply(entry, view, now, effects)

    # -- reading the committed store

    def status(self, invocation_id: str) -> dict[str, Any]:
        status = self.store.get(keys.invocation(invocation_id))
        assert status is not None, f"no status for {invocation_id}"
        return status  # type: ignore[no-any-return]

    def st(self, invocation_id: str) -> str:
        return str(self.status(invocation_id)["st"])

    def exists(self, invocation_id: str) -> bool:
        return self.store.get(keys.invocation(invocation_id)) is not None

    def active(self, invocation_id: str) -> bool:
        return self.store.get(keys.active(invocation_id)) is not None

    def lock(self, service: str, key: str) -> Any:
        return self.store.get(keys.object_lock(service, key))

    def state(self, service: str, key: str) -> Any:
        return self.store.get(keys.state(service, key))

    def promises(self, workflow: str, key: str) -> Any:
        return self.store.get(keys.promises(workflow, key))

    def completion(self, invocation_id: str, index: int) -> tuple[int, Outcome] | None:
        raw = self.store.get(keys.completion(invocation_id, index))
        return None if raw is None else (raw[0], Outcome.decode(raw[1]))

    def timers(self) -> list[tuple[bytes, list[Any]]]:
        return [(k, self.store.get(k)) for k in self.store.keys(keys.TIMER)]

    def timer_for(self, *record: Any) -> bytes:
        found = [k for k, r in self.timers() if r == list(record)]
        assert len(found) == 1, (record, self.timers())
        return found[0]

    # -- driving invocations

    def invoke(
        self,
        invocation_id: str,
        target: Target,
        data: bytes = b"",
        *,
        caller: Caller | None = None,
        invoke_at_ms: int = 0,
        idempotency_key: str | None = None,
    ) -> list[Action]:
        entry = Invoke(
            invocation_id, target, data, {"h": "v"}, caller, invoke_at_ms, idempotency_key
        )
        return self.batch(entry)

    def append(
        self, invocation_id: str, command: Command, *, attempt: int | None = None
    ) -> list[Action]:
        """Appends at the journal's next index, from the current attempt."""
        status = self.status(invocation_id)
        a = status["a"] if attempt is None else attempt
        return self.batch(Append(invocation_id, a, status["jl"], command))

    def end(self, invocation_id: str, outcome: Outcome = OK) -> list[Action]:
        return self.batch(End(invocation_id, self.status(invocation_id)["a"], outcome))

    def fire(self, timer_key: bytes, now: int | None = None) -> list[Action]:
        return self.batch(TimerFired(timer_key), now=now)


def of_type(actions: list[Action], kind: type[Any]) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def keys_of(p: Partition, invocation_id: str) -> list[bytes]:
    raw = invocation_id.encode()
    return [k for k in p.store.data if raw in k]


def call(target: Target, callee: str, data: bytes = b"") -> Call:
    return Call(target, data, {}, None, callee)


def send(target: Target, callee: str, invoke_at_ms: int = 0) -> Send:
    return Send(target, b"", {}, None, callee, invoke_at_ms)


@pytest.fixture
def p() -> Partition:
    return Partition()


# -- new invocations -----------------------------------------------------------------------


def test_invoke_starts_an_attempt(p: Partition) -> None:
    actions = p.invoke(inv(1), GREET, b'"bob"')
    assert actions == [RunAttempt(inv(1))]
    status = p.status(inv(1))
    assert status["st"] == "running"
    assert status["a"] == 1
    assert status["t"] == GREET.encode()
    assert status["in"] == b'"bob"'
    assert status["h"] == {"h": "v"}
    assert status["jl"] == 0 and status["p"] == [] and status["w"] == []
    assert status["ca"] == NOW and status["ma"] == NOW
    assert status["lock"] is False
    assert p.active(inv(1))
    assert p.timers() == []


def test_invoke_keeps_idempotency_key_and_source(p: Partition) -> None:
    source = {
        "sub": "sub_1",
        "group": "g",
        "cluster": "c",
        "topic": "t",
        "partition": 0,
        "offset": 7,
    }
    p.batch(Invoke(inv(1), GREET, b"", {}, None, 0, "ik-1", source))
    status = p.status(inv(1))
    assert status["ik"] == "ik-1"
    assert status["src"] == source


@pytest.mark.parametrize(
    "target",
    [Target("Nope", "greet"), Target("Greeter", "nope"), Target("Counter", "nope", "a")],
)
def test_unknown_service_or_handler_completes_with_404(p: Partition, target: Target) -> None:
    actions = p.invoke(inv(1), target)
    assert of_type(actions, RunAttempt) == []
    [completed] = of_type(actions, Completed)
    assert completed.invocation_id == inv(1)
    assert completed.outcome.failure is not None
    assert completed.outcome.failure.code == 404
    assert str(target) in completed.outcome.failure.message
    assert p.st(inv(1)) == "completed"
    assert not p.active(inv(1))
    [(_, purge)] = p.timers()
    assert purge == ["purge", inv(1)]


@pytest.mark.parametrize(
    "target",
    [
        Target("Counter", "add"),
        Target("Counter", "add", ""),
        Target("Counter", "peek"),
        Target("Signup", "run"),
        Target("Signup", "click", ""),
    ],
)
def test_keyed_target_without_a_key_completes_with_400(p: Partition, target: Target) -> None:
    actions = p.invoke(inv(1), target)
    assert of_type(actions, RunAttempt) == []
    [completed] = of_type(actions, Completed)
    assert completed.outcome.failure is not None
    assert completed.outcome.failure.code == 400
    assert p.st(inv(1)) == "completed"
    assert p.store.keys(keys.OBJECT_LOCK) == []


def test_failed_invoke_with_a_caller_answers_the_caller(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    actions = p.append(inv(1), call(Target("Nope", "x"), inv(2)))
    [notify] = of_type(actions, Notify)
    assert notify.invocation_id == inv(1) and notify.index == 0
    assert notify.outcome.failure is not None and notify.outcome.failure.code == 404
    assert p.status(inv(2))["by"] == inv(1)


# -- per-key locks -------------------------------------------------------------------------


def test_exclusive_handlers_queue_per_key_in_fifo_order(p: Partition) -> None:
    assert p.invoke(inv(1), ADD_A) == [RunAttempt(inv(1))]
    assert p.invoke(inv(2), ADD_A) == []
    assert p.invoke(inv(3), ADD_A) == []
    assert p.invoke(inv(4), ADD_A) == []
    assert p.invoke(inv(5), ADD_B) == [RunAttempt(inv(5))]  # another key is not blocked
    assert [p.st(inv(n)) for n in (1, 2, 3, 4, 5)] == [
        "running",
        "pending",
        "pending",
        "pending",
        "running",
    ]
    assert not p.active(inv(2))
    assert p.lock("Counter", "a") == [inv(1), [inv(2), inv(3), inv(4)]]
    assert p.lock("Counter", "b") == [inv(5), []]
    assert p.status(inv(1))["lock"] is True
    assert p.status(inv(2))["lock"] is False

    order: list[str] = []
    for n in (1, 2, 3, 4):
        actions = p.end(inv(n), Outcome.ok(b"%d" % n))
        started = of_type(actions, RunAttempt)
        order.extend(a.invocation_id for a in started)
        assert Completed(inv(n), Outcome.ok(b"%d" % n)) in actions
    assert order == [inv(2), inv(3), inv(4)]
    assert p.status(inv(4))["a"] == 1 and p.status(inv(4))["lock"] is False
    assert keys.object_lock("Counter", "a") in p.deleted
    assert p.lock("Counter", "a") is None
    assert p.lock("Counter", "b") == [inv(5), []]


def test_exclusive_invocations_in_one_batch_queue_too(p: Partition) -> None:
    actions = p.batch(*(Invoke(inv(n), ADD_A, b"", {}) for n in (1, 2, 3)))
    assert actions == [RunAttempt(inv(1))]
    assert p.lock("Counter", "a") == [inv(1), [inv(2), inv(3)]]


def test_shared_handlers_do_not_take_the_lock(p: Partition) -> None:
    p.invoke(inv(1), ADD_A)
    p.invoke(inv(2), ADD_A)
    assert p.invoke(inv(3), PEEK_A) == [RunAttempt(inv(3))]
    assert p.invoke(inv(4), PEEK_A) == [RunAttempt(inv(4))]
    assert p.lock("Counter", "a") == [inv(1), [inv(2)]]
    assert p.status(inv(3))["lock"] is False
    # a shared handler on an unlocked key leaves no lock record behind
    p.invoke(inv(5), Target("Counter", "peek", "z"))
    assert p.lock("Counter", "z") is None
    # ending a shared invocation does not pass the lock on
    actions = p.end(inv(3))
    assert of_type(actions, RunAttempt) == []
    assert p.lock("Counter", "a") == [inv(1), [inv(2)]]


def test_services_never_lock(p: Partition) -> None:
    for n in (1, 2, 3):
        assert p.invoke(inv(n), GREET) == [RunAttempt(inv(n))]
    assert p.store.keys(keys.OBJECT_LOCK) == []


# -- workflows -----------------------------------------------------------------------------


def test_workflow_run_takes_the_lock_and_shared_handlers_do_not(p: Partition) -> None:
    wf = inv(10)
    assert p.invoke(wf, WF_RUN) == [RunAttempt(wf)]
    assert p.lock("Signup", "wf-1") == [wf, []]
    assert p.invoke(inv(11), WF_CLICK) == [RunAttempt(inv(11))]
    assert p.lock("Signup", "wf-1") == [wf, []]


def test_repeated_workflow_invoke_attaches(p: Partition) -> None:
    wf = inv(10)
    p.invoke(wf, WF_RUN, b'"a@b"')
    before = p.status(wf)

    # An ingress duplicate while it runs: nothing new starts, nothing changes.
    assert p.invoke(wf, WF_RUN, b'"other"') == []
    assert p.status(wf) == before
    assert p.lock("Signup", "wf-1") == [wf, []]

    # A calling invocation attaches: it waits for the run's result.
    caller = inv(1)
    p.invoke(caller, GREET)
    actions = p.append(caller, call(WF_RUN, wf))
    assert of_type(actions, RunAttempt) == []
    assert p.status(wf)["w"] == [[caller, 0]]
    assert p.status(wf)["a"] == 1

    result = Outcome.ok(b'"done"')
    actions = p.end(wf, result)
    assert Complete(caller, 0, result) in p.applied
    assert Notify(caller, 0, 0, result) in actions
    assert Completed(wf, result) in actions
    assert p.completion(caller, 0) == (0, result)

    # After completion, an ingress duplicate gets the stored result at once.
    actions = p.invoke(wf, WF_RUN)
    assert actions == [Completed(wf, result)]
    assert p.st(wf) == "completed"

    # And a caller duplicate gets it as a Complete follow-up entry.
    p.invoke(inv(2), GREET)
    actions = p.append(inv(2), call(WF_RUN, wf))
    assert Complete(inv(2), 0, result) in p.applied
    assert Notify(inv(2), 0, 0, result) in actions


def test_a_batch_lists_exactly_the_invocations_it_completed(p: Partition) -> None:
    """Observers (traces) take a batch's completions from this list, not from its changes."""
    p.invoke(inv(1), GREET)
    assert p.finished == []
    p.batch(
        End(inv(1), 1, Outcome.ok(b'"hi"')),
        Invoke(inv(2), GREET, b'"x"', {}),
        Invoke(inv(3), Target("Nope", "greet"), b"", {}),  # completes at once: 404
    )
    assert p.finished == [(inv(1), "completed"), (inv(3), "completed")]
    # Joining an invocation that has completed answers at once, but completes nothing.
    p.invoke(inv(1), GREET)
    assert p.finished == []


def test_workflow_is_purged_after_retention_then_runs_again(p: Partition) -> None:
    wf = inv(10)
    p.invoke(wf, WF_RUN)
    actions = p.end(wf, Outcome.ok(b"1"))
    [timer] = of_type(actions, ScheduleTimer)
    assert timer.due_ms == NOW + DAY
    p.fire(timer.timer_key, now=NOW + DAY)
    assert not p.exists(wf)
    assert p.invoke(wf, WF_RUN) == [RunAttempt(wf)]
    assert p.status(wf)["a"] == 1


def test_idempotent_invocation_attaches_while_pending(p: Partition) -> None:
    p.invoke(inv(1), ADD_A)
    p.invoke(inv(2), ADD_A, idempotency_key="k")
    p.invoke(inv(3), GREET)
    p.append(inv(3), Call(ADD_A, b"", {}, "k", inv(2)))
    assert p.status(inv(2))["w"] == [[inv(3), 0]]
    assert p.st(inv(2)) == "pending"
    p.end(inv(1))
    actions = p.end(inv(2), Outcome.ok(b"7"))
    assert Notify(inv(3), 0, 0, Outcome.ok(b"7")) in actions


# -- appends -------------------------------------------------------------------------------


def test_append_journals_commands_at_consecutive_indexes(p: Partition) -> None:
    p.invoke(inv(1), ADD_A)
    p.append(inv(1), GetState("x", None))
    p.append(inv(1), StateKeys([]))
    p.append(inv(1), Run("r"))
    status = p.status(inv(1))
    assert status["jl"] == 3
    assert status["p"] == [2]  # only completable commands wait
    assert p.store.get(keys.journal(inv(1), 0)) == GetState("x", None).encode()
    assert p.store.get(keys.journal(inv(1), 2)) == Run("r").encode()


@pytest.mark.parametrize(
    "make",
    [
        lambda s: Append(inv(1), s["a"] - 1, s["jl"], Run("r")),  # stale attempt
        lambda s: Append(inv(1), s["a"] + 1, s["jl"], Run("r")),  # future attempt
        lambda s: Append(inv(1), s["a"], s["jl"] + 1, Run("r")),  # gap
        lambda s: Append(inv(1), s["a"], s["jl"] - 1, Run("r")),  # index already taken
        lambda s: Append(inv(9), 1, 0, Run("r")),  # unknown invocation
    ],
)
def test_invalid_appends_are_ignored(p: Partition, make: Any) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), Run("first"))
    before = dict(p.store.data)
    actions = p.batch(make(p.status(inv(1))))
    assert actions == []
    assert p.changes == {}
    assert p.store.data == before


@pytest.mark.parametrize("state", ["suspended", "backing-off", "completed", "pending"])
def test_appends_when_not_running_are_ignored(p: Partition, state: str) -> None:
    p.invoke(inv(1), ADD_A)
    p.append(inv(1), Sleep("", NOW + MINUTE))
    target = inv(1)
    if state == "suspended":
        p.batch(Suspend(inv(1), 1, [0]))
    elif state == "backing-off":
        p.batch(AttemptFailed(inv(1), 1, "boom", NOW + 1000))
    elif state == "completed":
        p.end(inv(1))
    else:
        p.invoke(inv(2), ADD_A)
        target = inv(2)
    status = p.status(target)
    assert status["st"] == state
    attempt = max(status["a"], 1)
    actions = p.batch(Append(target, attempt, status["jl"], SetState("x", b"1")))
    assert actions == []
    assert p.changes == {}
    assert p.state("Counter", "a") is None


# -- state ---------------------------------------------------------------------------------


def test_set_clear_and_clear_all_state(p: Partition) -> None:
    p.invoke(inv(1), ADD_A)
    p.append(inv(1), SetState("x", b"1"))
    p.append(inv(1), SetState("y", b"2"))
    assert p.state("Counter", "a") == {"x": b"1", "y": b"2"}
    p.append(inv(1), SetState("x", b"3"))
    assert p.state("Counter", "a") == {"x": b"3", "y": b"2"}
    p.append(inv(1), ClearState("x"))
    assert p.state("Counter", "a") == {"y": b"2"}
    p.append(inv(1), ClearState("missing"))
    assert p.state("Counter", "a") == {"y": b"2"}
    p.append(inv(1), ClearState("y"))
    assert keys.state("Counter", "a") in p.deleted
    assert p.state("Counter", "a") is None
    p.append(inv(1), SetState("z", b"4"))
    p.append(inv(1), ClearAllState())
    assert keys.state("Counter", "a") in p.deleted
    assert p.state("Counter", "a") is None
    assert p.state("Counter", "b") is None
    assert p.status(inv(1))["jl"] == 8
    assert p.status(inv(1))["p"] == []


def test_state_is_per_object_key(p: Partition) -> None:
    p.invoke(inv(1), ADD_A)
    p.invoke(inv(2), ADD_B)
    p.append(inv(1), SetState("x", b"a"))
    p.append(inv(2), SetState("x", b"b"))
    p.append(inv(2), ClearAllState())
    assert p.state("Counter", "a") == {"x": b"a"}
    assert p.state("Counter", "b") is None


def test_state_writes_within_one_batch_accumulate(p: Partition) -> None:
    p.invoke(inv(1), ADD_A)
    p.batch(
        Append(inv(1), 1, 0, SetState("x", b"1")),
        Append(inv(1), 1, 1, SetState("y", b"2")),
        Append(inv(1), 1, 2, ClearState("x")),
    )
    assert p.state("Counter", "a") == {"y": b"2"}


def test_replace_state(p: Partition) -> None:
    p.batch(ReplaceState("Counter", "a", {"k": b"v"}))
    assert p.state("Counter", "a") == {"k": b"v"}


# -- timers and sleeps ---------------------------------------------------------------------


def test_sleep_schedules_a_timer_that_completes_it(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    actions = p.append(inv(1), Sleep("nap", NOW + MINUTE))
    [(timer_key, record)] = p.timers()
    assert record == ["wake", inv(1), 0]
    assert actions == [ScheduleTimer(NOW + MINUTE, timer_key)]
    assert keys.timer_due(timer_key) == NOW + MINUTE
    assert p.status(inv(1))["p"] == [0]

    actions = p.fire(timer_key, now=NOW + MINUTE)
    assert actions == [Notify(inv(1), 0, 0, OK)]
    assert p.completion(inv(1), 0) == (0, OK)
    assert p.status(inv(1))["p"] == []
    assert p.timers() == []

    # The same timer firing again (e.g. re-delivered after a restart) does nothing.
    assert p.fire(timer_key) == []
    assert p.changes == {}


def test_timer_keys_are_unique_and_ordered_by_due_time(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), Sleep("", NOW + 3 * MINUTE))
    p.append(inv(1), Sleep("", NOW + MINUTE))
    p.append(inv(1), Sleep("", NOW + MINUTE))
    records = [r for _, r in p.timers()]
    assert records == [["wake", inv(1), 1], ["wake", inv(1), 2], ["wake", inv(1), 0]]
    assert p.store.get(keys.TIMER_SEQ) == 3


def test_completion_seq_counts_arrivals_not_indexes(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), Sleep("", NOW + 2 * MINUTE))
    p.append(inv(1), Sleep("", NOW + MINUTE))
    later = p.timer_for("wake", inv(1), 0)
    sooner = p.timer_for("wake", inv(1), 1)
    assert p.fire(sooner) == [Notify(inv(1), 1, 0, OK)]
    assert p.fire(later) == [Notify(inv(1), 0, 1, OK)]
    assert p.completion(inv(1), 1) == (0, OK)
    assert p.completion(inv(1), 0) == (1, OK)


def test_duplicate_complete_is_ignored(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), Run("r"))
    assert p.batch(Complete(inv(1), 0, Outcome.ok(b"1"))) == [
        Notify(inv(1), 0, 0, Outcome.ok(b"1"))
    ]
    assert p.batch(Complete(inv(1), 0, Outcome.ok(b"2"))) == []
    assert p.changes == {}
    assert p.completion(inv(1), 0) == (0, Outcome.ok(b"1"))
    # completions of unknown invocations or of non-completable entries are ignored too
    assert p.batch(Complete(inv(9), 0, OK)) == []
    p.append(inv(1), GetState("x", None))
    assert p.batch(Complete(inv(1), 1, OK)) == []
    assert p.changes == {}


# -- calls and sends -----------------------------------------------------------------------


def test_call_invokes_the_callee_and_returns_its_result(p: Partition) -> None:
    caller, callee = inv(1), inv(2)
    p.invoke(caller, GREET)
    actions = p.append(caller, call(ADD_A, callee, b"5"))
    assert actions == [RunAttempt(callee)]
    [invoke] = [e for e in p.applied if isinstance(e, Invoke)]
    assert invoke == Invoke(callee, ADD_A, b"5", {}, Caller(caller, 0), 0, None)
    assert p.status(callee)["w"] == [[caller, 0]]
    assert p.status(callee)["by"] == caller
    assert p.status(caller)["p"] == [0]

    result = Outcome.ok(b"5")
    actions = p.end(callee, result)
    assert Complete(caller, 0, result) in p.applied
    assert Notify(caller, 0, 0, result) in actions
    assert Completed(callee, result) in actions
    assert p.status(caller)["p"] == []
    assert p.status(callee)["w"] == []


def test_call_failure_reaches_the_caller(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), call(GREET, inv(2)))
    failure = Outcome.fail(418, "teapot")
    actions = p.end(inv(2), failure)
    assert Notify(inv(1), 0, 0, failure) in actions


def test_call_to_a_busy_key_waits_in_the_queue(p: Partition) -> None:
    p.invoke(inv(1), ADD_A)
    p.invoke(inv(2), GREET)
    assert p.append(inv(2), call(ADD_A, inv(3))) == []
    assert p.st(inv(3)) == "pending"
    actions = p.end(inv(1))
    assert RunAttempt(inv(3)) in actions


def test_send_starts_the_callee_without_a_caller(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    actions = p.append(inv(1), send(GREET, inv(2)))
    assert actions == [RunAttempt(inv(2))]
    assert p.status(inv(2))["w"] == []
    assert p.status(inv(2))["by"] is None
    assert p.status(inv(1))["p"] == []  # a send does not wait
    actions = p.end(inv(2))
    assert of_type(actions, Notify) == []


def test_delayed_send_is_scheduled_then_started_by_its_timer(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    due = NOW + 5 * MINUTE
    actions = p.append(inv(1), send(ADD_A, inv(2), due))
    assert of_type(actions, RunAttempt) == []
    assert p.st(inv(2)) == "scheduled"
    assert not p.active(inv(2))
    timer_key = p.timer_for("invoke", inv(2))
    assert actions == [ScheduleTimer(due, timer_key)]
    assert p.lock("Counter", "a") is None

    actions = p.fire(timer_key, now=due)
    assert actions == [RunAttempt(inv(2))]
    assert p.st(inv(2)) == "running"
    assert p.lock("Counter", "a") == [inv(2), []]
    assert p.status(inv(2))["a"] == 1


def test_delayed_invocation_on_a_busy_key_queues_when_due(p: Partition) -> None:
    p.invoke(inv(1), ADD_A)
    p.invoke(inv(2), ADD_A, invoke_at_ms=NOW + MINUTE)
    assert p.lock("Counter", "a") == [inv(1), []]
    assert p.fire(p.timer_for("invoke", inv(2)), now=NOW + MINUTE) == []
    assert p.st(inv(2)) == "pending"
    assert p.lock("Counter", "a") == [inv(1), [inv(2)]]


def test_invoke_at_in_the_past_starts_now(p: Partition) -> None:
    assert p.invoke(inv(1), GREET, invoke_at_ms=NOW) == [RunAttempt(inv(1))]
    assert p.invoke(inv(2), GREET, invoke_at_ms=NOW - 1) == [RunAttempt(inv(2))]
    assert p.timers() == []


# -- suspension ----------------------------------------------------------------------------


def test_suspend_then_resume_on_a_waited_completion(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), Sleep("", NOW + MINUTE))
    p.append(inv(1), Awakeable())
    assert p.batch(Suspend(inv(1), 1, [0])) == []
    status = p.status(inv(1))
    assert status["st"] == "suspended" and status["wo"] == [0]
    assert not p.active(inv(1))
    assert keys.active(inv(1)) in p.deleted

    # a completion it does not wait for is stored; it stays suspended
    assert p.batch(Complete(inv(1), 1, Outcome.ok(b"x"))) == []
    assert p.st(inv(1)) == "suspended"
    assert p.completion(inv(1), 1) == (0, Outcome.ok(b"x"))

    actions = p.fire(p.timer_for("wake", inv(1), 0))
    assert actions == [RunAttempt(inv(1))]
    status = p.status(inv(1))
    assert status["st"] == "running" and status["a"] == 2 and status["wo"] == []
    assert p.active(inv(1))
    assert p.completion(inv(1), 0) == (1, OK)


def test_suspend_waiting_on_any_of_several(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), Awakeable())
    p.append(inv(1), Awakeable())
    p.batch(Suspend(inv(1), 1, [0, 1]))
    assert p.batch(Complete(inv(1), 1, OK)) == [RunAttempt(inv(1))]
    # the other completion arrives while the new attempt runs: it is notified
    assert p.batch(Complete(inv(1), 0, OK)) == [Notify(inv(1), 0, 1, OK)]


def test_suspend_after_the_awaited_completion_arrived_resumes_at_once(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), Awakeable())
    p.append(inv(1), Awakeable())
    p.batch(Complete(inv(1), 0, OK))
    actions = p.batch(Suspend(inv(1), 1, [0, 1]))
    assert actions == [RunAttempt(inv(1))]
    status = p.status(inv(1))
    assert status["st"] == "running" and status["a"] == 2


@pytest.mark.parametrize("attempt", [0, 2])
def test_stale_suspend_is_ignored(p: Partition, attempt: int) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), Awakeable())
    assert p.batch(Suspend(inv(1), attempt, [0])) == []
    assert p.changes == {}
    assert p.st(inv(1)) == "running"


def test_appends_from_the_suspended_attempt_are_ignored_after_resume(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), Awakeable())
    p.batch(Suspend(inv(1), 1, [0]))
    p.batch(Complete(inv(1), 0, OK))
    assert p.batch(Append(inv(1), 1, 1, Run("late"))) == []
    assert p.changes == {}
    assert p.append(inv(1), Run("new")) == []
    assert p.status(inv(1))["jl"] == 2


# -- failures and retries ------------------------------------------------------------------


def test_attempt_failed_backs_off_and_retries(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), Run("r"))
    retry_at = NOW + 500
    actions = p.batch(AttemptFailed(inv(1), 1, "ValueError: boom", retry_at))
    timer_key = p.timer_for("retry", inv(1))
    assert actions == [ScheduleTimer(retry_at, timer_key)]
    status = p.status(inv(1))
    assert status["st"] == "backing-off"
    assert status["rc"] == 1
    assert status["lf"] == "ValueError: boom"
    assert not p.active(inv(1))

    # a completion while backing off is stored, not notified
    assert p.batch(Complete(inv(1), 0, OK)) == []
    assert p.completion(inv(1), 0) == (0, OK)

    actions = p.fire(timer_key, now=retry_at)
    assert actions == [RunAttempt(inv(1))]
    status = p.status(inv(1))
    assert status["st"] == "running" and status["a"] == 2 and status["rc"] == 1
    assert p.active(inv(1))

    p.batch(AttemptFailed(inv(1), 2, "again", retry_at + 1000))
    assert p.status(inv(1))["rc"] == 2


def test_stale_attempt_failed_and_end_are_ignored(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.batch(AttemptFailed(inv(1), 1, "boom", NOW + 10))
    p.fire(p.timer_for("retry", inv(1)))
    before = dict(p.store.data)
    assert p.batch(AttemptFailed(inv(1), 1, "late", NOW + 10)) == []
    assert p.batch(End(inv(1), 1, OK)) == []
    assert p.batch(End(inv(9), 1, OK)) == []
    assert p.store.data == before


def test_retry_timer_of_a_killed_invocation_does_nothing(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.batch(AttemptFailed(inv(1), 1, "boom", NOW + 10))
    timer_key = p.timer_for("retry", inv(1))
    p.batch(Kill(inv(1)))
    assert p.fire(timer_key) == []
    assert p.st(inv(1)) == "completed"


# -- ending and purging --------------------------------------------------------------------


def test_end_completes_and_schedules_the_purge(p: Partition) -> None:
    p.invoke(inv(1), ADD_A)
    p.append(inv(1), Emit("t", b"v", None, {}, None))
    result = Outcome.ok(b"42")
    actions = p.end(inv(1), result)
    [timer] = of_type(actions, ScheduleTimer)
    assert timer.due_ms == NOW + MINUTE  # Counter's journal retention
    assert actions[-1] == Completed(inv(1), result)
    status = p.status(inv(1))
    assert status["st"] == "completed"
    assert Outcome.decode(status["o"]) == result
    assert status["lock"] is False
    assert status["em"] == [0]
    assert not p.active(inv(1))
    assert p.timer_for("purge", inv(1)) == timer.timer_key
    assert p.lock("Counter", "a") is None
    # a second End for the same attempt changes nothing
    assert p.batch(End(inv(1), 1, Outcome.ok(b"other"))) == []
    assert p.changes == {}


def test_service_retention_defaults_to_a_day(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    [timer] = of_type(p.end(inv(1)), ScheduleTimer)
    assert timer.due_ms == NOW + DAY


def test_purge_removes_status_journal_and_completions(p: Partition) -> None:
    p.invoke(inv(1), ADD_A)
    p.append(inv(1), SetState("x", b"1"))
    p.append(inv(1), Run("r"))
    p.batch(Complete(inv(1), 1, OK))
    p.append(inv(1), Sleep("", NOW + 10))
    p.fire(p.timer_for("wake", inv(1), 2))
    p.end(inv(1))
    assert len(keys_of(p, inv(1))) == 6  # status, 3 journal entries, 2 completions
    actions = p.fire(p.timer_for("purge", inv(1)), now=NOW + MINUTE)
    assert actions == []
    assert keys_of(p, inv(1)) == []
    assert p.timers() == []
    # the object's state outlives its invocations
    assert p.state("Counter", "a") == {"x": b"1"}


def test_timers_of_purged_invocations_are_ignored(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), Sleep("", NOW + 2 * DAY))
    wake = p.timer_for("wake", inv(1), 0)
    p.end(inv(1))
    p.fire(p.timer_for("purge", inv(1)))
    assert p.fire(wake) == []
    assert not p.exists(inv(1))


# -- cancellation --------------------------------------------------------------------------


def test_cancel_pending_invocation_removes_it_from_the_queue(p: Partition) -> None:
    for n in (1, 2, 3):
        p.invoke(inv(n), ADD_A)
    actions = p.batch(Cancel(inv(2)))
    assert Completed(inv(2), CANCELLED) in actions
    assert of_type(actions, RunAttempt) == []
    assert p.st(inv(2)) == "completed"
    assert p.lock("Counter", "a") == [inv(1), [inv(3)]]
    actions = p.end(inv(1))
    assert of_type(actions, RunAttempt) == [RunAttempt(inv(3))]
    # cancelling again does nothing
    assert p.batch(Cancel(inv(2))) == []
    assert p.changes == {}


def test_cancel_pending_callee_answers_its_caller(p: Partition) -> None:
    p.invoke(inv(1), ADD_A)
    p.invoke(inv(2), GREET)
    p.append(inv(2), call(ADD_A, inv(3)))
    actions = p.batch(Cancel(inv(3)))
    assert Notify(inv(2), 0, 0, CANCELLED) in actions


def test_cancel_scheduled_invocation(p: Partition) -> None:
    p.invoke(inv(1), GREET, invoke_at_ms=NOW + MINUTE)
    timer_key = p.timer_for("invoke", inv(1))
    actions = p.batch(Cancel(inv(1)))
    assert Completed(inv(1), CANCELLED) in actions
    assert p.fire(timer_key) == []
    assert p.st(inv(1)) == "completed"


def test_cancel_running_fails_pending_awaitables_but_not_runs(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), Run("r"))
    p.append(inv(1), Sleep("", NOW + MINUTE))
    p.append(inv(1), Awakeable())
    p.append(inv(1), call(GREET, inv(2)))
    p.append(inv(1), GetState("x", None))
    actions = p.batch(Cancel(inv(1)))
    assert actions == [
        Notify(inv(1), 1, 0, CANCELLED),
        Notify(inv(1), 2, 1, CANCELLED),
        Notify(inv(1), 3, 2, CANCELLED),
    ]
    status = p.status(inv(1))
    assert status["cx"] is False  # delivered to what it waited on; not kept for later steps
    assert status["p"] == [0]
    assert status["st"] == "running"
    # the run still completes normally
    assert p.batch(Complete(inv(1), 0, Outcome.ok(b"1"))) == [
        Notify(inv(1), 0, 3, Outcome.ok(b"1"))
    ]
    # compensating steps after the cancellation wait normally
    actions = p.append(inv(1), Sleep("", NOW + MINUTE))
    assert actions == [ScheduleTimer(NOW + MINUTE, p.timer_for("wake", inv(1), 5))]
    assert p.status(inv(1))["p"] == [5]
    # the cancelled sleep's timer later fires into nothing
    assert p.fire(p.timer_for("wake", inv(1), 1)) == []


def test_cancel_with_nothing_awaited_fails_the_next_awaited_step_once(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), Run("r"))
    assert p.batch(Cancel(inv(1))) == []
    assert p.status(inv(1))["cx"] is True
    assert p.append(inv(1), Sleep("", NOW + MINUTE)) == [Notify(inv(1), 1, 0, CANCELLED)]
    assert p.status(inv(1))["cx"] is False
    p.append(inv(1), Awakeable())
    assert p.status(inv(1))["p"] == [0, 2]


def test_cancel_suspended_invocation_resumes_it(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), Awakeable())
    p.batch(Suspend(inv(1), 1, [0]))
    actions = p.batch(Cancel(inv(1)))
    assert actions == [RunAttempt(inv(1))]
    assert p.completion(inv(1), 0) == (0, CANCELLED)


def test_cancel_backing_off_invocation_fails_awaitables_for_the_retry(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), Awakeable())
    p.append(inv(1), Run("r"))
    p.batch(AttemptFailed(inv(1), 1, "boom", NOW + 10))
    assert p.batch(Cancel(inv(1))) == []
    assert p.completion(inv(1), 0) == (0, CANCELLED)
    assert p.status(inv(1))["p"] == [1]
    assert p.fire(p.timer_for("retry", inv(1))) == [RunAttempt(inv(1))]
    assert p.status(inv(1))["cx"] is False  # delivered to the awakeable; not kept


def test_cancel_of_unknown_or_completed_does_nothing(p: Partition) -> None:
    assert p.batch(Cancel(inv(9))) == []
    p.invoke(inv(1), GREET)
    p.end(inv(1))
    assert p.batch(Cancel(inv(1))) == []
    assert p.changes == {}


def test_cancel_invocation_command_cancels_the_target(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.invoke(inv(2), GREET)
    p.append(inv(2), Awakeable())
    actions = p.append(inv(1), CancelInvocation(inv(2)))
    assert Cancel(inv(2)) in p.applied
    assert actions == [Notify(inv(2), 0, 0, CANCELLED)]


# -- kill ----------------------------------------------------------------------------------


def test_kill_running_aborts_and_releases_the_lock(p: Partition) -> None:
    p.invoke(inv(1), ADD_A)
    p.invoke(inv(2), ADD_A)
    p.append(inv(1), Awakeable())
    actions = p.batch(Kill(inv(1)))
    assert actions[0] == AbortAttempt(inv(1))
    assert Completed(inv(1), KILLED) in actions
    assert RunAttempt(inv(2)) in actions
    assert p.st(inv(1)) == "completed"
    assert not p.active(inv(1))
    assert p.lock("Counter", "a") == [inv(2), []]
    # late entries of the killed attempt are ignored
    assert p.batch(Append(inv(1), 1, 1, Run("r")), End(inv(1), 1, OK)) == []
    assert p.batch(Complete(inv(1), 0, OK)) == []


def test_kill_pending_removes_it_without_aborting(p: Partition) -> None:
    for n in (1, 2, 3):
        p.invoke(inv(n), ADD_A)
    actions = p.batch(Kill(inv(2)))
    assert of_type(actions, AbortAttempt) == []
    assert Completed(inv(2), KILLED) in actions
    assert p.lock("Counter", "a") == [inv(1), [inv(3)]]


def test_kill_suspended_lock_holder(p: Partition) -> None:
    p.invoke(inv(1), ADD_A)
    p.invoke(inv(2), ADD_A)
    p.append(inv(1), Awakeable())
    p.batch(Suspend(inv(1), 1, [0]))
    actions = p.batch(Kill(inv(1)))
    assert of_type(actions, AbortAttempt) == []
    assert RunAttempt(inv(2)) in actions


def test_kill_scheduled_invocation(p: Partition) -> None:
    p.invoke(inv(1), ADD_A, invoke_at_ms=NOW + MINUTE)
    timer_key = p.timer_for("invoke", inv(1))
    actions = p.batch(Kill(inv(1)))
    assert of_type(actions, AbortAttempt) == []
    assert Completed(inv(1), KILLED) in actions
    assert p.fire(timer_key) == []
    assert p.st(inv(1)) == "completed"
    assert p.lock("Counter", "a") is None


def test_kill_answers_the_caller(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    p.append(inv(1), call(GREET, inv(2)))
    actions = p.batch(Kill(inv(2)))
    assert Notify(inv(1), 0, 0, KILLED) in actions
    assert p.batch(Kill(inv(2))) == []


# -- promises ------------------------------------------------------------------------------


def test_get_promise_waits_until_completed(p: Partition) -> None:
    wf, clicker = inv(10), inv(11)
    p.invoke(wf, WF_RUN)
    assert p.append(wf, GetPromise("p")) == []
    assert p.status(wf)["p"] == [0]
    assert p.promises("Signup", "wf-1") == {"p": {"o": None, "w": [[wf, 0]]}}

    p.invoke(clicker, WF_CLICK)
    value = Outcome.ok(b'"secret"')
    actions = p.append(clicker, CompletePromise("p", value))
    assert Notify(clicker, 0, 0, OK) in actions
    assert Complete(wf, 0, value) in p.applied
    assert Notify(wf, 0, 0, value) in actions
    assert p.promises("Signup", "wf-1") == {"p": {"o": value.encode(), "w": []}}

    # a later GetPromise completes at once
    assert p.append(wf, GetPromise("p")) == [Notify(wf, 1, 1, value)]


def test_promise_can_be_completed_only_once(p: Partition) -> None:
    p.invoke(inv(10), WF_RUN)
    assert p.append(inv(10), CompletePromise("p", Outcome.ok(b"1"))) == [Notify(inv(10), 0, 0, OK)]
    actions = p.append(inv(10), CompletePromise("p", Outcome.ok(b"2")))
    [notify] = of_type(actions, Notify)
    assert notify.outcome.failure is not None and notify.outcome.failure.code == 409
    assert p.promises("Signup", "wf-1")["p"]["o"] == Outcome.ok(b"1").encode()


def test_peek_promise(p: Partition) -> None:
    p.invoke(inv(10), WF_RUN)
    assert p.append(inv(10), PeekPromise("p")) == [Notify(inv(10), 0, 0, Outcome(value=None))]
    assert p.completion(inv(10), 0) == (0, Outcome(value=None))
    # peeking registers no waiter
    assert p.promises("Signup", "wf-1") == {"p": {"o": None, "w": []}}
    rejected = Outcome.fail(400, "no")
    p.append(inv(10), CompletePromise("p", rejected))
    assert p.append(inv(10), PeekPromise("p")) == [Notify(inv(10), 2, 2, rejected)]
    assert p.append(inv(10), GetPromise("p")) == [Notify(inv(10), 3, 3, rejected)]


def test_promise_resolves_every_waiter_and_only_its_workflow(p: Partition) -> None:
    p.invoke(inv(10), WF_RUN)
    p.invoke(inv(11), WF_CLICK)
    p.invoke(inv(12), Target("Signup", "click", "wf-2"))
    p.append(inv(10), GetPromise("p"))
    p.append(inv(11), GetPromise("p"))
    p.append(inv(12), GetPromise("p"))
    p.append(inv(11), CompletePromise("q", OK))  # another promise
    assert p.status(inv(10))["p"] == [0]
    p.invoke(inv(13), WF_CLICK)
    actions = p.append(inv(13), CompletePromise("p", Outcome.ok(b"v")))
    notified = {(n.invocation_id, n.index) for n in of_type(actions, Notify)}
    assert notified == {(inv(10), 0), (inv(11), 0), (inv(13), 0)}
    assert p.status(inv(12))["p"] == [0]


# -- awakeables ----------------------------------------------------------------------------


def test_complete_awakeable_completes_the_owner(p: Partition) -> None:
    owner, other = inv(1), inv(2)
    p.invoke(owner, GREET)
    p.append(owner, Run("r"))
    p.append(owner, Awakeable())
    p.invoke(other, GREET)
    value = Outcome.ok(b'"yes"')
    actions = p.append(other, CompleteAwakeable(awakeable_id(owner, 1, legacy=True), value))
    assert Complete(owner, 1, value) in p.applied
    assert actions == [Notify(owner, 1, 0, value)]
    assert p.status(other)["p"] == []  # completing an awakeable does not wait


def test_complete_awakeable_resumes_a_suspended_owner(p: Partition) -> None:
    owner = inv(1)
    p.invoke(owner, GREET)
    p.append(owner, Awakeable())
    p.batch(Suspend(owner, 1, [0]))
    p.invoke(inv(2), GREET)
    failure = Outcome.fail(500, "rejected")
    actions = p.append(inv(2), CompleteAwakeable(awakeable_id(owner, 0, legacy=True), failure))
    assert actions == [RunAttempt(owner)]
    assert p.completion(owner, 0) == (0, failure)


def test_invalid_awakeable_id_is_ignored(p: Partition) -> None:
    p.invoke(inv(1), GREET)
    actions = p.append(inv(1), CompleteAwakeable("prom_1nonsense", OK))
    assert actions == []
    assert p.applied == [Append(inv(1), 1, 0, CompleteAwakeable("prom_1nonsense", OK))]
    assert p.status(inv(1))["jl"] == 1


# -- determinism ---------------------------------------------------------------------------


def scenario(p: Partition) -> list[list[Action]]:
    """A bit of everything, driven through `p`; returns the actions of every batch."""
    out: list[list[Action]] = []

    def b(*entries: Entry, now: int | None = None) -> None:
        out.append(p.batch(*entries, now=now))

    t = NOW
    b(
        Invoke(inv(1), ADD_A, b"1", {}),
        Invoke(inv(2), ADD_A, b"2", {}),
        Invoke(inv(3), PEEK_A, b"", {}),
        Invoke(inv(4), GREET, b'"x"', {}, None, t + 100),
        Invoke(inv(10), WF_RUN, b'"e"', {}),
    )
    b(Append(inv(1), 1, 0, SetState("n", b"1")), Append(inv(1), 1, 1, Sleep("", t + 50)))
    b(Append(inv(1), 1, 2, call(GREET, inv(5))), Append(inv(10), 1, 0, GetPromise("p")))
    b(Append(inv(5), 1, 0, Run("r")), Suspend(inv(1), 1, [1, 2]))
    b(Complete(inv(5), 0, Outcome.ok(b"3")), now=t + 10)
    b(AttemptFailed(inv(5), 1, "boom", t + 20), now=t + 11)
    for timer_key, _ in p.timers():
        if keys.timer_due(timer_key) <= t + 100:
            b(TimerFired(timer_key), now=t + 100)
    b(End(inv(5), 2, Outcome.ok(b'"hi"')), now=t + 101)
    b(Append(inv(1), 2, 3, CompleteAwakeable(awakeable_id(inv(3), 0, legacy=True), OK)))
    b(Append(inv(3), 1, 0, Awakeable()), Append(inv(11), 1, 0, Run("never")))
    b(Invoke(inv(11), WF_CLICK, b"", {}), now=t + 102)
    b(Append(inv(11), 1, 0, CompletePromise("p", Outcome.ok(b"7"))), now=t + 103)
    b(Append(inv(1), 2, 4, ClearAllState()), End(inv(1), 2, OK), now=t + 104)
    b(Cancel(inv(3)), Kill(inv(4)), Kill(inv(2)), now=t + 105)
    b(End(inv(10), 1, OK), End(inv(11), 1, OK), now=t + 106)
    for timer_key, _ in p.timers():
        b(TimerFired(timer_key), now=t + 2 * DAY)
    return out


def test_the_same_entries_give_the_same_store() -> None:
    first = Partition()
    actions = scenario(first)
    assert first.timers() == []
    assert len(first.store.data) > 2

    second = Partition()
    replayed = [second.batch(*entries, now=now) for now, entries in first.history]
    assert replayed == actions
    assert second.store.data == first.store.data

    # and a third time, for good measure, with the scenario re-derived from the store
    third = Partition()
    assert scenario(third) == actions
    assert third.store.data == first.store.data


# -- invocations on a deployment: pinning and signals ----------------------------------------

REMOTE = Target("Remote", "h")


@pytest.fixture
def remote(p: Partition) -> Partition:
    """The partition, with a service served by deployment dp_1x."""
    manifest = {
        "minProtocolVersion": 5,
        "maxProtocolVersion": 6,
        "services": [{"name": "Remote", "ty": "SERVICE", "handlers": [{"name": "h"}]}],
    }
    [info] = parse_manifest(manifest, "dp_1x").services
    p.processor.registry.services["Remote"] = info
    return p


def test_an_invocation_records_its_deployment(remote: Partition) -> None:
    remote.invoke(inv(1), REMOTE)
    remote.invoke(inv(2), GREET)
    assert remote.status(inv(1))["dp"] == "dp_1x"
    assert remote.status(inv(2))["dp"] is None


def test_a_signal_may_arrive_before_anything_waits_and_is_kept_once(remote: Partition) -> None:
    remote.invoke(inv(1), REMOTE)
    slot = signal_slot(17)
    actions = remote.batch(Complete(inv(1), slot, Outcome.ok(b"1")))
    assert of_type(actions, Notify) == [Notify(inv(1), slot, 0, Outcome.ok(b"1"))]
    remote.batch(Complete(inv(1), slot, Outcome.ok(b"2")))
    assert remote.completion(inv(1), slot) == (0, Outcome.ok(b"1"))
    # Suspending on a signal that already arrived resumes at once.
    actions = remote.batch(Suspend(inv(1), 1, [slot]))
    assert of_type(actions, RunAttempt) == [RunAttempt(inv(1))]
    assert remote.status(inv(1))["a"] == 2


def test_a_suspension_on_a_signal_resumes_when_it_arrives(remote: Partition) -> None:
    remote.invoke(inv(1), REMOTE)
    remote.batch(Suspend(inv(1), 1, [signal_slot(17)]))
    assert remote.st(inv(1)) == "suspended"
    awakeable = awakeable_id(inv(1), 17)
    remote.invoke(inv(2), GREET)
    actions = remote.append(inv(2), CompleteAwakeable(awakeable, OK))
    assert remote.completion(inv(1), signal_slot(17)) == (0, OK)
    assert of_type(actions, RunAttempt) == [RunAttempt(inv(1))]


def test_cancelling_a_remote_invocation_sends_the_cancel_signal(remote: Partition) -> None:
    remote.invoke(inv(1), REMOTE)
    remote.append(inv(1), Sleep("", NOW + MINUTE))
    remote.batch(Suspend(inv(1), 1, [0, signal_slot(1)]))
    actions = remote.batch(Cancel(inv(1)))
    assert remote.completion(inv(1), signal_slot(1)) == (0, CANCELLED)
    assert remote.completion(inv(1), 0) is None  # its SDK decides what the cancel fails
    assert of_type(actions, RunAttempt) == [RunAttempt(inv(1))]


def test_the_cancel_signal_wakes_a_suspension_that_did_not_list_it(remote: Partition) -> None:
    remote.invoke(inv(1), REMOTE)
    remote.append(inv(1), Sleep("", NOW + MINUTE))
    remote.batch(Suspend(inv(1), 1, [0]))
    actions = remote.batch(Cancel(inv(1)))
    assert of_type(actions, RunAttempt) == [RunAttempt(inv(1))]
    assert remote.st(inv(1)) == "running"


def test_purge_removes_signal_completions(remote: Partition) -> None:
    remote.invoke(inv(1), REMOTE)
    remote.batch(Complete(inv(1), signal_slot(17), OK))
    remote.end(inv(1))
    remote.fire(remote.timer_for("purge", inv(1)), now=NOW + 2 * DAY)
    assert remote.completion(inv(1), signal_slot(17)) is None
    assert not remote.exists(inv(1))
