"""`headway sql`: the admin API's SQL endpoint from the command line."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    return value if isinstance(value, str) else json.dumps(value)


def _sql(args: argparse.Namespace) -> None:
    from .cli import CliError, _admin, _table

    try:
        result = _admin("POST", "/query", {"query": args.query})
    except CliError as e:  # DuckDB's messages span lines (a caret under the error): keep one
        raise CliError(str(e).splitlines()[0]) from None
    if args.json:
        print(json.dumps(result["rows"], indent=2))
        return
    columns = [c["name"] for c in result["columns"]]
    rows = [{c: _cell(row[c]) for c in columns} for row in result["rows"]]
    print(_table(rows, columns))
    print(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the observability commands; each sets `run` to its handler."""
    sql = sub.add_parser("sql", help="run a SQL query over invocations, journals and state")
    sql.add_argument("query", help='e.g. "select id, status from sys_invocation"')
    sql.add_argument("--json", action="store_true", help="print the rows as JSON")
    sql.set_defaults(run=_sql)
