"""The partition processor: applies log entries to the store, deterministically, without I/O.

`apply` takes one entry, the batch's store view and the batch's timestamp (from the log, not a
clock) and produces store writes (into the view), follow-up entries for the same batch, and
actions to run once the batch is durable. Everything an entry does happens here, so replaying
the same entries on the same store always yields the same store.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import deque
from typing import Any

from headway.sdk.errors import CANCELLED_CODE, KILLED_CODE
from headway.sdk.journal import (
    AttachInvocation,
    Call,
    CancelInvocation,
    ClearAllState,
    ClearState,
    Command,
    CompleteAwakeable,
    CompletePromise,
    Emit,
    GetInvocationOutput,
    GetLazyState,
    GetLazyStateKeys,
    GetPromise,
    Outcome,
    PeekPromise,
    Run,
    Send,
    SendSignal,
    SetState,
    Sleep,
    Target,
    decode_command,
    encode_state_keys,
)
from headway.sdk.protocol.signals import (
    CANCEL_SIGNAL,
    awakeable_slot,
    is_signal_slot,
    named_signal_slot,
    signal_slot,
)

from . import keys, offsets, outbox
from .actions import (
    AbortAttempt,
    Action,
    Completed,
    KafkaRecordDone,
    Notify,
    OutboxReady,
    RunAttempt,
    ScheduleTimer,
    SubscriptionsChanged,
)
from .entries import (
    Append,
    AttemptFailed,
    Caller,
    Cancel,
    Complete,
    DeadLetter,
    End,
    Entry,
    Express,
    Invoke,
    Kill,
    OutboxShipped,
    PutKafkaCluster,
    ReplaceState,
    Subscribe,
    SubscriptionFailed,
    Suspend,
    TimerFired,
    Unsubscribe,
)
from .express_check import replay_reads, runs_ahead
from .registry import Registry
from .store import StoreView

Status = dict[str, Any]


@dataclasses.dataclass
class Effects:
    """What applying entries produced besides store writes."""

    actions: list[Action] = dataclasses.field(default_factory=list)
    entries: deque[Entry] = dataclasses.field(default_factory=deque)
    # Express runs that took effect: invocations that completed without a status record.
    expressed: list[Express] = dataclasses.field(default_factory=list)
    # Invocations completed, with their final status: what observers (traces) look at, found
    # without a pass over every record the batch changed.
    finished: list[tuple[str, Status]] = dataclasses.field(default_factory=list)
    # The outboxes an `OutboxReady` action is already among `actions` for.
    outboxes_ready: set[str] = dataclasses.field(default_factory=set)


class Processor:
    """Applies entries to a partition's store."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def apply(self, entry: Entry, view: StoreView, now_ms: int, effects: Effects) -> None:
        _Apply(self.registry, view, now_ms, effects).entry(entry)


@functools.lru_cache(maxsize=4096)
def _record_done(group: str, topic: str, partition: int) -> KafkaRecordDone:
    """One shared (immutable) action per partition: a busy subscription finishes thousands of
    records a second."""
    return KafkaRecordDone(group, topic, partition)


