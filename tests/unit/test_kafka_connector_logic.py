"""The Kafka connector's pure logic: endpoint URIs, record keys, value formats, subscription
options, cluster definitions and when a partition is paused.

No broker and no network, except the Confluent format's tests, which run a real schema
registry stand-in (`GET /schemas/ids/{id}`) on a loopback port in a thread.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import random
import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import fastavro
import pytest
from headway.connectors.kafka.clusters import (
    KafkaCluster,
    cluster_from_record,
    clusters_from_toml,
)
from headway.connectors.kafka.consumer import PAUSE_AT_BUFFERED, PAUSE_AT_BUFFERED_BYTES, _Flow
from headway.connectors.kafka.formats import (
    FORMATS,
    AvroConfluentFormat,
    AvroFileFormat,
    BytesFormat,
    JsonFormat,
    RecordDecodeError,
    value_format,
)
from headway.connectors.kafka.record_keys import (
    BINARY_MARKER,
    decode_record_key,
    encode_record_key,
)
from headway.connectors.kafka.subscription import (
    DEFAULT_MAX_IN_FLIGHT,
    OPTION_DOCS,
    Subscription,
    parse_options,
    subscription_from_record,
)
from headway.connectors.kafka.uris import (
    KafkaSource,
    ServiceSink,
    SubscriptionError,
    parse_sink,
    parse_source,
)

# -- uris ----------------------------------------------------------------------------------


def test_parse_source_valid() -> None:
    source = parse_source("kafka://local/clicks")
    assert source == KafkaSource("local", "clicks")
    assert source.cluster == "local"
    assert source.topic == "clicks"
    assert str(source) == "kafka://local/clicks"


@pytest.mark.parametrize(
    ("text", "cluster", "topic"),
    [
        ("kafka://prod-eu/orders.v1", "prod-eu", "orders.v1"),
        ("kafka://c/a_b-C.9", "c", "a_b-C.9"),
        ("kafka://local/" + "t" * 249, "local", "t" * 249),
        ("kafka://broker:9092/x", "broker:9092", "x"),
    ],
)
def test_parse_source_valid_shapes(text: str, cluster: str, topic: str) -> None:
    source = parse_source(text)
    assert source == KafkaSource(cluster, topic)
    assert str(source) == text


def test_parse_sink_valid() -> None:
    sink = parse_sink("service://Counts/on_record")
    assert sink == ServiceSink("Counts", "on_record")
    assert sink.service == "Counts"
    assert sink.handler == "on_record"
    assert str(sink) == "service://Counts/on_record"


SOURCE_SHAPE = "kafka://CLUSTER/TOPIC"
SINK_SHAPE = "service://NAME/HANDLER"

MALFORMED_SOURCES = [
    "http://local/clicks",  # wrong scheme
    "service://local/clicks",  # the other kind of endpoint
    "kafka:local/clicks",  # no authority
    "kafka:/local/clicks",
    "local/clicks",  # no scheme
    "kafka:///clicks",  # missing cluster
    "kafka://local",  # missing topic
    "kafka://local/",
    "kafka://",
    "kafka://local/a/b",  # extra path segment
    "kafka://local/clicks/",
    "kafka://local//clicks",
    "kafka://local/clicks?from=0",  # query
    "kafka://local/clicks#frag",  # fragment
    "kafka://local/clicks?a=1#f",
]


@pytest.mark.parametrize("text", MALFORMED_SOURCES)
def test_parse_source_rejects_malformed_shapes(text: str) -> None:
    with pytest.raises(SubscriptionError) as caught:
        parse_source(text)
    assert caught.value.status == 400
    assert str(caught.value) == f"{text!r} is not a {SOURCE_SHAPE} URI"


@pytest.mark.parametrize(
    "topic",
    ["cl icks", "clicks!", "a\x00", "ümlaut", "a,b", "a*", "%41", "t" * 250],
)
def test_parse_source_rejects_invalid_topic_names(topic: str) -> None:
    with pytest.raises(SubscriptionError) as caught:
        parse_source(f"kafka://local/{topic}")
    assert caught.value.status == 400
    assert str(caught.value) == f"{topic!r} is not a valid Kafka topic name"


@pytest.mark.parametrize("topic", [".", ".."])
def test_parse_source_rejects_the_topic_names_kafka_reserves(topic: str) -> None:
    """Kafka's own rule (Topic.validate) forbids "." and ".." as topic names."""
    with pytest.raises(SubscriptionError) as caught:
        parse_source(f"kafka://local/{topic}")
    assert caught.value.status == 400
    assert repr(topic) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "parse"),
    [
        ("kafka://local/cl\nicks", parse_source),  # urlsplit drops it: topic "clicks"
        ("kafka://local/clicks\t", parse_source),
        ("kafka://lo\rcal/clicks", parse_source),  # cluster "local"
        ("service://Counts/on_\nrecord", parse_sink),  # handler "on_record"
        ("service://Cou\tnts/on_record", parse_sink),
    ],
)
def test_control_characters_are_rejected_not_dropped(text: str, parse: Any) -> None:
    """A tab, CR or LF is not valid in a topic, cluster or handler name; it must not be
    silently removed, which turns the input into another, valid endpoint."""
    with pytest.raises(SubscriptionError) as caught:
        parse(text)
    assert caught.value.status == 400
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "parse"),
    [
        (" kafka://local/clicks", parse_source),
        ("\x00kafka://local/clicks", parse_source),
        ("\x1fservice://Counts/on_record", parse_sink),
    ],
)
def test_leading_whitespace_or_control_characters_are_rejected(text: str, parse: Any) -> None:
    with pytest.raises(SubscriptionError) as caught:
        parse(text)
    assert caught.value.status == 400
    assert repr(text) in str(caught.value)


