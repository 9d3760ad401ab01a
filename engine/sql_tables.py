"""The tables SQL queries see, built from one consistent read of the committed store.

Each table is one function registered with `@table(name, columns)` that yields rows from a
`StoreReader`; nothing else needs to change to add one. Names and columns follow Restate's
introspection tables (`sys_invocation`, `sys_journal`, `state`, ...) so queries port.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
from headway.sdk.journal import Command, Outcome, Target, decode_command
from rocksdict import Rdict

from . import keys
from .registry import Registry
from .store import unpack

Row = Sequence[Any]
RowsFn = Callable[["StoreReader"], Iterable[Row]]
# A Kafka partition's end offset (group, topic, partition), as its consumer last saw it.
EndOffset = Callable[[str, str, int], "int | None"]

_TIME = pa.timestamp("ms", tz="UTC")
_SERVICE_TY = {"service": "service", "object": "virtual_object", "workflow": "workflow"}


class StoreReader:
    """Reads the committed store through one RocksDB iterator.

    An iterator pins the store as it was when it was created, so every table of one query
    sees the same moment, and no lock is taken that the group commit would wait for.
    """

    def __init__(
        self, db: Rdict, registry: Registry, kafka_end_offset: EndOffset | None = None
    ) -> None:
        self._it = db.iter()
        self.registry = registry
        self.kafka_end_offset: EndOffset = kafka_end_offset or (lambda group, topic, p: None)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, Any]]:
        """Records under `prefix`, decoded, in key order. Consume one scan before the next."""
        it = self._it
        it.seek(prefix)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            yield key, unpack(it.value())
            it.next()


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    schema: pa.Schema
    rows: RowsFn

    def build(self, reader: StoreReader) -> pa.Table:
        """The table's rows as Arrow columns of the declared types."""
        rows = list(self.rows(reader))
        columns: list[Sequence[Any]] = (
            [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in self.schema]
        )
        arrays = [pa.array(c, type=f.type) for c, f in zip(columns, self.schema, strict=True)]
        return pa.Table.from_arrays(arrays, schema=self.schema)


TABLES: dict[str, Table] = {}


def table(name: str, columns: list[tuple[str, pa.DataType]]) -> Callable[[RowsFn], RowsFn]:
    """Registers a function yielding the rows of table `name`, one tuple per row."""

    def register(fn: RowsFn) -> RowsFn:
        TABLES[name] = Table(name, pa.schema(columns), fn)
        return fn

    return register