class _Apply:
    """The application of one entry; a class only to keep the arguments in one place."""

    def __init__(self, registry: Registry, view: StoreView, now: int, effects: Effects) -> None:
        self.registry = registry
        self.view = view
        self.now = now
        self.fx = effects

    def entry(self, entry: Entry) -> None:
        if isinstance(entry, Express):  # first: one per Kafka record on a busy subscription
            self.express(entry)
        elif isinstance(entry, Append):
            self.append(entry)
        elif isinstance(entry, Complete):
            self.complete(entry.invocation_id, entry.index, entry.outcome, entry.signal_name)
        elif isinstance(entry, Invoke):
            self.invoke(entry)
        elif isinstance(entry, End):
            self.end(entry)
        elif isinstance(entry, AttemptFailed):
            self.attempt_failed(entry)
        elif isinstance(entry, Suspend):
            self.suspend(entry)
        elif isinstance(entry, TimerFired):
            self.timer_fired(entry.timer_key)
        elif isinstance(entry, Cancel):
            self.cancel(entry.invocation_id)
        elif isinstance(entry, Kill):
            self.kill(entry.invocation_id)
        elif isinstance(entry, ReplaceState):
            self.view.put(keys.state(entry.service, entry.key), dict(entry.state))
        else:
            self.kafka_entry(entry)

    def kafka_entry(self, entry: Entry) -> None:
        """Subscriptions, clusters, dead letters and the outbox's progress."""
        if isinstance(entry, OutboxShipped):
            outbox.trim(self.view, entry.cluster, entry.seq)
            return
        if isinstance(entry, DeadLetter):
            if offsets.accept(self.view, entry.source):
                self.put_in_outbox(entry.source["cluster"], entry.record)
            self.record_done(entry.source)
            return
        if isinstance(entry, Subscribe):
            self.view.put(keys.subscription(entry.subscription["id"]), entry.subscription)
        elif isinstance(entry, Unsubscribe):
            self.view.delete(keys.subscription(entry.subscription_id))
        elif isinstance(entry, SubscriptionFailed):
            record = self.view.get(keys.subscription(entry.subscription_id))
            if record is None:
                return
            self.view.put(
                keys.subscription(entry.subscription_id), record | {"failed": entry.message}
            )
        elif isinstance(entry, PutKafkaCluster):
            if entry.cluster is None:
                self.view.delete(keys.kafka_cluster(entry.name))
            else:
                self.view.put(keys.kafka_cluster(entry.name), entry.cluster)
        self.fx.actions.append(SubscriptionsChanged())

    def record_done(self, source: dict[str, Any]) -> None:
        self.fx.actions.append(_record_done(source["group"], source["topic"], source["partition"]))

    def status(self, invocation_id: str) -> Status | None:
        return self.view.get(keys.invocation(invocation_id))  # type: ignore[no-any-return]

    def save(self, invocation_id: str, status: Status) -> None:
        status["ma"] = self.now
        self.view.put(keys.invocation(invocation_id), status)

    # -- new invocations -------------------------------------------------------------------

    def invoke(self, entry: Invoke) -> None:
        if not entry.invocation_id:
            entry = dataclasses.replace(entry, invocation_id=entry.resolved_id)
        source = entry.source
        if (
            source is not None
            and offsets.is_kafka(source)
            and not offsets.accept(self.view, source)
        ):
            self.record_done(source)
            return  # a redelivered Kafka record: its invocation exists already
        existing = self.status(entry.invocation_id)
        if existing is not None:
            self.attach(entry, existing)
            if source is not None and offsets.is_kafka(source):
                self.record_done(source)  # its record joined an invocation that exists
            return
        target = entry.target
        found = self.registry.lookup(target.service, target.handler)
        failure: Outcome | None = None
        if found is None:
            failure = Outcome.fail(404, f"service or handler not found: {target}")
        elif found[0].kind != "service" and not target.key:
            failure = Outcome.fail(400, f"{target.service} is keyed: the key must not be empty")
        status = self.new_status(entry, found[0].deployment if found else None)
        if entry.caller is not None:
            status["w"].append([entry.caller.invocation_id, entry.caller.index])
        if failure is not None:
            self.finish(entry.invocation_id, status, failure)
            return
        if entry.invoke_at_ms > self.now:
            self.save(entry.invocation_id, status)
            self.add_timer(entry.invoke_at_ms, ["invoke", entry.invocation_id])
            return
        self.start(entry.invocation_id, status)

    def new_status(self, entry: Invoke, deployment: str | None) -> Status:
        return {
            "t": entry.target.encode(), "st": "scheduled", "in": entry.input, "h": entry.headers,
            "w": [], "a": 0, "rc": 0, "lf": None, "jl": 0, "cs": 0, "p": [], "cx": False,
            "o": None, "ik": entry.idempotency_key, "ca": self.now, "ma": self.now,
            "wo": [], "src": entry.source, "em": [], "lock": False,
            "by": entry.caller.invocation_id if entry.caller else None, "dp": deployment,
        }  # fmt: skip

    def express(self, entry: Express) -> None:
        """An invocation whose handler ran ahead of the log. It takes effect whole if the run
        saw the state as it is now and nothing holds or waits for the key; otherwise it becomes
        an ordinary invocation (queued behind whatever holds the key) and its handler runs
        again. A Kafka record's run leaves no invocation record; any other is recorded as an
        ordinary run would be."""
        invoke = entry.invoke
        target, source = invoke.target, invoke.source
        found = self.registry.lookup(target.service, target.handler)
        state_key = keys.state(target.service, target.key) if target.key is not None else None
        state: dict[str, bytes] = {}
        result = None
        if (
            runs_ahead(found)
            and (source is None or offsets.is_kafka(source))
            and not (
                found[0].needs_lock(target.handler)
                and self.view.get(keys.object_lock(target.service, target.key or "")) is not None
            )
        ):
            if state_key is not None:
                state = self.view.get(state_key) or {}
            result = replay_reads(state, entry.journal)
        if result is None or (source is None and self.status(invoke.invocation_id) is not None):
            self.invoke(invoke)
            return
        if source is None:
            self.express_invocation(entry)
            return
        if not offsets.accept(self.view, source):
            self.record_done(source)
            return  # a redelivered record, applied before
        new_state, emits = result
        if state_key is not None and new_state != state:
            if new_state:
                self.view.put(state_key, new_state)
            else:
                self.view.delete(state_key)
        self.to_outbox(emits, source["cluster"])
        self.record_done(source)
        self.fx.expressed.append(entry)

    def express_invocation(self, entry: Express) -> None:
        """An invocation's whole life in one step: created, run once (ahead of the log) and
        completed, leaving the record an ordinary run would (status, journal, retention)."""
        invoke = entry.invoke
        status = self.new_status(invoke, None)
        status["st"], status["a"], status["ca"] = "running", 1, entry.ran_at_ms
        self.end_with(invoke.invocation_id, status, Outcome.ok(entry.output), entry.journal)

    def attach(self, entry: Invoke, existing: Status) -> None:
        """A repeated id (idempotency key, workflow id): join the invocation that exists."""
        if existing["st"] == "completed":
            outcome = Outcome.decode(existing["o"])
            if entry.caller is not None:
                self.fx.entries.append(
                    Complete(entry.caller.invocation_id, entry.caller.index, outcome)
                )
            self.fx.actions.append(Completed(entry.invocation_id, outcome))
        elif entry.caller is not None:
            existing["w"].append([entry.caller.invocation_id, entry.caller.index])
            self.save(entry.invocation_id, existing)

    def start(self, invocation_id: str, status: Status) -> None:
        """Runs the invocation now, or queues it behind the holder of its key's lock."""
        target = Target.decode(status["t"])
        found = self.registry.lookup(target.service, target.handler)
        if found is not None and found[0].needs_lock(target.handler):
            assert target.key is not None
            lock_key = keys.object_lock(target.service, target.key)
            lock = self.view.get(lock_key) or [None, []]
            if lock[0] is not None:
                lock[1].append(invocation_id)
                self.view.put(lock_key, lock)
                status["st"] = "pending"
                self.save(invocation_id, status)
                return
            self.view.put(lock_key, [invocation_id, lock[1]])
            status["lock"] = True
        self.run(invocation_id, status)

    def run(self, invocation_id: str, status: Status) -> None:
        status["st"] = "running"
        status["a"] += 1
        status["wo"] = []
        self.save(invocation_id, status)
        self.view.put(keys.active(invocation_id), b"")
        self.fx.actions.append(RunAttempt(invocation_id, status))

    # -- the journal -----------------------------------------------------------------------

    def append(self, entry: Append) -> None:
        status = self.status(entry.invocation_id)
        if (
            status is None
            or status["st"] != "running"
            or status["a"] != entry.attempt
            or status["jl"] != entry.index
        ):
            return  # a stale attempt's command: the journal has moved on without it
        inv, index, command = entry.invocation_id, entry.index, entry.command
        self.view.put(keys.journal(inv, index), command.encode())
        status["jl"] = index + 1
        if command.completable:
            status["p"].append(index)
        self.save(inv, status)
        if status["cx"] and command.completable and not isinstance(command, Run):
            status["cx"] = False  # delivered once, like Restate's cancel signal
            self.complete(inv, index, Outcome.fail(CANCELLED_CODE, "cancelled"))
            return
        self.command_effects(inv, status, index, command)

    def command_effects(self, inv: str, status: Status, index: int, command: Command) -> None:
        if isinstance(command, SetState | ClearState | ClearAllState):
            service, _, key = status["t"]
            assert key is not None
            state_key = keys.state(service, key)
            state: dict[str, bytes] = dict(self.view.get(state_key) or {})
            if isinstance(command, SetState):
                state[command.name] = command.value
            elif isinstance(command, ClearState):
                state.pop(command.name, None)
            else:
                state.clear()
            if state:
                self.view.put(state_key, state)
            else:
                self.view.delete(state_key)
        elif isinstance(command, Sleep):
            self.add_timer(command.wake_at_ms, ["wake", inv, index])
        elif isinstance(command, Call):
            self.fx.entries.append(
                Invoke(
                    command.invocation_id, command.target, command.input, command.headers,
                    Caller(inv, index), 0, command.idempotency_key,
                )
            )  # fmt: skip
        elif isinstance(command, Send):
            self.fx.entries.append(
                Invoke(
                    command.invocation_id, command.target, command.input, command.headers,
                    None, command.invoke_at_ms, command.idempotency_key,
                )
            )  # fmt: skip
        elif isinstance(command, CompleteAwakeable):
            try:
                owner, slot = awakeable_slot(command.awakeable_id)
            except ValueError:
                return
            self.fx.entries.append(Complete(owner, slot, command.outcome))
        elif isinstance(command, CancelInvocation):
            self.fx.entries.append(Cancel(command.invocation_id))
        elif isinstance(command, GetPromise | PeekPromise | CompletePromise):
            self.promise(inv, Target.decode(status["t"]), index, command)
        elif isinstance(command, Emit):
            status["em"].append(index)
        elif isinstance(command, GetLazyState | GetLazyStateKeys):
            self.lazy_state(inv, Target.decode(status["t"]), index, command)
        elif isinstance(command, AttachInvocation | GetInvocationOutput):
            self.invocation_output(inv, index, command)
        elif isinstance(command, SendSignal):
            self.send_signal(command)
        # Run, Awakeable, GetState, StateKeys: journaled only; completions come later.

    def lazy_state(
        self, inv: str, target: Target, index: int, command: GetLazyState | GetLazyStateKeys
    ) -> None:
        """Answers a deployment's state read from the state as this batch has it, which holds
        the invocation's own earlier writes."""
        state: dict[str, bytes] = {}
        if target.key is not None:
            state = self.view.get(keys.state(target.service, target.key)) or {}
        if isinstance(command, GetLazyState):
            self.complete(inv, index, Outcome(value=state.get(command.name)))
        else:
            self.complete(inv, index, Outcome.ok(encode_state_keys(list(state))))

    def invocation_output(
        self, inv: str, index: int, command: AttachInvocation | GetInvocationOutput
    ) -> None:
        """Completes with another invocation's outcome, now if it has one; an attach waits
        for it as a caller does, a get-output answers "not ready" (value None)."""
        target = self.status(command.invocation_id)
        if target is None:
            missing = f"invocation not found: {command.invocation_id}"
            self.complete(inv, index, Outcome.fail(404, missing))
        elif target["st"] == "completed":
            self.complete(inv, index, Outcome.decode(target["o"]))
        elif isinstance(command, GetInvocationOutput):
            self.complete(inv, index, Outcome(value=None))
        else:
            target["w"].append([inv, index])
            self.save(command.invocation_id, target)

    def send_signal(self, command: SendSignal) -> None:
        """A signal for another invocation, by index (an awakeable) or by name."""
        name = command.signal_name
        if name is not None:
            slot = named_signal_slot(name)
        elif command.index is not None:
            slot = signal_slot(command.index)
        else:
            return
        self.fx.entries.append(Complete(command.invocation_id, slot, command.outcome, name))

    def promise(
        self, inv: str, target: Target, index: int,
        command: GetPromise | PeekPromise | CompletePromise,
    ) -> None:  # fmt: skip
        assert target.key is not None
        record_key = keys.promises(target.service, target.key)
        record: dict[str, Any] = dict(self.view.get(record_key) or {})
        promise = record.get(command.name) or {"o": None, "w": []}
        if isinstance(command, CompletePromise):
            if promise["o"] is not None:
                self.complete(inv, index, Outcome.fail(409, "promise already completed"))
                return
            promise = {"o": command.outcome.encode(), "w": []}
            for waiter_inv, waiter_index in record.get(command.name, {"w": []})["w"]:
                self.fx.entries.append(Complete(waiter_inv, waiter_index, command.outcome))
            self.complete(inv, index, Outcome.ok())
        elif promise["o"] is not None:
            self.complete(inv, index, Outcome.decode(promise["o"]))
        elif isinstance(command, PeekPromise):
            self.complete(inv, index, Outcome(value=None))
        else:
            promise["w"].append([inv, index])
        record[command.name] = promise
        self.view.put(record_key, record)

    def complete(
        self, inv: str, index: int, outcome: Outcome, signal_name: str | None = None
    ) -> None:
        status = self.status(inv)
        if status is None or status["st"] == "completed":
            return
        if is_signal_slot(index):
            # A signal is no command: it may arrive before anything waits on it, once.
            if self.view.get(keys.completion(inv, index)) is not None:
                return
            status.setdefault("sg", []).append(index)
        elif index not in status["p"]:
            return  # unknown, or already completed: a duplicate delivery
        else:
            status["p"].remove(index)
        seq = status["cs"]
        status["cs"] = seq + 1
        record = [seq, outcome.encode()] + ([signal_name] if signal_name else [])
        self.view.put(keys.completion(inv, index), record)
        if status["st"] == "running":
            self.save(inv, status)
            self.fx.actions.append(Notify(inv, index, seq, outcome))
        elif status["st"] == "suspended" and (
            index in status["wo"] or index == signal_slot(CANCEL_SIGNAL)  # cancel always wakes
        ):
            self.run(inv, status)
        else:
            self.save(inv, status)

    # -- attempts --------------------------------------------------------------------------

    def suspend(self, entry: Suspend) -> None:
        status = self.status(entry.invocation_id)
        if status is None or status["st"] != "running" or status["a"] != entry.attempt:
            return
        if not all(self.pending(entry.invocation_id, status, i) for i in entry.waiting_on):
            self.run(entry.invocation_id, status)  # completed meanwhile: resume at once
            return
        status["st"] = "suspended"
        status["wo"] = list(entry.waiting_on)
        self.save(entry.invocation_id, status)
        self.view.delete(keys.active(entry.invocation_id))

    def pending(self, inv: str, status: Status, index: int) -> bool:
        if is_signal_slot(index):
            return self.view.get(keys.completion(inv, index)) is None
        return index in status["p"]

    def attempt_failed(self, entry: AttemptFailed) -> None:
        status = self.status(entry.invocation_id)
        if status is None or status["st"] != "running" or status["a"] != entry.attempt:
            return
        status["st"] = "backing-off"
        status["rc"] += 1
        status["lf"] = entry.message
        self.save(entry.invocation_id, status)
        self.view.delete(keys.active(entry.invocation_id))
        self.add_timer(entry.retry_at_ms, ["retry", entry.invocation_id])

    def end(self, entry: End) -> None:
        inv = entry.invocation_id
        status = self.status(inv)
        if status is None or status["st"] != "running" or status["a"] != entry.attempt:
            return
        self.end_with(inv, status, entry.outcome, entry.journal)

    def end_with(
        self, inv: str, status: Status, outcome: Outcome, journal: tuple[Command, ...]
    ) -> None:
        """Journals an attempt's deferred commands (state reads and writes and emits, never
        awaited), then completes the invocation."""
        for command in journal:
            index = status["jl"]
            self.view.put(keys.journal(inv, index), command.encode())
            status["jl"] = index + 1
            self.command_effects(inv, status, index, command)
        emits = {status["jl"] - len(journal) + i: c for i, c in enumerate(journal)}
        self.finish(inv, status, outcome, emits)

    def finish(
        self, inv: str, status: Status, outcome: Outcome, known: dict[int, Command] | None = None
    ) -> None:
        """Completes an invocation: result stored, lock passed on, callers answered. `known`
        holds journal commands the caller has decoded already, by index."""
        status["st"] = "completed"
        status["o"] = outcome.encode()
        status["p"] = []
        status["wo"] = []
        self.save(inv, status)
        self.view.delete(keys.active(inv))
        target = Target.decode(status["t"])
        if status["lock"]:
            status["lock"] = False
            self.release_lock(target)
        for waiter_inv, waiter_index in status["w"]:
            self.fx.entries.append(Complete(waiter_inv, waiter_index, outcome))
        status["w"] = []
        retention = self.registry.retention(target.service, target.handler)
        self.add_timer(self.now + int(retention.total_seconds() * 1000), ["purge", inv])
        self.publish(inv, status, outcome, known or {})
        self.fx.actions.append(Completed(inv, outcome))
        self.fx.finished.append((inv, status))

    def publish(
        self, inv: str, status: Status, outcome: Outcome, known: dict[int, Command]
    ) -> None:
        """Moves a successful invocation's emits to the outbox, all of them in this batch; sends
        a failed Kafka-triggered invocation's record to its dead-letter topic if it has one."""
        source: dict[str, Any] | None = status["src"]
        kafka = offsets.is_kafka(source)
        if outcome.failure is None:
            emits: list[Emit] = []
            for index in status["em"]:
                emit = known.get(index) or decode_command(self.view.get(keys.journal(inv, index)))
                assert isinstance(emit, Emit)
                emits.append(emit)
            self.to_outbox(emits, source["cluster"] if kafka and source is not None else "")
        elif kafka and source is not None:
            letter = self.dead_letter(status, source, outcome)
            if letter is not None:
                self.put_in_outbox(source["cluster"], letter)
        if kafka and source is not None:
            self.record_done(source)

    def to_outbox(self, emits: list[Emit], default_cluster: str) -> None:
        """Puts emitted records into their clusters' outboxes (`default_cluster` for those that
        name none) and wakes those clusters' shippers."""
        for emit in emits:
            record = [emit.topic, emit.key, emit.value, emit.headers]
            self.put_in_outbox(emit.cluster or default_cluster, record)

    def put_in_outbox(self, cluster: str, record: list[Any]) -> None:
        """Puts a record (topic, key, value, headers) into `cluster`'s outbox, and wakes that
        cluster's shipper once the batch is written: one action per cluster and batch, however
        many records the batch put there."""
        outbox.put(self.view, cluster, record)
        if cluster not in self.fx.outboxes_ready:
            self.fx.outboxes_ready.add(cluster)
            self.fx.actions.append(OutboxReady(cluster))

    def dead_letter(
        self, status: Status, source: dict[str, Any], outcome: Outcome
    ) -> list[Any] | None:
        """The dead-letter record for a failed Kafka-triggered invocation, if its subscription
        has a dead-letter topic."""
        subscription = self.view.get(keys.subscription(source["sub"]))
        topic = subscription and subscription.get("dlq")
        if not topic:
            return None
        assert outcome.failure is not None
        headers = dict(source.get("headers") or {}) | dead_letter_headers(
            source, outcome.failure.code, outcome.failure.message
        )
        value = source.get("value", status["in"])
        return [topic, source.get("key"), value, headers]

    def release_lock(self, target: Target) -> None:
        assert target.key is not None
        lock_key = keys.object_lock(target.service, target.key)
        lock = self.view.get(lock_key) or [None, []]
        queue: list[str] = lock[1]
        if not queue:
            self.view.delete(lock_key)
            return
        next_inv = queue.pop(0)
        self.view.put(lock_key, [next_inv, queue])
        next_status = self.status(next_inv)
        if next_status is not None:
            next_status["lock"] = True
            self.run(next_inv, next_status)

    def cancel(self, inv: str) -> None:
        status = self.status(inv)
        if status is None or status["st"] == "completed":
            return
        if status["st"] in ("pending", "scheduled"):
            self.remove_from_queue(inv, status)
            self.finish(inv, status, Outcome.fail(CANCELLED_CODE, "cancelled"))
            return
        if status.get("dp") is not None:
            # A deployment's SDK handles cancellation itself, on the cancel signal.
            self.complete(
                inv, signal_slot(CANCEL_SIGNAL), Outcome.fail(CANCELLED_CODE, "cancelled")
            )
            return
        waiting = [index for index in status["p"] if not self.is_run(inv, index)]
        # The cancellation is delivered once: to what the handler waits on now, or else to the
        # next step it waits on. Compensating steps after that run normally.
        status["cx"] = not waiting
        self.save(inv, status)
        for index in waiting:
            self.complete(inv, index, Outcome.fail(CANCELLED_CODE, "cancelled"))

    def is_run(self, inv: str, index: int) -> bool:
        raw = self.view.get(keys.journal(inv, index))
        return raw is not None and raw[0] == Run.TAG

    def kill(self, inv: str) -> None:
        status = self.status(inv)
        if status is None or status["st"] == "completed":
            return
        self.remove_from_queue(inv, status)
        if status["st"] == "running":
            self.fx.actions.append(AbortAttempt(inv))
        self.finish(inv, status, Outcome.fail(KILLED_CODE, "killed"))

    def remove_from_queue(self, inv: str, status: Status) -> None:
        if status["st"] != "pending":
            return
        target = Target.decode(status["t"])
        assert target.key is not None
        lock_key = keys.object_lock(target.service, target.key)
        lock = self.view.get(lock_key)
        if lock is not None and inv in lock[1]:
            lock[1].remove(inv)
            self.view.put(lock_key, lock)

    # -- timers ----------------------------------------------------------------------------

    def add_timer(self, due_ms: int, record: list[Any]) -> None:
        seq = self.view.get(keys.TIMER_SEQ) or 0
        self.view.put(keys.TIMER_SEQ, seq + 1)
        timer_key = keys.timer(due_ms, seq)
        self.view.put(timer_key, record)
        self.fx.actions.append(ScheduleTimer(due_ms, timer_key))

    def timer_fired(self, timer_key: bytes) -> None:
        record = self.view.get(timer_key)
        if record is None:
            return  # fired already
        self.view.delete(timer_key)
        kind, inv = record[0], record[1]
        status = self.status(inv)
        if status is None:
            return
        if kind == "wake":
            self.complete(inv, record[2], Outcome.ok())
        elif kind == "invoke" and status["st"] == "scheduled":
            self.start(inv, status)
        elif kind == "retry" and status["st"] == "backing-off":
            self.run(inv, status)
        elif kind == "purge" and status["st"] == "completed":
            self.purge(inv, status)

    def purge(self, inv: str, status: Status) -> None:
        """Removes a completed invocation's status, journal and completions.

        A workflow's run takes its state and promises with it, so the workflow id can start
        afresh, as in Restate.
        """
        for index in range(status["jl"]):
            self.view.delete(keys.journal(inv, index))
            self.view.delete(keys.completion(inv, index))
        for slot in status.get("sg", ()):
            self.view.delete(keys.completion(inv, slot))
        self.view.delete(keys.invocation(inv))
        target = Target.decode(status["t"])
        found = self.registry.lookup(target.service, target.handler)
        if found is not None and found[1].kind == "workflow" and target.key is not None:
            self.view.delete(keys.state(target.service, target.key))
            self.view.delete(keys.promises(target.service, target.key))


def dead_letter_headers(source: dict[str, Any], code: int, reason: str) -> dict[str, bytes]:
    """Headers that say why a record was dead-lettered and where it came from."""
    return {
        "headway.error.code": str(code).encode(),
        "headway.error.reason": reason.encode(),
        "headway.source.topic": str(source["topic"]).encode(),
        "headway.source.partition": str(source["partition"]).encode(),
        "headway.source.offset": str(source["offset"]).encode(),
        "headway.subscription": str(source["sub"]).encode(),
    }
