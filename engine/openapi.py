"""The admin API's OpenAPI document, served at GET /openapi."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _op(
    summary: str, *params: str, ok: str = "200", errors: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ],
        "responses": {ok: {"description": "ok"}, **{code: _ERROR for code in errors}},
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Headway admin API", "version": "0.1.0"},
    "paths": {
        "/health": {"get": _op("200 once recovery is done", errors=("503",))},
        "/openapi": {"get": _op("this document")},
        "/services": {"get": _op("registered services and their handlers")},
        "/invocations": {
            "get": {
                **_op("list invocations"),
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {
                            "type": "string",
                            "enum": [
                                "scheduled",
                                "pending",
                                "running",
                                "suspended",
                                "backing-off",
                                "completed",
                            ],
                        },
                    },
                    {"name": "service", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                ],
            }
        },
        "/invocations/{id}": {"get": _op("status and journal", "id", errors=("404",))},
        "/invocations/{id}/cancel": {
            "patch": _op("cancel: pending steps fail with 409", "id", ok="202", errors=("404",))
        },
        "/invocations/{id}/kill": {
            "patch": _op("kill: end now without running more code", "id", ok="202", errors=("404",))
        },
        "/query": {
            "post": {
                **_op("SQL over sys_invocation, sys_journal, state, ...", errors=("400",)),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"query": {"type": "string"}},
                                "required": ["query"],
                            }
                        }
                    },
                },
                "description": "JSON {columns, rows}; Arrow IPC with "
                "Accept: application/vnd.apache.arrow.stream",
            }
        },
        "/metrics": {"get": _op("Prometheus metrics (text format)", errors=("404",))},
        "/ui/": {"get": _op("the web UI")},
        "/playground/{path}": {
            "post": _op("invoke a handler through the ingress (for the web UI)", "path")
        },
        "/services/{service}/state/{key}": {
            "get": _op("a virtual object's state", "service", "key"),
            "put": _op("replace a virtual object's state", "service", "key", errors=("400", "404")),
        },
        "/deployments": {
            "get": _op("registered deployments and their services"),
            "post": {
                **_op(
                    "register a deployment by its uri (discovery; idempotent, a changed manifest "
                    "makes a new revision)",
                    ok="201",
                    errors=("400", "409"),
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "uri": {"type": "string"},
                                    "http2": {"type": "boolean", "default": False},
                                },
                                "required": ["uri"],
                            }
                        }
                    },
                },
            },
        },
        "/deployments/{id}": {
            "get": _op("one deployment", "id", errors=("404",)),
            "delete": _op("forget a deployment", "id", errors=("404",)),
        },
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
                "required": ["code", "message"],
            }
        }
    },
}
