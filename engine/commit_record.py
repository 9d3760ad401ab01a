"""What a committed batch changed, for observers (metrics, traces) that count in batches.

The committer reads through `FirstReads`, which keeps the encoded value each key had before
the batch; with the batch's changes that gives every record's before and after, so observers
count transitions (an invocation completed, a timer was added) without reading the store.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from . import keys
from .entries import Express
from .store import Store, StoreView, unpack

Status = dict[str, Any]


class FirstReads:
    """A committed-store reader that remembers the first encoded value read for each key."""

    def __init__(self, store: Store) -> None:
        self._db = store.db
        self.before: dict[bytes, bytes | None] = {}
        self.statuses: dict[bytes, Status] = {}

    def get(self, key: bytes) -> Any:
        data: bytes | None = self._db.get(key)
        self.before.setdefault(key, data)
        if data is None:
            return None
        value = unpack(data)
        if key.startswith(keys.INVOCATION) and key not in self.statuses:
            # What observers compare, taken now: the processor changes the record in place.
            self.statuses[key] = {"st": value["st"], "a": value["a"], "rc": value["rc"]}
        return value


@dataclasses.dataclass(frozen=True)
class CommittedBatch:
    """One durable group commit.

    `before` holds the encoded committed value of every key the batch read (None: absent);
    a changed key it never read did not exist before. `view.changes` holds every key the
    batch changed.
    """

    entries: int
    fsync_seconds: float
    now_ms: int
    before: dict[bytes, bytes | None]
    view: StoreView
    statuses: dict[bytes, Status] = dataclasses.field(default_factory=dict)
    # Express runs that took effect: invocations that completed with no status record.
    expressed: list[Express] = dataclasses.field(default_factory=list)

    @property
    def changed(self) -> dict[bytes, Any]:
        return self.view.changes

    @functools.cached_property
    def invocations(self) -> list[tuple[str, Status | None, Status | None]]:
        """(invocation id, status before, status after) for every invocation the batch changed;
        None where it did not exist or was removed. The status before holds only `st`, `a` and
        `rc` (what observers compare), captured when the batch first read it."""
        statuses, deleted = self.statuses, self.view.deleted
        changes = []
        first = keys.INVOCATION[0]
        for key, value in self.view.changes.items():
            if key[0] == first and key.startswith(keys.INVOCATION):
                changes.append((
                    key[len(keys.INVOCATION) :].decode(),
                    statuses.get(key),
                    None if deleted(value) else value,
                ))  # fmt: skip
        return changes
