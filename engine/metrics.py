"""Prometheus metrics of one engine, served at the admin API's `GET /metrics`.

Counters and gauges are derived from committed batches (`CommittedBatch`): once per batch,
from each changed record's before and after, never from inside the processor. Gauges of live
work (invocations by status, inbox depth, pending timers) are a count taken from the store
once at start plus the changes of every batch since, so a scrape reads no records.

The values are plain numbers, turned into Prometheus families only when scraped: prometheus
client's own metric objects take a lock and validate on every update, which cost more than
all the counting here. Updates and scrapes both run on the engine's event loop, so plain
numbers need no lock. The counting runs for every invocation, so it is kept to a few dict
reads and list appends per record (`_Histogram`, `EngineMetrics.batch_committed`).
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from time import perf_counter

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from rocksdict import Rdict

from . import keys
from .commit_record import CommittedBatch
from .store import DELETED, unpack

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 3600.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
# The first byte of a key tells the records counted here from the rest: no other prefix in
# `keys` begins with these (tests/unit/test_metrics_counting.py checks), so no `startswith`.
# `_COUNTED[first byte]`: a tuple read, the cheapest test in the loop over every changed key.
_INVOCATION, _TIMER, _OBJECT_LOCK = keys.INVOCATION[0], keys.TIMER[0], keys.OBJECT_LOCK[0]
_COUNTED = tuple(byte in (_INVOCATION, _TIMER, _OBJECT_LOCK) for byte in range(256))
_FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
_FOLD_EVERY = 4096  # committed entries between two counts of the histograms' values


class _Histogram:
    """Counts per bucket (the last one is +Inf) and a sum.

    An observation is only appended to `values`; `fold` counts them in bulk (sorted, then one
    bisect per bucket), when `EngineMetrics.fold` asks. A bisect per observation, over the
    bounds as Python floats, cost more than the rest of the counting.
    """

    __slots__ = ("bounds", "counts", "sum", "values")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.values: list[float] = []

    def fold(self) -> None:
        """Counts the values gathered into the buckets (a value goes to the first bound it is
        not above: Prometheus' `le`)."""
        values = self.values
        if not values:
            return
        self.sum = sum(values, self.sum)  # in the order observed, before the sort
        values.sort()
        counts, counted = self.counts, 0
        for bucket, bound in enumerate(self.bounds):
            if counted == len(values):
                break
            upto = bisect_right(values, bound)
            counts[bucket] += upto - counted
            counted = upto
        counts[-1] += len(values) - counted
        values.clear()

    def add_to(self, family: HistogramMetricFamily, labels: list[str]) -> None:
        """Adds the counts, as of the last `fold`, to a family being scraped."""
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
        family.add_metric(labels, buckets, self.sum)


class _PerHandler:
    """The numbers of one service/handler."""

    __slots__ = ("attempt", "completed", "duration", "failed", "retries", "started")

    def __init__(self) -> None:
        self.started = self.completed = self.failed = self.retries = 0
        self.duration = _Histogram(_LATENCY_BUCKETS)
        self.attempt = _Histogram(_LATENCY_BUCKETS)


_COUNTERS = (
    ("started", "headway_invocations_started", "invocations whose first attempt began"),
    ("completed", "headway_invocations_completed", "invocations that ended with a value"),
    ("failed", "headway_invocations_failed",
     "invocations that ended with a terminal failure (cancelled and killed included)"),
    ("retries", "headway_invocation_retries", "attempts that failed and were retried"),
)  # fmt: skip
_HISTOGRAMS = (
    ("duration", "headway_invocation_duration_seconds",
     "end to end: from the invocation's creation to its completion"),
    ("attempt", "headway_attempt_duration_seconds",
     "time one attempt ran the handler, until it ended, failed or suspended"),
)  # fmt: skip


class _Families(Collector):
    """Turns an `EngineMetrics`' numbers into Prometheus families at scrape time."""

    def __init__(self, metrics: EngineMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        m.fold()
        handlers = sorted(m.handlers.items())
        labels = ["service", "handler"]
        for attr, name, doc in _COUNTERS:
            counter = CounterMetricFamily(name, doc, labels=labels)
            for key, numbers in handlers:
                counter.add_metric(list(key), getattr(numbers, attr))
            yield counter
        for attr, name, doc in _HISTOGRAMS:
            histogram = HistogramMetricFamily(name, doc, labels=labels)
            for key, numbers in handlers:
                getattr(numbers, attr).add_to(histogram, list(key))
            yield histogram
        batches = HistogramMetricFamily(
            "headway_group_commit_entries", "log entries per group commit"
        )
        m.batch_entries.add_to(batches, [])
        yield batches
        fsync = HistogramMetricFamily(
            "headway_group_commit_fsync_seconds", "time of the synced write of one group commit"
        )
        m.fsync_seconds.add_to(fsync, [])
        yield fsync
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


_COUNT_SLICE = 2048  # records counted between two pauses
_COUNT_PAUSE = 0.002  # seconds


class EngineMetrics:
    """The metrics of one engine, in a registry of its own (engines may share a process)."""

    def __init__(self) -> None:
        self.handlers: dict[tuple[str, str], _PerHandler] = {}
        # The same, by service then handler: two dict reads by str cost half of one by tuple.
        self._by_service: dict[str, dict[str, _PerHandler]] = {}
        self.batch_entries = _Histogram(_BATCH_BUCKETS)
        self.fsync_seconds = _Histogram(_FSYNC_BUCKETS)
        self._unfolded = 0  # entries committed since the last `fold`
        self.by_status: Tally[str] = Tally()
        self.inbox = 0
        self.timers = 0
        self.registry = CollectorRegistry()
        self.registry.register(_Families(self))

    def handler(self, service: str, handler: str) -> _PerHandler:
        """The numbers of a handler; the hot paths read `_by_service` and call this on a miss."""
        found = self.handlers.get((service, handler))
        if found is None:
            found = self.handlers[(service, handler)] = _PerHandler()
            self._by_service.setdefault(service, {})[handler] = found
        return found

    def store_counter(self, db: Rdict) -> Callable[[], Tally[str]]:
        """A blocking count of the live work in the store as it is now (the iterator pins it).

        Returns counts by invocation status, plus `"/inbox"` and `"/timers"`.
        """
        it = db.iter()

        def count() -> Tally[str]:
            tally: Tally[str] = Tally()
            seen = 0
            for prefix in (keys.INVOCATION, keys.TIMER, keys.OBJECT_LOCK):
                it.seek(prefix)
                while it.valid():
                    key = it.key()
                    if not key.startswith(prefix):
                        break
                    seen += 1
                    if seen % _COUNT_SLICE == 0:
                        # Let the engine's thread have the GIL: on a large store this count
                        # runs for seconds, right when a restarted engine starts serving.
                        time.sleep(_COUNT_PAUSE)
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
        """Counts what one batch changed: one pass over its changed keys, no store reads.

        This runs for every batch over every key it changed, so it is one flat loop: a look-up
        of the first byte passes over most keys, a transition is counted inline, and status
        moves are tallied for the whole batch and applied once."""
        self.batch_entries.values.append(batch.entries)
        self.fsync_seconds.values.append(batch.fsync_seconds)
        statuses, queues, reads = batch.statuses, batch.queues, batch.view.reads
        by_service = self._by_service
        entered: list[str] = []
        left: list[str] = []
        timers = inbox = 0
        for key, new in batch.view.changes.items():
            first = key[0]
            if not _COUNTED[first]:
                continue
            if first == _INVOCATION:
                old = statuses.get(key)
                if old is not None:
                    left.append(old["st"])
                if new is DELETED:
                    continue
                status = new["st"]
                entered.append(status)
                target = new["t"]
                try:
                    numbers = by_service[target[0]][target[1]]
                except KeyError:
                    numbers = self.handler(target[0], target[1])
                if old is None:  # made in this batch
                    if new["a"]:
                        numbers.started += 1
                    if new["rc"]:
                        numbers.retries += new["rc"]
                    if status != "completed":
                        continue
                else:
                    if new["a"] and not old["a"]:
                        numbers.started += 1
                    if new["rc"] > old["rc"]:
                        numbers.retries += new["rc"] - old["rc"]
                    if status != "completed" or old["st"] == "completed":
                        continue
                if new["o"][0] == 1:  # an encoded Outcome: [1, code, message] is a failure
                    numbers.failed += 1
                else:
                    numbers.completed += 1
                numbers.duration.values.append((new["ma"] - new["ca"]) / 1000)
            elif first == _TIMER:
                # A timer is put under a new key (a fresh sequence number), and read before it
                # is deleted: one deleted unread was added in this batch, and never counted.
                if new is not DELETED:
                    timers += 1
                elif reads.get(key) is not None:
                    timers -= 1
            else:
                inbox += (0 if new is DELETED else len(new[1])) - queues.get(key, 0)
        by_status = self.by_status
        for status in set(entered):  # a few statuses, each counted by list.count in C
            by_status[status] += entered.count(status)
        if left:
            for status in set(left):
                by_status[status] -= left.count(status)
        self.timers += timers
        self.inbox += inbox
        for express in batch.expressed:  # one per Kafka record, on a busy subscription
            target = express.invoke.target
            try:
                numbers = by_service[target.service][target.handler]
            except KeyError:
                numbers = self.handler(target.service, target.handler)
            numbers.started += 1
            numbers.completed += 1
            numbers.duration.values.append((batch.now_ms - express.ran_at_ms) / 1000)
        self._unfolded += batch.entries
        if self._unfolded >= _FOLD_EVERY:
            self.fold()

    def attempt_ended(self, service: str, handler: str, started: float) -> None:
        """Records one attempt's run time (`started` from `time.perf_counter()`)."""
        seconds = perf_counter() - started
        try:
            numbers = self._by_service[service][handler]
        except KeyError:
            numbers = self.handler(service, handler)
        numbers.attempt.values.append(seconds)

    def fold(self) -> None:
        """Counts the values every histogram gathered: before a scrape, and after every
        `_FOLD_EVERY` committed entries. Each attempt and each completion comes with an entry
        of its own, so that bounds the values waiting."""
        self._unfolded = 0
        self.batch_entries.fold()
        self.fsync_seconds.fold()
        for numbers in self.handlers.values():
            numbers.duration.fold()
            numbers.attempt.fold()
