"""The outbox shipper: publishes a cluster's outbox to Kafka in transactions, exactly once.

Each transaction carries a run of outbox records and one progress record (the last sequence it
ships) on a compacted internal topic, under a `transactional.id` that is stable per engine,
partition and outbox. On start, `init_transactions` fences any older producer with the same id
(a zombie) and aborts its open transaction; the shipper then reads the last *committed*
progress record and resumes after it. So a committed record is never shipped twice, and an
aborted one is shipped again. Once Kafka has committed, the engine trims the shipped records
from its outbox (an `OutboxShipped` entry); a crash before that trim is harmless, because the
progress record, not the outbox, says what was shipped.

Any Kafka error (broker down, fenced, timeout) rebuilds the producer and starts over from the
committed progress, with a capped backoff: the shipper recovers by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from headway.engine import keys
from headway.engine.entries import Entry, OutboxShipped
from headway.engine.store import Store

from .clusters import KafkaCluster

log = logging.getLogger("headway.kafka.outbox")

PROGRESS_TOPIC = "headway-outbox-progress"


class OutboxDeliveryError(RuntimeError):
    """Kafka refused records of a transaction (say, a topic that does not exist); the records
    stay in the outbox and are retried."""


class OutboxShipper:
    def __init__(
        self,
        store: Store,
        submit: Callable[[Entry], object],
        outbox: str,
        cluster: KafkaCluster,
        transactional_id: str,
        *,
        commit_interval: float = 0.1,
        max_records: int = 10_000,
    ) -> None:
        self.store = store
        self.submit = submit
        self.outbox = outbox
        self.cluster = cluster
        self.transactional_id = transactional_id
        self.commit_interval = commit_interval
        self.max_records = max_records
        self.shipped_seq = 0
        # The last sequence known durable: the store can show records a moment before they are
        # (see `Store.write`), and none may reach Kafka before it is.
        self.durable_seq = 0
        self.shipped_records = 0
        self.transactions = 0
        self.commit_seconds = 0.0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"outbox-{self.outbox or 'default'}"
        )

    def wake(self, durable_seq: int) -> None:
        """Records up to `durable_seq` are durable in the outbox: ship them."""
        self.durable_seq = max(self.durable_seq, durable_seq)
        self._wakeup.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    def depth(self) -> int:
        """Records in the outbox not yet committed to Kafka."""
        last: int = self.store.get(keys.outbox_seq(self.outbox)) or 0
        return max(0, last - self.shipped_seq)

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                producer = await asyncio.to_thread(self._connect)
                self.submit(OutboxShipped(self.outbox, self.shipped_seq))
                backoff = 0.2
                await self._ship_forever(producer)
            except Exception as e:
                if self._stopping:
                    break
                log.warning("outbox %r to %s: %s; reconnecting in %.1fs",
                            self.outbox, self.cluster.name, e, backoff)  # fmt: skip
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _connect(self) -> Producer:
        """A fenced-in producer and the last committed progress (runs in a thread)."""
        _ensure_progress_topic(self.cluster)
        producer = Producer({
            **self.cluster.client_config(),
            "transactional.id": self.transactional_id,
            "enable.idempotence": True,
            "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000,
            # Delivery reports only for records that failed (their errors name the cause): a
            # Python callback per shipped record costs more than the rest of producing it.
            "delivery.report.only.error": True,
            "logger": log,
        })  # fmt: skip
        producer.init_transactions(30)
        self.shipped_seq = max(self.shipped_seq, self._read_progress())
        log.info("outbox %r to %s: resuming after sequence %d", self.outbox, self.cluster.name,
                 self.shipped_seq)  # fmt: skip
        return producer

    def _read_progress(self) -> int:
        """The last committed sequence for this transactional id (0 if none).

        Reads read_committed to the partition's end (`enable.partition.eof` reports it; the
        consumer's position cannot, since it stops before trailing transaction markers).
        """
        consumer = Consumer({
            **self.cluster.client_config(),
            "group.id": f"{self.transactional_id}-progress-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "logger": log,
        })  # fmt: skip
        try:
            consumer.assign([TopicPartition(PROGRESS_TOPIC, 0, OFFSET_BEGINNING)])
            last = 0
            deadline = time.monotonic() + 60
            key = self.transactional_id.encode()
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {PROGRESS_TOPIC} took over 60 s")
                for message in consumer.consume(1000, 0.5):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            return last
                        raise KafkaException(error)
                    if message.key() == key:
                        last = int(message.value() or b"0")
        finally:
            consumer.close()

    async def _ship_forever(self, producer: Producer) -> None:
        while not self._stopping:
            records = self._pending()
            if not records:
                self._wakeup.clear()
                if self._pending():
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=1.0)
                continue
            started = time.perf_counter()
            last_seq = await asyncio.to_thread(self._transaction, producer, records)
            elapsed = time.perf_counter() - started
            self.commit_seconds += elapsed
            self.transactions += 1
            self.shipped_records += len(records)
            self.shipped_seq = last_seq
            self.submit(OutboxShipped(self.outbox, last_seq))
            if len(records) < self.max_records and elapsed < self.commit_interval:
                await asyncio.sleep(self.commit_interval - elapsed)

    def _pending(self) -> list[tuple[int, list[Any]]]:
        prefix = keys.outbox_prefix(self.outbox)
        start = keys.outbox(self.outbox, self.shipped_seq + 1)
        records = []
        for key, record in self.store.scan(prefix, start):
            seq = int(key[len(prefix) :], 16)
            if seq > self.durable_seq:
                break
            records.append((seq, record))
            if len(records) >= self.max_records:
                break
        return records

    def _transaction(self, producer: Producer, records: list[tuple[int, list[Any]]]) -> int:
        """Ships `records` and the progress record in one transaction (runs in a thread)."""
        failures: list[str] = []

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None and len(failures) < 3:
                failures.append(f"{message.topic()}: {error.str()}")

        producer.begin_transaction()
        try:
            for _, (topic, key, value, headers) in records:
                self._produce(
                    producer, topic, key, value, list(headers.items()) if headers else None,
                    delivered,
                )  # fmt: skip
            last_seq = records[-1][0]
            self._produce(producer, PROGRESS_TOPIC, self.transactional_id.encode(),
                          str(last_seq).encode(), None, delivered)  # fmt: skip
            producer.commit_transaction(60)
        except BaseException as e:
            try:
                producer.abort_transaction(10)
            except Exception as abort_error:
                log.debug("abort after a failed transaction failed too: %s", abort_error)
            if failures:
                raise OutboxDeliveryError("; ".join(failures)) from e
            raise
        return last_seq

    @staticmethod
    def _produce(
        producer: Producer, topic: str, key: bytes | None, value: bytes | None,
        headers: list[tuple[str, str | bytes | None]] | None, on_delivery: Callable[..., None],
    ) -> None:  # fmt: skip
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:
                producer.poll(0.05)  # the local queue is full: let deliveries drain it


def _ensure_progress_topic(cluster: KafkaCluster) -> None:
    """Creates the compacted progress topic if it does not exist yet."""
    admin = AdminClient(cluster.client_config())
    if PROGRESS_TOPIC in admin.list_topics(timeout=30).topics:
        return
    topic = NewTopic(
        PROGRESS_TOPIC, 1, replication_factor=-1,
        config={"cleanup.policy": "compact", "segment.ms": "600000"},
    )  # fmt: skip
    try:
        admin.create_topics([topic])[PROGRESS_TOPIC].result(30)
    except Exception as e:
        if "already exists" not in str(e).lower() and "TOPIC_ALREADY_EXISTS" not in str(e):
            raise
