"""Kafka inside one engine: the clusters it knows, a consumer per running subscription, and an
outbox shipper per cluster that has records to publish.

The engine hands it the actions the processor produced (`KafkaRecordDone`, `OutboxReady`,
`SubscriptionsChanged`); subscriptions and admin-defined clusters live in the store, so they
survive restarts, and `reconcile` makes the running consumers match them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from headway.engine import keys
from headway.engine.entries import Entry
from headway.engine.express import ExpressLane
from headway.engine.registry import Registry
from headway.engine.store import Store

from .clusters import KafkaCluster, cluster_from_record
from .consumer import SubscriptionConsumer
from .formats import value_format
from .shipper import OutboxShipper
from .subscription import Subscription, subscription_from_record
from .uris import SubscriptionError

if TYPE_CHECKING:
    from headway.engine.committer import Committer
    from headway.engine.observability import Observability

log = logging.getLogger("headway.kafka")

PARTITION = 0  # the embedded log has one partition


class KafkaConnector:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        submit: Callable[[Entry], object],
        configured_clusters: tuple[KafkaCluster, ...],
        *,
        commit_interval: float,
        max_records: int,
        committer: Committer | None = None,
        observer: Observability | None = None,
    ) -> None:
        """With the `committer`, subscriptions can use the express lane."""
        self.store = store
        self.registry = registry
        self.submit = submit
        self.committer = committer
        self.observer = observer
        self.configured_clusters = {c.name: c for c in configured_clusters}
        self.commit_interval = commit_interval
        self.max_records = max_records
        self.consumers: dict[str, SubscriptionConsumer] = {}
        self.shippers: dict[str, OutboxShipper] = {}
        self.node_id = self._node_id()
        # Outboxes as the store was opened, before anything writes to it: all durable.
        self._outboxes_at_open = {
            key[len(keys.OUTBOX_SEQ) :].decode(): int(seq)
            for key, seq in store.scan(keys.OUTBOX_SEQ)
        }
        self._reconciling: asyncio.Task[None] | None = None
        self._dirty = False

    def _node_id(self) -> str:
        """A stable name for this engine's producers: random once, then kept in the store, so
        a restarted engine fences its own zombie and two engines never fence each other."""
        node_id = self.store.get(keys.NODE_ID)
        if node_id is None:
            node_id = uuid.uuid4().hex[:12]
            self.store.put_metadata(keys.NODE_ID, node_id)
        return str(node_id)

    # -- clusters and subscriptions ---------------------------------------------------------

    def clusters(self) -> dict[str, KafkaCluster]:
        """Clusters from the config file, and those defined through the admin API."""
        found = dict(self.configured_clusters)
        for key, record in self.store.scan(keys.KAFKA_CLUSTER):
            name = key[len(keys.KAFKA_CLUSTER) :].decode()
            found.setdefault(name, cluster_from_record(record, "admin API"))
        return found

    def cluster(self, name: str) -> KafkaCluster:
        cluster = self.clusters().get(name)
        if cluster is None:
            raise SubscriptionError(f"unknown Kafka cluster {name!r}", 404)
        return cluster

    def subscriptions(self) -> list[Subscription]:
        return [subscription_from_record(r) for _, r in self.store.scan(keys.SUBSCRIPTION)]

    def default_cluster(self) -> KafkaCluster | None:
        """Where emits that name no cluster (from invocations not started by Kafka) go: the only
        cluster, or the one named `default`."""
        clusters = self.clusters()
        if len(clusters) == 1:
            return next(iter(clusters.values()))
        return clusters.get("default")

    def end_offset(self, group: str, topic: str, partition: int) -> int | None:
        """A partition's end offset as its running consumer last saw it, if any."""
        for consumer in self.consumers.values():
            s = consumer.subscription
            if s.group == group and s.source.topic == topic:
                return consumer.end_offset(partition)
        return None

    # -- actions ------------------------------------------------------------------------------

    def record_done(self, group: str, topic: str, partition: int, count: int = 1) -> None:
        for consumer in self.consumers.values():
            s = consumer.subscription
            if s.group == group and s.source.topic == topic:
                consumer.record_done(partition, count)

    def outbox_ready(self, outbox: str, durable_seq: int | None = None) -> None:
        """The outbox has records up to `durable_seq` to ship. Without one, the sequence is read
        from the store: the engine calls this only among the actions of a batch just written,
        before the committer writes the next one, so what the store shows then is durable."""
        if durable_seq is None:
            durable_seq = int(self.store.get(keys.outbox_seq(outbox)) or 0)
        shipper = self.shippers.get(outbox)
        if shipper is None:
            shipper = self._start_shipper(outbox)
        if shipper is not None:
            shipper.wake(durable_seq)

    def _start_shipper(self, outbox: str) -> OutboxShipper | None:
        cluster = self.clusters().get(outbox) if outbox else self.default_cluster()
        if cluster is None:
            log.error("outbox %r has records but no such Kafka cluster is defined; they wait "
                      "until it is", outbox or "(default)")  # fmt: skip
            return None
        transactional_id = f"headway-{self.node_id}-{PARTITION}-{outbox or 'default'}"
        shipper = OutboxShipper(
            self.store, self.submit, outbox, cluster, transactional_id,
            commit_interval=self.commit_interval, max_records=self.max_records,
        )  # fmt: skip
        self.shippers[outbox] = shipper
        shipper.start()
        return shipper

    def changed(self) -> None:
        """Subscriptions or clusters changed: reconcile soon (once, however many changes)."""
        self._dirty = True
        if self._reconciling is None or self._reconciling.done():
            self._reconciling = asyncio.get_running_loop().create_task(self._reconcile_loop())

    async def _reconcile_loop(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                await self.reconcile()
            except Exception:
                log.exception("reconciling Kafka subscriptions failed")

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.reconcile()
        for outbox, durable_seq in self._outboxes_at_open.items():
            self.outbox_ready(outbox, durable_seq)  # resumes shipping whatever was left

    async def reconcile(self) -> None:
        """Starts consumers for running subscriptions and stops the others."""
        wanted = {s.id: s for s in self.subscriptions() if not s.failed}
        for sub_id in [i for i in self.consumers if i not in wanted]:
            consumer = self.consumers.pop(sub_id)
            await consumer.stop()
            log.info("subscription %s stopped", sub_id)
        for sub_id, subscription in wanted.items():
            if sub_id in self.consumers:
                continue
            try:
                consumer = self._consumer(subscription)
            except SubscriptionError as e:
                log.error("subscription %s cannot run: %s", sub_id, e)
                continue
            self.consumers[sub_id] = consumer
            consumer.start()
            log.info("subscription %s started: %s -> %s (group %s)", sub_id,
                     subscription.source, subscription.sink, subscription.group)  # fmt: skip

    def _consumer(self, subscription: Subscription) -> SubscriptionConsumer:
        cluster = self.cluster(subscription.source.cluster)
        service = self.registry.services.get(subscription.sink.service)
        if service is None:
            raise SubscriptionError(f"unknown service {subscription.sink.service!r}", 404)
        options = subscription.options
        fmt = value_format(
            subscription.value_format, options.get("avro.schema.file"),
            options.get("schema.registry.url"),
        )  # fmt: skip
        keyed = service.kind != "service"
        lane = None
        sink = subscription.sink
        if (
            subscription.express
            and self.committer is not None
            and ExpressLane.serves(self.registry, sink.service, sink.handler)
        ):
            lane = ExpressLane(self.committer.reads, self.registry, self.committer, self.observer)
        return SubscriptionConsumer(
            subscription, cluster, keyed, fmt, self.store, self.submit, lane
        )

    async def stop(self) -> None:
        for consumer in self.consumers.values():
            await consumer.stop()
        self.consumers.clear()
        for shipper in self.shippers.values():
            await shipper.stop()
        self.shippers.clear()