def test_trailing_whitespace_makes_an_invalid_topic() -> None:
    with pytest.raises(SubscriptionError) as caught:
        parse_source("kafka://local/clicks ")
    assert str(caught.value) == "'clicks ' is not a valid Kafka topic name"


@pytest.mark.parametrize(
    ("text", "parse"),
    [
        ("kafka://local/clicks?", parse_source),
        ("kafka://local/clicks#", parse_source),
        ("service://Counts/on_record?", parse_sink),
        ("service://Counts/on_record#", parse_sink),
    ],
)
def test_an_empty_query_or_fragment_is_rejected(text: str, parse: Any) -> None:
    """`?` and `#` start a query and a fragment, which these URIs must not have."""
    with pytest.raises(SubscriptionError) as caught:
        parse(text)
    assert caught.value.status == 400
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("text", ["kafka://[::1/clicks", "service://[x/h"])
def test_unparseable_authority_is_a_subscription_error(text: str) -> None:
    """urlsplit raises a plain ValueError here; the API must still answer 400."""
    parse = parse_source if text.startswith("kafka") else parse_sink
    with pytest.raises(SubscriptionError) as caught:
        parse(text)
    assert caught.value.status == 400
    assert repr(text) in str(caught.value)


MALFORMED_SINKS = [
    "kafka://Counts/on_record",
    "http://Counts/on_record",
    "service:Counts/on_record",
    "service:///on_record",
    "service://Counts",
    "service://Counts/",
    "service://Counts/on_record/extra",
    "service://Counts/a//b",
    "service://Counts/on_record?x=1",
    "service://Counts/on_record#x",
]


@pytest.mark.parametrize("text", MALFORMED_SINKS)
def test_parse_sink_rejects_malformed_shapes(text: str) -> None:
    with pytest.raises(SubscriptionError) as caught:
        parse_sink(text)
    assert caught.value.status == 400
    assert str(caught.value) == f"{text!r} is not a {SINK_SHAPE} URI"


@pytest.mark.parametrize("value", ["", None, 42, b"kafka://local/clicks", ["kafka://l/t"]])
def test_parse_source_rejects_empty_and_non_strings(value: Any) -> None:
    with pytest.raises(SubscriptionError) as caught:
        parse_source(value)
    assert caught.value.status == 400
    assert str(caught.value) == f"expected a {SOURCE_SHAPE} URI, got {value!r}"


@pytest.mark.parametrize("value", ["", None, 7, b"service://A/b"])
def test_parse_sink_rejects_empty_and_non_strings(value: Any) -> None:
    with pytest.raises(SubscriptionError) as caught:
        parse_sink(value)
    assert caught.value.status == 400
    assert str(caught.value) == f"expected a {SINK_SHAPE} URI, got {value!r}"


def test_subscription_error_carries_its_status() -> None:
    assert SubscriptionError("x").status == 400
    assert SubscriptionError("gone", 404).status == 404
    assert str(SubscriptionError("gone", 404)) == "gone"
    assert isinstance(SubscriptionError("x"), ValueError)


# -- record keys ---------------------------------------------------------------------------


def b64(raw: bytes) -> str:
    return BINARY_MARKER + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@pytest.mark.parametrize(
    "text", ["alice", "", "user-42", "ünïcødé", "日本語", "emoji 🎉", "b64", "B64:x", "x b64:y"]
)
def test_utf8_keys_pass_through(text: str) -> None:
    assert encode_record_key(text.encode()) == text
    assert decode_record_key(text) == text.encode()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\xff", "b64:_w"),
        (b"\xfb\xff", "b64:-_8"),
        (b"\x00", "b64:AA"),
        (b"a\x00b", "b64:YQBi"),
        (b"b64:", "b64:YjY0Og"),
        (b"b64:abc", "b64:YjY0OmFiYw"),
        (b"\x00\x00\x00", "b64:AAAA"),
        (b"\xc3", "b64:ww"),  # a truncated UTF-8 sequence
        (b"\xed\xa0\x80", "b64:7aCA"),  # an encoded surrogate: not valid UTF-8
    ],
)
def test_binary_nul_and_marker_keys_are_base64(raw: bytes, expected: str) -> None:
    encoded = encode_record_key(raw)
    assert encoded == expected
    assert encoded == b64(raw)
    assert "=" not in encoded
    assert decode_record_key(encoded) == raw


def test_binary_keys_use_unpadded_urlsafe_alphabet() -> None:
    raw = bytes([0xFB, 0xEF, 0xFF, 0xFE])  # standard base64 would be "++//" + "/g=="
    encoded = encode_record_key(raw)
    assert encoded == "b64:--___g"
    assert not set(encoded[4:]) & set("+/=")


def test_empty_key_round_trips() -> None:
    assert encode_record_key(b"") == ""
    assert decode_record_key("") == b""


def test_every_single_byte_round_trips() -> None:
    encoded = {encode_record_key(bytes([n])) for n in range(256)}
    assert len(encoded) == 256
    for n in range(256):
        raw = bytes([n])
        key = encode_record_key(raw)
        assert decode_record_key(key) == raw
        assert key == (chr(n) if 0 < n < 0x80 else b64(raw))


