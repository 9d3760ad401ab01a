"""Log entries: every change to a partition is one of these, applied in log order.

Entries encode to msgpack lists with a numeric tag first; the tags are part of the on-disk
format and never change.
"""

from __future__ import annotations

from typing import Any, ClassVar

from headway.sdk import ids
from headway.sdk.frozen import frozen
from headway.sdk.journal import Command, Outcome, Target, decode_command


class Entry:
    TAG: ClassVar[int]

    def encode(self) -> list[Any]:
        raise NotImplementedError


@frozen
class Caller:
    """Where an invocation's result goes: a journal entry of the calling invocation."""

    invocation_id: str
    index: int


@frozen
class Invoke(Entry):
    """A new invocation (from ingress, a call, a send, or a Kafka record)."""

    TAG: ClassVar[int] = 1
    invocation_id: str
    target: Target
    input: bytes
    headers: dict[str, str]
    caller: Caller | None = None
    invoke_at_ms: int = 0
    idempotency_key: str | None = None
    source: dict[str, Any] | None = None

    @property
    def resolved_id(self) -> str:
        """The invocation's id. A Kafka record's entry may carry none ("") and leave it to be
        derived from where the record is, only where something needs it."""
        if self.invocation_id or self.source is None:
            return self.invocation_id
        source = self.source
        return ids.record_invocation_id(
            self.target.service, self.target.key, source["group"], source["topic"],
            source["partition"], source["offset"],
        )  # fmt: skip

    def encode(self) -> list[Any]:
        caller = [self.caller.invocation_id, self.caller.index] if self.caller else None
        return [
            self.TAG, self.invocation_id, self.target.encode(), self.input, self.headers,
            caller, self.invoke_at_ms, self.idempotency_key, self.source,
        ]  # fmt: skip


@frozen
class Append(Entry):
    """A command an attempt issued, at the next index of its journal."""

    TAG: ClassVar[int] = 2
    invocation_id: str
    attempt: int
    index: int
    command: Command

    def encode(self) -> list[Any]:
        return [self.TAG, self.invocation_id, self.attempt, self.index, self.command.encode()]


@frozen
class Complete(Entry):
    """The outcome of a completable command (run, sleep, call, awakeable, promise), or a
    signal; a named signal carries its name, which its notification needs."""

    TAG: ClassVar[int] = 3
    invocation_id: str
    index: int
    outcome: Outcome
    signal_name: str | None = None

    def encode(self) -> list[Any]:
        out = [self.TAG, self.invocation_id, self.index, self.outcome.encode()]
        return out if self.signal_name is None else [*out, self.signal_name]


@frozen
class End(Entry):
    """An attempt finished the handler, with its output or terminal failure.

    `journal` holds the commands the attempt issued since its last durable write that nobody
    had to wait for (state reads and writes, emits): they are journaled first, in this same
    entry, which saves an entry per step on the hot path.
    """

    TAG: ClassVar[int] = 4
    invocation_id: str
    attempt: int
    outcome: Outcome
    journal: tuple[Command, ...] = ()

    def encode(self) -> list[Any]:
        journal = [command.encode() for command in self.journal]
        return [self.TAG, self.invocation_id, self.attempt, self.outcome.encode(), journal]


@frozen
class AttemptFailed(Entry):
    """An attempt failed with a retryable error; the next one starts at `retry_at_ms`."""

    TAG: ClassVar[int] = 5
    invocation_id: str
    attempt: int
    message: str
    retry_at_ms: int

    def encode(self) -> list[Any]:
        return [self.TAG, self.invocation_id, self.attempt, self.message, self.retry_at_ms]


@frozen
class Suspend(Entry):
    """An attempt waits only on these completions and gave up its resources."""

    TAG: ClassVar[int] = 6
    invocation_id: str
    attempt: int
    waiting_on: list[int]

    def encode(self) -> list[Any]:
        return [self.TAG, self.invocation_id, self.attempt, self.waiting_on]


@frozen
class TimerFired(Entry):
    """A durable timer came due."""

    TAG: ClassVar[int] = 7
    timer_key: bytes

    def encode(self) -> list[Any]:
        return [self.TAG, self.timer_key]


@frozen
class Cancel(Entry):
    """Cancel an invocation: its pending steps fail with 409 and it may compensate."""

    TAG: ClassVar[int] = 8
    invocation_id: str

    def encode(self) -> list[Any]:
        return [self.TAG, self.invocation_id]


@frozen
class Kill(Entry):
    """End an invocation at once with 409, without running any more of its code."""

    TAG: ClassVar[int] = 9
    invocation_id: str

    def encode(self) -> list[Any]:
        return [self.TAG, self.invocation_id]


@frozen
class ReplaceState(Entry):
    """Replace a virtual object's whole state (admin API)."""

    TAG: ClassVar[int] = 10
    service: str
    key: str
    state: dict[str, bytes]

    def encode(self) -> list[Any]:
        return [self.TAG, self.service, self.key, self.state]


