"""The express lane beside the durable way, on the same keys, with real processes.

Most records of these streams run ahead of the log; records that take a journaled step, and
HTTP calls to the same objects, go the durable way and hold their key. Whatever the mix, each
key's records must be counted in offset order, once, and no update may be lost between the two
ways: the exact outputs and final state are checked.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from typing import Any

from broker import TopicFactory
from engine_process import EngineProcess
from http_json import call
from pipeline import add_subscription, check_counts, produce, read_committed, wait_until


def _records(count: int, keys: int, step_every: int) -> list[tuple[bytes, bytes]]:
    """Records round-robin over `keys` keys; every `step_every`-th takes a journaled step."""
    return [
        (f"k{i % keys}".encode(), json.dumps({"i": i, "step": i % step_every == 0}).encode())
        for i in range(count)
    ]


def _metric(engine: EngineProcess, name: str) -> float:
    status, text = call("GET", engine.admin + "/metrics")
    assert status == 200
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in str(text).splitlines()
        if line.startswith(name + "{") and 'service="Counts"' in line
    )


def test_records_that_take_steps_keep_their_keys_order(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any
) -> None:
    records, keys = 12_000, 300
    topic = new_topic(4)
    new_topic(4, f"{topic}-out")
    engine: EngineProcess = kafka_engine()
    add_subscription(engine, topic, "service://Counts/on_record")
    produce(kafka_bootstrap, topic, _records(records, keys, step_every=7))
    outputs = read_committed(kafka_bootstrap, f"{topic}-out", records, timeout=300)
    assert len(outputs) == records
    check_counts(outputs, {f"k{i}": records // keys for i in range(keys)})
    # Both ways were taken: the metrics count every completed invocation, express or not.
    completed = _metric(engine, "headway_invocations_completed_total")
    assert completed >= records


def test_http_calls_and_records_on_the_same_keys_lose_no_update(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any
) -> None:
    records, keys, bumps_per_key = 20_000, 20, 25
    topic = new_topic(4)
    new_topic(4, f"{topic}-out")
    engine: EngineProcess = kafka_engine()
    add_subscription(engine, topic, "service://Counts/on_record")
    producer = threading.Thread(
        target=produce, args=(kafka_bootstrap, topic, _records(records, keys, step_every=10**9))
    )
    producer.start()
    answers: dict[str, list[int]] = defaultdict(list)

    def bump_all(key: str) -> None:
        for _ in range(bumps_per_key):
            status, body = call("POST", f"{engine.ingress}/Counts/{key}/bump", None)
            assert status == 200, body
            answers[key].append(body)

    bumpers = [threading.Thread(target=bump_all, args=(f"k{i}",)) for i in range(keys)]
    for thread in bumpers:
        thread.start()
    for thread in [*bumpers, producer]:
        thread.join()
    outputs = read_committed(kafka_bootstrap, f"{topic}-out", records, timeout=300)
    assert len(outputs) == records
    seen: dict[str, list[int]] = defaultdict(list)
    for message in outputs:
        body = json.loads(message.value())
        seen[body["key"]].append(body["n"])
    for i in range(keys):
        key = f"k{i}"
        every_n = seen[key] + answers[key]
        # Every record and every call saw a distinct count, and together they are 1..total:
        # no update was lost or applied twice, whichever way each one took.
        total = records // keys + bumps_per_key
        assert sorted(every_n) == list(range(1, total + 1)), key
        assert seen[key] == sorted(seen[key]), f"{key}: records counted out of order"
        final = wait_until(
            lambda key=key: call("POST", f"{engine.ingress}/Counts/{key}/count", None)[1]
        )
        assert final == total


def test_a_sigkill_while_runs_are_unapplied_loses_and_repeats_nothing(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any
) -> None:
    records, keys = 60_000, 500
    topic = new_topic(4)
    out = new_topic(4, f"{topic}-out")
    engine: EngineProcess = kafka_engine()
    add_subscription(engine, topic, "service://Counts/on_record")
    produce(kafka_bootstrap, topic, _records(records, keys, step_every=97))

    def applied() -> int:
        status, body = call("POST", "/".join([engine.admin, "query"]),
                            {"query": "select sum(applied_offset + 1) as n "
                                      "from sys_kafka_progress"})  # fmt: skip
        assert status == 200, body
        return int(body["rows"][0]["n"] or 0) if body["rows"] else 0

    wait_until(lambda: applied() > records // 3, timeout=120)
    engine.kill()  # the consumer had records run ahead of the log and not yet written
    engine.start()
    outputs = read_committed(kafka_bootstrap, out, records, timeout=300)
    assert len(outputs) == records
    check_counts(outputs, {f"k{i}": records // keys for i in range(keys)})
