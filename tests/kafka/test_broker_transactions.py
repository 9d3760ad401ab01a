"""The broker guarantees Headway's exactly-once rests on, checked with confluent-kafka.

Kafka-compatible stand-ins fail exactly these checks (DESIGN.md, "Testing against real
Kafka"), so they guard against the suite quietly running on a broker that cannot fence.
"""

from __future__ import annotations

import time
import uuid

import pytest
from broker import TopicFactory
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

pytestmark = pytest.mark.kafka

TIMEOUT = 30.0


def _transactional_producer(bootstrap: str, transactional_id: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    producer.init_transactions(TIMEOUT)
    return producer


def _consumer(bootstrap: str, group: str, isolation: str = "read_committed") -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "isolation.level": isolation,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


def _read_until(
    bootstrap: str, topic: str, last: bytes, isolation: str = "read_committed"
) -> list[bytes]:
    """Read a one-partition topic from the start up to and including the value ``last``.

    Stopping at a known last record, not at end of partition, matters: commit_transaction()
    returns before the commit markers are written, so the end may not be visible yet.
    """
    consumer = _consumer(bootstrap, f"reader-{uuid.uuid4().hex}", isolation)
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            value = message.value()
            assert value is not None
            values.append(value)
            if value == last:
                return values
    finally:
        consumer.close()
    raise AssertionError(f"{last!r} not read from {topic} within {TIMEOUT}s; read {values}")


def _produce(producer: Producer, topic: str, *values: str) -> None:
    for value in values:
        producer.produce(topic, value.encode())


def test_read_committed_hides_aborted_records(
    kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    """Output of a failed attempt, aborted, must never reach read_committed readers."""
    topic = new_topic()
    producer = _transactional_producer(kafka_bootstrap, f"txn-{uuid.uuid4().hex}")
    for outcome, values in [
        ("commit", ["a", "b"]),
        ("abort", ["x", "y", "z"]),
        ("commit", ["c"]),
    ]:
        producer.begin_transaction()
        _produce(producer, topic, *values)
        if outcome == "commit":
            producer.commit_transaction(TIMEOUT)
        else:
            producer.flush(TIMEOUT)  # the aborted records really reach the log
            producer.abort_transaction(TIMEOUT)

    assert _read_until(kafka_bootstrap, topic, b"c") == [b"a", b"b", b"c"]
    # The aborted records are in the log, so read_committed filtering is what hid them.
    uncommitted = _read_until(kafka_bootstrap, topic, b"c", isolation="read_uncommitted")
    assert uncommitted == [b"a", b"b", b"x", b"y", b"z", b"c"]


def test_same_transactional_id_fences_the_first_producer(
    kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    """A partition's new owner must stop its zombie predecessor from committing."""
    topic = new_topic()
    transactional_id = f"txn-{uuid.uuid4().hex}"
    zombie = _transactional_producer(kafka_bootstrap, transactional_id)
    zombie.begin_transaction()
    _produce(zombie, topic, "from-zombie")
    assert zombie.flush(TIMEOUT) == 0

    successor = _transactional_producer(kafka_bootstrap, transactional_id)
    # Not pytest.raises: its traceback would keep both producers alive past the session.
    try:
        zombie.commit_transaction(TIMEOUT)
    except KafkaException as exc:
        error: KafkaError = exc.args[0]
    else:
        pytest.fail("the fenced producer committed its transaction")
    assert error.code() == KafkaError._FENCED, error
    assert error.fatal(), error

    successor.begin_transaction()
    _produce(successor, topic, "from-successor")
    successor.commit_transaction(TIMEOUT)
    # The successor's init_transactions() aborted the zombie's open transaction.
    assert _read_until(kafka_bootstrap, topic, b"from-successor") == [b"from-successor"]


def test_offsets_commit_atomically_with_output(
    kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    """Input offsets commit with the output they produced, or not at all."""
    source, sink = new_topic(), new_topic()
    seed = Producer({"bootstrap.servers": kafka_bootstrap})
    _produce(seed, source, *(str(n) for n in range(10)))
    assert seed.flush(TIMEOUT) == 0

    group = f"group-{uuid.uuid4().hex}"
    consumer = _consumer(kafka_bootstrap, group)
    consumer.subscribe([source])
    producer = _transactional_producer(kafka_bootstrap, f"txn-{uuid.uuid4().hex}")

    def process(count: int) -> list[TopicPartition]:
        """Consume ``count`` records and produce their doubles in the open transaction."""
        for _ in range(count):
            message = consumer.poll(TIMEOUT)
            assert message is not None and not message.error(), message
            value = message.value()
            assert value is not None
            _produce(producer, sink, str(2 * int(value)))
        positions: list[TopicPartition] = consumer.position(consumer.assignment())
        return positions

    try:
        producer.begin_transaction()
        positions = process(5)
        assert [(tp.topic, tp.partition, tp.offset) for tp in positions] == [(source, 0, 5)]
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), TIMEOUT)
        producer.commit_transaction(TIMEOUT)

        producer.begin_transaction()
        producer.send_offsets_to_transaction(
            process(5), consumer.consumer_group_metadata(), TIMEOUT
        )
        producer.flush(TIMEOUT)  # the aborted output really reaches the log
        producer.abort_transaction(TIMEOUT)
    finally:
        consumer.close()

    # A marker transaction after the aborted one tells the reader where the output ends.
    producer.begin_transaction()
    _produce(producer, sink, "end")
    producer.commit_transaction(TIMEOUT)
    assert _read_until(kafka_bootstrap, sink, b"end") == [b"0", b"2", b"4", b"6", b"8", b"end"]

    # read_committed makes committed() wait for pending transactional offsets to settle.
    probe = _consumer(kafka_bootstrap, group)
    try:
        [committed] = probe.committed([TopicPartition(source, 0)], TIMEOUT)
    finally:
        probe.close()
    assert committed.offset == 5