def test_all_256_byte_values_together_round_trip() -> None:
    raw = bytes(range(256))
    assert encode_record_key(raw) == b64(raw)
    assert decode_record_key(encode_record_key(raw)) == raw
    assert decode_record_key(encode_record_key(raw[::-1])) == raw[::-1]


def generated_keys(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    found: list[bytes] = []
    for i in range(count):
        kind = i % 4
        length = rng.randrange(0, 40)
        if kind == 0:
            found.append(rng.randbytes(length))
        elif kind == 1:
            text = "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0xA0, 0x3000)]))
                           for _ in range(length))  # fmt: skip
            found.append(text.encode())
        elif kind == 2:
            found.append(b"b64:" + rng.randbytes(length))
        else:
            found.append(bytes(rng.choice(b"ab\x00=-_:") for _ in range(length)))
    return found


def test_random_keys_round_trip() -> None:
    for raw in generated_keys(seed=7, count=4000):
        key = encode_record_key(raw)
        assert decode_record_key(key) == raw, raw
        is_plain = not key.startswith(BINARY_MARKER)
        assert is_plain == (key.encode() == raw)


def test_encoding_is_injective_over_a_large_set() -> None:
    raws = set(generated_keys(seed=11, count=10000))
    raws |= {bytes([a, b]) for a in range(256) for b in range(0, 256, 5)}
    raws |= {b64(r).encode() for r in sorted(raws)[:500]}  # texts that look like encoded keys
    encoded = {encode_record_key(raw) for raw in raws}
    assert len(encoded) == len(raws)


def test_a_text_key_that_looks_encoded_does_not_collide() -> None:
    raw = b"\xff\xfe"
    looks_alike = encode_record_key(raw).encode()  # b"b64:__4"
    assert looks_alike == b"b64:__4"
    assert encode_record_key(looks_alike) == "b64:YjY0Ol9fNA"
    assert decode_record_key(encode_record_key(looks_alike)) == looks_alike
    assert decode_record_key(encode_record_key(raw)) == raw


# -- formats: json and bytes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [b"{}", b'{"a": [1, 2.5, null, true]}', b"42", b'"text"', b"null", b"[]", b' {"x":1} ',
     '{"name": "Zoë"}'.encode()],
)  # fmt: skip
def test_json_format_returns_valid_json_unchanged(value: bytes) -> None:
    decoded = JsonFormat().decode(value)
    assert decoded == value
    assert decoded is value


def test_json_format_maps_a_tombstone_to_null() -> None:
    assert JsonFormat().decode(None) == b"null"


@pytest.mark.parametrize("value", [b"", b"{", b"{'a': 1}", b"nope", b"[1,]", b"1 2", b'{"a":}'])
def test_json_format_rejects_invalid_json(value: bytes) -> None:
    with pytest.raises(RecordDecodeError) as caught:
        JsonFormat().decode(value)
    assert str(caught.value).startswith("value is not valid JSON: ")


@pytest.mark.parametrize("value", [b'"\xff"', b'{"a": "\xc3"}', b"\x80"])
def test_json_format_rejects_invalid_utf8(value: bytes) -> None:
    with pytest.raises(RecordDecodeError) as caught:
        JsonFormat().decode(value)
    assert str(caught.value).startswith("value is not valid JSON: ")
    assert "utf-8" in str(caught.value)


@pytest.mark.parametrize("value", [b"", b"\x00\xff", b"{}", bytes(range(256))])
def test_bytes_format_passes_values_through(value: bytes) -> None:
    assert BytesFormat().decode(value) == value


def test_bytes_format_maps_a_tombstone_to_empty() -> None:
    assert BytesFormat().decode(None) == b""


# -- formats: avro with a schema file ------------------------------------------------------

CLICK_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Click",
    "fields": [
        {"name": "user", "type": "string"},
        {"name": "n", "type": "int"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "ref", "type": ["null", "string"]},
    ],
}
BLOB_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Blob",
    "fields": [
        {"name": "data", "type": "bytes"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {
            "name": "price",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2},
        },
    ],
}
CLICK = {"user": "ann", "n": 3, "tags": ["a", "b"], "ref": None}


def avro(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    return buffer.getvalue()


def schema_file(tmp_path: Path, schema: Any, name: str = "click.avsc") -> str:
    path = tmp_path / name
    path.write_text(schema if isinstance(schema, str) else json.dumps(schema))
    return str(path)


def test_avro_file_format_decodes_to_json(tmp_path: Path) -> None:
    fmt = AvroFileFormat(schema_file(tmp_path, CLICK_SCHEMA))
    decoded = fmt.decode(avro(CLICK_SCHEMA, CLICK))
    assert decoded == b'{"user": "ann", "n": 3, "tags": ["a", "b"], "ref": null}'
    assert json.loads(decoded) == CLICK
    other = {"user": "bob", "n": -7, "tags": [], "ref": "x"}
    assert json.loads(fmt.decode(avro(CLICK_SCHEMA, other))) == other


def test_avro_file_format_maps_a_tombstone_to_null(tmp_path: Path) -> None:
    assert AvroFileFormat(schema_file(tmp_path, CLICK_SCHEMA)).decode(None) == b"null"


def test_avro_values_json_has_no_type_for_are_represented(tmp_path: Path) -> None:
    import decimal
    import uuid

    record = {
        "data": b"\xfb\xff\xbf\x00hi",
        "at": datetime.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.UTC),
        "day": datetime.date(2024, 2, 29),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "price": decimal.Decimal("12.34"),
    }
    fmt = AvroFileFormat(schema_file(tmp_path, BLOB_SCHEMA))
    assert json.loads(fmt.decode(avro(BLOB_SCHEMA, record))) == {
        "data": "+/+/AGhp",  # standard base64, padded
        "at": "2024-01-02T03:04:05.678000+00:00",
        "day": "2024-02-29",
        "id": "12345678-1234-5678-1234-567812345678",
        "price": "12.34",
    }


