"""Subscription endpoints: `kafka://CLUSTER/TOPIC` sources and `service://NAME/HANDLER` sinks."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urlsplit

# Kafka's own rule for topic names.
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_DROPPED_BY_URLSPLIT = re.compile(r"[\t\r\n]|^[\x00-\x20]")


class SubscriptionError(ValueError):
    """A subscription cannot be created as asked; the message says why (HTTP 400/404/409)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class KafkaSource:
    cluster: str
    topic: str

    def __str__(self) -> str:
        return f"kafka://{self.cluster}/{self.topic}"


@dataclasses.dataclass(frozen=True)
class ServiceSink:
    service: str
    handler: str

    def __str__(self) -> str:
        return f"service://{self.service}/{self.handler}"


def _split(text: str, scheme: str, shape: str) -> tuple[str, str]:
    if not isinstance(text, str) or not text:
        raise SubscriptionError(f"expected a {shape} URI, got {text!r}")
    # urlsplit silently drops tabs and newlines and strips leading blanks: refuse them instead
    # of turning a mistyped URI into another, valid one.
    if _DROPPED_BY_URLSPLIT.search(text) or "?" in text or "#" in text:
        raise SubscriptionError(f"{text!r} is not a {shape} URI")
    try:
        parts = urlsplit(text)
    except ValueError:
        raise SubscriptionError(f"{text!r} is not a {shape} URI") from None
    if parts.scheme != scheme:
        raise SubscriptionError(f"{text!r} is not a {shape} URI")
    name, rest = parts.netloc, parts.path.removeprefix("/")
    if not name or not rest or "/" in rest:
        raise SubscriptionError(f"{text!r} is not a {shape} URI")
    return name, rest


def parse_source(text: str) -> KafkaSource:
    cluster, topic = _split(text, "kafka", "kafka://CLUSTER/TOPIC")
    if not _TOPIC.match(topic) or topic in (".", ".."):
        raise SubscriptionError(f"{topic!r} is not a valid Kafka topic name")
    return KafkaSource(cluster, topic)


def parse_sink(text: str) -> ServiceSink:
    service, handler = _split(text, "service", "service://NAME/HANDLER")
    return ServiceSink(service, handler)
