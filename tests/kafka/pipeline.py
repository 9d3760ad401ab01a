"""Producing inputs, reading outputs read_committed, and checking the exactly-once result."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from confluent_kafka import Consumer, Producer
from engine_process import EngineProcess
from http_json import call

T = TypeVar("T")


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    headers: list[tuple[str, bytes]] | None = None,
) -> int:
    """Produces (key, value) pairs, idempotently, and waits until all are acknowledged."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20}
    )
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    count = 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    assert remaining == 0 and not failures, f"{remaining} undelivered, errors: {failures[:3]}"
    return count


def counter_records(count: int, keys: int) -> list[tuple[bytes, bytes]]:
    """`count` JSON records spread round-robin over `keys` keys."""
    return [(f"k{i % keys}".encode(), json.dumps({"i": i}).encode()) for i in range(count)]


def read_committed(
    bootstrap: str, topic: str, expected: int, timeout: float = 120.0, settle: float = 2.0
) -> list[Any]:
    """Reads `topic` from the start as a read_committed consumer until `expected` records have
    arrived and nothing more comes for `settle` seconds (so duplicates would be seen)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest", "isolation.level": "read_committed",
        "enable.auto.commit": False,
    })  # fmt: skip
    consumer.subscribe([topic])
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = [m for m in consumer.consume(5000, 0.5) if m.error() is None]
            if batch:
                records.extend(batch)
                quiet_since = time.monotonic()
            elif len(records) >= expected and time.monotonic() - quiet_since > settle:
                break
    finally:
        consumer.close()
    return records


def check_counts(outputs: list[Any], expected_per_key: dict[str, int]) -> None:
    """Every key's outputs are exactly n = 1..count, in order: no duplicate, no gap."""
    seen: dict[str, list[int]] = defaultdict(list)
    for message in outputs:
        body = json.loads(message.value())
        assert message.key().decode() == body["key"]
        seen[body["key"]].append(body["n"])
    wrong = {
        key: (seen.get(key, [])[:5], count)
        for key, count in expected_per_key.items()
        if seen.get(key) != list(range(1, count + 1))
    }
    assert not wrong, f"{len(wrong)} keys have wrong sequences, e.g. {list(wrong.items())[:3]}"
    assert set(seen) == set(expected_per_key), (
        f"unexpected keys: {set(seen) - set(expected_per_key)}"
    )


def add_subscription(
    engine: EngineProcess, topic: str, sink: str, **options: str
) -> dict[str, Any]:
    status, body = call(
        "POST", engine.admin + "/subscriptions",
        {"source": f"kafka://local/{topic}", "sink": sink, "options": options},
    )  # fmt: skip
    assert status == 201, body
    return body  # type: ignore[no-any-return]


def wait_until(probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Polls `probe` until it returns something other than None (or falsy), then returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        time.sleep(0.2)