def _utf8(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return None


def _json_value(value: Any) -> Any:
    """A journal field as JSON: text for UTF-8 bytes, `{"base64": ...}` for the rest."""
    if isinstance(value, bytes):
        text = _utf8(value)
        return text if text is not None else {"base64": base64.b64encode(value).decode()}
    if isinstance(value, Outcome):
        if value.failure is not None:
            return {"failure": {"code": value.failure.code, "message": value.failure.message}}
        return {"value": _json_value(value.value)}
    if isinstance(value, Target):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def command_json(command: Command, result: Outcome | None) -> dict[str, Any]:
    """A journal entry's fields, and its completion's outcome if it has one."""
    fields = {
        f.name: _json_value(getattr(command, f.name))
        for f in dataclasses.fields(command)  # type: ignore[arg-type]
    }
    out: dict[str, Any] = {"type": type(command).__name__, **fields}
    if result is not None:
        out["result"] = _json_value(result)
    return out


def _suffix(key: bytes, prefix: bytes) -> str:
    return key[len(prefix) :].decode()


def _object(key: bytes, prefix: bytes) -> tuple[str, str]:
    service, _, object_key = key[len(prefix) :].partition(b"\x00")
    return service.decode(), object_key.decode()


@table(
    "sys_invocation",
    [
        ("id", pa.string()), ("target", pa.string()), ("target_service_name", pa.string()),
        ("target_service_key", pa.string()), ("target_handler_name", pa.string()),
        ("target_service_ty", pa.string()), ("status", pa.string()),
        ("created_at", _TIME), ("modified_at", _TIME), ("retry_count", pa.int64()),
        ("last_attempt", pa.int64()), ("last_failure", pa.string()),
        ("journal_size", pa.int64()), ("pinned_deployment_id", pa.string()),
        ("invoked_by_id", pa.string()), ("idempotency_key", pa.string()),
        ("completion_result", pa.string()), ("completion_failure", pa.string()),
    ],
)  # fmt: skip
def sys_invocation(reader: StoreReader) -> Iterator[Row]:
    kinds = {name: _SERVICE_TY[info.kind] for name, info in reader.registry.services.items()}
    for key, st in reader.scan(keys.INVOCATION):
        target = Target.decode(st["t"])
        outcome = Outcome.decode(st["o"]) if st["o"] is not None else None
        failure = outcome.failure if outcome is not None else None
        yield (
            _suffix(key, keys.INVOCATION), str(target), target.service, target.key,
            target.handler, kinds.get(target.service), st["st"], st["ca"], st["ma"], st["rc"],
            st["a"], st["lf"], st["jl"], None, st.get("by"), st["ik"],
            None if outcome is None else ("failure" if failure else "success"),
            f"[{failure.code}] {failure.message}" if failure else None,
        )  # fmt: skip


@table(
    "sys_journal",
    [
        ("id", pa.string()), ("index", pa.int64()), ("entry_type", pa.string()),
        ("name", pa.string()), ("completed", pa.bool_()), ("entry_json", pa.string()),
    ],
)  # fmt: skip
def sys_journal(reader: StoreReader) -> Iterator[Row]:
    completions: dict[bytes, Outcome] = {
        key[len(keys.COMPLETION) :]: Outcome.decode(raw[1])
        for key, raw in reader.scan(keys.COMPLETION)
    }
    for key, raw in list(reader.scan(keys.JOURNAL)):
        invocation_id, _, index = key[len(keys.JOURNAL) :].rpartition(b"/")
        command = decode_command(raw)
        result = completions.get(key[len(keys.JOURNAL) :])
        yield (
            invocation_id.decode(), int(index, 16), type(command).__name__,
            getattr(command, "name", None), not command.completable or result is not None,
            json.dumps(command_json(command, result)),
        )  # fmt: skip


@table(
    "state",
    [
        ("service_name", pa.string()), ("service_key", pa.string()), ("key", pa.string()),
        ("value_utf8", pa.string()), ("value", pa.binary()),
    ],
)  # fmt: skip
def state(reader: StoreReader) -> Iterator[Row]:
    for key, values in reader.scan(keys.STATE):
        service, object_key = _object(key, keys.STATE)
        for name, value in sorted(values.items()):
            yield service, object_key, name, _utf8(value), value


@table(
    "sys_inbox",
    [
        ("service_name", pa.string()), ("service_key", pa.string()), ("id", pa.string()),
        ("sequence_number", pa.int64()),
    ],
)  # fmt: skip
def sys_inbox(reader: StoreReader) -> Iterator[Row]:
    """Invocations queued behind their key's lock, in the order they will run."""
    for key, (_, queue) in reader.scan(keys.OBJECT_LOCK):
        service, object_key = _object(key, keys.OBJECT_LOCK)
        for seq, invocation_id in enumerate(queue):
            yield service, object_key, invocation_id, seq


@table(
    "sys_keyed_service_status",
    [("service_name", pa.string()), ("service_key", pa.string()), ("invocation_id", pa.string())],
)
def sys_keyed_service_status(reader: StoreReader) -> Iterator[Row]:
    """Which invocation holds each locked key."""
    for key, (holder, _) in reader.scan(keys.OBJECT_LOCK):
        if holder is not None:
            yield (*_object(key, keys.OBJECT_LOCK), holder)


@table(
    "sys_promise",
    [
        ("service_name", pa.string()), ("service_key", pa.string()), ("key", pa.string()),
        ("completed", pa.bool_()), ("completion_success_value", pa.binary()),
        ("completion_success_value_utf8", pa.string()), ("completion_failure", pa.string()),
    ],
)  # fmt: skip
def sys_promise(reader: StoreReader) -> Iterator[Row]:
    for key, promises in reader.scan(keys.PROMISES):
        service, object_key = _object(key, keys.PROMISES)
        for name, promise in sorted(promises.items()):
            outcome = Outcome.decode(promise["o"]) if promise["o"] is not None else None
            value = outcome.value if outcome is not None else None
            failure = outcome.failure if outcome is not None else None
            yield (
                service, object_key, name, outcome is not None, value, _utf8(value),
                f"[{failure.code}] {failure.message}" if failure else None,
            )  # fmt: skip


@table(
    "sys_service",
    [
        ("name", pa.string()), ("ty", pa.string()), ("public", pa.bool_()),
        ("handlers", pa.list_(pa.string())), ("deployment_id", pa.string()),
    ],
)  # fmt: skip
def sys_service(reader: StoreReader) -> Iterator[Row]:
    """Registered services; in-process ones have no deployment."""
    for info in reader.registry.services.values():
        public = any(not h.options.ingress_private for h in info.handlers.values())
        yield info.name, _SERVICE_TY[info.kind], public, sorted(info.handlers), None
