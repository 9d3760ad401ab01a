"""A copy of the committed records every call to a virtual object reads: its lock and state.

An express run reads its key's lock and state when the lane runs the handler, and the
processor reads them again when it checks the run. Once RocksDB's memtable has filled, a point
read through the binding costs about 2 µs, four of them per Kafka record. The committer is
the only writer of these records (every change to them is an applied entry), so after each
durable batch it hands this copy the batch's new values of them, and a read of a key seen
before never reaches RocksDB. The copy is bounded by its number of keys and by their bytes;
past either bound it forgets the records least recently written or first read.

Values are kept as RocksDB holds them, encoded: the processor changes decoded records in
place, so a decoded copy could be changed by a batch that then fails to commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import keys
from .store import Store, unpack

HELD_PREFIXES = (keys.OBJECT_LOCK, keys.STATE)
_ABSENT = b""  # kept for a key RocksDB does not hold (a packed record is never empty)
_LARGEST = 64 << 10  # a record longer than this is not kept: a few would fill the copy


def held(key: bytes) -> bool:
    """Whether this copy keeps `key`'s record: an object's lock or its state."""
    return key.startswith(HELD_PREFIXES)


class HotReads:
    """Committed-store reads, answered from memory for object locks and state.

    Only the event loop's thread reads and updates it. `committed` must be called with every
    durable change to a held key, after the write and before the next batch is applied.
    """

    def __init__(
        self, store: Store, capacity: int = 200_000, capacity_bytes: int = 64 << 20
    ) -> None:
        self._db = store.db
        self._records: dict[bytes, bytes] = {}
        self._bytes = 0  # of the records' keys and values
        self.capacity = capacity
        self.capacity_bytes = capacity_bytes

    def get_raw(self, key: bytes) -> bytes | None:
        """The encoded record under `key` in the committed store; None if there is none."""
        data = self._records.get(key)
        if data is not None:
            return data or None
        data = self._db.get(key)
        if held(key):
            self._keep(key, _ABSENT if data is None else data)
        return data

    def get(self, key: bytes) -> Any:
        """The decoded record under `key`; None if there is none."""
        data = self.get_raw(key)
        return None if data is None else unpack(data)

    def committed(self, encoded: Mapping[bytes, bytes | None]) -> None:
        """Takes a durable batch's changes to held keys (None: the key was deleted)."""
        for key, data in encoded.items():
            self._keep(key, _ABSENT if data is None else data)

    def _keep(self, key: bytes, data: bytes) -> None:
        records = self._records
        before = records.pop(key, None)
        if before is not None:
            self._bytes -= len(key) + len(before)
        if len(data) > _LARGEST:
            return  # read from RocksDB (and its block cache) each time instead
        records[key] = data
        self._bytes += len(key) + len(data)
        if len(records) > self.capacity or self._bytes > self.capacity_bytes:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        """Forgets the records kept longest ago, down to three quarters of either bound."""
        records = self._records
        count_goal, bytes_goal = self.capacity * 3 // 4, self.capacity_bytes * 3 // 4
        for key in list(records):  # oldest first: a rewritten key moves to the end
            if len(records) <= count_goal and self._bytes <= bytes_goal:
                break
            self._bytes -= len(key) + len(records.pop(key))
