"""Exactly-once under SIGKILL and broker outages: the exact outputs are checked, not "no error".

The pipeline: JSON records over many keys on a 4-partition topic; the handler keeps a per-key
count in state and emits `{"key", "n"}`. Whatever is killed and whenever, a read_committed
consumer must find every key's outputs to be exactly 1..count, in order.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from broker import KafkaBroker, TopicFactory
from confluent_kafka import Consumer, TopicPartition
from engine_process import EngineProcess
from pipeline import add_subscription, check_counts, counter_records, produce, read_committed

RECORDS = 200_000
KEYS = 10_000


def _committed_outputs(bootstrap: str, topic: str) -> int:
    """How many outputs are visible to read_committed right now (end offsets, all partitions)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe",
                         "isolation.level": "read_committed"})  # fmt: skip
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        total = 0
        for partition in metadata.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            total += high - low
        return total
    finally:
        consumer.close()


def _wait_for_outputs(bootstrap: str, topic: str, at_least: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while _committed_outputs(bootstrap, topic) < at_least:
        assert time.monotonic() < deadline, f"fewer than {at_least} outputs after {timeout}s"
        time.sleep(0.2)


def test_exactly_once_through_three_sigkills(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any
) -> None:
    topic = new_topic(4)
    out = new_topic(4, f"{topic}-out")
    engine: EngineProcess = kafka_engine()
    add_subscription(engine, topic, "service://Counts/on_record")
    producer = threading.Thread(
        target=produce, args=(kafka_bootstrap, topic, counter_records(RECORDS, KEYS))
    )
    producer.start()
    # Kill at a quarter, half and three quarters of the outputs: mid-stream, with invocations
    # running, outbox records waiting and transactions open.
    for fraction in (0.25, 0.5, 0.75):
        _wait_for_outputs(kafka_bootstrap, out, int(RECORDS * fraction))
        engine.kill()
        engine.start()
    producer.join()
    outputs = read_committed(kafka_bootstrap, out, RECORDS, timeout=600)
    assert len(outputs) == RECORDS
    check_counts(outputs, {f"k{i}": RECORDS // KEYS for i in range(KEYS)})


def test_exactly_once_through_a_broker_outage(
    kafka_bootstrap: str,
    kafka_broker: KafkaBroker | None,
    new_topic: TopicFactory,
    kafka_engine: Any,
) -> None:
    """The broker stops for ~10 s mid-stream (consumers, the outbox shipper and its open
    transaction all lose it) and comes back: the engine recovers by itself."""
    if kafka_broker is None:
        pytest.skip("an external broker (HEADWAY_KAFKA_BOOTSTRAP) cannot be stopped by the test")
    records, keys = 40_000, 2_000
    topic = new_topic(4)
    out = new_topic(4, f"{topic}-out")
    engine: EngineProcess = kafka_engine()
    add_subscription(engine, topic, "service://Counts/on_record")
    produce(kafka_bootstrap, topic, counter_records(records, keys))
    _wait_for_outputs(kafka_bootstrap, out, records // 4)
    kafka_broker.stop_process(kill=True)
    time.sleep(10)
    kafka_broker.start_process()
    outputs = read_committed(kafka_bootstrap, out, records, timeout=300)
    assert len(outputs) == records
    check_counts(outputs, {f"k{i}": records // keys for i in range(keys)})
    assert engine.proc is not None and engine.proc.poll() is None  # it never gave up
