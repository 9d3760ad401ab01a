"""Spans in OTLP's protobuf wire format (an `ExportTraceServiceRequest`), written directly.

The OpenTelemetry exporter builds a protobuf object for every span, attribute and value and
hashes the resource once per span; under load that cost more than the engine's own work for
the invocation. Here each span is written straight into the wire format, and what every
request repeats (resource, instrumentation scope) is encoded once.
"""

from __future__ import annotations

import functools
import struct
import traceback
from collections.abc import Iterable, Mapping

from headway.sdk.protocol.wire import encode_varint
from opentelemetry.trace import SpanKind

from .tracing import SpanRecord

# OTLP SpanFlags: the context's is-remote bit is known, and (second) set; low byte: sampled.
_ROOT_FLAGS = struct.pack("<BBI", 0x85, 0x01, 0x100 | 0x01)
_CHILD_FLAGS = struct.pack("<BBI", 0x85, 0x01, 0x300 | 0x01)
_TIMES = struct.Struct("<BQBQ")  # fields 7 and 8: fixed64 start and end (tags 0x39, 0x41)
_ERROR_CODE = b"\x18\x02"  # Status.code = STATUS_CODE_ERROR


_SMALL = [bytes((n,)) for n in range(128)]
# Field 6, the kind: OTLP's enum counts UNSPECIFIED as 0.
_KINDS = {kind: b"\x30" + _SMALL[kind.value + 1] for kind in SpanKind}


def _varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _SMALL[value]
    out = bytearray()
    encode_varint(value & 0xFFFFFFFFFFFFFFFF, out)  # int64 as protobuf writes it
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field; `tag`: its key byte (field number << 3 | 2)."""
    return tag + _varint(len(payload)) + payload


@functools.lru_cache(maxsize=256)
def _key(key: str) -> bytes:
    return _field(b"\x0a", key.encode())


def _attribute(key: str, value: str | int) -> bytes:
    """A KeyValue (field 1: key, field 2: AnyValue with a string, bool or int64)."""
    if not isinstance(value, str):
        any_value = (b"\x10" if isinstance(value, bool) else b"\x18") + _varint(value)
        return b"".join((_key(key), b"\x12", _SMALL[len(any_value)], any_value))
    data = value.encode()
    if len(data) < 126:  # the usual case, written in one go: both lengths fit in one byte
        return b"".join(
            (_key(key), b"\x12", _SMALL[len(data) + 2], b"\x0a", _SMALL[len(data)], data)
        )
    return _key(key) + _field(b"\x12", _field(b"\x0a", data))


def _exception_event(error: BaseException, time_ns: int) -> bytes:
    """The `exception` event of OpenTelemetry's semantic conventions, as `record_exception`
    makes it."""
    attributes = {
        "exception.type": type(error).__qualname__,
        "exception.message": str(error),
        "exception.stacktrace": "".join(traceback.format_exception(error)),
        "exception.escaped": "False",
    }
    event = struct.pack("<BQ", 0x09, time_ns) + _field(b"\x12", b"exception")
    event += b"".join(_field(b"\x1a", _attribute(k, v)) for k, v in attributes.items())
    return _field(b"\x5a", event)


def encode_span(span: SpanRecord) -> bytes:
    """One `Span` message.

    Two spans per invocation pass through here, so the usual case is written inline: a name
    and attributes (strings, small ints) short enough that every length is one byte."""
    parts = [b"\x0a\x10", span.trace_id.to_bytes(16), b"\x12\x08", span.span_id.to_bytes(8)]
    if span.parent_id:
        parts += (b"\x22\x08", span.parent_id.to_bytes(8))
    name = span.name.encode()
    parts += (
        b"\x2a", _SMALL[len(name)] if len(name) < 128 else _varint(len(name)), name,
        _KINDS[span.kind], _TIMES.pack(0x39, span.start_ns, 0x41, span.end_ns),
    )  # fmt: skip
    for key, value in span.attributes.items():
        if isinstance(value, str):
            data = value.encode()
            field = _key(key)
            if len(data) + len(field) < 124:
                parts += (
                    b"\x4a", _SMALL[len(data) + len(field) + 4], field, b"\x12",
                    _SMALL[len(data) + 2], b"\x0a", _SMALL[len(data)], data,
                )  # fmt: skip
                continue
        elif value.__class__ is int and 0 <= value < 128:  # an attempt, a retry count
            field = _key(key)
            parts += (b"\x4a", _SMALL[len(field) + 4], field, b"\x12\x02\x18", _SMALL[value])
            continue
        attribute = _attribute(key, value)
        parts += (b"\x4a", _varint(len(attribute)), attribute)
    if span.exception is not None:
        parts.append(_exception_event(span.exception, span.end_ns))
    if span.error is not None:
        parts.append(_field(b"\x7a", _field(b"\x12", span.error.encode()) + _ERROR_CODE))
    parts.append(_CHILD_FLAGS if span.parent_id else _ROOT_FLAGS)
    return b"".join(parts)


class RequestEncoder:
    """Encodes batches of spans as requests of one resource and instrumentation scope."""

    def __init__(self, resource: Mapping[str, object], scope: str) -> None:
        attributes = b"".join(
            _field(b"\x0a", _attribute(k, v if isinstance(v, str | int) else str(v)))
            for k, v in resource.items()
        )
        self._resource = _field(b"\x0a", attributes)
        self._scope = _field(b"\x0a", _field(b"\x0a", scope.encode()))

    def encode(self, spans: Iterable[SpanRecord]) -> bytes:
        """One `ExportTraceServiceRequest` holding `spans`."""
        scope_spans = self._scope + b"".join(_field(b"\x12", encode_span(span)) for span in spans)
        return _field(b"\x0a", self._resource + _field(b"\x12", scope_spans))
