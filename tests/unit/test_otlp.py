"""Spans written straight into OTLP's wire format decode, with the official protobuf classes,
to what they recorded; the exporter sends them in batches and survives a failing collector."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from headway.engine.otlp_encoding import RequestEncoder
from headway.engine.otlp_export import OtlpExporter
from headway.engine.tracing import SpanRecord, format_traceparent, parse_traceparent
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.trace import SpanKind

TRACE = 0x0AF7651916CD43DD8448EB211C80319C
PARENT = 0xB7AD6B7169203331


def _failed() -> ValueError:
    try:
        raise ValueError("boom")
    except ValueError as e:
        return e


def _spans(request: bytes) -> list[Span]:
    decoded = ExportTraceServiceRequest.FromString(request)
    return [
        span
        for resource_spans in decoded.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def test_spans_decode_to_what_was_recorded() -> None:
    root = SpanRecord(
        "Counter/ada/add", TRACE, 7, 0, SpanKind.SERVER, 1_700_000_000_000_000_000,
        1_700_000_000_250_000_000,
        {"headway.key": "ada", "headway.long": "x" * 300, "headway.retry_count": 0},
        "[409] cancelled",
    )  # fmt: skip
    failed = _failed()
    child = SpanRecord(
        "attempt Counter/ada/add", TRACE, 8, PARENT, SpanKind.INTERNAL, 5, 6,
        {"headway.attempt": 3, "headway.negative": -2}, "ValueError: boom", failed,
    )  # fmt: skip
    request = RequestEncoder({"service.name": "headway", "flag": True}, "headway").encode(
        [root, child]
    )
    decoded = ExportTraceServiceRequest.FromString(request)
    (resource_spans,) = decoded.resource_spans
    resource = {a.key: a.value for a in resource_spans.resource.attributes}
    assert (resource["service.name"].string_value, resource["flag"].bool_value) == ("headway", True)
    assert resource_spans.scope_spans[0].scope.name == "headway"

    first, second = _spans(request)
    assert first.trace_id == TRACE.to_bytes(16) and first.span_id == (7).to_bytes(8)
    assert first.parent_span_id == b""
    assert (first.name, first.kind) == ("Counter/ada/add", Span.SpanKind.SPAN_KIND_SERVER)
    assert (first.start_time_unix_nano, first.end_time_unix_nano) == (
        1_700_000_000_000_000_000, 1_700_000_000_250_000_000
    )  # fmt: skip
    attributes = {a.key: a.value for a in first.attributes}
    assert attributes["headway.key"].string_value == "ada"
    assert attributes["headway.long"].string_value == "x" * 300
    assert attributes["headway.retry_count"].HasField("int_value")
    assert (first.status.code, first.status.message) == (
        Status.StatusCode.STATUS_CODE_ERROR, "[409] cancelled"
    )  # fmt: skip
    assert first.flags == 0x101

    assert second.parent_span_id == PARENT.to_bytes(8)
    assert second.kind == Span.SpanKind.SPAN_KIND_INTERNAL
    assert {a.key: a.value.int_value for a in second.attributes} == {
        "headway.attempt": 3, "headway.negative": -2
    }  # fmt: skip
    (event,) = second.events
    assert (event.name, event.time_unix_nano) == ("exception", 6)
    event_attributes = {a.key: a.value.string_value for a in event.attributes}
    assert event_attributes["exception.type"] == "ValueError"
    assert event_attributes["exception.message"] == "boom"
    assert "raise ValueError" in event_attributes["exception.stacktrace"]
    assert second.flags == 0x301


def test_traceparent_parsing_follows_w3c() -> None:
    value = format_traceparent(TRACE, PARENT, True)
    assert value == f"00-{TRACE:032x}-{PARENT:016x}-01"
    assert parse_traceparent(value) == (TRACE, PARENT, True)
    assert parse_traceparent(format_traceparent(TRACE, PARENT, False)) == (TRACE, PARENT, False)
    assert parse_traceparent(f"01-{TRACE:032x}-{PARENT:016x}-01-future") == (TRACE, PARENT, True)
    for bad in (
        f"00-{TRACE:032x}-{PARENT:016x}-01-extra",  # version 00 has exactly four fields
        f"ff-{TRACE:032x}-{PARENT:016x}-01",
        f"00-{0:032x}-{PARENT:016x}-01",
        f"00-{TRACE:032x}-{0:016x}-01",
        f"00-{TRACE:032X}-{PARENT:016x}-01",
        "garbage",
    ):
        assert parse_traceparent(bad) is None, bad


class _Collector(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real collectors do
    status = 200
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.path == "/v1/traces" and self.headers["content-type"] == "application/x-protobuf":
            _Collector.bodies.append(body)
        self.send_response(_Collector.status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    _Collector.bodies.clear()
    _Collector.status = 200
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _record(n: int) -> SpanRecord:
    return SpanRecord(f"s{n}", TRACE, n + 1, 0, SpanKind.INTERNAL, n, n + 1, {})


def test_exporter_sends_full_batches_and_the_rest_on_shutdown(collector: str) -> None:
    exporter = OtlpExporter(collector, {"service.name": "headway"}, max_batch=4, delay=60)
    for n in range(10):
        exporter.add(_record(n))
    exporter.shutdown()
    names = [[span.name for span in _spans(body)] for body in _Collector.bodies]
    assert [name for batch in names for name in batch] == [f"s{n}" for n in range(10)]
    assert [len(batch) for batch in names] == [4, 4, 2]  # the remainder waited for shutdown
    assert exporter.dropped == 0


def test_exporter_drops_what_a_failing_collector_refuses(collector: str) -> None:
    _Collector.status = 503
    exporter = OtlpExporter(collector, {}, max_batch=2, max_queue=5, delay=60)
    for n in range(8):  # three beyond the queue's bound
        exporter.add(_record(n))
    exporter.shutdown()
    assert exporter.dropped == 8
