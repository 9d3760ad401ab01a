"""What a committed batch changed, for observers (metrics, traces) that count in batches.

The committer reads through `FirstReads`, which keeps the encoded value each key had before
the batch; with the batch's changes that gives every record's before and after, so observers
count transitions (an invocation completed, a timer was added) without reading the store.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .store import Store, StoreView, unpack


class FirstReads:
    """A committed-store reader that remembers the first encoded value read for each key."""

    def __init__(self, store: Store) -> None:
        self._db = store.db
        self.before: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> Any:
        data: bytes | None = self._db.get(key)
        self.before.setdefault(key, data)
        return None if data is None else unpack(data)


@dataclasses.dataclass(frozen=True, slots=True)
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

    @property
    def changed(self) -> dict[bytes, Any]:
        return self.view.changes

    def old(self, key: bytes) -> Any:
        """The decoded value `key` had before the batch, or None."""
        data = self.before.get(key)
        return None if data is None else unpack(data)

    def new(self, key: bytes) -> Any:
        """The decoded value `key` has after the batch, or None if the batch deleted it."""
        value = self.view.changes[key]
        return None if self.view.deleted(value) else value
