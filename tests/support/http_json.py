"""Blocking JSON-over-HTTP helpers for tests: status and decoded body, errors included."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any


def call(
    method: str,
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, Any]:
    """Sends one request; returns (status, decoded JSON body, or None if empty).

    4xx/5xx answers are returned, not raised; a body that is not JSON comes back as text.
    """
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(
        url, data=data, method=method,
        headers={"content-type": "application/json", **(headers or {})},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, payload = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    if not payload:
        return status, None
    try:
        return status, json.loads(payload)
    except ValueError:  # not JSON (which an engine error never should be): show it as text
        return status, payload.decode(errors="replace")


def post(url: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
    return call("POST", url, body, **kwargs)


def get(url: str, **kwargs: Any) -> tuple[int, Any]:
    return call("GET", url, **kwargs)


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Polls `check` until it returns something truthy; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
