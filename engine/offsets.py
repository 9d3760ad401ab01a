"""Exactly-once ingestion: the highest applied offset per (subscription group, topic,
partition), kept in the same batch as the invocations its records became.

A record at or below the stored offset was applied before (Kafka redelivers after a restart or
a rebalance): it is a duplicate and is dropped. Kafka record sources are dicts with at least
`group`, `topic`, `partition` and `offset`.
"""

from __future__ import annotations

from typing import Any

from . import keys
from .store import StoreView


def accept(view: StoreView, source: dict[str, Any]) -> bool:
    """Records the source's offset as applied; False if it was applied already."""
    offset_key = keys.kafka_offset(source["group"], source["topic"], source["partition"])
    applied = view.get(offset_key)
    if applied is not None and source["offset"] <= applied:
        return False
    view.put(offset_key, source["offset"])
    return True


def is_kafka(source: dict[str, Any] | None) -> bool:
    return source is not None and "offset" in source
