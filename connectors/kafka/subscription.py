"""A subscription: every record of a Kafka topic becomes one invocation of a handler.

Options are Headway's own (below) plus any librdkafka consumer property, which overrides the
cluster's properties. The consumer group defaults to one derived from the source and sink, so
removing a subscription and adding it back resumes where it stopped (its applied offsets are
kept under the group), while two subscriptions of one topic with different groups each see
every record.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from .formats import FORMATS
from .uris import KafkaSource, ServiceSink, SubscriptionError, parse_sink, parse_source

# Headway's options; every other option is passed to the librdkafka consumer.
OPTION_DOCS: dict[str, str] = {
    "group.id": "consumer group (default: headway-CLUSTER-TOPIC-SERVICE-HANDLER)",
    "auto.offset.reset": "where a new group starts: earliest (default) or latest",
    "value.format": f"record value format: {', '.join(FORMATS)} (default json)",
    "avro.schema.file": "the .avsc file for value.format=avro",
    "schema.registry.url": "the schema registry for value.format=avro-confluent",
    "dead.letter.topic": "where undecodable records and terminal failures go, with error headers",
    "ordered": "service sinks: invoke one record per partition at a time, in offset order",
    "max.in.flight": "records per partition invoked and not yet finished before pausing it",
    "express": "true (default): run a record's in-process handler before logging it when it "
    "only uses state and emits, and keep no invocation record; false: every record is a full, "
    "retained invocation",
}
DEFAULT_MAX_IN_FLIGHT = 1000


@dataclasses.dataclass(frozen=True)
class Subscription:
    """Derived fields are cached: the consumer reads them for every record."""

    id: str
    source: KafkaSource
    sink: ServiceSink
    options: dict[str, str]
    failed: str | None = None

    @functools.cached_property
    def group(self) -> str:
        return self.options.get("group.id") or (
            f"headway-{self.source.cluster}-{self.source.topic}"
            f"-{self.sink.service}-{self.sink.handler}"
        )

    @functools.cached_property
    def value_format(self) -> str:
        return self.options.get("value.format", "json")

    @functools.cached_property
    def dead_letter_topic(self) -> str | None:
        return self.options.get("dead.letter.topic") or None

    @functools.cached_property
    def ordered(self) -> bool:
        return self.options.get("ordered", "false").lower() in ("true", "1", "yes")

    @functools.cached_property
    def express(self) -> bool:
        return self.options.get("express", "true").lower() in ("true", "1", "yes")

    @functools.cached_property
    def max_in_flight(self) -> int:
        return 1 if self.ordered else int(self.options.get("max.in.flight", DEFAULT_MAX_IN_FLIGHT))

    def consumer_options(self) -> dict[str, str]:
        """The librdkafka properties among the options."""
        return {k: v for k, v in self.options.items() if k not in OPTION_DOCS}

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id, "source": str(self.source), "sink": str(self.sink),
            "options": self.options, "group": self.group, "cluster": self.source.cluster,
            "dlq": self.dead_letter_topic, "failed": self.failed,
        }  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "source": str(self.source), "sink": str(self.sink),
            "options": self.options, "group": self.group,
            "status": "failed" if self.failed else "running", "error": self.failed,
        }  # fmt: skip


def subscription_from_record(record: dict[str, Any]) -> Subscription:
    return Subscription(
        record["id"], parse_source(record["source"]), parse_sink(record["sink"]),
        dict(record["options"]), record.get("failed"),
    )  # fmt: skip


def parse_options(raw: Any) -> dict[str, str]:
    """Validates the options of a new subscription (librdkafka checks its own later)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SubscriptionError("'options' must be an object of string values")
    options: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str | int):
            raise SubscriptionError(f"option {key!r} must be a string, got {value!r}")
        options[str(key)] = str(value)
    reset = options.setdefault("auto.offset.reset", "earliest")
    if reset not in ("earliest", "latest"):
        raise SubscriptionError(f"auto.offset.reset must be earliest or latest, got {reset!r}")
    if options.get("value.format", "json") not in FORMATS:
        raise SubscriptionError(
            f"unknown value.format {options['value.format']!r}: expected one of "
            + ", ".join(FORMATS)
        )
    for flag in ("ordered", "express"):
        if options.get(flag, "false").lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise SubscriptionError(f"{flag} must be true or false, got {options[flag]!r}")
    in_flight = options.get("max.in.flight")
    if in_flight is not None and (not in_flight.isdigit() or int(in_flight) < 1):
        raise SubscriptionError(f"max.in.flight must be a positive integer, got {in_flight!r}")
    return options
