"""Commands the engine answers for a deployment, exercised with the official Restate Python SDK:
lazy state (no state or part of it sent up front), attaching to another invocation, named
signals, and awakeables resolved from a handler.

Each test starts real processes: hypercorn serving `tests/apps/restate_sdk_app.py:app_a` and a
`headway server`, with the deployment registered over HTTP/1.1 (protocol V6 or V7) or HTTP/2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from deployment_process import DeploymentProcess
from engine_process import EngineProcess
from headway.sdk import ids
from http_json import call, get, post, wait_until

Start = Callable[..., EngineProcess]
TRANSPORTS = pytest.mark.parametrize("transport", ["v6", "v7", "h2"])


@pytest.fixture
def start(tmp_path: Path, engine_factory: Callable[..., EngineProcess]) -> Iterator[Start]:
    """Starts app_a and an engine with it registered over `transport`."""
    deployments: list[DeploymentProcess] = []

    def make(transport: str, env: dict[str, str] | None = None) -> EngineProcess:
        deployment = DeploymentProcess("restate_sdk_app:app_a", tmp_path / "app_a.log").start()
        deployments.append(deployment)
        env = dict(env or {})
        if transport == "v6":
            env["HEADWAY_MAX_PROTOCOL_VERSION"] = "6"
        engine = engine_factory(None, env=env).start()
        body = {"uri": deployment.uri, "http2": transport == "h2"}
        status, registered = post(f"{engine.admin}/deployments", body)
        assert status == 201, registered
        return engine

    yield make
    for deployment in deployments:
        deployment.kill()


def journal_types(engine: EngineProcess, service: str, handler: str) -> list[list[str]]:
    """The journal entry types of each invocation of a handler."""
    _, listed = get(f"{engine.admin}/invocations?service={service}")
    out = []
    for summary in listed["invocations"]:
        if summary["target"].endswith(f"/{handler}"):
            _, described = get(f"{engine.admin}/invocations/{summary['id']}")
            out.append([entry["entry_type"] for entry in described["journal"]])
    return out


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def attach(engine: EngineProcess, invocation_id: str) -> tuple[int, Any]:
    return get(f"{engine.ingress}/restate/invocation/{invocation_id}/attach", timeout=30)


def suspended(engine: EngineProcess, invocation_id: str) -> bool:
    return bool(get(f"{engine.admin}/invocations/{invocation_id}")[1]["status"] == "suspended")


# -- lazy state ------------------------------------------------------------------------------


@TRANSPORTS
def test_lazy_state_is_read_from_the_engine(start: Start, transport: str) -> None:
    engine = start(transport)
    url = f"{engine.ingress}/LazyCounter/ada"
    assert post(f"{url}/add", 5) == (
        200, {"before": None, "total": 5, "keys": ["added 5", "count"]}
    )  # fmt: skip
    assert post(f"{url}/add", 3) == (
        200, {"before": 5, "total": 8, "keys": ["added 3", "added 5", "count"]}
    )  # fmt: skip
    assert post(f"{url}/get") == (200, {"count": 8, "keys": ["added 3", "added 5", "count"]})
    assert post(f"{engine.ingress}/LazyCounter/bob/get") == (200, {"count": None, "keys": []})
    # Nothing was sent up front: every read was a lazy command the engine answered.
    for journal in journal_types(engine, "LazyCounter", "add"):
        assert journal == [
            "GetLazyState", "SetState", "SetState", "GetLazyStateKeys",
        ]  # fmt: skip
    assert post(f"{url}/reset") == (200, [])
    assert post(f"{url}/get") == (200, {"count": None, "keys": []})


@pytest.mark.parametrize("transport", ["v7", "h2"])
def test_state_over_the_eager_limit_is_read_lazily(start: Start, transport: str) -> None:
    engine = start(transport, {"HEADWAY_EAGER_STATE_LIMIT": "12"})
    fields = {"a": "1", "b": "22", "c": "333", "d": "4444"}
    assert post(f"{engine.ingress}/Profile/p/fill", fields) == (200, None)
    names = ["a", "b", "c", "d", "e"]
    assert post(f"{engine.ingress}/Profile/p/read", names) == (200, {**fields, "e": None})
    # JSON values: a and b (4 + 5 bytes) fit in 12 bytes and were sent; c would not.
    assert journal_types(engine, "Profile", "read") == [
        ["GetState", "GetState", "GetLazyState", "GetLazyState", "GetLazyState"]
    ]


# -- attaching -------------------------------------------------------------------------------


@TRANSPORTS
def test_a_handler_attaches_to_another_invocation(start: Start, transport: str) -> None:
    engine = start(transport)
    status, accepted = post(f"{engine.ingress}/Sleeper/nap/send", 1500)
    assert status == 202, accepted
    napping = accepted["invocationId"]
    assert post(f"{engine.ingress}/Attacher/attach", napping) == (200, "rested")
    # Once it has completed, attaching answers at once.
    assert post(f"{engine.ingress}/Attacher/attach", napping) == (200, "rested")
    missing = ids.new_invocation_id(7)
    assert post(f"{engine.ingress}/Attacher/attach", missing) == (
        404, {"code": 404, "message": f"invocation not found: {missing}"}
    )  # fmt: skip


def test_an_attached_failure_fails_the_attacher(start: Start, tmp_path: Path) -> None:
    engine = start("v7")
    id_file = tmp_path / "awakeable.txt"
    _, accepted = post(f"{engine.ingress}/Waiter/wait/send", str(id_file))
    waiting = accepted["invocationId"]
    _, attaching = post(f"{engine.ingress}/Attacher/attach/send", waiting)
    wait_until(lambda: suspended(engine, attaching["invocationId"]), what="the attacher waits")
    wait_until(lambda: lines(id_file), what="the awakeable id")
    assert call("PATCH", f"{engine.admin}/invocations/{waiting}/kill")[0] == 202
    assert attach(engine, attaching["invocationId"]) == (409, {"code": 409, "message": "killed"})


# -- signals ---------------------------------------------------------------------------------


@TRANSPORTS
def test_a_named_signal_wakes_its_invocation(start: Start, transport: str, tmp_path: Path) -> None:
    engine = start(transport)
    id_file = tmp_path / "ids.txt"
    _, first = post(f"{engine.ingress}/Signals/await_named/send", str(id_file))
    _, second = post(f"{engine.ingress}/Signals/await_named/send", str(id_file))
    wait_until(lambda: len(lines(id_file)) == 2, what="both invocation ids")
    assert set(lines(id_file)) == {first["invocationId"], second["invocationId"]}
    for invocation_id in (first["invocationId"], second["invocationId"]):
        wait_until(lambda i=invocation_id: suspended(engine, i), what="it waits")
    body = {"id": first["invocationId"], "value": "ann"}
    assert post(f"{engine.ingress}/Signals/send_named", body) == (200, "sent")
    assert attach(engine, first["invocationId"]) == (200, "approved by ann")
    body = {"id": second["invocationId"], "reject": "not you"}
    assert post(f"{engine.ingress}/Signals/send_named", body) == (200, "sent")
    assert attach(engine, second["invocationId"]) == (403, {"code": 403, "message": "not you"})


@TRANSPORTS
def test_an_awakeable_resolved_by_another_handler(
    start: Start, transport: str, tmp_path: Path
) -> None:
    engine = start(transport)
    id_file = tmp_path / "awakeable.txt"
    _, accepted = post(f"{engine.ingress}/Signals/await_awakeable/send", str(id_file))
    awakeable_id = wait_until(lambda: lines(id_file), what="the awakeable id")[0]
    assert awakeable_id.startswith("sign_1")
    body = {"id": awakeable_id, "value": "a handler"}
    assert post(f"{engine.ingress}/Signals/resolve", body) == (200, "resolved")
    assert attach(engine, accepted["invocationId"]) == (200, "woken with a handler")