def test_avro_file_format_rejects_trailing_bytes_from_another_schema(tmp_path: Path) -> None:
    wider = {**CLICK_SCHEMA, "fields": [*CLICK_SCHEMA["fields"], {"name": "z", "type": "long"}]}
    value = avro(wider, {**CLICK, "z": 300})  # 300 is 2 zigzag varint bytes
    fmt = AvroFileFormat(schema_file(tmp_path, CLICK_SCHEMA))
    with pytest.raises(RecordDecodeError) as caught:
        fmt.decode(value)
    assert str(caught.value) == (
        "value does not match the Avro schema: 2 bytes left over after decoding "
        "(written with another schema?)"
    )


def test_avro_file_format_rejects_truncated_values(tmp_path: Path) -> None:
    value = avro(CLICK_SCHEMA, {**CLICK, "ref": "reference"})
    fmt = AvroFileFormat(schema_file(tmp_path, CLICK_SCHEMA))
    for cut in (1, 3, len(value) // 2):
        with pytest.raises(RecordDecodeError) as caught:
            fmt.decode(value[:-cut])
        assert str(caught.value).startswith("value does not match the Avro schema: ")
    with pytest.raises(RecordDecodeError):
        fmt.decode(b"")


def test_avro_file_format_missing_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.avsc")
    with pytest.raises(SubscriptionError) as caught:
        AvroFileFormat(missing)
    assert caught.value.status == 400
    assert str(caught.value).startswith(f"cannot read the Avro schema file {missing!r}: ")


@pytest.mark.parametrize(
    "content",
    ["{not json", '{"type": "nope"}', '{"type": "record"}', "", '"wat"', "[1]"],
)
def test_avro_file_format_bad_schema(tmp_path: Path, content: str) -> None:
    path = schema_file(tmp_path, content, "bad.avsc")
    with pytest.raises(SubscriptionError) as caught:
        AvroFileFormat(path)
    assert caught.value.status == 400
    assert str(caught.value).startswith(f"{path!r} is not a valid Avro schema: ")


def test_avro_file_format_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(SubscriptionError) as caught:
        AvroFileFormat(str(tmp_path))
    assert str(caught.value).startswith(f"cannot read the Avro schema file {str(tmp_path)!r}: ")


# -- formats: avro in Confluent's wire format, against a loopback registry ------------------


class Registry:
    """A schema registry stand-in: `GET /schemas/ids/{id}` answers `{"schema": "..."}`."""

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.requests.append(self.path)
                prefix = "/schemas/ids/"
                found = None
                if self.path.startswith(prefix) and self.path[len(prefix) :].isdigit():
                    found = registry.schemas.get(int(self.path[len(prefix) :]))
                if found is None:
                    body = json.dumps({"error_code": 40403, "message": "Schema not found"})
                    self.send_response(404)
                else:
                    body = found if found.startswith("!raw:") else json.dumps({"schema": found})
                    body = body.removeprefix("!raw:")
                    self.send_response(200)
                data = body.encode()
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)

    def __enter__(self) -> Registry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def registry() -> Iterator[Registry]:
    with Registry() as running:
        yield running


def wire(schema_id: int, payload: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + payload


def test_confluent_format_decodes_against_the_registry(registry: Registry) -> None:
    registry.schemas[42] = json.dumps(CLICK_SCHEMA)
    fmt = AvroConfluentFormat(registry.url)
    value = wire(42, avro(CLICK_SCHEMA, CLICK))
    assert value[:5] == b"\x00\x00\x00\x00\x2a"
    decoded = fmt.decode(value)
    assert decoded == b'{"user": "ann", "n": 3, "tags": ["a", "b"], "ref": null}'
    assert registry.requests == ["/schemas/ids/42"]


def test_confluent_format_caches_schemas_per_id(registry: Registry) -> None:
    registry.schemas[1] = json.dumps(CLICK_SCHEMA)
    registry.schemas[2] = json.dumps({"type": "string"})
    fmt = AvroConfluentFormat(registry.url + "/")  # a trailing slash is dropped
    first = fmt.decode(wire(1, avro(CLICK_SCHEMA, CLICK)))
    second = fmt.decode(wire(1, avro(CLICK_SCHEMA, {**CLICK, "n": 4})))
    assert json.loads(first)["n"] == 3
    assert json.loads(second)["n"] == 4
    assert registry.requests == ["/schemas/ids/1"]
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, "string", "hi")
    assert fmt.decode(wire(2, buffer.getvalue())) == b'"hi"'
    assert fmt.decode(wire(1, avro(CLICK_SCHEMA, CLICK))) == first
    assert registry.requests == ["/schemas/ids/1", "/schemas/ids/2"]
    assert sorted(fmt.schemas) == [1, 2]


def test_confluent_format_big_schema_ids_are_big_endian(registry: Registry) -> None:
    registry.schemas[0x01020304] = json.dumps({"type": "int"})
    fmt = AvroConfluentFormat(registry.url)
    assert fmt.decode(b"\x00\x01\x02\x03\x04" + b"\x54") == b"42"  # zigzag(42) = 0x54
    assert registry.requests == [f"/schemas/ids/{0x01020304}"]


