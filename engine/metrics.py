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

from headway.sdk.journal import Outcome
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


def _live(key: bytes, value: Any) -> Iterator[tuple[str, str]]:
    """What one record adds to the live-work gauges: (gauge, label) pairs, one per unit."""
    if key.startswith(keys.INVOCATION):
        yield "invocations", value["st"]
    elif key.startswith(keys.TIMER):
        yield "timers", ""
    elif key.startswith(keys.OBJECT_LOCK):
        for _ in value[1]:
            yield "inbox", ""


_LIVE_PREFIXES = (keys.INVOCATION, keys.TIMER, keys.OBJECT_LOCK)


class _LiveGauges(Collector):
    """Gauges read from the live-work tally at scrape time."""

    def __init__(self, tally: Tally[tuple[str, str]]) -> None:
        self.tally = tally

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_status = GaugeMetricFamily(
            "headway_invocations", "invocations in the store by status", labels=["status"]
        )
        for (gauge, status), count in sorted(self.tally.items()):
            if gauge == "invocations":
                by_status.add_metric([status], count)
        yield by_status
        yield GaugeMetricFamily(
            "headway_inbox_depth",
            "invocations queued behind their key's lock",
            value=self.tally[("inbox", "")],
        )
        timers = self.tally[("timers", "")]
        yield GaugeMetricFamily("headway_timers_pending", "durable timers not yet fired", timers)


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
        self.live: Tally[tuple[str, str]] = Tally()
        r.register(_LiveGauges(self.live))

    def store_counter(self, db: Rdict) -> Callable[[], Tally[tuple[str, str]]]:
        """A blocking count of the live work in the store as it is now (the iterator pins it)."""
        it = db.iter()

        def count() -> Tally[tuple[str, str]]:
            tally: Tally[tuple[str, str]] = Tally()
            for prefix in _LIVE_PREFIXES:
                it.seek(prefix)
                while it.valid():
                    key = it.key()
                    if not key.startswith(prefix):
                        break
                    value = None if prefix == keys.TIMER else unpack(it.value())
                    tally.update(_live(key, value))
                    it.next()
            return tally

        return count

    def add_base(self, base: Tally[tuple[str, str]]) -> None:
        """Adds the count taken at start to the changes counted since."""
        self.live.update(base)

    def batch_committed(self, batch: CommittedBatch) -> None:
        self.batch_entries.observe(batch.entries)
        self.fsync_seconds.observe(batch.fsync_seconds)
        live = self.live
        for key in batch.changed:
            if not key.startswith(_LIVE_PREFIXES):
                continue
            old, new = batch.old(key), batch.new(key)
            if old is not None:
                live.subtract(_live(key, old))
            if new is not None:
                live.update(_live(key, new))
            if new is not None and key.startswith(keys.INVOCATION):
                self._transition(old, new)

    def _transition(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        service, handler = new["t"][0], new["t"][1]
        if new["a"] >= 1 and (old is None or old["a"] == 0):
            self.started.labels(service, handler).inc()
        retried = new["rc"] - (old["rc"] if old is not None else 0)
        if retried > 0:
            self.retries.labels(service, handler).inc(retried)
        if new["st"] == "completed" and (old is None or old["st"] != "completed"):
            outcome = Outcome.decode(new["o"])
            done = self.failed if outcome.failure is not None else self.completed
            done.labels(service, handler).inc()
            seconds = (new["ma"] - new["ca"]) / 1000
            self.invocation_seconds.labels(service, handler).observe(seconds)

    def attempt_ended(self, service: str, handler: str, started: float) -> None:
        """Records one attempt's run time (`started` from `time.perf_counter()`)."""
        self.attempt_seconds.labels(service, handler).observe(time.perf_counter() - started)
