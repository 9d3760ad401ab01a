"""The committed-read copy of object locks and state, over a real RocksDB store."""

from __future__ import annotations

from pathlib import Path

from rocksdict import WriteBatch

from headway.engine import keys
from headway.engine.hot_reads import HotReads, held
from headway.engine.store import Store, pack

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
    for name in names:
        write(store, name, {"n": b"1"})
    # The last seven are still held as absent; the first two were forgotten and are read again.
    assert [reads.get(name) for name in names[2:]] == [None] * 7
    assert [reads.get(name) for name in names[:2]] == [{"n": b"1"}] * 2
    store.close()