def test_confluent_format_unknown_schema_id(registry: Registry) -> None:
    fmt = AvroConfluentFormat(registry.url)
    for _ in range(2):  # a failure is not cached: the registry is asked again
        with pytest.raises(RecordDecodeError) as caught:
            fmt.decode(wire(99, b"\x02"))
        assert str(caught.value) == "schema id 99: the registry said 404"
    assert registry.requests == ["/schemas/ids/99", "/schemas/ids/99"]
    assert fmt.schemas == {}


@pytest.mark.parametrize(
    "answer", ["!raw:not json", "!raw:{}", '{"type": "nope"}', "!raw:" + json.dumps({"x": 1})]
)
def test_confluent_format_bad_registry_answers(registry: Registry, answer: str) -> None:
    registry.schemas[5] = answer
    with pytest.raises(RecordDecodeError) as caught:
        AvroConfluentFormat(registry.url).decode(wire(5, b"\x02"))
    assert str(caught.value).startswith(
        f"schema id 5: cannot fetch from {registry.url}/schemas/ids/5: "
    )


@pytest.mark.parametrize("answer", ["[]", '"text"', '{"schema": 5}', '{"schema": null}'])
def test_confluent_format_registry_answers_of_the_wrong_shape(
    registry: Registry, answer: str
) -> None:
    """A URL that is not a schema registry (misconfigured schema.registry.url) may answer 200
    with any JSON: that is a RecordDecodeError too, never a TypeError from the decoder."""
    registry.schemas[6] = "!raw:" + answer
    with pytest.raises(RecordDecodeError) as caught:
        AvroConfluentFormat(registry.url).decode(wire(6, b"\x02"))
    assert str(caught.value).startswith(
        f"schema id 6: cannot fetch from {registry.url}/schemas/ids/6: "
    )


def test_confluent_format_unreachable_registry() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(RecordDecodeError) as caught:
        AvroConfluentFormat(url).decode(wire(3, b""))
    assert str(caught.value).startswith(f"schema id 3: cannot fetch from {url}/schemas/ids/3: ")


def test_confluent_format_rejects_mismatched_payloads(registry: Registry) -> None:
    registry.schemas[7] = json.dumps(CLICK_SCHEMA)
    fmt = AvroConfluentFormat(registry.url)
    good = avro(CLICK_SCHEMA, CLICK)
    with pytest.raises(RecordDecodeError) as caught:
        fmt.decode(wire(7, good + b"\x00\x00"))
    assert "2 bytes left over after decoding" in str(caught.value)
    with pytest.raises(RecordDecodeError) as caught:
        fmt.decode(wire(7, good[:-2]))
    assert str(caught.value).startswith("value does not match the Avro schema: ")
    assert registry.requests == ["/schemas/ids/7"]


NOT_WIRE_FORMAT = "value is not in the Confluent Avro wire format (no magic byte 0 + schema id)"


@pytest.mark.parametrize(
    "value", [b"", b"\x00", b"\x00\x00\x00\x01", b"\x01\x00\x00\x00\x01\x02", b"{}xyz", b"\xff" * 9]
)
def test_confluent_format_rejects_values_without_magic_byte_or_too_short(value: bytes) -> None:
    fmt = AvroConfluentFormat("http://127.0.0.1:1")  # never reached
    with pytest.raises(RecordDecodeError) as caught:
        fmt.decode(value)
    assert str(caught.value) == NOT_WIRE_FORMAT
    assert fmt.schemas == {}


def test_confluent_format_maps_a_tombstone_to_null() -> None:
    assert AvroConfluentFormat("http://127.0.0.1:1").decode(None) == b"null"


# -- value_format --------------------------------------------------------------------------


def test_formats_names() -> None:
    assert FORMATS == ("json", "bytes", "avro", "avro-confluent")


def test_value_format_for_every_name(tmp_path: Path) -> None:
    path = schema_file(tmp_path, CLICK_SCHEMA)
    assert isinstance(value_format("json", None, None), JsonFormat)
    assert isinstance(value_format("bytes", None, None), BytesFormat)
    avro_fmt = value_format("avro", path, None)
    assert isinstance(avro_fmt, AvroFileFormat)
    assert json.loads(avro_fmt.decode(avro(CLICK_SCHEMA, CLICK))) == CLICK
    confluent = value_format("avro-confluent", None, "http://reg:8081/")
    assert isinstance(confluent, AvroConfluentFormat)
    assert confluent.registry_url == "http://reg:8081"


@pytest.mark.parametrize("schema", [None, ""])
def test_value_format_avro_needs_a_schema_file(schema: str | None) -> None:
    with pytest.raises(SubscriptionError) as caught:
        value_format("avro", schema, "http://ignored")
    assert caught.value.status == 400
    assert str(caught.value) == "value.format=avro needs avro.schema.file"


@pytest.mark.parametrize("url", [None, ""])
def test_value_format_avro_confluent_needs_a_registry(url: str | None) -> None:
    with pytest.raises(SubscriptionError) as caught:
        value_format("avro-confluent", "ignored.avsc", url)
    assert caught.value.status == 400
    assert str(caught.value) == "value.format=avro-confluent needs schema.registry.url"


@pytest.mark.parametrize("name", ["xml", "", "JSON", "avro_confluent"])
def test_value_format_unknown(name: str) -> None:
    with pytest.raises(SubscriptionError) as caught:
        value_format(name, None, None)
    assert caught.value.status == 400
    assert str(caught.value) == (
        f"unknown value.format {name!r}: expected one of json, bytes, avro, avro-confluent"
    )


