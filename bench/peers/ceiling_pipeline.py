"""The ceiling: a bare confluent-kafka transactional consume-transform-produce loop.

Nothing sits between the consumer and the producer but a dict, so what any other system adds
(state stores, changelogs, journals, scheduling) shows up as its gap to this loop. The counts
live only in memory, so this loop is exactly-once only while it does not crash: it is a
ceiling, not a peer. Run by bench/kafka_pipeline.py; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from types import FrameType

from confluent_kafka import Consumer, Message, Producer

COMMIT_INTERVAL = 0.1  # seconds between transactions, as the benchmark's brief sets


class Stop:
    """Set by SIGTERM/SIGINT, so the loop ends between transactions."""

    requested = False

    @classmethod
    def handle(cls, _signum: int, _frame: FrameType | None) -> None:
        cls.requested = True


def produce(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    """Produce, waiting for room in librdkafka's queue when it is full."""
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(0.05)


def run(bootstrap: str, source: str, sink: str) -> None:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"ceiling-{source}",
        "isolation.level": "read_committed", "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })  # fmt: skip
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": f"ceiling-{source}", "linger.ms": 5}
    )
    producer.init_transactions(30)
    consumer.subscribe([source])
    producer.begin_transaction()
    counts: dict[bytes, int] = {}
    pending = False
    last_commit = time.monotonic()
    while not Stop.requested:
        messages: list[Message] = consumer.consume(1000, 0.05)
        for message in messages:
            if message.error() is not None:
                continue  # informational (e.g. partition EOF); fatal errors raise in consume
            key: bytes = message.key() or b""  # every input record has a key
            n = counts.get(key, 0) + 1
            counts[key] = n
            produce(producer, sink, key, json.dumps({"key": key.decode(), "n": n}).encode())
            pending = True
        if pending and time.monotonic() - last_commit >= COMMIT_INTERVAL:
            positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
            producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata())
            producer.commit_transaction()
            producer.begin_transaction()
            pending = False
            last_commit = time.monotonic()
    producer.abort_transaction()
    consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, Stop.handle)
    signal.signal(signal.SIGINT, Stop.handle)
    run(args.bootstrap, args.input, args.output)


if __name__ == "__main__":
    main()
