"""SQL over the engine's store: DuckDB queries against the tables of `sql_tables`.

Only the tables a query names are built, all from one consistent read of the store. DuckDB
runs in memory with file and network access turned off: a query sees the engine's tables and
nothing else on the machine.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from typing import Any

import duckdb
import headway.connectors.kafka.sql_tables  # noqa: F401  (registers the Kafka tables)
import pyarrow as pa
from rocksdict import Rdict

from .registry import Registry
from .sql_tables import TABLES, EndOffset, StoreReader

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class SqlError(ValueError):
    """The query is not valid SQL or failed to run; the message is DuckDB's."""


def referenced_tables(query: str) -> set[str]:
    """The names of our tables that `query` reads.

    DuckDB's own extraction fails on `JOIN ... USING` over tables it does not know yet; then
    every table whose name appears as a word is taken, which only builds one too many.
    """
    try:
        return set(duckdb.get_table_names(query)) & TABLES.keys()
    except duckdb.BinderException:
        return set(re.findall(r"\w+", query.lower())) & TABLES.keys()
    except duckdb.Error as e:
        raise SqlError(str(e)) from None


def run_query(
    db: Rdict, registry: Registry, query: str, kafka_end_offset: EndOffset | None = None
) -> pa.Table:
    """Runs `query` and returns its result; blocking, so callers run it in a worker thread."""
    names = referenced_tables(query)
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        reader = StoreReader(db, registry, kafka_end_offset)
        for name in sorted(names):
            con.register(name, TABLES[name].build(reader))
        relation = con.sql(query)
        return relation.to_arrow_table() if relation is not None else pa.table({})
    except duckdb.Error as e:
        raise SqlError(str(e)) from None
    finally:
        con.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def to_json(result: pa.Table) -> bytes:
    """`{"columns": [{"name", "type"}], "rows": [{column: value}]}`; bytes as base64."""
    body = {
        "columns": [{"name": f.name, "type": str(f.type)} for f in result.schema],
        "rows": result.to_pylist(),
    }
    return json.dumps(body, default=_json_default).encode()


def to_arrow_stream(result: pa.Table) -> bytes:
    """The result in the Arrow IPC streaming format."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, result.schema) as writer:
        writer.write_table(result)
    return bytes(sink.getvalue().to_pybytes())
