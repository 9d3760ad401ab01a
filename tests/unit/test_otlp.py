"""Spans written straight into OTLP's wire format decode, with the official protobuf classes,
to what they recorded; the exporter's process sends them in batches, survives a failing
collector, and is started again when it dies."""

from __future__ import annotations

import http.server
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from headway.engine.otlp_encoding import RequestEncoder
from headway.engine.otlp_export import OtlpExporter
from headway.engine.spans import (
    ExceptionInfo,
    InvocationFinished,
    SpanRecord,
    SpanShape,
    handler_shapes,
)
from headway.engine.trace_ids import format_traceparent, invocation_ids, parse_traceparent
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.trace import SpanKind
from processes import children, exited, wait_for

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


ROOT_SHAPE = SpanShape(
    "Counter/add", SpanKind.SERVER, {"headway.service": "Counter", "headway.flag": True},
    ("headway.key", "headway.long", "headway.retry_count"),
)  # fmt: skip
CHILD_SHAPE = SpanShape(
    "attempt Counter/add", SpanKind.INTERNAL, {}, ("headway.attempt", "headway.negative")
)


def _request(*spans: SpanRecord) -> bytes:
    encoder = RequestEncoder({"service.name": "headway", "flag": True}, "headway")
    return encoder.request([encoder.span(span) for span in spans])


def test_spans_decode_to_what_was_recorded() -> None:
    root = SpanRecord(
        ROOT_SHAPE, TRACE, 7, 0, 1_700_000_000_000_000_000, 1_700_000_000_250_000_000,
        ("ada", "x" * 300, 0), "[409] cancelled",
    )  # fmt: skip
    child = SpanRecord(
        CHILD_SHAPE, TRACE, 8, PARENT, 5, 6, (3, -2), "ValueError: boom",
        ExceptionInfo.of(_failed()),
    )  # fmt: skip
    request = _request(root, child)
    decoded = ExportTraceServiceRequest.FromString(request)
    (resource_spans,) = decoded.resource_spans
    resource = {a.key: a.value for a in resource_spans.resource.attributes}
    assert (resource["service.name"].string_value, resource["flag"].bool_value) == ("headway", True)
    assert resource_spans.scope_spans[0].scope.name == "headway"

    first, second = _spans(request)
    assert first.trace_id == TRACE.to_bytes(16) and first.span_id == (7).to_bytes(8)
    assert first.parent_span_id == b""
    assert (first.name, first.kind) == ("Counter/add", Span.SpanKind.SPAN_KIND_SERVER)
    assert (first.start_time_unix_nano, first.end_time_unix_nano) == (
        1_700_000_000_000_000_000, 1_700_000_000_250_000_000
    )  # fmt: skip
    attributes = {a.key: a.value for a in first.attributes}
    assert attributes["headway.service"].string_value == "Counter"
    assert attributes["headway.flag"].bool_value is True
    assert attributes["headway.key"].string_value == "ada"
    assert attributes["headway.long"].string_value == "x" * 300
    assert attributes["headway.retry_count"].HasField("int_value")
    assert attributes["headway.retry_count"].int_value == 0
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


