"""One subscription's Kafka consumer: records in, `Invoke` entries out, never more in flight
per partition than the subscription allows, and a bounded number waiting (`_Flow.wants_pause`).

Polling runs in a worker thread (librdkafka releases the GIL while it waits); everything else
runs on the event loop, between polls, so the consumer handle is never used from two threads
at once. Exactly-once does not depend on the consumer: the processor drops any record at or
below the partition's applied offset, so a redelivery after a rebalance or restart is harmless.
The consumer starts each assigned partition after its applied offset and commits the applied
offsets to the consumer group for monitoring (lag) only.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from headway.engine import keys
from headway.engine.entries import DeadLetter, Entry, Invoke, SubscriptionFailed
from headway.engine.express import ExpressLane
from headway.engine.processor import dead_letter_headers
from headway.engine.store import Store
from headway.sdk.journal import Target

from .clusters import KafkaCluster
from .formats import RecordDecodeError, ValueFormat
from .record_keys import encode_record_key
from .subscription import Subscription

log = logging.getLogger("headway.kafka.consumer")

POLL_BATCH = 1000
POLL_SECONDS = 0.1
MONITOR_COMMIT_SECONDS = 1.0
# Records of one partition held here, beyond its in-flight ones, before it is paused. Pausing
# makes librdkafka discard what it prefetched for the partition (it fetches again on resume),
# so it is for real backpressure (a partition whose records do not finish), not for the
# ordinary gap between a poll and the commits that free slots: pausing whenever a record had
# to wait halved the pipeline's throughput, the consumer waiting on refetches.
PAUSE_AT_BUFFERED = 10_000
PAUSE_AT_BUFFERED_BYTES = 32 << 20  # the same for large records: their values' bytes


@dataclasses.dataclass
class _Flow:
    """One assigned partition: records not yet handed to the engine, and those in flight."""

    in_flight: int = 0
    pending: collections.deque[Message] = dataclasses.field(default_factory=collections.deque)
    pending_bytes: int = 0
    paused: bool = False

    def hold(self, message: Message) -> None:
        self.pending.append(message)
        self.pending_bytes += len(message.value() or b"")

    def next_held(self) -> Message:
        message = self.pending.popleft()
        self.pending_bytes -= len(message.value() or b"")
        return message

    def wants_pause(self) -> bool:
        """Paused once `PAUSE_AT_BUFFERED` records or `PAUSE_AT_BUFFERED_BYTES` wait, resumed
        once none does."""
        if self.paused:
            return bool(self.pending)
        return (
            len(self.pending) >= PAUSE_AT_BUFFERED or self.pending_bytes >= PAUSE_AT_BUFFERED_BYTES
        )


class SubscriptionConsumer:
    def __init__(
        self,
        subscription: Subscription,
        cluster: KafkaCluster,
        keyed: bool,
        value_format: ValueFormat,
        store: Store,
        submit: Callable[[Entry], object],
        lane: ExpressLane | None = None,
    ) -> None:
        self.subscription = subscription
        self.lane = lane
        self.cluster = cluster
        self.keyed = keyed
        self.format = value_format
        self.store = store
        self.submit = submit
        self.flows: dict[int, _Flow] = {}
        self.ingested = 0
        self._rebalances: list[tuple[str, list[int]]] = []
        self._task: asyncio.Task[None] | None = None
        self._consumer: Consumer | None = None
        self._stopping = False
        self._failed = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"kafka-consumer-{self.subscription.id}"
        )

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            await self._task

    def record_done(self, partition: int, count: int = 1) -> None:
        """`count` records of `partition` finished: let as many more in."""
        flow = self.flows.get(partition)
        if flow is None:
            return
        flow.in_flight = max(0, flow.in_flight - count)
        self._drain(partition, flow)

    # -- the poll loop ---------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {
            **self.cluster.client_config(),
            "client.id": "headway",
            **self.subscription.consumer_options(),
            "group.id": self.subscription.group,
            "auto.offset.reset": self.subscription.options["auto.offset.reset"],
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "logger": log,
        }

    async def _run(self) -> None:
        """Consumes until stopped; a consumer that fails is rebuilt after a pause (the applied
        offsets say where to resume, so nothing is lost or repeated)."""
        backoff = 0.5
        while not self._stopping and not self._failed:
            try:
                await self._consume()
            except Exception:
                log.exception("subscription %s: consumer failed; restarting in %.1fs",
                              self.subscription.id, backoff)  # fmt: skip
                self.flows.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _consume(self) -> None:
        consumer = self._consumer = Consumer(self._config())
        consumer.subscribe(
            [self.subscription.source.topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        last_commit = time.monotonic()
        try:
            while not self._stopping and not self._failed:
                self._apply_flow_control(consumer)
                messages = await asyncio.to_thread(consumer.consume, POLL_BATCH, POLL_SECONDS)
                self._apply_rebalances()
                for message in messages:
                    self.receive(message)
                if time.monotonic() - last_commit > MONITOR_COMMIT_SECONDS:
                    last_commit = time.monotonic()
                    self._commit_for_monitoring(consumer)
        finally:
            self._consumer = None
            await asyncio.to_thread(consumer.close)

    def end_offset(self, partition: int) -> int | None:
        """The partition's end offset as last fetched (no request to the broker), if known."""
        consumer = self._consumer
        if consumer is None:
            return None
        tp = TopicPartition(self.subscription.source.topic, partition)
        try:
            high = consumer.get_watermark_offsets(tp, cached=True)[1]
        except Exception:  # not fetched yet, or the consumer is closing
            return None
        return high if high >= 0 else None

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Runs in the poll thread: start every partition right after its applied offset."""
        for tp in partitions:
            applied = self.store.get(self._offset_key(tp.partition))
            if applied is not None:
                tp.offset = applied + 1
        consumer.assign(partitions)
        self._rebalances.append(("assign", [tp.partition for tp in partitions]))
        log.info(
            "subscription %s: assigned partitions %s of %s", self.subscription.id,
            [tp.partition for tp in partitions], self.subscription.source.topic,
        )  # fmt: skip

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._rebalances.append(("revoke", [tp.partition for tp in partitions]))

    def _apply_rebalances(self) -> None:
        while self._rebalances:
            kind, partitions = self._rebalances.pop(0)
            for partition in partitions:
                if kind == "assign":
                    self.flows.setdefault(partition, _Flow())
                else:
                    self.flows.pop(partition, None)

    def _apply_flow_control(self, consumer: Consumer) -> None:
        topic = self.subscription.source.topic
        for partition, flow in self.flows.items():
            wants_pause = flow.wants_pause()
            if wants_pause != flow.paused:
                tp = [TopicPartition(topic, partition)]
                consumer.pause(tp) if wants_pause else consumer.resume(tp)
                flow.paused = wants_pause

    def _commit_for_monitoring(self, consumer: Consumer) -> None:
        """Tells the group how far each partition is applied (so lag tools work)."""
        offsets = []
        for partition in self.flows:
            applied = self.store.get(self._offset_key(partition))
            if applied is not None:
                offsets.append(
                    TopicPartition(self.subscription.source.topic, partition, applied + 1)
                )
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=True)
            except Exception as e:  # monitoring only: the store holds the truth
                log.debug("subscription %s: offset commit failed: %s", self.subscription.id, e)

    def _offset_key(self, partition: int) -> bytes:
        return keys.kafka_offset(self.subscription.group, self.subscription.source.topic, partition)

    # -- records ---------------------------------------------------------------------------

    def receive(self, message: Message) -> None:
        """One polled record: held, and handed to the engine as soon as its partition has room
        (the poll loop calls this; so does bench/kafka_hot_path.py, without a broker)."""
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("subscription %s: %s", self.subscription.id, error)
            return
        partition = message.partition()
        assert partition is not None
        flow = self.flows.setdefault(partition, _Flow())
        flow.hold(message)
        self._drain(partition, flow)

    def _drain(self, partition: int, flow: _Flow) -> None:
        limit = self.subscription.max_in_flight
        while flow.pending and flow.in_flight < limit and not self._failed:
            message = flow.next_held()
            entry = self._entry(message)
            if entry is None:
                return
            flow.in_flight += 1
            self.ingested += 1
            if self.lane is not None and isinstance(entry, Invoke):
                self.lane.submit(entry)
            else:
                self.submit(entry)

    def _entry(self, message: Message) -> Entry | None:
        """The entry a record becomes: an invocation, or a dead letter if it is unusable."""
        subscription = self.subscription
        raw_headers = message.headers()
        headers: dict[str, bytes] = {}
        if raw_headers:  # most records have none
            pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
            headers = {k: v.encode() if isinstance(v, str) else v or b"" for k, v in pairs}
        raw_key = message.key()
        value = message.value()
        source: dict[str, Any] = {
            "sub": subscription.id, "group": subscription.group,
            "cluster": subscription.source.cluster, "topic": message.topic(),
            "partition": message.partition(), "offset": message.offset(),
            "timestamp": message.timestamp()[1], "key": raw_key, "headers": headers,
        }  # fmt: skip
        key: str | None = None
        try:
            if self.keyed:
                if raw_key is None:
                    raise RecordDecodeError(f"record has no key, and {subscription.sink} is keyed")
                key = encode_record_key(raw_key)
            body = self.format.decode(value)
        except RecordDecodeError as e:
            return self._dead_letter(source, value, str(e))
        except Exception as e:  # a decoder bug must not stop the partition either
            return self._dead_letter(source, value, f"cannot decode: {type(e).__name__}: {e}")
        if value is None or subscription.value_format.startswith("avro"):
            source["value"] = value  # the original, for a dead letter after a terminal failure
        target = Target(subscription.sink.service, subscription.sink.handler, key)
        request_headers = (
            {k: v.decode("utf-8", "replace") for k, v in headers.items()} if headers else {}
        )
        # No id: the record's is derived from its source where it is needed (Invoke.resolved_id).
        return Invoke("", target, body, request_headers, None, 0, None, source)

    def _dead_letter(
        self, source: dict[str, Any], value: bytes | None, reason: str
    ) -> Entry | None:
        topic = self.subscription.dead_letter_topic
        where = f"{source['topic']}/{source['partition']}@{source['offset']}"
        if topic is None:
            message = f"record {where} cannot be invoked: {reason}; no dead.letter.topic is set"
            log.error("subscription %s stopped: %s", self.subscription.id, message)
            self._failed = True
            self.submit(SubscriptionFailed(self.subscription.id, message))
            return None
        log.warning("subscription %s: record %s dead-lettered: %s", self.subscription.id, where,
                    reason)  # fmt: skip
        headers = dict(source["headers"]) | dead_letter_headers(source, 400, reason)
        return DeadLetter(source, [topic, source["key"], value, headers])
