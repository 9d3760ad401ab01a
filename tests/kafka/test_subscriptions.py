"""Kafka subscriptions end to end: a real broker, a real engine process, real records."""

from __future__ import annotations

from typing import Any

from broker import TopicFactory
from pipeline import add_subscription, check_counts, counter_records, produce, read_committed


def test_records_become_keyed_invocations_and_emits_are_published_once(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any
) -> None:
    topic = new_topic(4)
    new_topic(4, f"{topic}-out")
    engine = kafka_engine()
    add_subscription(engine, topic, "service://Counts/on_record")
    produce(kafka_bootstrap, topic, counter_records(2000, 50))
    outputs = read_committed(kafka_bootstrap, f"{topic}-out", 2000)
    check_counts(outputs, {f"k{i}": 40 for i in range(50)})