def test_value_format_avro_with_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SubscriptionError) as caught:
        value_format("avro", str(tmp_path / "x.avsc"), None)
    assert "cannot read the Avro schema file" in str(caught.value)


# -- subscription options ------------------------------------------------------------------


def test_parse_options_defaults() -> None:
    assert parse_options(None) == {}
    assert parse_options({}) == {"auto.offset.reset": "earliest"}


def test_parse_options_stringifies_bools_and_ints() -> None:
    assert parse_options(
        {"ordered": True, "enable.auto.commit": False, "max.in.flight": 8, "fetch.max.bytes": 1024,
         "auto.offset.reset": "latest", "value.format": "bytes", "client.id": "me"}
    ) == {
        "ordered": "true", "enable.auto.commit": "false", "max.in.flight": "8",
        "fetch.max.bytes": "1024", "auto.offset.reset": "latest", "value.format": "bytes",
        "client.id": "me",
    }  # fmt: skip


def test_parse_options_does_not_mutate_its_input() -> None:
    raw: dict[str, Any] = {"ordered": True}
    assert parse_options(raw) == {"ordered": "true", "auto.offset.reset": "earliest"}
    assert raw == {"ordered": True}


@pytest.mark.parametrize("raw", [[], "x", 5, [("a", "b")], True])
def test_parse_options_rejects_non_dicts(raw: Any) -> None:
    with pytest.raises(SubscriptionError) as caught:
        parse_options(raw)
    assert caught.value.status == 400
    assert str(caught.value) == "'options' must be an object of string values"


@pytest.mark.parametrize("value", [None, 1.5, [1], {"a": 1}, b"x"])
def test_parse_options_rejects_non_string_values(value: Any) -> None:
    with pytest.raises(SubscriptionError) as caught:
        parse_options({"client.id": value})
    assert caught.value.status == 400
    assert str(caught.value) == f"option 'client.id' must be a string, got {value!r}"


@pytest.mark.parametrize("reset", ["smallest", "", "EARLIEST", "none", 0])
def test_parse_options_rejects_bad_auto_offset_reset(reset: Any) -> None:
    with pytest.raises(SubscriptionError) as caught:
        parse_options({"auto.offset.reset": reset})
    assert caught.value.status == 400
    assert str(caught.value) == (
        f"auto.offset.reset must be earliest or latest, got {str(reset)!r}"
    )


@pytest.mark.parametrize("fmt", ["xml", "", "Avro"])
def test_parse_options_rejects_bad_value_format(fmt: str) -> None:
    with pytest.raises(SubscriptionError) as caught:
        parse_options({"value.format": fmt})
    assert caught.value.status == 400
    assert str(caught.value) == (
        f"unknown value.format {fmt!r}: expected one of json, bytes, avro, avro-confluent"
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_parse_options_accepts_every_value_format(fmt: str) -> None:
    assert parse_options({"value.format": fmt})["value.format"] == fmt


@pytest.mark.parametrize("ordered", ["maybe", "", "2", "on"])
def test_parse_options_rejects_bad_ordered(ordered: str) -> None:
    with pytest.raises(SubscriptionError) as caught:
        parse_options({"ordered": ordered})
    assert caught.value.status == 400
    assert str(caught.value) == f"ordered must be true or false, got {ordered!r}"


@pytest.mark.parametrize("ordered", ["true", "false", "1", "0", "yes", "no", "TRUE", "No", 1, 0])
def test_parse_options_accepts_good_ordered(ordered: Any) -> None:
    assert parse_options({"ordered": ordered})["ordered"] == str(ordered)


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "", "ten", 0, -3, " 5"])
def test_parse_options_rejects_bad_max_in_flight(value: Any) -> None:
    with pytest.raises(SubscriptionError) as caught:
        parse_options({"max.in.flight": value})
    assert caught.value.status == 400
    assert str(caught.value) == f"max.in.flight must be a positive integer, got {str(value)!r}"


@pytest.mark.parametrize(("value", "expected"), [("1", "1"), (64, "64"), ("100000", "100000")])
def test_parse_options_accepts_good_max_in_flight(value: Any, expected: str) -> None:
    assert parse_options({"max.in.flight": value})["max.in.flight"] == expected


def make_subscription(options: dict[str, str] | None = None) -> Subscription:
    return Subscription(
        "sub_1", KafkaSource("local", "clicks"), ServiceSink("Counts", "on_record"),
        dict(options if options is not None else {"auto.offset.reset": "earliest"}),
    )  # fmt: skip


def test_subscription_group_default_and_override() -> None:
    assert make_subscription().group == "headway-local-clicks-Counts-on_record"
    assert make_subscription({"group.id": "mine"}).group == "mine"
    assert make_subscription({"group.id": ""}).group == "headway-local-clicks-Counts-on_record"


def test_subscription_defaults() -> None:
    sub = make_subscription({})
    assert sub.value_format == "json"
    assert sub.dead_letter_topic is None
    assert sub.ordered is False
    assert sub.max_in_flight == DEFAULT_MAX_IN_FLIGHT == 1000
    assert sub.failed is None
    assert make_subscription({"dead.letter.topic": ""}).dead_letter_topic is None
    assert make_subscription({"dead.letter.topic": "dlq"}).dead_letter_topic == "dlq"
    assert make_subscription({"value.format": "avro"}).value_format == "avro"