@pytest.mark.parametrize("length", [0, 1, 109, 110, 111, 112, 125, 126, 127, 128, 16_383, 16_384])
@pytest.mark.parametrize("number", [0, 127, 128, 2**40, -1])
def test_every_value_length_and_number_decodes(length: int, number: int) -> None:
    """Across the encoder's shortcuts: strings whose encodings were made in advance (up to
    the key's limit) and longer ones, small ints and others, one- to three-byte lengths."""
    value = "é" * (length // 2) + "a" * (length % 2)  # non-ASCII: bytes differ from chars
    span = SpanRecord(ROOT_SHAPE, TRACE, 7, 0, 1, 2, (value, "", number))
    (decoded,) = _spans(_request(span))
    attributes = {a.key: a.value for a in decoded.attributes}
    assert attributes["headway.key"].string_value == value
    assert attributes["headway.long"].string_value == ""
    assert attributes["headway.retry_count"].int_value == number


def test_a_facts_span_has_the_ids_derived_from_its_invocation() -> None:
    shapes = handler_shapes("Counter", "add")
    fact = InvocationFinished("inv-1", None, "Counter", "add", "k", 1_000, 1_002, 2, None)
    (span,) = fact.spans()
    ids = invocation_ids("inv-1", None, 1 << 64)
    assert (span.trace_id, span.span_id, span.parent_id) == (ids.trace_id, ids.span_id, 0)
    assert span.shape is shapes.invocation and handler_shapes("Counter", "add") is shapes
    assert (span.start_ns, span.end_ns) == (1_000_000_000, 1_002_000_000)
    assert span.attributes == {
        "headway.service": "Counter", "headway.handler": "add", "headway.invocation_id": "inv-1",
        "headway.key": "k", "headway.retry_count": 2,
    }  # fmt: skip


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


def _fact(n: int) -> InvocationFinished:
    return InvocationFinished(f"inv-{n}", None, "Counter", "add", f"k{n}", n, n + 1, 0, None)


def _invocation_ids_sent() -> list[list[str]]:
    """The invocation ids of the spans of each request the collector took, in order."""
    return [
        [
            next(a.value.string_value for a in span.attributes if a.key == "headway.invocation_id")
            for span in _spans(body)
        ]
        for body in _Collector.bodies
    ]


def test_exporter_sends_full_batches_and_the_rest_on_shutdown(collector: str) -> None:
    exporter = OtlpExporter(collector, {"service.name": "headway"}, max_batch=4, delay=60)
    for n in range(10):
        exporter.invocations_finished([_fact(n)])
    exporter.shutdown()
    sent = _invocation_ids_sent()
    assert [span for batch in sent for span in batch] == [f"inv-{n}" for n in range(10)]
    assert [len(batch) for batch in sent] == [4, 4, 2]  # the remainder waited for shutdown
    assert exporter.dropped == 0


def test_exporter_drops_what_a_failing_collector_refuses(collector: str) -> None:
    """Counted in both processes: beyond the queue's bound here, refused by the collector
    in the exporting process (which reports its count when it stops)."""
    _Collector.status = 503
    exporter = OtlpExporter(collector, {}, max_batch=2, max_queue=5, delay=60)
    for n in range(8):  # three beyond the queue's bound, unless the thread sends in between
        exporter.invocations_finished([_fact(n)])
    exporter.shutdown()
    assert exporter.dropped == 8


def test_exporter_queues_what_has_room_of_a_batch_and_drops_the_rest(collector: str) -> None:
    exporter = OtlpExporter(collector, {}, max_batch=100, max_queue=5, delay=60)
    exporter.invocations_finished([_fact(n) for n in range(3)])
    exporter.invocations_finished([_fact(n) for n in range(3, 7)])  # room for two
    exporter.invocations_finished([_fact(7)])  # none
    exporter.shutdown()
    assert _invocation_ids_sent() == [[f"inv-{n}" for n in range(5)]]
    assert exporter.dropped == 3


def test_exporter_starts_its_process_again_after_it_is_killed(collector: str) -> None:
    before = set(children(os.getpid()))
    exporter = OtlpExporter(collector, {}, max_batch=2, delay=60)
    exporter.invocations_finished([_fact(0), _fact(1)])
    wait_for(lambda: len(_Collector.bodies) == 1)
    (first,) = set(children(os.getpid())) - before
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: exited(first))
    time.sleep(1.0)  # the exporter starts a process at most once a second
    exporter.invocations_finished([_fact(2), _fact(3)])
    wait_for(lambda: len(_Collector.bodies) == 2)
    (second,) = set(children(os.getpid())) - before
    exporter.shutdown()
    assert second != first
    assert _invocation_ids_sent() == [["inv-0", "inv-1"], ["inv-2", "inv-3"]]
    assert exporter.dropped == 0
    assert set(children(os.getpid())) == before  # the second one finished too
