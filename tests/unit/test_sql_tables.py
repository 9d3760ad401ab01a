"""The SQL table registry over a real store: only the tables a query names are built."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from headway.engine import keys
from headway.engine.registry import Registry
from headway.engine.sql import SqlError, run_query
from headway.engine.sql_tables import TABLES, Row, StoreReader, table
from headway.engine.store import Store, pack
from rocksdict import WriteBatch


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path)
    yield opened
    opened.close()


def test_only_named_tables_are_built(store: Store) -> None:
    built: list[str] = []

    @table("probe_table", [("n", pa.int64())])
    def probe_table(reader: StoreReader) -> Iterator[Row]:
        built.append("probe_table")
        yield (1,)

    try:
        assert run_query(
            store.db, Registry(), "select count(*) as n from sys_service"
        ).to_pylist() == [{"n": 0}]
        assert built == []
        assert run_query(store.db, Registry(), "select n from probe_table").to_pylist() == [
            {"n": 1}
        ]
        assert built == ["probe_table"]
    finally:
        del TABLES["probe_table"]


def test_tables_read_one_moment(store: Store) -> None:
    """A reader made before a write does not see it: every table of a query reads one moment."""
    batch = WriteBatch(raw_mode=True)
    batch.put(keys.state("Counter", "a"), pack({"total": b"1"}))
    store.write(batch)
    reader = StoreReader(store.db, Registry())
    batch = WriteBatch(raw_mode=True)
    batch.put(keys.state("Counter", "b"), pack({"total": b"2"}))
    store.write(batch)
    assert TABLES["state"].build(reader).column("service_key").to_pylist() == ["a"]


def test_errors_carry_duckdb_messages(store: Store) -> None:
    with pytest.raises(SqlError, match="syntax error"):
        run_query(store.db, Registry(), "selec 1")