@pytest.mark.parametrize(
    ("options", "ordered", "in_flight"),
    [
        ({"max.in.flight": "7"}, False, 7),
        ({"ordered": "true", "max.in.flight": "7"}, True, 1),
        ({"ordered": "TRUE"}, True, 1),
        ({"ordered": "1"}, True, 1),
        ({"ordered": "yes"}, True, 1),
        ({"ordered": "false", "max.in.flight": "3"}, False, 3),
        ({"ordered": "0"}, False, 1000),
        ({"ordered": "no"}, False, 1000),
    ],
)
def test_subscription_max_in_flight(options: dict[str, str], ordered: bool, in_flight: int) -> None:
    sub = make_subscription(options)
    assert sub.ordered is ordered
    assert sub.max_in_flight == in_flight


def test_consumer_options_exclude_headways_own() -> None:
    options = parse_options(
        {
            "group.id": "g", "auto.offset.reset": "latest", "value.format": "avro",
            "avro.schema.file": "/x.avsc", "schema.registry.url": "http://r",
            "dead.letter.topic": "dlq", "ordered": "true", "max.in.flight": "5",
            "express": "false", "fetch.min.bytes": 10, "client.id": "c",
            "session.timeout.ms": "6000",
        }
    )  # fmt: skip
    assert make_subscription(options).consumer_options() == {
        "fetch.min.bytes": "10", "client.id": "c", "session.timeout.ms": "6000",
    }  # fmt: skip
    assert set(OPTION_DOCS) == {
        "group.id", "auto.offset.reset", "value.format", "avro.schema.file",
        "schema.registry.url", "dead.letter.topic", "ordered", "max.in.flight", "express",
    }  # fmt: skip


def test_to_record_and_back() -> None:
    options = {"auto.offset.reset": "earliest", "dead.letter.topic": "dlq", "linger.ms": "5"}
    sub = make_subscription(options)
    record = sub.to_record()
    assert record == {
        "id": "sub_1", "source": "kafka://local/clicks", "sink": "service://Counts/on_record",
        "options": options, "group": "headway-local-clicks-Counts-on_record",
        "cluster": "local", "dlq": "dlq", "failed": None,
    }  # fmt: skip
    back = subscription_from_record(record)
    assert back == sub
    assert back.options is not record["options"]  # a copy
    failed = subscription_from_record(record | {"failed": "boom"})
    assert failed.failed == "boom"
    assert failed.to_record()["failed"] == "boom"
    assert subscription_from_record(failed.to_record()) == failed


def test_to_record_without_failed_key_and_group_override() -> None:
    sub = make_subscription({"group.id": "g1"})
    record = sub.to_record()
    assert record["group"] == "g1"
    assert record["dlq"] is None
    del record["failed"]
    assert subscription_from_record(record) == sub


def test_to_json() -> None:
    sub = make_subscription({"group.id": "g"})
    assert sub.to_json() == {
        "id": "sub_1", "source": "kafka://local/clicks", "sink": "service://Counts/on_record",
        "options": {"group.id": "g"}, "group": "g", "status": "running", "error": None,
    }  # fmt: skip
    failed = subscription_from_record(sub.to_record() | {"failed": "bad"})
    assert failed.to_json()["status"] == "failed"
    assert failed.to_json()["error"] == "bad"


def test_subscription_from_record_validates_uris() -> None:
    record = make_subscription().to_record() | {"source": "kafka://local/a/b"}
    with pytest.raises(SubscriptionError):
        subscription_from_record(record)


# -- clusters ------------------------------------------------------------------------------


def test_cluster_from_record_with_a_broker_list() -> None:
    cluster = cluster_from_record(
        {"name": "local", "brokers": ["a:9092", "b:9092"], "properties": {"acks": "all"}}, "t"
    )
    assert cluster == KafkaCluster("local", ("a:9092", "b:9092"), {"acks": "all"})
    assert cluster.client_config() == {"acks": "all", "bootstrap.servers": "a:9092,b:9092"}
    assert cluster.to_record() == {
        "name": "local",
        "brokers": ["a:9092", "b:9092"],
        "properties": {"acks": "all"},
    }
    assert cluster_from_record(cluster.to_record(), "again") == cluster


def test_cluster_from_record_with_a_comma_string_and_stringified_properties() -> None:
    cluster = cluster_from_record(
        {"name": "c", "brokers": "a:1,,b:2,", "properties": {"linger.ms": 5, "idempotence": True,
                                                           3: 1.5}},
        "t",
    )  # fmt: skip
    assert cluster.brokers == ("a:1", "b:2")
    assert cluster.properties == {"linger.ms": "5", "idempotence": "True", "3": "1.5"}


def test_cluster_properties_default_to_empty() -> None:
    cluster = cluster_from_record({"name": "x", "brokers": "h:1"}, "t")
    assert cluster == KafkaCluster("x", ("h:1",), {})
    assert cluster.client_config() == {"bootstrap.servers": "h:1"}


def test_cluster_client_config_brokers_override_properties() -> None:
    cluster = KafkaCluster("x", ("h:1",), {"bootstrap.servers": "other:2", "a": "b"})
    assert cluster.client_config() == {"bootstrap.servers": "h:1", "a": "b"}


@pytest.mark.parametrize("raw", [None, [], "local", 5])
def test_cluster_from_record_rejects_non_tables(raw: Any) -> None:
    with pytest.raises(SubscriptionError) as caught:
        cluster_from_record(raw, "headway.toml")
    assert caught.value.status == 400
    assert str(caught.value) == "headway.toml: a Kafka cluster must be a table/object"


