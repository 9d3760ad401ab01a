"""The outbox shipper against a real broker: a zombie with the same transactional id is fenced,
and a record is never published twice, whoever ships it."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from broker import TopicFactory
from headway.connectors.kafka.clusters import KafkaCluster
from headway.connectors.kafka.shipper import OutboxShipper
from headway.engine import keys
from headway.engine.entries import Entry
from headway.engine.store import Store, pack
from pipeline import read_committed
from rocksdict import WriteBatch

RECORDS = 3000


def _fill_outbox(path: Path, topic: str) -> None:
    """A store whose outbox holds RECORDS records, as the processor would have written them."""
    store = Store(path)
    batch = WriteBatch(raw_mode=True)
    for seq in range(1, RECORDS + 1):
        record = [topic, b"k", json.dumps({"seq": seq}).encode(), {}]
        batch.put(keys.outbox("local", seq), pack(record))
    batch.put(keys.outbox_seq("local"), pack(RECORDS))
    store.write(batch)
    store.close()


async def _ship_concurrently(stores: list[Store], cluster: KafkaCluster, txn_id: str) -> None:
    trims: list[Entry] = []
    shippers = [
        OutboxShipper(store, trims.append, "local", cluster, txn_id, max_records=100)
        for store in stores
    ]
    for shipper in shippers:
        shipper.start()
        shipper.wake(RECORDS)  # the whole outbox is durable: written before the store reopened
    deadline = asyncio.get_running_loop().time() + 120
    while max(s.shipped_seq for s in shippers) < RECORDS:
        assert asyncio.get_running_loop().time() < deadline, "the outbox was not shipped"
        await asyncio.sleep(0.2)
    for shipper in shippers:
        await shipper.stop()


def test_two_shippers_with_one_transactional_id_publish_each_record_once(
    kafka_bootstrap: str, new_topic: TopicFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Like an engine restored from a copy of its data directory while the original still runs:
    both ship the same outbox under the same transactional id. Each fences the other in turn
    and resumes from the committed progress, so every record is still published exactly once."""
    topic = new_topic(1)
    _fill_outbox(tmp_path / "a", topic)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    stores = [Store(tmp_path / "a"), Store(tmp_path / "b")]
    cluster = KafkaCluster("local", (kafka_bootstrap,))
    try:
        asyncio.run(_ship_concurrently(stores, cluster, f"fencing-{topic}"))
    finally:
        for store in stores:
            store.close()
    fenced = [r.getMessage() for r in caplog.records if "fenced" in r.getMessage().lower()]
    assert fenced, "the two shippers never fenced each other: the scenario did not happen"
    outputs = read_committed(kafka_bootstrap, topic, RECORDS)
    assert [json.loads(m.value())["seq"] for m in outputs] == list(range(1, RECORDS + 1))


async def _ship_up_to(
    store: Store, cluster: KafkaCluster, txn_id: str, bounds: list[int]
) -> list[int]:
    """Wakes one shipper with each durable bound in turn; what it had shipped after each."""
    shipper = OutboxShipper(store, [].append, "local", cluster, txn_id, max_records=100)
    shipper.start()
    shipped: list[int] = []
    try:
        for bound in bounds:
            shipper.wake(bound)
            deadline = asyncio.get_running_loop().time() + 60
            while shipper.shipped_seq < bound:
                assert asyncio.get_running_loop().time() < deadline, "the outbox was not shipped"
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # time enough to ship past the bound, if it would
            shipped.append(shipper.shipped_seq)
    finally:
        await shipper.stop()
    return shipped


def test_the_shipper_ships_only_records_known_durable(
    kafka_bootstrap: str, new_topic: TopicFactory, tmp_path: Path
) -> None:
    """The store shows a batch's outbox records a moment before they are synced (Store.write);
    the shipper publishes only up to the sequence the engine has told it is durable."""
    topic = new_topic(1)
    _fill_outbox(tmp_path / "a", topic)
    store = Store(tmp_path / "a")
    cluster = KafkaCluster("local", (kafka_bootstrap,))
    try:
        shipped = asyncio.run(_ship_up_to(store, cluster, f"bound-{topic}", [1000, RECORDS]))
    finally:
        store.close()
    assert shipped == [1000, RECORDS]
    outputs = read_committed(kafka_bootstrap, topic, RECORDS)
    assert [json.loads(m.value())["seq"] for m in outputs] == list(range(1, RECORDS + 1))
