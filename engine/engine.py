"""The engine: store, processor, group commit, timers, invoker, ingress and admin, wired."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable

from headway.connectors.kafka.connector import KafkaConnector
from headway.connectors.kafka.metrics import KafkaCollector
from headway.sdk.definitions import ServiceDefinition
from headway.sdk.journal import Outcome

from . import keys
from .actions import (
    AbortAttempt,
    Action,
    Completed,
    KafkaRecordDone,
    Notify,
    OutboxReady,
    RunAttempt,
    ScheduleTimer,
    SubscriptionsChanged,
)
from .committer import Committer
from .config import Config
from .deployments.catalog import Deployments
from .entries import Entry
from .express import ExpressLane
from .invoker import Invoker
from .observability import Observability
from .processor import Processor
from .registry import Registry
from .store import Store
from .timers import TimerService

log = logging.getLogger("headway.engine")


class Engine:
    """One node: the embedded log and store, and everything that runs on them."""

    def __init__(self, config: Config, services: list[ServiceDefinition] | None = None) -> None:
        self.config = config
        self.registry = Registry(services)
        self.ready = False
        self.waiters: dict[str, list[asyncio.Future[Outcome]]] = {}
        self.store: Store | None = None
        self.observability = Observability(config)
        self._stop_callbacks: list[Callable[[], object]] = []

    async def start(self) -> None:
        """Opens the store, recovers, and starts processing. Raises StoreLockedError."""
        started = time.perf_counter()
        self.store = store = Store(self.config.data_dir)
        self.committer = Committer(
            store, Processor(self.registry), self._dispatch, max_batch=self.config.max_batch
        )
        self.timers = TimerService(store, self.committer.submit_nowait)
        self.invoker = Invoker(
            store, self.committer, self.registry,
            suspend_after=self.config.suspend_after, always_replay=self.config.always_replay,
        )  # fmt: skip
        express = self.config.express and not self.config.always_replay
        self.express = (
            ExpressLane(self.committer.reads, self.registry, self.committer, self.observability)
            if express
            else None
        )
        self.kafka = KafkaConnector(
            store, self.registry, self.committer.submit_nowait, self.config.kafka_clusters,
            commit_interval=self.config.outbox_commit_interval,
            max_records=self.config.outbox_max_records,
            committer=self.committer if express else None, observer=self.observability,
        )  # fmt: skip
        self.observability.attach(self.committer, self.invoker, store)
        if self.observability.metrics is not None:
            self.observability.metrics.registry.register(KafkaCollector(self.kafka))
        self.deployments = Deployments(
            store, self.registry, self.config.max_protocol_version, self.config.eager_state_limit
        )
        self.deployments.attach(self.invoker)
        self.committer.start()
        self.timers.start()
        resumed = 0
        for key, _ in store.scan(keys.ACTIVE):
            self.invoker.start(key[len(keys.ACTIVE) :].decode())
            resumed += 1
            if resumed % 10_000 == 0:
                log.info("recovering", extra={"resumed": resumed})
        await self.kafka.start()
        self.recovery_seconds = time.perf_counter() - started
        self.resumed = resumed
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        if self.store is None:
            return
        await self.kafka.stop()
        self.invoker.stop_all()
        await self.deployments.close()
        await self.timers.stop()
        await self.committer.stop()
        await self.observability.stop()
        self.store.close()
        self.store = None

    def _dispatch(self, actions: list[Action]) -> None:
        # Per-record actions, gathered: a batch can finish thousands of one partition's records.
        records_done: Tally[tuple[str, str, int]] = Tally()
        outboxes_ready: set[str] = set()
        for action in actions:
            if isinstance(action, KafkaRecordDone):
                records_done[(action.group, action.topic, action.partition)] += 1
            elif isinstance(action, OutboxReady):
                outboxes_ready.add(action.cluster)
            elif isinstance(action, Notify):
                self.invoker.notify(action.invocation_id, action.index, action.seq, action.outcome)
            elif isinstance(action, RunAttempt):
                self.invoker.start(action.invocation_id, action.status)
            elif isinstance(action, Completed):
                self.invoker.finished(action.invocation_id)
                for fut in self.waiters.pop(action.invocation_id, ()):
                    if not fut.done():
                        fut.set_result(action.outcome)
            elif isinstance(action, ScheduleTimer):
                self.timers.schedule(action.due_ms, action.timer_key)
            elif isinstance(action, AbortAttempt):
                self.invoker.abort(action.invocation_id)
            elif isinstance(action, SubscriptionsChanged):
                self.kafka.changed()
        for (group, topic, partition), count in records_done.items():
            self.kafka.record_done(group, topic, partition, count)
        for cluster in outboxes_ready:
            self.kafka.outbox_ready(cluster)

    def submit(self, entry: Entry) -> asyncio.Future[None]:
        """Appends an entry; the future resolves once it is durable."""
        return self.committer.submit(entry)

    def wait_for(self, invocation_id: str, *, new: bool = False) -> asyncio.Future[Outcome]:
        """A future for the invocation's outcome, resolved at once if it already has one
        (`new`: the id was just minted, so it cannot have one yet)."""
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(invocation_id, []).append(fut)
        if new:
            return fut
        outcome = self.outcome(invocation_id)
        if outcome is not None:
            self.waiters[invocation_id].remove(fut)
            fut.set_result(outcome)
        return fut

    def outcome(self, invocation_id: str) -> Outcome | None:
        assert self.store is not None
        status = self.store.get(keys.invocation(invocation_id))
        if status is None or status["st"] != "completed":
            return None
        return Outcome.decode(status["o"])

    def forget_waiter(self, invocation_id: str, fut: asyncio.Future[Outcome]) -> None:
        waiting = self.waiters.get(invocation_id)
        if waiting and fut in waiting:
            waiting.remove(fut)
            if not waiting:
                del self.waiters[invocation_id]
