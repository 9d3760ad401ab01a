"""Kafka clusters by name: from `headway.toml` (`[[kafka.clusters]]`) and the admin API."""

from __future__ import annotations

import dataclasses
from typing import Any

from .uris import SubscriptionError


@dataclasses.dataclass(frozen=True)
class KafkaCluster:
    """A cluster's bootstrap brokers and extra librdkafka properties for every client."""

    name: str
    brokers: tuple[str, ...]
    properties: dict[str, str] = dataclasses.field(default_factory=dict)

    def client_config(self) -> dict[str, str | int | float | bool]:
        return {**self.properties, "bootstrap.servers": ",".join(self.brokers)}

    def to_record(self) -> dict[str, Any]:
        return {"name": self.name, "brokers": list(self.brokers), "properties": self.properties}


def cluster_from_record(raw: Any, origin: str) -> KafkaCluster:
    """Validates one cluster definition (a TOML table or an admin API body)."""
    if not isinstance(raw, dict):
        raise SubscriptionError(f"{origin}: a Kafka cluster must be a table/object")
    name = raw.get("name")
    brokers = raw.get("brokers")
    properties = raw.get("properties", {})
    if not isinstance(name, str) or not name or "/" in name or "\x00" in name:
        raise SubscriptionError(f"{origin}: a Kafka cluster needs a non-empty 'name' without '/'")
    if isinstance(brokers, str):
        brokers = [b for b in brokers.split(",") if b]
    if (
        not isinstance(brokers, list)
        or not brokers
        or not all(isinstance(b, str) and b for b in brokers)
    ):
        raise SubscriptionError(
            f"{origin}: Kafka cluster {name!r} needs 'brokers', a list of host:port strings"
        )
    if not isinstance(properties, dict):
        raise SubscriptionError(f"{origin}: 'properties' of cluster {name!r} must be a table")
    unknown = set(raw) - {"name", "brokers", "properties"}
    if unknown:
        raise SubscriptionError(
            f"{origin}: unknown field(s) {', '.join(sorted(unknown))} in cluster {name!r}"
        )
    return KafkaCluster(name, tuple(brokers), {str(k): str(v) for k, v in properties.items()})


def clusters_from_toml(kafka_table: Any, origin: str) -> tuple[KafkaCluster, ...]:
    if kafka_table is None:
        return ()
    if not isinstance(kafka_table, dict):
        raise SubscriptionError(f"{origin}: [kafka] must be a table")
    raw_clusters = kafka_table.get("clusters", [])
    if not isinstance(raw_clusters, list):
        raise SubscriptionError(f"{origin}: kafka.clusters must be an array of tables")
    clusters = tuple(cluster_from_record(raw, origin) for raw in raw_clusters)
    names = [c.name for c in clusters]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise SubscriptionError(f"{origin}: Kafka cluster defined twice: {sorted(duplicates)}")
    return clusters