@pytest.mark.parametrize("name", [None, "", 5, "a/b", "a\x00b", ["x"]])
def test_cluster_from_record_rejects_bad_names(name: Any) -> None:
    raw = {"brokers": ["h:1"]} if name is None else {"name": name, "brokers": ["h:1"]}
    with pytest.raises(SubscriptionError) as caught:
        cluster_from_record(raw, "api")
    assert caught.value.status == 400
    assert str(caught.value) == "api: a Kafka cluster needs a non-empty 'name' without '/'"


@pytest.mark.parametrize("brokers", [None, [], "", ",", ["h:1", ""], ["h:1", 2], 9092, {"h": 1}])
def test_cluster_from_record_rejects_bad_brokers(brokers: Any) -> None:
    raw: dict[str, Any] = {"name": "local"}
    if brokers is not None:
        raw["brokers"] = brokers
    with pytest.raises(SubscriptionError) as caught:
        cluster_from_record(raw, "api")
    assert caught.value.status == 400
    assert str(caught.value) == (
        "api: Kafka cluster 'local' needs 'brokers', a list of host:port strings"
    )


@pytest.mark.parametrize("properties", ["a=b", ["a"], 5])
def test_cluster_from_record_rejects_non_table_properties(properties: Any) -> None:
    with pytest.raises(SubscriptionError) as caught:
        cluster_from_record({"name": "n", "brokers": ["h:1"], "properties": properties}, "api")
    assert str(caught.value) == "api: 'properties' of cluster 'n' must be a table"


def test_cluster_from_record_rejects_unknown_fields() -> None:
    with pytest.raises(SubscriptionError) as caught:
        cluster_from_record({"name": "n", "brokers": ["h:1"], "zz": 1, "acks": "all"}, "api")
    assert caught.value.status == 400
    assert str(caught.value) == "api: unknown field(s) acks, zz in cluster 'n'"


def test_clusters_from_toml_valid() -> None:
    assert clusters_from_toml(None, "f") == ()
    assert clusters_from_toml({}, "f") == ()
    assert clusters_from_toml({"clusters": []}, "f") == ()
    clusters = clusters_from_toml(
        {"clusters": [{"name": "a", "brokers": ["h:1"]},
                      {"name": "b", "brokers": "h:2,h:3", "properties": {"x": 1}}]},
        "f",
    )  # fmt: skip
    assert clusters == (
        KafkaCluster("a", ("h:1",), {}),
        KafkaCluster("b", ("h:2", "h:3"), {"x": "1"}),
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("x", "f: [kafka] must be a table"),
        ([], "f: [kafka] must be a table"),
        ({"clusters": {"name": "a"}}, "f: kafka.clusters must be an array of tables"),
        ({"clusters": "a"}, "f: kafka.clusters must be an array of tables"),
        ({"clusters": ["a"]}, "f: a Kafka cluster must be a table/object"),
        ({"clusters": [{"brokers": ["h:1"]}]},
         "f: a Kafka cluster needs a non-empty 'name' without '/'"),
        ({"clusters": [{"name": "a"}]},
         "f: Kafka cluster 'a' needs 'brokers', a list of host:port strings"),
        ({"clusters": [{"name": "a", "brokers": ["h:1"], "port": 1}]},
         "f: unknown field(s) port in cluster 'a'"),
        ({"clusters": [{"name": "a", "brokers": ["h:1"]}, {"name": "b", "brokers": ["h:2"]},
                       {"name": "a", "brokers": ["h:3"]}]},
         "f: Kafka cluster defined twice: ['a']"),
        ({"clusters": [{"name": n, "brokers": ["h"]} for n in ("b", "a", "b", "a")]},
         "f: Kafka cluster defined twice: ['a', 'b']"),
    ],
)  # fmt: skip
def test_clusters_from_toml_errors(table: Any, message: str) -> None:
    with pytest.raises(SubscriptionError) as caught:
        clusters_from_toml(table, "f")
    assert caught.value.status == 400
    assert str(caught.value) == message


# -- flow control ------------------------------------------------------------------------------


class _Record:
    """What the flow control reads of a polled record."""

    def __init__(self, size: int) -> None:
        self.size = size

    def value(self) -> bytes:
        return b"x" * self.size


def test_a_partition_is_paused_only_once_its_buffer_is_full_and_resumed_once_it_is_empty() -> None:
    flow = _Flow(in_flight=1000)
    for _ in range(PAUSE_AT_BUFFERED - 1):
        flow.hold(_Record(10))  # type: ignore[arg-type]
    assert not flow.wants_pause()  # records waiting for a slot are normal: no refetch for them
    flow.hold(_Record(10))  # type: ignore[arg-type]
    assert flow.wants_pause()
    flow.paused = True
    while len(flow.pending) > 1:
        flow.next_held()
        assert flow.wants_pause()  # stays paused while any record of its buffer waits
    flow.next_held()
    assert not flow.wants_pause() and flow.pending_bytes == 0


def test_a_partition_of_large_records_is_paused_by_their_bytes() -> None:
    flow = _Flow(in_flight=1000)
    flow.hold(_Record(PAUSE_AT_BUFFERED_BYTES - 1))  # type: ignore[arg-type]
    assert not flow.wants_pause()
    flow.hold(_Record(1))  # type: ignore[arg-type]
    assert flow.wants_pause() and len(flow.pending) == 2
