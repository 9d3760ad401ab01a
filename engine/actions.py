"""What the processor asks the outside world to do once a batch is durable."""

from __future__ import annotations

import dataclasses
from typing import Any

from headway.sdk.frozen import frozen
from headway.sdk.journal import Outcome


@frozen
class RunAttempt:
    """Start (or resume) an attempt of this invocation from its journal.

    `status` is the invocation's record as the batch committed it, which spares the invoker
    reading it back from the store.
    """

    invocation_id: str
    status: dict[str, Any] | None = dataclasses.field(default=None, compare=False, repr=False)


@frozen
class Notify:
    """Deliver a completion to a running attempt."""

    invocation_id: str
    index: int
    seq: int
    outcome: Outcome


@frozen
class Completed:
    """An invocation has its final outcome: answer whoever waits for it."""

    invocation_id: str
    outcome: Outcome


@frozen
class ScheduleTimer:
    due_ms: int
    timer_key: bytes


@frozen
class AbortAttempt:
    """Stop running this invocation's code now (it was killed)."""

    invocation_id: str


@frozen
class KafkaRecordDone:
    """A Kafka record is finished with (completed, dead-lettered or dropped as a duplicate):
    its partition has room for one more in-flight record."""

    group: str
    topic: str
    partition: int


@frozen
class OutboxReady:
    """A cluster's outbox has new records to ship."""

    cluster: str


@frozen
class SubscriptionsChanged:
    """Subscriptions or Kafka clusters were added, removed or failed: reconcile consumers."""


Action = (
    RunAttempt | Notify | Completed | ScheduleTimer | AbortAttempt | KafkaRecordDone
    | OutboxReady | SubscriptionsChanged
)  # fmt: skip
