"""Spans in OTLP's protobuf wire format (an `ExportTraceServiceRequest`), written directly.

The OpenTelemetry exporter builds a protobuf object for every span, attribute and value and
hashes the resource once per span; under load that cost more than the engine's own work for
the invocation. Here each span is written straight into the wire format, what its shape fixes
(name, kind, fixed attributes) is encoded once per shape, and what every request repeats
(resource, instrumentation scope) once per exporter.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from headway.sdk.protocol.wire import encode_varint
from opentelemetry.trace import SpanKind

from .spans import ExceptionInfo, SpanRecord, SpanShape

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


def _exception_event(exception: ExceptionInfo, time_ns: int) -> bytes:
    """The `exception` event of OpenTelemetry's semantic conventions."""
    event = struct.pack("<BQ", 0x09, time_ns) + _field(b"\x12", b"exception")
    attributes = exception.attributes().items()
    event += b"".join(_field(b"\x1a", _attribute(k, v)) for k, v in attributes)
    return _field(b"\x5a", event)


class _KeyEncoding(NamedTuple):
    """One varying attribute's encodings made in advance: the whole field (tag and length
    included) for each small int, and everything before the value for each short string."""

    key: str
    small_ints: tuple[bytes, ...]
    string_heads: tuple[bytes, ...]

    @staticmethod
    def of(key: str) -> _KeyEncoding:
        field = _key(key)
        ints = tuple(
            _field(b"\x4a", field + b"\x12\x02\x18" + _SMALL[value]) for value in range(128)
        )
        heads = tuple(
            b"\x4a"
            + _SMALL[length + len(field) + 4]
            + field
            + bytes((0x12, length + 2, 0x0A, length))
            for length in range(min(124 - len(field), 126))
        )
        return _KeyEncoding(key, ints, heads)


class _ShapeEncoding(NamedTuple):
    """A `SpanShape` encoded: its name, kind and fixed attributes, and its varying keys."""

    head: bytes
    keys: tuple[_KeyEncoding, ...]

    @staticmethod
    def of(shape: SpanShape) -> _ShapeEncoding:
        name = shape.name.encode()
        head = b"\x2a" + _varint(len(name)) + name + _KINDS[shape.kind]
        head += b"".join(_field(b"\x4a", _attribute(k, v)) for k, v in shape.fixed.items())
        return _ShapeEncoding(head, tuple(_KeyEncoding.of(key) for key in shape.keys))


def _length(value: int) -> bytes:
    """A length as a varint: spans are under 16 KiB but for long errors, so two bytes at most."""
    if value < 128:
        return _SMALL[value]
    if value < 16384:
        return bytes((value & 0x7F | 0x80, value >> 7))
    return _varint(value)


class RequestEncoder:
    """Encodes spans, and requests of one resource and instrumentation scope holding them.

    Two spans per invocation pass through `span`, so what a span's shape fixes is encoded once
    per shape, and the usual attribute values (short strings, small ints) are written after an
    encoding of everything before them made in advance."""

    def __init__(self, resource: Mapping[str, object], scope: str) -> None:
        attributes = b"".join(
            _field(b"\x0a", _attribute(k, v if isinstance(v, str | int) else str(v)))
            for k, v in resource.items()
        )
        self._resource = _field(b"\x0a", attributes)
        self._scope = _field(b"\x0a", _field(b"\x0a", scope.encode()))
        self._shapes: dict[SpanShape, _ShapeEncoding] = {}

    def span(self, span: SpanRecord) -> bytes:
        """One `Span` message as a field of `ScopeSpans` (its tag and length first)."""
        shape = self._shapes.get(span.shape)
        if shape is None:
            shape = self._shapes[span.shape] = _ShapeEncoding.of(span.shape)
        parts = [b"\x0a\x10", span.trace_id.to_bytes(16), b"\x12\x08", span.span_id.to_bytes(8)]
        if span.parent_id:
            parts += (b"\x22\x08", span.parent_id.to_bytes(8))
        parts += (shape.head, _TIMES.pack(0x39, span.start_ns, 0x41, span.end_ns))
        for key, value in zip(shape.keys, span.values, strict=True):
            if value.__class__ is str:
                data = value.encode()
                if len(data) < len(key.string_heads):
                    parts += (key.string_heads[len(data)], data)
                    continue
            elif value.__class__ is int and 0 <= value < 128:
                parts.append(key.small_ints[value])
                continue
            parts.append(_field(b"\x4a", _attribute(key.key, value)))
        if span.exception is not None:
            parts.append(_exception_event(span.exception, span.end_ns))
        if span.error is not None:
            parts.append(_field(b"\x7a", _field(b"\x12", span.error.encode()) + _ERROR_CODE))
        parts.append(_CHILD_FLAGS if span.parent_id else _ROOT_FLAGS)
        body = b"".join(parts)
        return b"".join((b"\x12", _length(len(body)), body))

    def request(self, spans: Iterable[bytes]) -> bytes:
        """One `ExportTraceServiceRequest` holding `spans` (each from `span`)."""
        scope_spans = self._scope + b"".join(spans)
        return _field(b"\x0a", self._resource + _field(b"\x12", scope_spans))
