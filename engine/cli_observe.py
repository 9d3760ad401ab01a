"""`headway sql`, `metrics` and `health`: the admin API's observability from the command line."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
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


def _metrics(args: argparse.Namespace) -> None:
    from .cli import ADMIN_URL, CliError

    try:
        with urllib.request.urlopen(ADMIN_URL + "/metrics", timeout=30) as resp:
            print(resp.read().decode(), end="")
    except urllib.error.HTTPError as e:
        raise CliError(f"GET /metrics: {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise CliError(f"cannot reach the admin API at {ADMIN_URL}: {e.reason}") from None


def _health(args: argparse.Namespace) -> None:
    from .cli import _admin

    print(_admin("GET", "/health")["status"])


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the observability commands; each sets `run` to its handler."""
    sql = sub.add_parser("sql", help="run a SQL query over invocations, journals and state")
    sql.add_argument("query", help='e.g. "select id, status from sys_invocation"')
    sql.add_argument("--json", action="store_true", help="print the rows as JSON")
    sql.set_defaults(run=_sql)
    metrics = sub.add_parser("metrics", help="print the engine's Prometheus metrics")
    metrics.set_defaults(run=_metrics)
    health = sub.add_parser("health", help="'ok' once the engine has recovered (exit 1 if not)")
    health.set_defaults(run=_health)