@frozen
class Subscribe(Entry):
    """Add (or replace) a Kafka subscription; `subscription` is its stored record."""

    TAG: ClassVar[int] = 11
    subscription: dict[str, Any]

    def encode(self) -> list[Any]:
        return [self.TAG, self.subscription]


@frozen
class Unsubscribe(Entry):
    """Remove a subscription. Its offsets stay, so adding it back resumes where it stopped."""

    TAG: ClassVar[int] = 12
    subscription_id: str

    def encode(self) -> list[Any]:
        return [self.TAG, self.subscription_id]


@frozen
class DeadLetter(Entry):
    """A Kafka record that cannot become an invocation: consume its offset, and publish it to
    the dead-letter topic (`record`: topic, key, value, headers) through the outbox."""

    TAG: ClassVar[int] = 13
    source: dict[str, Any]
    record: list[Any]

    def encode(self) -> list[Any]:
        return [self.TAG, self.source, self.record]


@frozen
class OutboxShipped(Entry):
    """The outbox of `cluster` is committed to Kafka up to `seq`: its entries can go."""

    TAG: ClassVar[int] = 14
    cluster: str
    seq: int

    def encode(self) -> list[Any]:
        return [self.TAG, self.cluster, self.seq]


@frozen
class SubscriptionFailed(Entry):
    """A subscription met a record it cannot handle and has no dead-letter topic: it stops
    before that record, and says why."""

    TAG: ClassVar[int] = 15
    subscription_id: str
    message: str

    def encode(self) -> list[Any]:
        return [self.TAG, self.subscription_id, self.message]


@frozen
class PutKafkaCluster(Entry):
    """Define (or, with `cluster` None, remove) a Kafka cluster through the admin API."""

    TAG: ClassVar[int] = 16
    name: str
    cluster: dict[str, Any] | None

    def encode(self) -> list[Any]:
        return [self.TAG, self.name, self.cluster]


@frozen
class Express(Entry):
    """An invocation whose handler already ran, ahead of the log, to the end without waiting:
    its `invoke`, the journal of that run (state reads and writes, emits) and its output.

    Applied, it takes effect whole if every read still holds and nothing holds or waits for the
    key — a Kafka record's writes, emits and offset with no invocation record left behind; any
    other invocation's whole life, created and completed at once — or else it becomes its
    `invoke`, which runs the durable way.
    """

    TAG: ClassVar[int] = 20
    invoke: Invoke
    journal: tuple[Command, ...]
    ran_at_ms: int  # when the handler ran: the start of the invocation's span
    output: bytes = b""

    def encode(self) -> list[Any]:
        journal = [command.encode() for command in self.journal]
        return [self.TAG, self.invoke.encode(), journal, self.ran_at_ms, self.output]


def decode_entry(raw: list[Any]) -> Entry:
    """The entry a list from `Entry.encode` describes."""
    tag = raw[0]
    if tag == Invoke.TAG:
        caller = Caller(raw[5][0], raw[5][1]) if raw[5] else None
        return Invoke(raw[1], Target.decode(raw[2]), raw[3], raw[4], caller, raw[6], raw[7], raw[8])
    if tag == Append.TAG:
        return Append(raw[1], raw[2], raw[3], decode_command(raw[4]))
    if tag == Complete.TAG:
        return Complete(raw[1], raw[2], Outcome.decode(raw[3]), *raw[4:5])
    if tag == End.TAG:
        journal = tuple(decode_command(c) for c in raw[4]) if len(raw) > 4 else ()
        return End(raw[1], raw[2], Outcome.decode(raw[3]), journal)
    if tag == AttemptFailed.TAG:
        return AttemptFailed(raw[1], raw[2], raw[3], raw[4])
    if tag == Suspend.TAG:
        return Suspend(raw[1], raw[2], raw[3])
    if tag == TimerFired.TAG:
        return TimerFired(raw[1])
    if tag == Cancel.TAG:
        return Cancel(raw[1])
    if tag == Kill.TAG:
        return Kill(raw[1])
    if tag == ReplaceState.TAG:
        return ReplaceState(raw[1], raw[2], raw[3])
    if tag == Subscribe.TAG:
        return Subscribe(raw[1])
    if tag == Unsubscribe.TAG:
        return Unsubscribe(raw[1])
    if tag == DeadLetter.TAG:
        return DeadLetter(raw[1], raw[2])
    if tag == OutboxShipped.TAG:
        return OutboxShipped(raw[1], raw[2])
    if tag == SubscriptionFailed.TAG:
        return SubscriptionFailed(raw[1], raw[2])
    if tag == PutKafkaCluster.TAG:
        return PutKafkaCluster(raw[1], raw[2])
    if tag == Express.TAG:
        invoke = decode_entry(raw[1])
        assert isinstance(invoke, Invoke)
        return Express(invoke, tuple(decode_command(c) for c in raw[2]), raw[3], raw[4])
    raise ValueError(f"unknown log entry tag {tag}")
