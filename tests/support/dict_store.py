"""An in-memory committed store for processor tests: msgpack bytes by key, so every read
decodes a fresh record, as reads from RocksDB do."""

from __future__ import annotations

from typing import Any

from headway.engine.entries import Entry
from headway.engine.processor import Effects, Processor
from headway.engine.store import StoreView, pack, unpack


class DictStore:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> Any:
        raw = self.data.get(key)
        return None if raw is None else unpack(raw)

    def commit(self, view: StoreView) -> None:
        for key, value in view.changes.items():
            if view.deleted(value):
                self.data.pop(key, None)
            else:
                self.data[key] = pack(value)

    def keys(self, prefix: bytes) -> list[bytes]:
        return sorted(k for k in self.data if k.startswith(prefix))


def apply_batch(
    processor: Processor, store: DictStore, entries: tuple[Entry, ...], now_ms: int
) -> tuple[StoreView, Effects]:
    """Applies entries and their follow-ups over one view, as the committer does, and commits
    the view to `store`."""
    view = StoreView(store)
    effects = Effects()
    for entry in entries:
        processor.apply(entry, view, now_ms, effects)
        while effects.entries:
            processor.apply(effects.entries.popleft(), view, now_ms, effects)
    store.commit(view)
    return view, effects
