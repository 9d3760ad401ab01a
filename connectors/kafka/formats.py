"""Record value formats: how a Kafka record's value becomes a handler's input.

A handler's input is JSON bytes (decoded into its annotated type by the SDK's serde) or, with
the `bytes` format, the raw value. Avro values (a local schema file, or the Confluent wire
format with a schema registry) are decoded with fastavro and handed on as JSON, so one
handler signature serves every format. A value that cannot be decoded raises
`RecordDecodeError`; the consumer dead-letters it instead of invoking anything.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import io
import json
import struct
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Protocol

import fastavro
from headway.sdk import serde

from .uris import SubscriptionError

FORMATS = ("json", "bytes", "avro", "avro-confluent")


class RecordDecodeError(ValueError):
    """A record value does not match the subscription's format; the message says how."""


class ValueFormat(Protocol):
    def decode(self, value: bytes | None) -> bytes:
        """The handler input for a record value."""
        ...


class JsonFormat:
    """JSON values, checked here so that a malformed one is dead-lettered, not retried."""

    def decode(self, value: bytes | None) -> bytes:
        if value is None:
            return b"null"  # a tombstone: the handler sees None
        try:
            serde.loads(value)  # the parser the handler's input goes through
        except (UnicodeDecodeError, ValueError) as e:
            raise RecordDecodeError(f"value is not valid JSON: {e}") from None
        return value


class BytesFormat:
    def decode(self, value: bytes | None) -> bytes:
        return value or b""


def _jsonable(value: Any) -> Any:
    """Avro's Python values that JSON has no type for."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"cannot represent {type(value).__name__} in JSON")


def _read_avro(data: bytes, schema: Any) -> bytes:
    buffer = io.BytesIO(data)
    try:
        record = fastavro.schemaless_reader(buffer, schema, None)
    except Exception as e:
        raise RecordDecodeError(f"value does not match the Avro schema: {e}") from None
    if buffer.tell() != len(data):
        raise RecordDecodeError(
            f"value does not match the Avro schema: {len(data) - buffer.tell()} bytes left "
            "over after decoding (written with another schema?)"
        )
    return json.dumps(record, default=_jsonable).encode()


class AvroFileFormat:
    """Plain Avro binary values, all written with one schema kept in a local `.avsc` file."""

    def __init__(self, schema_file: str) -> None:
        try:
            self.schema = fastavro.parse_schema(json.loads(Path(schema_file).read_text()))
        except OSError as e:
            raise SubscriptionError(
                f"cannot read the Avro schema file {schema_file!r}: {e}"
            ) from None
        except Exception as e:
            raise SubscriptionError(f"{schema_file!r} is not a valid Avro schema: {e}") from None

    def decode(self, value: bytes | None) -> bytes:
        if value is None:
            return b"null"
        return _read_avro(value, self.schema)


class AvroConfluentFormat:
    """Confluent's wire format: magic byte 0, a 4-byte schema id, then Avro binary. Schemas
    are fetched from the registry once per id and cached."""

    def __init__(self, registry_url: str) -> None:
        self.registry_url = registry_url.rstrip("/")
        self.schemas: dict[int, Any] = {}

    def decode(self, value: bytes | None) -> bytes:
        if value is None:
            return b"null"
        if len(value) < 5 or value[0] != 0:
            raise RecordDecodeError(
                "value is not in the Confluent Avro wire format (no magic byte 0 + schema id)"
            )
        (schema_id,) = struct.unpack(">I", value[1:5])
        return _read_avro(value[5:], self._schema(schema_id))

    def _schema(self, schema_id: int) -> Any:
        schema = self.schemas.get(schema_id)
        if schema is None:
            url = f"{self.registry_url}/schemas/ids/{schema_id}"
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    answer = json.loads(response.read())
                if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
                    raise ValueError(f'expected {{"schema": "..."}}, got {answer!r:.200}')
                schema = fastavro.parse_schema(json.loads(answer["schema"]))
            except urllib.error.HTTPError as e:
                raise RecordDecodeError(
                    f"schema id {schema_id}: the registry said {e.code}"
                ) from None
            except Exception as e:  # unreachable, not a registry, not a schema: all the same here
                raise RecordDecodeError(
                    f"schema id {schema_id}: cannot fetch from {url}: {e}"
                ) from None
            self.schemas[schema_id] = schema
        return schema


def value_format(name: str, schema_file: str | None, registry_url: str | None) -> ValueFormat:
    """The format a subscription's options ask for; SubscriptionError if they are incomplete."""
    if name == "json":
        return JsonFormat()
    if name == "bytes":
        return BytesFormat()
    if name == "avro":
        if not schema_file:
            raise SubscriptionError("value.format=avro needs avro.schema.file")
        return AvroFileFormat(schema_file)
    if name == "avro-confluent":
        if not registry_url:
            raise SubscriptionError("value.format=avro-confluent needs schema.registry.url")
        return AvroConfluentFormat(registry_url)
    raise SubscriptionError(f"unknown value.format {name!r}: expected one of {', '.join(FORMATS)}")
