"""Kafka's SQL tables: subscriptions, per-partition progress and lag, and the outbox.

Registered with the engine's table registry on import; rows come from the same consistent
store read as every other table. End offsets (for lag) are the ones the running consumers
last fetched, so a query never waits on the broker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa
from headway.engine import keys
from headway.engine.sql_tables import Row, StoreReader, table

from .subscription import subscription_from_record


@table(
    "sys_subscription",
    [
        ("id", pa.string()), ("source", pa.string()), ("sink", pa.string()),
        ("consumer_group", pa.string()), ("status", pa.string()), ("error", pa.string()),
        ("options", pa.string()),
    ],
)  # fmt: skip
def sys_subscription(reader: StoreReader) -> Iterator[Row]:
    for _, record in reader.scan(keys.SUBSCRIPTION):
        s = subscription_from_record(record)
        yield (
            s.id, str(s.source), str(s.sink), s.group, "failed" if s.failed else "running",
            s.failed, json.dumps(s.options, sort_keys=True),
        )  # fmt: skip


@table(
    "sys_kafka_progress",
    [
        ("subscription_id", pa.string()), ("consumer_group", pa.string()),
        ("topic", pa.string()), ("partition", pa.int64()), ("applied_offset", pa.int64()),
        ("end_offset", pa.int64()), ("lag", pa.int64()),
    ],
)  # fmt: skip
def sys_kafka_progress(reader: StoreReader) -> Iterator[Row]:
    subscriptions = [subscription_from_record(r) for _, r in reader.scan(keys.SUBSCRIPTION)]
    applied: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for key, offset in reader.scan(keys.KAFKA_OFFSET):
        group, topic, number = key[len(keys.KAFKA_OFFSET) :].split(b"\x00")
        applied.setdefault((group.decode(), topic.decode()), []).append((int(number), offset))
    for s in subscriptions:
        for partition, offset in sorted(applied.get((s.group, s.source.topic), [])):
            end = reader.kafka_end_offset(s.group, s.source.topic, partition)
            lag = None if end is None else max(0, end - offset - 1)
            yield (s.id, s.group, s.source.topic, partition, offset, end, lag)


@table(
    "sys_outbox",
    [
        ("partition", pa.int64()), ("cluster", pa.string()), ("seq", pa.int64()),
        ("topic", pa.string()), ("key", pa.binary()), ("value", pa.binary()),
    ],
)  # fmt: skip
def sys_outbox(reader: StoreReader) -> Iterator[Row]:
    """Records committed in the engine, not yet committed to Kafka (the embedded log has one
    partition, 0). An empty name is the default cluster."""
    for key, (topic, record_key, value, _headers) in reader.scan(keys.OUTBOX):
        cluster, _, seq = key[len(keys.OUTBOX) :].partition(b"\x00")
        yield (0, cluster.decode(), int(seq, 16), topic, record_key, value)
