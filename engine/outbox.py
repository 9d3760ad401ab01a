"""The outbox: records bound for Kafka, written in the same batch as what produced them.

Pure functions over the batch's store view, used by the processor. Each cluster has its own
sequence, so its shipper can resume after the last sequence it committed to Kafka.
An outbox record is `[topic, key, value, headers]`.
"""

from __future__ import annotations

from typing import Any

from . import keys
from .store import StoreView


def put(view: StoreView, cluster: str, record: list[Any]) -> int:
    """Appends a record to `cluster`'s outbox; returns its sequence number."""
    seq_key = keys.outbox_seq(cluster)
    seq: int = (view.get(seq_key) or 0) + 1
    view.put(seq_key, seq)
    view.put(keys.outbox(cluster, seq), record)
    return seq


def trim(view: StoreView, cluster: str, shipped_seq: int) -> None:
    """Deletes the records of `cluster` up to `shipped_seq`, which Kafka has committed."""
    trimmed_key = keys.outbox_trimmed(cluster)
    trimmed: int = view.get(trimmed_key) or 0
    last = min(shipped_seq, view.get(keys.outbox_seq(cluster)) or 0)
    if last <= trimmed:
        return
    for seq in range(trimmed + 1, last + 1):
        view.delete(keys.outbox(cluster, seq))
    view.put(trimmed_key, last)
