"""`headway deployments register|list|describe|remove`: the admin API from the shell."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

Admin = Callable[..., Any]
Table = Callable[[list[dict[str, Any]], list[str]], str]
Show = Callable[[argparse.Namespace, Any, str | None], None]


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "deployments", help="register, list, describe or remove HTTP deployments"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    register = actions.add_parser(
        "register", help="discover a deployment's services (GET URI/discover) and route them there"
    )
    register.add_argument("uri", metavar="URI", help="the deployment's base URI, http://host:port")
    register.add_argument(
        "--http2", action="store_true",
        help="stream attempts over HTTP/2 (h2c) instead of HTTP/1.1 request/response",
    )  # fmt: skip
    actions.add_parser("list", help="list deployments")
    for action, what in (("describe", "show one deployment"), ("remove", "forget a deployment")):
        p = actions.add_parser(action, help=what)
        p.add_argument("id", help="the deployment id (dp_...)")
    for child in actions.choices.values():
        child.add_argument("--json", action="store_true", help="print JSON")


def _row(deployment: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": deployment["id"],
        "uri": deployment["uri"],
        "protocol": f"v{deployment['protocol_version']}"
        + (" h2" if deployment.get("http2") else ""),
        "services": ", ".join(s["name"] for s in deployment["services"]),
    }


def _describe(deployment: dict[str, Any], table: Table) -> str:
    lines = [f"{k}: {v}" for k, v in _row(deployment).items() if k != "services"]
    rows = [
        {"service": s["name"], "kind": s["kind"],
         "handlers": ", ".join(f"{h['name']}({h['kind']})" for h in s["handlers"]),
         "latest": "yes" if s["name"] in deployment["latest_for"] else "no"}
        for s in deployment["services"]
    ]  # fmt: skip
    return "\n".join([*lines, "", table(rows, ["service", "kind", "handlers", "latest"])])


def run(args: argparse.Namespace, admin: Admin, table: Table, show: Show) -> None:
    if args.action == "register":
        deployment = admin("POST", "/deployments", {"uri": args.uri, "http2": args.http2})
        show(args, deployment, f"registered {deployment['id']}\n" + _describe(deployment, table))
    elif args.action == "list":
        rows = admin("GET", "/deployments")["deployments"]
        show(args, rows, table([_row(d) for d in rows], ["id", "uri", "protocol", "services"]))
    elif args.action == "describe":
        deployment = admin("GET", f"/deployments/{quote(args.id, safe='')}")
        show(args, deployment, _describe(deployment, table))
    else:
        removed = admin("DELETE", f"/deployments/{quote(args.id, safe='')}")
        show(args, removed, f"removed {removed['id']}")
