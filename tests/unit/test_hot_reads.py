"""The committed-read copy of object locks and state, over a real RocksDB store."""

from __future__ import annotations

from pathlib import Path

from headway.engine import keys
from headway.engine.hot_reads import HotReads, held
from headway.engine.store import Store, pack
from rocksdict import WriteBatch

STATE = keys.state("Counter", "a")
LOCK = keys.object_lock("Counter", "a")
OTHER = keys.invocation("inv_1")


def write(store: Store, key: bytes, value: object) -> None:
    """Changes the store behind the copy's back, as no engine code does."""
    batch = WriteBatch(raw_mode=True)
    batch.put(key, pack(value))
    store.write(batch)


def test_only_locks_and_state_are_held() -> None:
    assert held(STATE) and held(LOCK)
    assert not held(OTHER) and not held(keys.APPLIED) and not held(keys.log(1))


def test_a_held_key_is_read_from_rocksdb_once(tmp_path: Path) -> None:
    store = Store(tmp_path)
    write(store, STATE, {"n": b"1"})
    reads = HotReads(store)
    assert reads.get(STATE) == {"n": b"1"}
    assert reads.get(LOCK) is None
    write(store, STATE, {"n": b"2"})
    write(store, LOCK, ["inv_9", []])
    # Both answers come from memory: the copy has not been told of those writes.
    assert reads.get(STATE) == {"n": b"1"}
    assert reads.get(LOCK) is None
    store.close()


def test_committed_changes_replace_and_delete(tmp_path: Path) -> None:
    store = Store(tmp_path)
    write(store, STATE, {"n": b"1"})
    reads = HotReads(store)
    assert reads.get(STATE) == {"n": b"1"}
    reads.committed({STATE: pack({"n": b"5"}), LOCK: pack(["inv_2", []])})
    assert reads.get(STATE) == {"n": b"5"}
    assert reads.get_raw(LOCK) == pack(["inv_2", []])
    reads.committed({LOCK: None})
    assert reads.get(LOCK) is None
    store.close()


def test_other_keys_are_always_read_from_rocksdb(tmp_path: Path) -> None:
    store = Store(tmp_path)
    reads = HotReads(store)
    assert reads.get(OTHER) is None
    write(store, OTHER, {"st": "running"})
    assert reads.get(OTHER) == {"st": "running"}
    store.close()


def test_the_copy_forgets_the_oldest_keys_beyond_its_capacity(tmp_path: Path) -> None:
    store = Store(tmp_path)
    reads = HotReads(store, capacity=8)
    names = [keys.state("Counter", str(n)) for n in range(9)]
    for name in names:
        assert reads.get(name) is None
    reads.committed({names[0]: None})  # written again: now the newest
    for name in names:
        write(store, name, {"n": b"1"})
    # Past 8 keys it forgot the three oldest (0, 1, 2); names[0], written since, is held again.
    assert [reads.get(name) for name in (names[0], *names[3:])] == [None] * 7
    assert reads.get(names[1]) == {"n": b"1"}  # forgotten, read again from RocksDB
    store.close()


def test_the_copy_is_bounded_by_bytes_and_skips_large_records(tmp_path: Path) -> None:
    store = Store(tmp_path)
    reads = HotReads(store, capacity_bytes=1_000)
    names = [keys.state("Counter", str(n)) for n in range(12)]
    reads.committed({name: pack({"v": b"x" * 100}) for name in names})
    for name in names:
        write(store, name, {"v": b"new"})
    # About 120 bytes a record: past 1,000 bytes it kept the newest 6 (750 bytes at most).
    held_now = [reads.get(name) == {"v": b"x" * 100} for name in names]
    assert held_now == [False] * 6 + [True] * 6
    reads.committed({STATE: pack({"n": b"1"})})
    reads.committed({STATE: pack({"v": b"x" * (100 << 10)})})  # too large to keep
    write(store, STATE, {"n": b"2"})
    assert reads.get(STATE) == {"n": b"2"}  # the smaller value it replaced did not linger
    store.close()
