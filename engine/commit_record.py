"""What a committed batch changed, for observers (metrics, traces) that count in batches.

A changed record's value after the batch is in the batch's changes. Its value before is what
the batch first read of it (`StoreView.reads`), except where the processor changes records in
place: there `FirstReads` notes, as the committer reads, the little that observers compare (an
invocation's status fields, an object lock's queue length). So observers count transitions (an
invocation completed, a timer was added) without reading the store.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from headway.sdk.frozen import frozen

from . import keys
from .entries import Express
from .hot_reads import HotReads
from .store import StoreView, unpack

Status = dict[str, Any]

_INVOCATION = keys.INVOCATION[0]
_OBJECT_LOCK = keys.OBJECT_LOCK[0]


class FirstReads:
    """A committed-store reader noting, for each invocation and object lock the batch reads,
    what observers compare (a `StoreView` reads each key from the store at most once)."""

    def __init__(self, reads: HotReads) -> None:
        self._get_raw = reads.get_raw
        self.statuses: dict[bytes, Status] = {}
        self.queues: dict[bytes, int] = {}

    def get(self, key: bytes) -> Any:
        data = self._get_raw(key)
        if data is None:
            return None
        value = unpack(data)
        first = key[0]  # one int test rules out most keys
        if first == _INVOCATION and key.startswith(keys.INVOCATION):
            self.statuses[key] = {"st": value["st"], "a": value["a"], "rc": value["rc"]}
        elif first == _OBJECT_LOCK and key.startswith(keys.OBJECT_LOCK):
            self.queues[key] = len(value[1])
        return value


@frozen  # made for every batch: `dataclass(frozen=True)` would set each field by a call
class CommittedBatch:
    """One durable group commit.

    `view.changes` holds every key the batch changed, `view.reads` the value of every key it
    read from the store (None: absent); a changed key it never read did not exist before.
    `statuses` and `queues` hold what `FirstReads` noted.
    """

    entries: int
    fsync_seconds: float
    now_ms: int
    view: StoreView
    statuses: dict[bytes, Status] = dataclasses.field(default_factory=dict)
    queues: dict[bytes, int] = dataclasses.field(default_factory=dict)
    # Express runs that took effect: invocations that completed with no status record.
    expressed: list[Express] = dataclasses.field(default_factory=list)
    # Every invocation this batch completed, with its status after (the processor's list).
    finished: list[tuple[str, Status]] = dataclasses.field(default_factory=list)
