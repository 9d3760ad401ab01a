"""Prometheus metrics of one engine, served at the admin API's `GET /metrics`.

Counters and gauges are derived from committed batches (`CommittedBatch`): once per batch,
from each changed record's before and after, never from inside the processor. Gauges of live
work (invocations by status, inbox depth, pending timers) are a count taken from the store
once at start plus the changes of every batch since, so a scrape reads no records.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from rocksdict import Rdict

from . import keys
from .commit_record import CommittedBatch
from .store import unpack

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 3600.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class _LiveGauges(Collector):
    """Gauges read at scrape time from the counts `EngineMetrics` keeps."""

    def __init__(self, metrics: EngineMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        m = self.metrics
        by_status = GaugeMetricFamily(
            "headway_invocations", "invocations in the store by status", labels=["status"]
        )
        for status, count in sorted(m.by_status.items()):
            by_status.add_metric([status], count)
        yield by_status
        yield GaugeMetricFamily(
            "headway_inbox_depth", "invocations queued behind their key's lock", m.inbox
        )
        yield GaugeMetricFamily("headway_timers_pending", "durable timers not yet fired", m.timers)


class _PerHandler:
    """The labelled children of one service/handler, looked up once (`labels()` is slow)."""

    __slots__ = ("attempt", "completed", "duration", "failed", "retries", "started")

    def __init__(self, metrics: EngineMetrics, service: str, handler: str) -> None:
        self.started = metrics.started.labels(service, handler)
        self.completed = metrics.completed.labels(service, handler)
        self.failed = metrics.failed.labels(service, handler)
        self.retries = metrics.retries.labels(service, handler)
        self.duration = metrics.invocation_seconds.labels(service, handler)
        self.attempt = metrics.attempt_seconds.labels(service, handler)


class EngineMetrics:
    """The metrics of one engine, in a registry of its own (engines may share a process)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        labels = ["service", "handler"]
        self.started = Counter(
            "headway_invocations_started", "invocations whose first attempt began", labels,
            registry=r,
        )  # fmt: skip
        self.completed = Counter(
            "headway_invocations_completed", "invocations that ended with a value", labels,
            registry=r,
        )  # fmt: skip
        self.failed = Counter(
            "headway_invocations_failed",
            "invocations that ended with a terminal failure (cancelled and killed included)",
            labels, registry=r,
        )  # fmt: skip
        self.retries = Counter(
            "headway_invocation_retries", "attempts that failed and were retried", labels,
            registry=r,
        )  # fmt: skip
        self.attempt_seconds = Histogram(
            "headway_attempt_duration_seconds",
            "time one attempt ran the handler, until it ended, failed or suspended",
            labels, buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.invocation_seconds = Histogram(
            "headway_invocation_duration_seconds",
            "end to end: from the invocation's creation to its completion",
            labels, buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_entries = Histogram(
            "headway_group_commit_entries", "log entries per group commit",
            buckets=_BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.fsync_seconds = Histogram(
            "headway_group_commit_fsync_seconds", "time of the synced write of one group commit",
            buckets=_FSYNC_BUCKETS, registry=r,
        )  # fmt: skip
        self.by_status: Tally[str] = Tally()
        self.inbox = 0
        self.timers = 0
        self._handlers: dict[tuple[str, str], _PerHandler] = {}
        r.register(_LiveGauges(self))

    def handler(self, service: str, handler: str) -> _PerHandler:
        found = self._handlers.get((service, handler))
        if found is None:
            found = self._handlers[(service, handler)] = _PerHandler(self, service, handler)
        return found

    def store_counter(self, db: Rdict) -> Callable[[], Tally[str]]:
        """A blocking count of the live work in the store as it is now (the iterator pins it).

        Returns counts by invocation status, plus `"/inbox"` and `"/timers"`.
        """
        it = db.iter()

        def count() -> Tally[str]:
            tally: Tally[str] = Tally()
            for prefix in (keys.INVOCATION, keys.TIMER, keys.OBJECT_LOCK):
                it.seek(prefix)
                while it.valid():
                    key = it.key()
                    if not key.startswith(prefix):
                        break
                    if prefix == keys.TIMER:
                        tally["/timers"] += 1
                    elif prefix == keys.OBJECT_LOCK:
                        tally["/inbox"] += len(unpack(it.value())[1])
                    else:
                        tally[unpack(it.value())["st"]] += 1
                    it.next()
            return tally

        return count

    def add_base(self, base: Tally[str]) -> None:
        """Adds the count taken at start to the changes counted since."""
        self.timers += base.pop("/timers", 0)
        self.inbox += base.pop("/inbox", 0)
        self.by_status.update(base)

    def batch_committed(self, batch: CommittedBatch) -> None:
        """Counts what one batch changed: one pass over its changed keys, no store reads."""
        self.batch_entries.observe(batch.entries)
        self.fsync_seconds.observe(batch.fsync_seconds)
        before = batch.before
        deleted = batch.view.deleted
        by_status = self.by_status
        for key, value in batch.changed.items():
            if key.startswith(keys.INVOCATION):
                raw = before.get(key)
                old = None if raw is None else unpack(raw)
                if old is not None:
                    by_status[old["st"]] -= 1
                if not deleted(value):
                    by_status[value["st"]] += 1
                    self._transition(old, value)
            elif key.startswith(keys.TIMER):
                # A timer key is new (a fresh sequence number) or read before it is deleted.
                self.timers += 0 if deleted(value) else 1
                self.timers -= 0 if before.get(key) is None else 1
            elif key.startswith(keys.OBJECT_LOCK):
                raw = before.get(key)
                self.inbox -= 0 if raw is None else len(unpack(raw)[1])
                self.inbox += 0 if deleted(value) else len(value[1])

    def _transition(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        counters = self.handler(new["t"][0], new["t"][1])
        if new["a"] >= 1 and (old is None or old["a"] == 0):
            counters.started.inc()
        retried = new["rc"] - (old["rc"] if old is not None else 0)
        if retried > 0:
            counters.retries.inc(retried)
        if new["st"] == "completed" and (old is None or old["st"] != "completed"):
            failed = new["o"][0] == 1  # an encoded Outcome: [1, code, message] is a failure
            (counters.failed if failed else counters.completed).inc()
            counters.duration.observe((new["ma"] - new["ca"]) / 1000)

    def attempt_ended(self, service: str, handler: str, started: float) -> None:
        """Records one attempt's run time (`started` from `time.perf_counter()`)."""
        self.handler(service, handler).attempt.observe(time.perf_counter() - started)
