"""Declarative field tables for protocol messages, and the one codec that reads them.

A message is a dataclass whose `FIELDS` name, per attribute, the protobuf field number and
kind. Unknown fields are skipped (newer peers may send more), a field of the wrong wire type
is an error.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self

from .wire import (
    LENGTH,
    VARINT,
    ProtocolError,
    decode_varint,
    encode_length_delimited,
    encode_tag,
    encode_varint,
    iter_fields,
)

Kind = str | type["Message"]  # "uint", "bool", "string", "bytes", or a nested message class


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    number: int
    attr: str
    kind: Kind
    repeated: bool = False
    optional: bool = False  # has presence: None when absent, sent even when zero


def _is_default(value: Any) -> bool:
    return value in (0, "", b"", False)


class Message:
    """Base of every protocol message; subclasses are dataclasses with a `FIELDS` table."""

    FIELDS: ClassVar[tuple[Field, ...]] = ()

    def encode(self) -> bytes:
        out = bytearray()
        for field in self.FIELDS:
            value = getattr(self, field.attr)
            if field.repeated:
                if field.kind in ("uint", "bool") and value:
                    packed = bytearray()
                    for item in value:
                        encode_varint(int(item), packed)
                    encode_length_delimited(field.number, bytes(packed), out)
                else:
                    for item in value:
                        _encode_one(field, item, out)
            elif value is None or (not field.optional and _is_default(value)):
                continue
            else:
                _encode_one(field, value, out)
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        by_number = {f.number: f for f in cls.FIELDS}
        values: dict[str, Any] = {}
        for number, wire_type, raw in iter_fields(data):
            field = by_number.get(number)
            if field is None:
                continue
            if field.repeated:
                items = values.setdefault(field.attr, [])
                if field.kind in ("uint", "bool") and wire_type == LENGTH:
                    assert isinstance(raw, bytes)
                    pos = 0
                    while pos < len(raw):
                        item, pos = decode_varint(raw, pos)
                        items.append(bool(item) if field.kind == "bool" else item)
                else:
                    items.append(_decode_one(cls, field, wire_type, raw))
            else:
                values[field.attr] = _decode_one(cls, field, wire_type, raw)
        return cls(**values)


def _encode_one(field: Field, value: Any, out: bytearray) -> None:
    kind = field.kind
    if kind == "uint" or kind == "bool":
        encode_tag(field.number, VARINT, out)
        encode_varint(int(value), out)
    elif kind == "string":
        encode_length_delimited(field.number, value.encode(), out)
    elif kind == "bytes":
        encode_length_delimited(field.number, bytes(value), out)
    else:
        encode_length_delimited(field.number, value.encode(), out)


def _decode_one(owner: type[Message], field: Field, wire_type: int, raw: int | bytes) -> Any:
    kind = field.kind
    expected = VARINT if kind in ("uint", "bool") else LENGTH
    if wire_type != expected:
        raise ProtocolError(
            f"{owner.__name__}.{field.attr} (field {field.number}) has wire type {wire_type}, "
            f"expected {expected}"
        )
    if kind == "uint":
        return raw
    if kind == "bool":
        return bool(raw)
    assert isinstance(raw, bytes)
    if kind == "string":
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise ProtocolError(f"{owner.__name__}.{field.attr} is not valid UTF-8") from None
    if kind == "bytes":
        return raw
    assert not isinstance(kind, str)
    return kind.decode(raw)
