"""Admin API routes for Kafka: clusters (`/kafka-clusters`) and subscriptions (`/subscriptions`).

A new subscription is checked before it is stored: its URIs, its options (librdkafka checks its
own properties), its cluster, that its topic exists there, and that its sink is a known handler.
Every problem is a 4xx JSON error that says which.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web
from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient
from headway.engine import keys
from headway.engine.entries import PutKafkaCluster, Subscribe, Unsubscribe
from headway.engine.http_errors import error
from headway.sdk import ids

from .clusters import KafkaCluster, cluster_from_record
from .formats import value_format
from .subscription import Subscription, parse_options, subscription_from_record
from .uris import SubscriptionError, parse_sink, parse_source

if TYPE_CHECKING:
    from headway.engine.engine import Engine


def _subscription_json(subscription: Subscription, store: Any) -> dict[str, Any]:
    """A subscription with its applied offset per partition."""
    body = subscription.to_json()
    prefix = keys.kafka_offset(subscription.group, subscription.source.topic, 0)[:-1]
    body["progress"] = sorted(
        ({"partition": int(key[len(prefix) :]), "applied_offset": offset}
         for key, offset in store.scan(prefix)),
        key=lambda p: p["partition"],
    )  # fmt: skip
    return body


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as e:
        raise SubscriptionError(f"the body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise SubscriptionError("the body must be a JSON object")
    return body


def _check_topic(cluster: KafkaCluster, topic: str) -> None:
    """Raises SubscriptionError unless `topic` exists on `cluster` (runs in a thread)."""
    client = AdminClient({**cluster.client_config(), "socket.timeout.ms": 10_000})
    try:
        metadata = client.list_topics(timeout=10)
    except KafkaException as e:
        raise SubscriptionError(f"cannot reach Kafka cluster {cluster.name!r}: {e}", 503) from None
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        raise SubscriptionError(f"topic {topic!r} does not exist on cluster {cluster.name!r}", 404)


def _check_consumer_options(cluster: KafkaCluster, subscription: Subscription) -> None:
    try:
        consumer = Consumer(
            {**cluster.client_config(), **subscription.consumer_options(),
             "group.id": subscription.group}
        )  # fmt: skip
    except KafkaException as e:
        raise SubscriptionError(f"invalid consumer option: {e.args[0].str()}") from None
    consumer.close()


class KafkaAdmin:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/subscriptions", self.list_subscriptions)
        router.add_post("/subscriptions", self.add_subscription)
        router.add_get("/subscriptions/{id}", self.get_subscription)
        router.add_delete("/subscriptions/{id}", self.remove_subscription)
        router.add_get("/kafka-clusters", self.list_clusters)
        router.add_post("/kafka-clusters", self.add_cluster)
        router.add_delete("/kafka-clusters/{name}", self.remove_cluster)

    @property
    def kafka(self) -> Any:
        return self.engine.kafka

    async def list_subscriptions(self, request: web.Request) -> web.Response:
        store = self.engine.store
        return web.json_response(
            {"subscriptions": [_subscription_json(s, store) for s in self.kafka.subscriptions()]}
        )

    async def get_subscription(self, request: web.Request) -> web.Response:
        record = self.engine.store.get(keys.subscription(request.match_info["id"]))  # type: ignore[union-attr]
        if record is None:
            return error(404, f"subscription not found: {request.match_info['id']}")
        return web.json_response(_subscription_json(subscription_from_record(record),
                                                    self.engine.store))  # fmt: skip

    async def add_subscription(self, request: web.Request) -> web.Response:
        try:
            subscription = await self._new_subscription(await _body(request))
        except SubscriptionError as e:
            return error(e.status, str(e))
        await self.engine.submit(Subscribe(subscription.to_record()))
        return web.json_response(_subscription_json(subscription, self.engine.store), status=201)

    async def _new_subscription(self, body: dict[str, Any]) -> Subscription:
        unknown = set(body) - {"source", "sink", "options"}
        if unknown:
            raise SubscriptionError(f"unknown field(s): {', '.join(sorted(unknown))}")
        source = parse_source(body.get("source"))  # type: ignore[arg-type]
        sink = parse_sink(body.get("sink"))  # type: ignore[arg-type]
        options = parse_options(body.get("options"))
        cluster = self.kafka.cluster(source.cluster)
        found = self.engine.registry.lookup(sink.service, sink.handler)
        if found is None:
            raise SubscriptionError(f"unknown sink {sink}: no such service and handler", 404)
        subscription = Subscription(ids.new_subscription_id(), source, sink, options)
        for existing in self.kafka.subscriptions():
            if existing.group == subscription.group and existing.source == source:
                raise SubscriptionError(
                    f"subscription {existing.id} already consumes {source} with group "
                    f"{existing.group!r}", 409,
                )  # fmt: skip
        value_format(
            subscription.value_format, options.get("avro.schema.file"),
            options.get("schema.registry.url"),
        )  # fmt: skip
        await asyncio.to_thread(_check_consumer_options, cluster, subscription)
        await asyncio.to_thread(_check_topic, cluster, source.topic)
        return subscription

    async def remove_subscription(self, request: web.Request) -> web.Response:
        sub_id = request.match_info["id"]
        if self.engine.store.get(keys.subscription(sub_id)) is None:  # type: ignore[union-attr]
            return error(404, f"subscription not found: {sub_id}")
        await self.engine.submit(Unsubscribe(sub_id))
        return web.json_response({"id": sub_id, "removed": True})

    async def list_clusters(self, request: web.Request) -> web.Response:
        configured = self.kafka.configured_clusters
        return web.json_response({"clusters": [
            c.to_record() | {"origin": "config" if name in configured else "admin"}
            for name, c in sorted(self.kafka.clusters().items())
        ]})  # fmt: skip

    async def add_cluster(self, request: web.Request) -> web.Response:
        try:
            cluster = cluster_from_record(await _body(request), "request")
        except SubscriptionError as e:
            return error(e.status, str(e))
        if cluster.name in self.kafka.configured_clusters:
            return error(409, f"cluster {cluster.name!r} is defined in the config file")
        await self.engine.submit(PutKafkaCluster(cluster.name, cluster.to_record()))
        return web.json_response(cluster.to_record(), status=201)

    async def remove_cluster(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name in self.kafka.configured_clusters:
            return error(409, f"cluster {name!r} is defined in the config file")
        if name not in self.kafka.clusters():
            return error(404, f"unknown Kafka cluster {name!r}")
        users = [s.id for s in self.kafka.subscriptions() if s.source.cluster == name]
        if users:
            return error(409, f"cluster {name!r} is used by subscriptions {', '.join(users)}")
        await self.engine.submit(PutKafkaCluster(name, None))
        return web.json_response({"name": name, "removed": True})
