"""Kafka subscriptions end to end: a real broker, a real engine process, real records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import fastavro
from broker import TopicFactory
from confluent_kafka import Consumer, TopicPartition
from engine_process import EngineProcess
from http_json import call
from pipeline import (
    add_subscription,
    check_counts,
    counter_records,
    produce,
    read_committed,
    wait_until,
)


def _engine(kafka_engine: Any) -> EngineProcess:
    return kafka_engine()  # type: ignore[no-any-return]


def test_records_become_keyed_invocations_and_emits_are_published_once(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any
) -> None:
    topic = new_topic(4)
    new_topic(4, f"{topic}-out")
    engine = _engine(kafka_engine)
    sub = add_subscription(engine, topic, "service://Counts/on_record")
    produce(kafka_bootstrap, topic, counter_records(2000, 50))
    outputs = read_committed(kafka_bootstrap, f"{topic}-out", 2000)
    check_counts(outputs, {f"k{i}": 40 for i in range(50)})
    # The handlers' state agrees with the outputs.
    status, count = call("POST", f"{engine.ingress}/Counts/k7/count", {})
    assert (status, count) == (200, 40)
    # The group's committed offsets follow the applied ones, so lag tools see no lag.
    group = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": sub["group"]})
    try:
        partitions = [TopicPartition(topic, p) for p in range(4)]
        wait_until(lambda: sum(tp.offset for tp in group.committed(partitions, 10)) == 2000)
    finally:
        group.close()
    # SQL and metrics show the same progress.
    status, result = call("POST", f"{engine.admin}/query", {"query": (
        "select partition, applied_offset, lag from sys_kafka_progress order by partition"
    )})  # fmt: skip
    assert status == 200, result
    rows = result["rows"]
    assert [r["partition"] for r in rows] == [0, 1, 2, 3]
    assert sum(r["applied_offset"] + 1 for r in rows) == 2000
    assert all(r["lag"] in (0, None) for r in rows)
    status, result = call("POST", f"{engine.admin}/query", {"query": (
        "select s.id, s.status, count(*) as pending from sys_subscription s "
        "left join sys_outbox o on true group by all"
    )})  # fmt: skip
    assert result["rows"] == [{"id": sub["id"], "status": "running", "pending": 1}]
    metrics = _metrics(engine)
    assert (
        metrics[
            f'headway_kafka_records_ingested_total{{subscription="{sub["id"]}",topic="{topic}"}}'
        ]
        == 2000
    )
    assert metrics['headway_outbox_depth{cluster="local"}'] == 0
    assert metrics['headway_outbox_transactions_total{cluster="local"}'] >= 1


def _metrics(engine: EngineProcess) -> dict[str, float]:
    """`GET /metrics` as {series: value}."""
    with urllib.request.urlopen(engine.admin + "/metrics", timeout=10) as response:
        text = response.read().decode()
    series = (line.rpartition(" ") for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, _, value in series if name}


def test_two_subscriptions_on_one_topic_each_see_every_record_once(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any
) -> None:
    topic = new_topic(2)
    new_topic(2, f"{topic}-out")
    new_topic(2, f"{topic}-tally")
    engine = _engine(kafka_engine)
    first = add_subscription(engine, topic, "service://Counts/on_record")
    second = add_subscription(engine, topic, "service://Tally/on_record")
    assert first["group"] != second["group"]
    produce(kafka_bootstrap, topic, counter_records(1000, 20))
    expected = {f"k{i}": 50 for i in range(20)}
    check_counts(read_committed(kafka_bootstrap, f"{topic}-out", 1000), expected)
    check_counts(read_committed(kafka_bootstrap, f"{topic}-tally", 1000), expected)


def _headers(message: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in message.headers() or []}


def test_bad_records_are_dead_lettered_with_the_reason_and_the_stream_continues(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any
) -> None:
    topic = new_topic(1)
    new_topic(1, f"{topic}-out")
    dlq = new_topic(1, f"{topic}-dlq")
    engine = _engine(kafka_engine)
    add_subscription(engine, topic, "service://Counts/on_record", **{"dead.letter.topic": dlq})
    produce(
        kafka_bootstrap,
        topic,
        [
            (b"a", b'{"i": 0}'),
            (b"a", b"{not json"),  # offset 1
            (None, b'{"i": 2}'),  # offset 2: an object sink needs a key
            (b"b", b'{"fail": "no thanks"}'),  # offset 3: a terminal failure in the handler
            (b"a", b'{"i": 4}'),
            (b"b", b'{"i": 5}'),
        ],
        headers=[("origin", b"test")],
    )
    check_counts(read_committed(kafka_bootstrap, f"{topic}-out", 3), {"a": 2, "b": 1})
    letters = read_committed(kafka_bootstrap, dlq, 3)
    assert [m.value() for m in letters] == [b"{not json", b'{"i": 2}', b'{"fail": "no thanks"}']
    assert [m.key() for m in letters] == [b"a", None, b"b"]
    headers = [_headers(m) for m in letters]
    assert [h["headway.source.offset"] for h in headers] == ["1", "2", "3"]
    assert all(h["origin"] == "test" and h["headway.source.topic"] == topic for h in headers)
    assert "not valid JSON" in headers[0]["headway.error.reason"]
    assert "no key" in headers[1]["headway.error.reason"]
    assert headers[2]["headway.error.reason"] == "record asked to fail: no thanks"
    assert [h["headway.error.code"] for h in headers] == ["400", "400", "422"]


def test_avro_records_are_decoded_and_a_wrong_schema_is_dead_lettered(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any, tmp_path: Path
) -> None:
    fields = [{"name": "i", "type": "long"}, {"name": "page", "type": "string"}]
    schema = {"type": "record", "name": "Click", "fields": fields}
    schema_file = tmp_path / "click.avsc"
    schema_file.write_text(json.dumps(schema))
    parsed = fastavro.parse_schema(schema)

    def avro(record: dict[str, Any]) -> bytes:
        import io

        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, record)
        return out.getvalue()

    topic = new_topic(1)
    new_topic(1, f"{topic}-out")
    dlq = new_topic(1, f"{topic}-dlq")
    engine = _engine(kafka_engine)
    add_subscription(
        engine, topic, "service://Counts/on_record",
        **{"value.format": "avro", "avro.schema.file": str(schema_file), "dead.letter.topic": dlq},
    )  # fmt: skip
    produce(kafka_bootstrap, topic, [
        (b"a", avro({"i": 1, "page": "/home"})),
        (b"a", b'{"i": 2, "page": "/json-is-not-avro"}'),
        (b"a", avro({"i": 3, "page": "/about"})),
    ])  # fmt: skip
    check_counts(read_committed(kafka_bootstrap, f"{topic}-out", 2), {"a": 2})
    [letter] = read_committed(kafka_bootstrap, dlq, 1)
    assert letter.value() == b'{"i": 2, "page": "/json-is-not-avro"}'
    assert "does not match the Avro schema" in _headers(letter)["headway.error.reason"]


def test_a_bad_record_without_a_dead_letter_topic_stops_the_subscription_with_the_reason(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any
) -> None:
    topic = new_topic(1)
    new_topic(1, f"{topic}-out")
    engine = _engine(kafka_engine)
    sub = add_subscription(engine, topic, "service://Counts/on_record")
    produce(kafka_bootstrap, topic, [(b"a", b'{"i": 0}'), (b"a", b"oops"), (b"a", b'{"i": 2}')])

    def failed() -> dict[str, Any] | None:
        body = engine.admin_json("GET", f"/subscriptions/{sub['id']}")
        return body if body["status"] == "failed" else None

    body = wait_until(failed, timeout=30)
    assert body["error"].startswith(
        f"record {topic}/0@1 cannot be invoked: value is not valid JSON"
    )
    assert "no dead.letter.topic is set" in body["error"]
    assert body["progress"] == [{"partition": 0, "applied_offset": 0}]
    check_counts(read_committed(kafka_bootstrap, f"{topic}-out", 1), {"a": 1})
    # It stays stopped across a restart, rather than skipping the record.
    engine.kill()
    engine.start()
    time.sleep(2)
    assert engine.admin_json("GET", f"/subscriptions/{sub['id']}")["progress"][0] == {
        "partition": 0, "applied_offset": 0,
    }  # fmt: skip


def test_removing_a_subscription_stops_it_and_adding_it_back_resumes_without_duplicates(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any
) -> None:
    topic = new_topic(2)
    new_topic(2, f"{topic}-out")
    engine = _engine(kafka_engine)
    sub = add_subscription(engine, topic, "service://Counts/on_record")
    records = counter_records(1000, 10)
    produce(kafka_bootstrap, topic, records[:500])
    read_committed(kafka_bootstrap, f"{topic}-out", 500)
    status, _ = call("DELETE", f"{engine.admin}/subscriptions/{sub['id']}")
    assert status == 200
    assert engine.admin_json("GET", "/subscriptions")["subscriptions"] == []
    produce(kafka_bootstrap, topic, records[500:])
    time.sleep(3)
    assert len(read_committed(kafka_bootstrap, f"{topic}-out", 500, settle=1)) == 500
    again = add_subscription(engine, topic, "service://Counts/on_record")
    assert again["group"] == sub["group"] and again["id"] != sub["id"]
    check_counts(
        read_committed(kafka_bootstrap, f"{topic}-out", 1000), {f"k{i}": 100 for i in range(10)}
    )


def test_a_service_sink_sees_record_metadata_and_binary_keys_route_to_distinct_objects(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any
) -> None:
    topic = new_topic(1)
    new_topic(1, f"{topic}-out")
    engine = _engine(kafka_engine)
    add_subscription(engine, topic, "service://Audit/on_event")
    produce(kafka_bootstrap, topic, [(b"\xff\x00k", b'{"x": 1}')], headers=[("trace", b"t-1")])
    [output] = read_committed(kafka_bootstrap, f"{topic}-out", 1)
    assert json.loads(output.value()) == {
        "topic": topic, "partition": 0, "offset": 0, "key": "ff006b",
        "headers": ["trace"], "event": {"x": 1},
    }  # fmt: skip
    assert output.key() == b"\xff\x00k"

    keyed = new_topic(1)
    new_topic(1, f"{keyed}-out")
    add_subscription(engine, keyed, "service://Counts/on_record")
    produce(kafka_bootstrap, keyed, [(b"\xff", b"{}"), (b"\xfe", b"{}"), (b"\xff", b"{}")])
    outputs = read_committed(kafka_bootstrap, f"{keyed}-out", 3)
    assert [json.loads(m.value()) for m in outputs] == [
        {"key": "b64:_w", "n": 1}, {"key": "b64:_g", "n": 1}, {"key": "b64:_w", "n": 2},
    ]  # fmt: skip


def test_an_ordered_service_sink_runs_one_record_per_partition_at_a_time(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any
) -> None:
    topic = new_topic(1)
    new_topic(1, f"{topic}-out")
    engine = _engine(kafka_engine)
    add_subscription(engine, topic, "service://Audit/on_event", ordered="true")
    # Earlier records sleep longer: run concurrently, they would finish in reverse.
    events = [(None, json.dumps({"sleep_ms": 200 - 20 * i}).encode()) for i in range(8)]
    produce(kafka_bootstrap, topic, events)
    outputs = read_committed(kafka_bootstrap, f"{topic}-out", 8)
    assert [json.loads(m.value())["offset"] for m in outputs] == list(range(8))


def test_records_are_decoded_into_the_handlers_dataclass_or_pydantic_input(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any
) -> None:
    clicks, purchases = new_topic(1), new_topic(1)
    for topic in (clicks, purchases):
        new_topic(1, f"{topic}-out")
    dlq = new_topic(1)
    engine = _engine(kafka_engine)
    add_subscription(engine, clicks, "service://Audit/on_click")
    add_subscription(engine, purchases, "service://Audit/on_purchase", **{"dead.letter.topic": dlq})
    produce(kafka_bootstrap, clicks, [(None, b'{"user": "ada", "page": "/"}')])
    produce(kafka_bootstrap, purchases, [(None, b'{"user": "ada", "cents": "lots"}'),
                                         (None, b'{"user": "bob", "cents": 250}')])  # fmt: skip
    [click] = read_committed(kafka_bootstrap, f"{clicks}-out", 1)
    assert json.loads(click.value()) == {"type": "Click", "user": "ada"}
    [purchase] = read_committed(kafka_bootstrap, f"{purchases}-out", 1)
    assert json.loads(purchase.value()) == {"type": "Purchase", "cents": 250}
    [letter] = read_committed(kafka_bootstrap, dlq, 1)
    headers = _headers(letter)
    assert headers["headway.error.code"] == "400"
    assert headers["headway.error.reason"].startswith(
        "cannot decode the input of Audit/on_purchase"
    )


def test_a_blocked_key_does_not_stall_others_and_in_flight_records_are_bounded(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any
) -> None:
    topic = new_topic(1)
    new_topic(1, f"{topic}-out")
    engine = _engine(kafka_engine)
    sub = add_subscription(engine, topic, "service://Gate/on_record", **{"max.in.flight": "3"})
    blocked = [(f"w{i}".encode(), b'{"wait": true}') for i in range(5)]
    produce(kafka_bootstrap, topic, [(b"slow", b'{"wait": true}'), (b"fast", b"{}"),
                                     (b"fast", b"{}"), *blocked])  # fmt: skip
    # The slow key blocks, and the fast key's records after it still finish.
    fast = read_committed(kafka_bootstrap, f"{topic}-out", 2, timeout=30)
    assert [json.loads(m.value())["offset"] for m in fast] == [1, 2]

    def applied() -> int:
        progress = engine.admin_json("GET", f"/subscriptions/{sub['id']}")["progress"]
        return int(progress[0]["applied_offset"]) if progress else -1

    # Three records may be in flight: slow, w0 and w1 are blocked, so w2.. wait in Kafka.
    wait_until(lambda: applied() == 4 or None, timeout=30)
    time.sleep(2)
    assert applied() == 4
    for key in ("slow", "w0", "w1", "w2", "w3", "w4"):
        state = wait_until(
            lambda key=key: (
                engine.admin_json("GET", f"/services/Gate/state/{key}")["state"] or None
            ),
            timeout=30,
        )
        status, _ = call(
            "POST",
            f"{engine.ingress}/restate/awakeables/{json.loads(state['awakeable'])}/resolve",
            "go",
        )
        assert status == 202
    outputs = read_committed(kafka_bootstrap, f"{topic}-out", 8, timeout=60)
    assert sorted(json.loads(m.value())["offset"] for m in outputs) == list(range(8))


def test_subscription_requests_with_problems_get_clear_4xx_errors(
    new_topic: TopicFactory, kafka_engine: Any, tmp_path: Path
) -> None:
    topic = new_topic(1)
    engine = _engine(kafka_engine)
    url = f"{engine.admin}/subscriptions"
    sink = "service://Counts/on_record"
    src = f"kafka://local/{topic}"

    def body(options: dict[str, str], source: str = src, to: str = sink) -> dict[str, Any]:
        return {"source": source, "sink": to, "options": options}

    cases: list[tuple[Any, int, str]] = [
        (body({}, "kafka:/local"), 400, "is not a kafka://CLUSTER/TOPIC URI"),
        (body({}, f"kafka://nowhere/{topic}"), 404, "unknown Kafka cluster 'nowhere'"),
        (body({}, "kafka://local/no-such-topic"), 404, "topic 'no-such-topic' does not exist"),
        (body({}, to="service://Nope/x"), 404, "unknown sink service://Nope/x"),
        (body({}, to="http://x/y"), 400, "is not a service://NAME/HANDLER URI"),
        (body({"auto.offset.reset": "middle"}), 400, "auto.offset.reset must be earliest or"),
        (body({"value.format": "xml"}), 400, "unknown value.format 'xml'"),
        (body({"value.format": "avro"}), 400, "needs avro.schema.file"),
        (body({"fetch.bogus.ms": "1"}), 400, "invalid consumer option"),
        ({"source": src, "sink": sink, "extra": 1}, 400, "unknown field(s): extra"),
        ([1, 2], 400, "must be a JSON object"),
    ]
    for request, code, message in cases:
        status, answer = call("POST", url, request)
        assert (status, answer["code"]) == (code, code), (request, answer)
        assert message in answer["message"], (request, answer)
    status, answer = call("POST", url, raw=b"{nope")
    assert status == 400 and "not valid JSON" in answer["message"]
    status, answer = call("DELETE", f"{url}/sub_nope")
    assert status == 404
    first = add_subscription(engine, topic, sink)
    status, answer = call("POST", url, {"source": f"kafka://local/{topic}", "sink": sink})
    assert status == 409 and first["id"] in answer["message"]


def test_cli_manages_subscriptions_and_they_survive_a_restart(
    kafka_bootstrap: str, new_topic: TopicFactory, kafka_engine: Any
) -> None:
    topic = new_topic(1)
    new_topic(1, f"{topic}-out")
    engine = _engine(kafka_engine)
    env = {**os.environ, "HEADWAY_ADMIN_URL": engine.admin}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "headway.engine", *args],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    source, sink = f"kafka://local/{topic}", "service://Counts/on_record"
    added = cli("subscriptions", "add", "--source", source, "--sink", sink, "--json")
    assert added.returncode == 0, added.stderr
    sub_id = json.loads(added.stdout)["id"]
    produce(kafka_bootstrap, topic, counter_records(10, 2))
    read_committed(kafka_bootstrap, f"{topic}-out", 10)
    engine.kill()
    engine.start()
    listed = cli("subscriptions", "list")
    assert listed.returncode == 0 and sub_id in listed.stdout and "0@9" in listed.stdout
    produce(kafka_bootstrap, topic, counter_records(10, 2))
    check_counts(read_committed(kafka_bootstrap, f"{topic}-out", 20), {"k0": 10, "k1": 10})
    bad = cli("subscriptions", "add", "--source", "kafka://local", "--sink", "service://Counts/x")
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("headway: error: POST /subscriptions: 400")
    removed = cli("subscriptions", "remove", sub_id)
    assert removed.returncode == 0 and f"removed {sub_id}" in removed.stdout
    assert cli("subscriptions", "remove", sub_id).returncode == 1
