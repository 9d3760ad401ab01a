"""The Kafka pipeline's per-record work inside the engine, without a broker.

The exactly-once pipeline of ``kafka_pipeline.py`` is bound by Python work per record on the
engine's event loop, and a run against a real broker on a 2-core machine moves by 20 % from one
minute to the next. This runs that work alone, in one process: a real engine (RocksDB store,
group commit fsynced, processor, express lane) and a real ``SubscriptionConsumer`` fed records
that stand in for polled Kafka messages, through the handler of ``kafka_app.py`` that counts
per key and emits. What it leaves out is Kafka's own work: polling, and shipping the outbox
(with no broker nothing ships; the outbox fills, as it does while Kafka is down).

It prints records/s and CPU per record for each round. For comparisons finer than the noise,
count instructions: the difference between two record counts under callgrind is the cost of
the records alone, without start-up::

    python bench/kafka_hot_path.py                       # 3 rounds of 100,000 records
    valgrind --tool=callgrind python bench/kafka_hot_path.py --records 4000 --rounds 1
    valgrind --tool=callgrind python bench/kafka_hot_path.py --records 16000 --rounds 1
    # (instructions at 16,000 - instructions at 4,000) / 12,000 = instructions per record
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import random
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from headway.connectors.kafka.consumer import SubscriptionConsumer
from headway.connectors.kafka.formats import value_format
from headway.connectors.kafka.subscription import Subscription
from headway.connectors.kafka.uris import parse_sink, parse_source
from headway.engine.config import Config
from headway.engine.engine import Engine
from headway.engine.express import ExpressLane
from headway.engine.runner import tune_garbage_collector

TOPIC = "clicks"
POLL_BATCH = 1000  # records handed over per poll, as the consumer's poll loop does
HELD_AT_MOST = 4000  # records waiting in the consumer before this feeder waits for room


class Record:
    """A polled Kafka message as the consumer reads it (confluent_kafka's accessors)."""

    __slots__ = ("_key", "_offset", "_partition", "_value")

    def __init__(self, partition: int, offset: int, key: bytes, value: bytes) -> None:
        self._partition, self._offset, self._key, self._value = partition, offset, key, value

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)


def records(count: int, keys: int, partitions: int, seed: int = 1) -> list[Record]:
    """`count` JSON records over `keys` keys, each key on one partition, interleaved across
    partitions as a poll of several partitions returns them."""
    rng = random.Random(seed)
    by_partition: list[list[Record]] = [[] for _ in range(partitions)]
    for n in range(count):
        key = f"key-{rng.randrange(keys)}"
        partition = zlib.crc32(key.encode()) % partitions  # the same in every run
        offsets = by_partition[partition]
        value = json.dumps({"key": key, "n": n}).encode()
        offsets.append(Record(partition, len(offsets), key.encode(), value))
    longest = max(len(p) for p in by_partition)
    return [p[i] for i in range(longest) for p in by_partition if i < len(p)]


def load_app() -> Any:
    path = Path(__file__).with_name("kafka_app.py")
    spec = importlib.util.spec_from_file_location("kafka_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def one_round(count: int, keys: int, partitions: int, handler: str) -> tuple[float, float]:
    """Feeds `count` records through a fresh engine; records/s and CPU µs per record."""
    data_dir = Path(tempfile.mkdtemp(prefix="headway-hot-path-"))
    engine = Engine(Config(data_dir=data_dir), [load_app().counts])
    await engine.start()
    # No broker: nothing ships, and no shipper is started for the filling outbox.
    engine.kafka.outbox_ready = lambda outbox, durable_seq=None: None  # type: ignore[method-assign]
    subscription = Subscription(
        "bench", parse_source(f"kafka://local/{TOPIC}"), parse_sink(f"service://Counts/{handler}"),
        {"auto.offset.reset": "earliest"},
    )  # fmt: skip
    committer = engine.committer
    lane = ExpressLane(committer.reads, engine.registry, committer, engine.observability)
    consumer = SubscriptionConsumer(
        subscription, None, True, value_format("json", None, None),  # type: ignore[arg-type]
        engine.store, committer.submit_nowait, lane,
    )  # fmt: skip
    engine.kafka.consumers[subscription.id] = consumer  # so finished records free their slots
    feed = records(count, keys, partitions)

    def held() -> int:
        return sum(len(flow.pending) for flow in consumer.flows.values())

    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(feed), POLL_BATCH):
        for record in feed[start : start + POLL_BATCH]:
            consumer.receive(record)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        while held() > HELD_AT_MOST:
            await asyncio.sleep(0.001)
    while held() or committer.settled < committer.submitted:
        await asyncio.sleep(0.001)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if lane.ran != count:
        sys.exit(f"only {lane.ran} of {count} records ran in the express lane")
    await engine.stop()
    return count / wall, cpu / count * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="records per round")
    parser.add_argument("--keys", type=int, default=10_000, help="distinct record keys")
    parser.add_argument("--partitions", type=int, default=4, help="Kafka partitions fed")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each on a fresh engine")
    parser.add_argument(
        "--quiet", action="store_true", help="count without emitting (on_record_quiet)"
    )
    args = parser.parse_args()
    tune_garbage_collector()
    handler = "on_record_quiet" if args.quiet else "on_record"
    results = []
    for n in range(1, args.rounds + 1):
        rate, cpu_us = await one_round(args.records, args.keys, args.partitions, handler)
        results.append((rate, cpu_us))
        print(f"round {n}: {args.records:,} records, {rate:,.0f} records/s, "
              f"{cpu_us:.1f} µs CPU per record", file=sys.stderr, flush=True)  # fmt: skip
    rates, cpus = zip(*results, strict=True)
    print(f"median: {statistics.median(rates):,.0f} records/s, "
          f"{statistics.median(cpus):.1f} µs CPU per record")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
