"""Kafka's Prometheus metrics, read from the running consumers and shippers at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from headway.engine import keys
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .connector import KafkaConnector


class KafkaCollector(Collector):
    def __init__(self, connector: KafkaConnector) -> None:
        self.connector = connector

    def collect(self) -> Iterator[Metric]:
        ingested = CounterMetricFamily(
            "headway_kafka_records_ingested", "Kafka records handed to the engine",
            labels=["subscription", "topic"],
        )  # fmt: skip
        lag = GaugeMetricFamily(
            "headway_kafka_consumer_lag",
            "records between a partition's end and its applied offset (end as last fetched)",
            labels=["subscription", "topic", "partition"],
        )
        store = self.connector.store
        for sub_id, consumer in sorted(self.connector.consumers.items()):
            topic = consumer.subscription.source.topic
            ingested.add_metric([sub_id, topic], consumer.ingested)
            for partition in sorted(consumer.flows):
                end = consumer.end_offset(partition)
                applied = store.get(
                    keys.kafka_offset(consumer.subscription.group, topic, partition)
                )
                if end is not None:
                    behind = end - (applied + 1 if applied is not None else 0)
                    lag.add_metric([sub_id, topic, str(partition)], max(0, behind))
        yield ingested
        yield lag
        depth = GaugeMetricFamily(
            "headway_outbox_depth", "records in the outbox not yet committed to Kafka",
            labels=["cluster"],
        )  # fmt: skip
        commits = CounterMetricFamily(
            "headway_outbox_transactions", "Kafka transactions the outbox shipper committed",
            labels=["cluster"],
        )  # fmt: skip
        seconds = CounterMetricFamily(
            "headway_outbox_commit_seconds",
            "time spent producing and committing outbox transactions", labels=["cluster"],
        )  # fmt: skip
        for outbox, shipper in sorted(self.connector.shippers.items()):
            name = outbox or "default"
            depth.add_metric([name], shipper.depth())
            commits.add_metric([name], shipper.transactions)
            seconds.add_metric([name], shipper.commit_seconds)
        yield depth
        yield commits
        yield seconds
