"""The `headway` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from . import cli_completion, cli_observe
from .app_loader import AppLoadError, load_services
from .config import SETTINGS, ConfigError, load_config
from .deployments import cli as deployments_cli
from .logs import configure_logs
from .store import StoreLockedError

ADMIN_URL = os.environ.get("HEADWAY_ADMIN_URL", "http://127.0.0.1:9070")


class CliError(Exception):
    """A one-line error for the user; exit code 1."""


# The settings `headway dev` and `headway server` take as options; the others are set by
# environment variable or `headway.toml`.
_FLAGS = (
    "data_dir", "ingress_host", "ingress_port", "admin_host", "admin_port",
    "log_format", "log_level",
)  # fmt: skip


def _engine_options(parser: argparse.ArgumentParser) -> None:
    for setting in SETTINGS:
        if setting.name in _FLAGS:
            flag = "--" + setting.name.replace("_", "-")
            parser.add_argument(
                flag, type=setting.type, default=None, dest=setting.name,
                metavar="|".join(setting.choices) or None,
                help=f"{setting.doc} (env {setting.env}, default {setting.default})",
            )  # fmt: skip
    parser.add_argument(
        "--config", type=Path, default=os.environ.get("HEADWAY_CONFIG"),
        help="a headway.toml file; its [engine] table sets the same options (env HEADWAY_CONFIG)",
    )  # fmt: skip


def _run_engine(args: argparse.Namespace, app: str | None) -> None:
    from .runner import serve, tune_garbage_collector

    tune_garbage_collector()
    overrides = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    config = load_config(Path(args.config) if args.config else None, overrides)
    configure_logs(config.log_format, config.log_level)
    services = load_services(app) if app else []
    try:
        asyncio.run(serve(config, services))
    except StoreLockedError as e:
        raise CliError(str(e)) from None
    except RuntimeError as e:
        raise CliError(str(e)) from None


def _serve(args: argparse.Namespace) -> None:
    from .deployments.serve import serve_deployment

    services = load_services(args.app)
    try:
        asyncio.run(serve_deployment(services, args.host, args.port))
    except RuntimeError as e:
        raise CliError(str(e)) from None


def _admin(method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        ADMIN_URL + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read())["message"]
        except (ValueError, KeyError):
            message = e.reason
        raise CliError(f"{method} {path}: {e.code} {message}") from None
    except urllib.error.URLError as e:
        raise CliError(f"cannot reach the admin API at {ADMIN_URL}: {e.reason}") from None


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[str(r.get(c, "") if r.get(c) is not None else "") for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _print(args: argparse.Namespace, value: Any, table: str | None = None) -> None:
    print(json.dumps(value, indent=2) if args.json or table is None else table)


def _invocations(args: argparse.Namespace) -> None:
    if args.action == "list":
        filters = {"status": args.status, "service": args.service, "key": args.key}
        query = urllib.parse.urlencode({k: v for k, v in filters.items() if v is not None})
        rows = _admin("GET", "/invocations" + (f"?{query}" if query else ""))["invocations"]
        _print(args, rows, _table(rows, ["id", "target", "status", "retry_count", "last_failure"]))
    elif args.action == "describe":
        inv = _admin("GET", f"/invocations/{args.id}")
        lines = [f"{k}: {v}" for k, v in inv.items() if k != "journal"]
        lines += ["journal:"] + [
            f"  {e['index']:>3} {e['name']}{'' if e['completed'] else ' (pending)'}"
            + (f" -> {e['result']}" if e["result"] is not None else "")
            for e in inv["journal"]
        ]
        _print(args, inv, "\n".join(lines))
    else:
        _print(args, _admin("PATCH", f"/invocations/{args.id}/{args.action}"),
               f"{args.action} requested for {args.id}")  # fmt: skip


def _services(args: argparse.Namespace) -> None:
    services = _admin("GET", "/services")["services"]
    rows = [
        {"name": s["name"], "kind": s["kind"],
         "handlers": ", ".join(f"{h['name']}({h['kind']})" for h in s["handlers"])}
        for s in services
    ]  # fmt: skip
    _print(args, services, _table(rows, ["name", "kind", "handlers"]))


def _state(args: argparse.Namespace) -> None:
    if args.action == "set":
        try:
            new_state = json.loads(args.state)
        except ValueError as e:
            raise CliError(f"STATE is not JSON: {e}") from None
        _admin("PUT", f"/services/{args.service}/state/{args.key}", {"state": new_state})
    state = _admin("GET", f"/services/{args.service}/state/{args.key}")
    rows = [{"name": k, "value": v} for k, v in state["state"].items()]
    _print(args, state, _table(rows, ["name", "value"]))


def _options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"option {pair!r} must look like name=value")
        options[name] = value
    return options


def _subscriptions(args: argparse.Namespace) -> None:
    if args.action == "list":
        subs = _admin("GET", "/subscriptions")["subscriptions"]
        rows = [s | {"applied": ", ".join(f"{p['partition']}@{p['applied_offset']}"
                                          for p in s["progress"])} for s in subs]  # fmt: skip
        _print(args, subs, _table(rows, ["id", "source", "sink", "status", "applied", "error"]))
    elif args.action == "add":
        body = {"source": args.source, "sink": args.sink, "options": _options(args.option)}
        sub = _admin("POST", "/subscriptions", body)
        _print(args, sub, f"{sub['id']}: {sub['source']} -> {sub['sink']} (group {sub['group']})")
    else:
        _print(args, _admin("DELETE", f"/subscriptions/{args.id}"), f"removed {args.id}")


def _kafka_clusters(args: argparse.Namespace) -> None:
    if args.action == "list":
        clusters = _admin("GET", "/kafka-clusters")["clusters"]
        rows = [c | {"brokers": ",".join(c["brokers"])} for c in clusters]
        _print(args, clusters, _table(rows, ["name", "brokers", "origin"]))
    elif args.action == "add":
        body = {"name": args.name, "brokers": args.brokers.split(","),
                "properties": _options(args.property)}  # fmt: skip
        _print(args, _admin("POST", "/kafka-clusters", body), f"added cluster {args.name}")
    else:
        _print(args, _admin("DELETE", f"/kafka-clusters/{args.name}"), f"removed {args.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headway", description="Durable execution for Python with Kafka at its core."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser("dev", help="run the engine and APP's services in one process")
    dev.add_argument("app", metavar="APP", help="a .py file or module[:attr] defining services")
    _engine_options(dev)
    server = sub.add_parser("server", help="run the engine alone")
    _engine_options(server)
    serve = sub.add_parser(
        "serve", help="serve APP's services over HTTP as a deployment (register it with an engine)"
    )
    serve.add_argument("app", metavar="APP", help="a .py file or module[:attr] defining services")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=9080, help="port to listen on (default 9080)")

    inv = sub.add_parser("invocations", help="list, describe, cancel or kill invocations")
    inv_sub = inv.add_subparsers(dest="action", required=True, metavar="ACTION")
    inv_list = inv_sub.add_parser("list", help="list invocations")
    inv_list.add_argument("--status", help="only this status (e.g. suspended, running)")
    inv_list.add_argument("--service", help="only this service")
    inv_list.add_argument("--key", help="only this virtual object or workflow key")
    for action in ("describe", "cancel", "kill"):
        p = inv_sub.add_parser(action, help=f"{action} one invocation")
        p.add_argument("id", help="the invocation id (inv_...)")

    services = sub.add_parser("services", help="the services the engine knows")
    services_sub = services.add_subparsers(dest="action", required=True, metavar="ACTION")
    services_sub.add_parser("list", help="list services and handlers")

    state = sub.add_parser("state", help="a virtual object's state")
    state_sub = state.add_subparsers(dest="action", required=True, metavar="ACTION")
    state_get = state_sub.add_parser("get", help="show the state of one key")
    state_get.add_argument("service")
    state_get.add_argument("key")
    state_set = state_sub.add_parser("set", help="replace the state of one key")
    state_set.add_argument("service")
    state_set.add_argument("key")
    state_set.add_argument("state", help="a JSON object of name to value, e.g. '{\"total\": 5}'")

    subs = sub.add_parser("subscriptions", help="Kafka subscriptions: topics feeding handlers")
    subs_sub = subs.add_subparsers(dest="action", required=True, metavar="ACTION")
    subs_sub.add_parser("list", help="list subscriptions and their applied offsets")
    subs_add = subs_sub.add_parser(
        "add", help="invoke a handler once for every record of a topic",
        epilog="options: group.id, auto.offset.reset=earliest|latest, value.format=json|bytes|"
        "avro|avro-confluent, avro.schema.file, schema.registry.url, dead.letter.topic, "
        "ordered=true, max.in.flight=N, or any librdkafka consumer property",
    )  # fmt: skip
    subs_add.add_argument("--source", required=True, help="kafka://CLUSTER/TOPIC")
    subs_add.add_argument("--sink", required=True, help="service://NAME/HANDLER")
    subs_add.add_argument("--option", "-o", action="append", default=[], metavar="NAME=VALUE",
                          help="a subscription option (repeatable)")  # fmt: skip
    subs_remove = subs_sub.add_parser("remove", help="stop a subscription (its offsets are kept)")
    subs_remove.add_argument("id", help="the subscription id (sub_...)")

    clusters = sub.add_parser("kafka-clusters", help="Kafka clusters subscriptions can use")
    clusters_sub = clusters.add_subparsers(dest="action", required=True, metavar="ACTION")
    clusters_sub.add_parser("list", help="list clusters (from the config file and the API)")
    clusters_add = clusters_sub.add_parser("add", help="define a cluster by name")
    clusters_add.add_argument("name")
    clusters_add.add_argument("brokers", help="host:port[,host:port...]")
    clusters_add.add_argument(
        "--property",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a librdkafka property (repeatable)",
    )
    clusters_remove = clusters_sub.add_parser("remove", help="remove a cluster defined by the API")
    clusters_remove.add_argument("name")

    deployments_cli.add_parser(sub)

    for p in (inv, services, state, subs, clusters):
        for child in p._subparsers._group_actions[0].choices.values():  # type: ignore[union-attr]
            child.add_argument("--json", action="store_true", help="print JSON")
    cli_observe.register(sub)
    cli_completion.register(sub, parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "dev":
            _run_engine(args, args.app)
        elif args.command == "server":
            _run_engine(args, None)
        elif args.command == "serve":
            _serve(args)
        elif args.command == "invocations":
            _invocations(args)
        elif args.command == "services":
            _services(args)
        elif args.command == "state":
            _state(args)
        elif args.command == "subscriptions":
            _subscriptions(args)
        elif args.command == "kafka-clusters":
            _kafka_clusters(args)
        elif args.command == "deployments":
            deployments_cli.run(args, _admin, _table, _print)
        else:
            args.run(args)
    except (CliError, AppLoadError, ConfigError) as e:
        print(f"headway: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
