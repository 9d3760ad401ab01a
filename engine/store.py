"""The partition store: RocksDB through rocksdict, plus the overlay a batch is applied on.

Values are msgpack-encoded records. The processor reads and writes through a `StoreView`, an
overlay of decoded records over the committed store; the committer turns the overlay into one
write batch. Reads elsewhere (invoker, admin) see only committed data.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import msgpack
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteOptions

_BLOCK_CACHE_BYTES = 64 << 20
# The value under a deleted key in `StoreView.changes`; observers that pass over every change
# test it by identity, which costs less than calling `StoreView.deleted`.
DELETED = object()
_MISSING = object()


class ReadableStore(Protocol):
    """What the processor reads committed records from (RocksDB, or a dict in unit tests)."""

    def get(self, key: bytes) -> Any: ...


class StoreLockedError(RuntimeError):
    """Another engine already has this data directory open."""


_packers = threading.local()


def _packer() -> msgpack.Packer:
    """This thread's packer, reused: `msgpack.packb` makes one per call, which costs more than
    packing a small record."""
    try:
        return _packers.packer  # type: ignore[no-any-return]
    except AttributeError:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
        return packer


def pack(value: Any) -> bytes:
    return _packer().pack(value)


def pack_array(packed: list[bytes]) -> bytes:
    """The msgpack array of values each already packed: what `pack` makes of the list of them.

    For a large record built from many parts: packing each part as it is made, while it is in
    the CPU's caches, and joining the bytes costs less than packing the whole list at the end.
    """
    return _packer().pack_array_header(len(packed)) + b"".join(packed)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


class Store:
    """The committed partition store on local disk."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        table = BlockBasedOptions()
        # Most point reads on the hot path look for keys that do not exist (a key's lock, a new
        # key's state): a bloom filter answers those without reading blocks.
        table.set_bloom_filter(10, False)
        table.set_block_cache(Cache(_BLOCK_CACHE_BYTES))
        options.set_block_based_table_factory(table)
        options.set_memtable_prefix_bloom_ratio(0.05)
        options.set_memtable_whole_key_filtering(True)
        try:
            self.db = Rdict(str(path / "store"), options)
        except Exception as e:
            if "lock" in str(e).lower():
                raise StoreLockedError(
                    f"the data directory {path} is in use by another Headway engine "
                    "(only one engine may open it at a time)"
                ) from e
            raise
        self._sync = WriteOptions()
        self._sync.sync = True
        self._unsynced = WriteOptions()

    def get(self, key: bytes) -> Any:
        data = self.db.get(key)
        return None if data is None else unpack(data)

    def scan(self, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, Any]]:
        """Records whose key starts with `prefix`, in key order, from `start` if given."""
        it = self.db.iter()
        it.seek(start or prefix)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            yield key, unpack(it.value())
            it.next()

    def put_metadata(self, key: bytes, value: Any) -> None:
        """Writes one record outside the log: only for facts about the engine itself (its node
        id), set before processing starts and never changed by entries."""
        self.db.put(key, pack(value), self._sync)

    def write(self, batch: WriteBatch) -> None:
        """Writes one batch atomically and fsyncs it before returning.

        rocksdict holds the GIL through a synced write, fsync included, which stalls the event
        loop for the length of every group commit; `flush_wal` releases it. So the batch goes to
        the write-ahead log unsynced (a write(2): it survives the process, not the machine) and
        the log is then synced with the GIL released. Between the two, a reader of this store
        can see records that a machine crash would lose: whatever acts on them outside the
        engine takes its bound from the committer, which reports only durable batches.
        """
        self.db.write(batch, self._unsynced)
        self.db.flush_wal(True)

    def close(self) -> None:
        self.db.close()


class StoreView:
    """Decoded records changed by the batch being applied, over the committed store.

    A record read from the store is decoded once per batch: later reads return the same
    object, so a change made to it and then put is what every later reader sees.
    """

    def __init__(self, store: ReadableStore) -> None:
        self.store = store
        self.changes: dict[bytes, Any] = {}
        self.reads: dict[bytes, Any] = {}

    def get(self, key: bytes) -> Any:
        value = self.changes.get(key, _MISSING)
        if value is _MISSING:
            value = self.reads.get(key, _MISSING)
            if value is _MISSING:
                value = self.reads[key] = self.store.get(key)
            return value
        return None if value is DELETED else value

    def put(self, key: bytes, value: Any) -> None:
        self.changes[key] = value

    def delete(self, key: bytes) -> None:
        self.changes[key] = DELETED

    def to_batch(
        self, batch: WriteBatch, returned: tuple[bytes, ...] = ()
    ) -> dict[bytes, bytes | None]:
        """Adds every change to `batch`, encoded; returns the encoded changes (None: deleted)
        of the keys that start with one of the `returned` prefixes."""
        encoded: dict[bytes, bytes | None] = {}
        for key, value in self.changes.items():
            data = None if value is DELETED else pack(value)
            if data is None:
                batch.delete(key)
            else:
                batch.put(key, data)
            if key.startswith(returned):
                encoded[key] = data
        return encoded

    def clear(self) -> None:
        self.changes.clear()
        self.reads.clear()

    def deleted(self, value: Any) -> bool:
        return value is DELETED
