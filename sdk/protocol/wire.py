"""Protobuf's wire format: varints and tagged fields, the few pieces the protocol needs.

The protocol's messages use only unsigned integers, booleans, strings, bytes, nested messages
and repeated fields. A small table-driven codec over these (messages.py) keeps every message a
typed dataclass under mypy strict, without generated code or a pinned protobuf runtime.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT = 0
FIXED64 = 1
LENGTH = 2
FIXED32 = 5


class ProtocolError(ValueError):
    """Bytes that are not a valid protocol message; the message says what is wrong."""


def encode_varint(value: int, out: bytearray) -> None:
    if value < 0:
        raise ProtocolError(f"cannot encode negative value {value} as a varint")
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def decode_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ProtocolError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise ProtocolError("varint longer than 64 bits")


def encode_tag(number: int, wire_type: int, out: bytearray) -> None:
    encode_varint((number << 3) | wire_type, out)


def encode_length_delimited(number: int, payload: bytes, out: bytearray) -> None:
    encode_tag(number, LENGTH, out)
    encode_varint(len(payload), out)
    out += payload


def iter_fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field: an int, or the bytes of a LENGTH field.

    Fixed-width fields (no protocol message uses them) are returned as their raw bytes.
    """
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        key, pos = decode_varint(view, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtocolError("field number 0 is not allowed")
        if wire_type == VARINT:
            value, pos = decode_varint(view, pos)
            yield number, wire_type, value
        elif wire_type == LENGTH:
            length, pos = decode_varint(view, pos)
            if pos + length > len(view):
                raise ProtocolError(f"field {number} runs past the end of the message")
            yield number, wire_type, bytes(view[pos : pos + length])
            pos += length
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            if pos + size > len(view):
                raise ProtocolError(f"field {number} runs past the end of the message")
            yield number, wire_type, bytes(view[pos : pos + size])
            pos += size
        else:
            raise ProtocolError(f"field {number} has unsupported wire type {wire_type}")
