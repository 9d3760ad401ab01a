"""The metrics' counting, on hand-made batches: what each kind of change counts, how a key is
told apart by its first byte, and histograms that count their values in bulk."""

from __future__ import annotations

import random
import time
from bisect import bisect_left
from typing import Any

import pytest
from headway.engine import keys, metrics
from headway.engine.commit_record import CommittedBatch
from headway.engine.entries import Express, Invoke
from headway.engine.metrics import EngineMetrics
from headway.engine.store import StoreView
from headway.sdk.journal import Target
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families


def status(st: str, *, a: int = 1, rc: int = 0, failed: bool = False, **more: Any) -> Any:
    """An invocation record with the fields metrics read."""
    outcome = [1, 500, "no"] if failed else [0, b"1"]
    record = {"st": st, "t": ["Svc", "run", None], "a": a, "rc": rc, "ca": 1_000, "ma": 1_250}
    return {**record, "o": outcome if st == "completed" else None, **more}


def batch(view: StoreView, entries: int = 3, **fields: Any) -> CommittedBatch:
    return CommittedBatch(entries, fsync_seconds=0.002, now_ms=2_000, view=view, **fields)


def samples(engine_metrics: EngineMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample a scrape shows, by name and sorted labels."""
    text = generate_latest(engine_metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_only_the_counted_prefixes_start_with_their_first_byte() -> None:
    """The loop over changed keys tells them apart by their first byte alone."""
    counted = (keys.INVOCATION, keys.TIMER, keys.OBJECT_LOCK)
    prefixes = [value for value in vars(keys).values() if isinstance(value, bytes)]
    made = [
        keys.log(1), keys.journal("inv_1", 0), keys.completion("inv_1", 0), keys.active("inv_1"),
        keys.state("S", "k"), keys.promises("W", "k"), keys.deployment("dp_1"),
        keys.subscription("sub_1"), keys.kafka_offset("g", "t", 0), keys.kafka_cluster("c"),
        keys.outbox("c", 1), keys.outbox_seq("c"), keys.outbox_trimmed("c"),
    ]  # fmt: skip
    assert len(prefixes) > 10
    for key in [*prefixes, *made]:
        assert metrics._COUNTED[key[0]] == key.startswith(counted), key
    for key in (keys.invocation("inv_1"), keys.timer(5, 1), keys.object_lock("S", "k")):
        assert metrics._COUNTED[key[0]]


def test_a_histogram_counts_its_values_as_a_bisect_of_each_would() -> None:
    bounds = metrics._LATENCY_BUCKETS
    rng = random.Random(7)
    edges = [*bounds, *(bound * (1 + 1e-12) for bound in bounds), -1.0, 0.0, 1e9]
    histogram = metrics._Histogram(bounds)
    counts, total = [0] * (len(bounds) + 1), 0.0
    for _ in range(3):  # counted in several folds
        values = [*edges, *(rng.expovariate(40) for _ in range(1000))]
        rng.shuffle(values)
        for value in values:
            histogram.values.append(value)
            counts[bisect_left(bounds, value)] += 1
            total += value
        histogram.fold()
        assert histogram.counts == counts and not histogram.values
    # sum() adds in order as `+=` does on 3.11; from 3.12 it rounds once, more exactly
    assert histogram.sum == pytest.approx(total, rel=1e-12)


def test_histograms_are_counted_every_so_many_entries() -> None:
    m = EngineMetrics()
    m.attempt_ended("Svc", "run", time.perf_counter())
    attempts = m.handlers[("Svc", "run")].attempt
    m.batch_committed(batch(StoreView({}), entries=metrics._FOLD_EVERY - 1))
    assert len(attempts.values) == 1 and len(m.batch_entries.values) == 1
    m.batch_committed(batch(StoreView({}), entries=1))
    assert not attempts.values and sum(attempts.counts) == 1
    assert not m.batch_entries.values and m.batch_entries.sum == metrics._FOLD_EVERY


def test_a_scrape_counts_the_values_gathered_so_far() -> None:
    m = EngineMetrics()
    long_ago = time.perf_counter() - 5_000  # the attempts ran for longer than the last bound
    m.attempt_ended("Svc", "run", long_ago)
    m.attempt_ended("Svc", "run", long_ago)
    m.fsync_seconds.values.append(0.0003)
    found = samples(m)
    run = (("handler", "run"), ("service", "Svc"))
    assert found[("headway_attempt_duration_seconds_count", run)] == 2
    below_last_bound = (run[0], ("le", "3600.0"), run[1])
    assert found[("headway_attempt_duration_seconds_bucket", below_last_bound)] == 0
    assert found[("headway_group_commit_fsync_seconds_bucket", (("le", "0.0005"),))] == 1
    assert found[("headway_group_commit_fsync_seconds_bucket", (("le", "0.00025"),))] == 0
    m.attempt_ended("Svc", "run", long_ago)
    assert samples(m)[("headway_attempt_duration_seconds_count", run)] == 3


def test_transitions_of_invocations_timers_and_queues() -> None:
    m = EngineMetrics()
    before = StoreView({})
    before.put(keys.invocation("inv_done"), status("completed"))  # made and ended at once
    before.put(keys.invocation("inv_new"), status("scheduled", a=0))
    before.put(keys.invocation("inv_failed"), status("completed", failed=True, rc=2))
    before.put(keys.timer(10, 1), ["purge", "inv_done"])
    before.put(keys.object_lock("Svc", "k"), ["inv_x", ["inv_y", "inv_z"]])
    before.put(keys.journal("inv_done", 0), [1])
    m.batch_committed(batch(before))
    numbers = m.handlers[("Svc", "run")]
    assert (numbers.started, numbers.completed, numbers.failed, numbers.retries) == (2, 1, 1, 2)
    assert m.by_status == {"completed": 2, "scheduled": 1}
    assert (m.timers, m.inbox) == (1, 2)

    # The next batch read what it changes in place: `statuses` and `queues` hold the before.
    after = StoreView({})
    after.reads[keys.timer(10, 1)] = ["purge", "inv_done"]
    after.delete(keys.timer(10, 1))  # fired
    after.put(keys.timer(20, 2), ["purge", "inv_new"])
    after.put(keys.timer(30, 3), ["wake", "inv_new", 1])  # added and fired in the batch
    after.delete(keys.timer(30, 3))
    after.put(keys.invocation("inv_new"), status("completed", a=3, rc=2))  # retried, then done
    after.delete(keys.invocation("inv_done"))  # purged
    after.put(keys.object_lock("Svc", "k"), ["inv_y", ["inv_z"]])
    statuses = {
        keys.invocation("inv_new"): {"st": "scheduled", "a": 0, "rc": 0},
        keys.invocation("inv_done"): {"st": "completed", "a": 1, "rc": 0},
    }
    queues = {keys.object_lock("Svc", "k"): 2}
    m.batch_committed(batch(after, statuses=statuses, queues=queues))
    assert (numbers.started, numbers.completed, numbers.failed, numbers.retries) == (3, 2, 1, 4)
    assert m.by_status == {"completed": 2, "scheduled": 0}
    assert (m.timers, m.inbox) == (1, 1)
    numbers.duration.fold()
    assert sum(numbers.duration.counts) == 3 and numbers.duration.sum == pytest.approx(0.75)


def test_express_runs_count_as_invocations_of_their_handler() -> None:
    m = EngineMetrics()
    invoke = Invoke("", Target("Sink", "take", "k"), b"1", {})
    m.batch_committed(batch(StoreView({}), expressed=[Express(invoke, (), 1_500)] * 2))
    m.attempt_ended("Sink", "take", 0.0)
    numbers = m.handlers[("Sink", "take")]
    assert (numbers.started, numbers.completed) == (2, 2)
    numbers.duration.fold()
    numbers.attempt.fold()
    assert numbers.duration.sum == 1.0 and sum(numbers.attempt.counts) == 1
    assert m.handler("Sink", "take") is numbers
    assert m._by_service == {"Sink": {"take": numbers}}
