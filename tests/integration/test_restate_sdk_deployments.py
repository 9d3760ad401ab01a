"""Services written with the official Restate Python SDK, run by Headway over HTTP.

Each test starts real processes: hypercorn serving `tests/apps/restate_sdk_app.py` on free
loopback ports and a `headway server`; it registers the deployments through the admin API and
calls through the ingress. The crash tests SIGKILL the deployment or the engine mid-handler.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from deployment_process import DeploymentProcess
from engine_process import EngineProcess
from http_json import call, get, post, wait_until

APPS = Path(__file__).parent.parent / "apps"

DeploymentFactory = Callable[..., DeploymentProcess]


@pytest.fixture
def deployment_factory(tmp_path: Path) -> Iterator[DeploymentFactory]:
    started: list[DeploymentProcess] = []

    def make(app: str, port: int | None = None) -> DeploymentProcess:
        name = app.replace(":", "-")
        deployment = DeploymentProcess(app, tmp_path / f"{name}-{len(started)}.log", port)
        started.append(deployment)
        return deployment.start()

    yield make
    for deployment in started:
        deployment.kill()


def register(engine: EngineProcess, uri: str, http2: bool = False) -> tuple[int, Any]:
    return post(f"{engine.admin}/deployments", {"uri": uri, "http2": http2})


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest,
    engine_factory: Callable[..., EngineProcess],
    deployment_factory: DeploymentFactory,
) -> tuple[EngineProcess, DeploymentProcess, DeploymentProcess]:
    """An engine with deployments A (most services) and B (Echo) registered.

    Parametrized indirectly with a protocol version (the engine offers no newer one), or with
    "h2" to register both for HTTP/2 streaming.
    """
    a = deployment_factory("restate_sdk_app:app_a")
    b = deployment_factory("restate_sdk_app:app_b")
    version = getattr(request, "param", None)
    http2 = version == "h2"
    env = {"HEADWAY_MAX_PROTOCOL_VERSION": str(version)} if version and not http2 else None
    engine = engine_factory(None, env=env).start()
    for deployment in (a, b):
        status, body = register(engine, deployment.uri, http2)
        assert status == 201, body
    return engine, a, b


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def attach(engine: EngineProcess, invocation_id: str, timeout: float = 30.0) -> tuple[int, Any]:
    return get(f"{engine.ingress}/restate/invocation/{invocation_id}/attach", timeout=timeout)


BOTH_VERSIONS = pytest.mark.parametrize(
    "cluster", [6, 7, "h2"], indirect=True, ids=["v6", "v7", "h2-v7"]
)


@BOTH_VERSIONS
def test_services_answer_through_the_ingress(cluster: Any, tmp_path: Path) -> None:
    engine, _, _ = cluster
    _, listed = get(f"{engine.admin}/deployments")
    version = int(engine.env.get("HEADWAY_MAX_PROTOCOL_VERSION", "7"))
    assert {d["protocol_version"] for d in listed["deployments"]} == {version}
    assert post(f"{engine.ingress}/Counter/ada/add", 5) == (200, 5)
    assert post(f"{engine.ingress}/Counter/ada/add", 3) == (200, 8)
    assert post(f"{engine.ingress}/Counter/bob/add", 1) == (200, 1)
    assert post(f"{engine.ingress}/Counter/ada/get") == (200, 8)
    steps_file = tmp_path / "steps.txt"
    result = post(f"{engine.ingress}/Steps/run_steps", {"count": 3, "file": str(steps_file)})
    assert result == (200, ["done 0", "done 1", "done 2"])
    assert lines(steps_file) == ["step 0", "step 1", "step 2"]
    # Request/response suspends after each step and replays; a stream delivers the results.
    _, steps_invocations = get(f"{engine.admin}/invocations?service=Steps")
    [steps_run] = steps_invocations["invocations"]
    assert steps_run["attempt"] == (1 if listed["deployments"][0]["http2"] else 4)
    # Greeter runs on deployment A and calls Echo on deployment B.
    assert post(f"{engine.ingress}/Greeter/greet", "ann") == (200, "hello ANN!")
    assert post(f"{engine.ingress}/Sleeper/nap", 300) == (200, "rested")


@BOTH_VERSIONS
def test_workflow_promise_and_awakeable(cluster: Any, tmp_path: Path) -> None:
    engine, _, _ = cluster
    status, accepted = post(f"{engine.ingress}/Signup/ann/run/send", "ann@example.com")
    assert status == 202, accepted
    assert post(f"{engine.ingress}/Signup/ann/confirm", "1234") == (200, "ok")
    assert get(f"{engine.ingress}/restate/workflow/Signup/ann/attach") == (
        200,
        "ann@example.com confirmed with 1234",
    )

    id_file = tmp_path / "awakeable.txt"
    status, accepted = post(f"{engine.ingress}/Waiter/wait/send", str(id_file))
    assert status == 202, accepted
    awakeable_id = wait_until(lambda: lines(id_file), what="the awakeable id")[0]
    assert awakeable_id.startswith("sign_1")
    wait_until(
        lambda: (
            get(f"{engine.admin}/invocations/{accepted['invocationId']}")[1]["status"]
            == "suspended"
        ),
        what="the waiter to suspend",
    )
    status, _ = post(f"{engine.ingress}/restate/awakeables/{awakeable_id}/resolve", "yes")
    assert status == 202
    assert attach(engine, accepted["invocationId"]) == (200, "got yes")


def test_registration_is_idempotent_and_listed(cluster: Any) -> None:
    engine, a, b = cluster
    status, first = get(f"{engine.admin}/deployments")
    assert status == 200 and [d["uri"] for d in first["deployments"]] == [a.uri, b.uri]
    status, again = register(engine, a.uri + "/")
    assert status == 200 and again["id"] == first["deployments"][0]["id"]
    status, described = get(f"{engine.admin}/deployments/{again['id']}")
    assert status == 200 and described["protocol_version"] == 7
    assert {s["name"] for s in described["services"]} == {
        "Counter", "Steps", "Greeter", "Signup", "Waiter", "Sleeper", "Stuck", "LazyCounter",
        "Profile", "Attacher", "Signals",
    }  # fmt: skip
    counter = next(s for s in described["services"] if s["name"] == "Counter")
    assert counter == {
        "name": "Counter",
        "kind": "object",
        "handlers": [{"name": "add", "kind": "exclusive"}, {"name": "get", "kind": "shared"}],
    }
    _, services = get(f"{engine.admin}/services")
    assert "Echo" in {s["name"] for s in services["services"]}


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ftp://127.0.0.1:1", "invalid deployment uri"),
        ("not a uri", "invalid deployment uri"),
        (42, "expected"),
        ("http://127.0.0.1:1", "cannot reach the deployment"),
    ],
)
def test_bad_registrations_are_clear_4xx(
    engine_factory: Callable[..., EngineProcess], uri: Any, message: str
) -> None:
    engine = engine_factory(None).start()
    status, body = register(engine, uri)
    assert status == 400 and message in body["message"], body
    assert set(body) == {"code", "message"}


def test_an_endpoint_without_a_manifest_is_refused(
    engine_factory: Callable[..., EngineProcess],
) -> None:
    engine = engine_factory(None).start()
    status, body = register(engine, engine.admin)  # answers, but 404 on /discover
    assert status == 400 and "/discover answered 404" in body["message"], body
    status, body = call("POST", f"{engine.admin}/deployments", raw=b"{not json")
    assert status == 400 and body["code"] == 400
    assert get(f"{engine.admin}/deployments/dp_1nope") == (
        404,
        {"code": 404, "message": "deployment not found: dp_1nope"},
    )


def test_a_name_clash_with_an_in_process_service_is_409(
    engine_factory: Callable[..., EngineProcess], deployment_factory: DeploymentFactory
) -> None:
    b = deployment_factory("restate_sdk_app:app_b")
    engine = engine_factory(APPS / "inprocess_echo_app.py").start()
    status, body = register(engine, b.uri)
    assert status == 409 and "Echo" in body["message"], body


def test_deployments_survive_a_restart_and_can_be_removed(
    cluster: Any, deployment_factory: DeploymentFactory
) -> None:
    engine, a, b = cluster
    assert post(f"{engine.ingress}/Counter/ada/add", 2) == (200, 2)
    engine.stop()
    engine.start()
    assert post(f"{engine.ingress}/Counter/ada/add", 2) == (200, 4)
    _, listed = get(f"{engine.admin}/deployments")
    b_id = next(d["id"] for d in listed["deployments"] if d["uri"] == b.uri)
    assert call("DELETE", f"{engine.admin}/deployments/{b_id}") == (
        200,
        {"id": b_id, "removed": True},
    )
    status, body = post(f"{engine.ingress}/Echo/shout", "x")
    assert status == 404 and "Echo" in body["message"]
    engine.stop()
    engine.start()
    _, listed = get(f"{engine.admin}/deployments")
    assert [d["uri"] for d in listed["deployments"]] == [a.uri]


def test_in_flight_invocations_stay_on_their_deployment(
    cluster: Any, deployment_factory: DeploymentFactory, tmp_path: Path
) -> None:
    engine, _, _ = cluster
    id_file = tmp_path / "awakeable.txt"
    _, accepted = post(f"{engine.ingress}/Waiter/wait/send", str(id_file))
    old = accepted["invocationId"]
    awakeable_id = wait_until(lambda: lines(id_file), what="the awakeable id")[0]
    # A second revision of the same code at a new address: new invocations go there.
    a2 = deployment_factory("restate_sdk_app:app_a")
    status, second = register(engine, a2.uri)
    assert status == 201, second
    assert "Waiter" in second["latest_for"]
    _, first = get(f"{engine.admin}/invocations/{old}")
    assert first["deployment"] != second["id"]
    _, accepted = post(f"{engine.ingress}/Counter/eve/add/send", 1)
    _, described = get(f"{engine.admin}/invocations/{accepted['invocationId']}")
    assert described["deployment"] == second["id"]
    post(f"{engine.ingress}/restate/awakeables/{awakeable_id}/resolve", "late")
    assert attach(engine, old) == (200, "got late")


BOTH_TRANSPORTS = pytest.mark.parametrize("cluster", [7, "h2"], indirect=True, ids=["http1", "h2"])


@BOTH_TRANSPORTS
def test_cancelling_a_remote_invocation_sends_the_cancel_signal(
    cluster: Any, tmp_path: Path
) -> None:
    engine, _, _ = cluster
    id_file = tmp_path / "awakeable.txt"
    _, accepted = post(f"{engine.ingress}/Waiter/wait/send", str(id_file))
    invocation_id = accepted["invocationId"]
    wait_until(lambda: lines(id_file), what="the awakeable id")
    status, _ = call("PATCH", f"{engine.admin}/invocations/{invocation_id}/cancel")
    assert status == 202
    assert attach(engine, invocation_id) == (409, {"code": 409, "message": "cancelled"})


# -- breaking things ---------------------------------------------------------------------------


@BOTH_TRANSPORTS
def test_a_stuck_handler_is_aborted_and_retried(cluster: Any, tmp_path: Path) -> None:
    engine, _, _ = cluster
    attempts = tmp_path / "attempts.txt"
    _, accepted = post(f"{engine.ingress}/Stuck/hang/send", str(attempts))
    invocation_id = accepted["invocationId"]
    wait_until(lambda: len(lines(attempts)) >= 2, timeout=20, what="a second attempt")
    _, described = get(f"{engine.admin}/invocations/{invocation_id}")
    assert described["retry_count"] >= 1
    assert "Timeout" in described["last_failure"], described["last_failure"]
    status, _ = call("PATCH", f"{engine.admin}/invocations/{invocation_id}/kill")
    assert status == 202
    assert attach(engine, invocation_id) == (409, {"code": 409, "message": "killed"})


@BOTH_VERSIONS
def test_deployment_killed_mid_handler_does_not_redo_completed_steps(
    cluster: Any, deployment_factory: DeploymentFactory, tmp_path: Path
) -> None:
    engine, a, _ = cluster
    steps_file = tmp_path / "steps.txt"
    body = {"count": 4, "file": str(steps_file), "pause": 1.0}
    _, accepted = post(f"{engine.ingress}/Steps/run_steps/send", body)
    wait_until(lambda: "step 1" in lines(steps_file), timeout=20, what="step 1 to start")
    a.kill()  # inside step 1: step 0 is journaled, step 1 is not
    a.start()
    status, result = attach(engine, accepted["invocationId"], timeout=60)
    assert (status, result) == (200, ["done 0", "done 1", "done 2", "done 3"])
    assert lines(steps_file) == ["step 0", "step 1", "step 1", "step 2", "step 3"]
    _, described = get(f"{engine.admin}/invocations/{accepted['invocationId']}")
    assert described["retry_count"] >= 1 and described["status"] == "completed"


@BOTH_TRANSPORTS
def test_engine_killed_mid_invocation_completes_it_exactly_once(
    cluster: Any, tmp_path: Path
) -> None:
    engine, _, _ = cluster
    steps_file = tmp_path / "steps.txt"
    body = {"count": 3, "file": str(steps_file), "pause": 1.0}
    headers = {"idempotency-key": "once"}
    _, accepted = post(f"{engine.ingress}/Steps/run_steps/send", body, headers=headers)
    wait_until(lambda: "step 1" in lines(steps_file), timeout=20, what="step 1 to start")
    engine.kill()
    engine.start()
    status, result = attach(engine, accepted["invocationId"], timeout=60)
    assert (status, result) == (200, ["done 0", "done 1", "done 2"])
    got = lines(steps_file)
    assert got.count("step 0") == 1 and got.count("step 2") == 1, got
    assert got.count("step 1") in (1, 2), got  # redone only if its result was not yet durable
    # The same idempotency key finds the completed invocation; nothing runs again.
    assert post(f"{engine.ingress}/Steps/run_steps", body, headers=headers) == (200, result)
    assert lines(steps_file) == got
    _, listed = get(f"{engine.admin}/invocations?service=Steps")
    assert [i["status"] for i in listed["invocations"]] == ["completed"]


def test_concurrent_counter_adds_are_exact(cluster: Any) -> None:
    engine, _, _ = cluster

    def add() -> None:
        for _ in range(5):
            assert post(f"{engine.ingress}/Counter/busy/add", 1)[0] == 200

    threads = [threading.Thread(target=add) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert post(f"{engine.ingress}/Counter/busy/get") == (200, 20)


def _cli(engine: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HEADWAY_ADMIN_URL": engine.admin}
    return subprocess.run(
        [sys.executable, "-m", "headway.engine", "deployments", *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_cli_registers_lists_describes_and_removes(
    engine_factory: Callable[..., EngineProcess], deployment_factory: DeploymentFactory
) -> None:
    b = deployment_factory("restate_sdk_app:app_b")
    engine = engine_factory(None).start()
    registered = _cli(engine, "register", b.uri, "--http2", "--json")
    assert registered.returncode == 0, registered.stderr
    deployment_id = json.loads(registered.stdout)["id"]
    assert json.loads(registered.stdout)["http2"] is True
    listed = _cli(engine, "list")
    assert listed.returncode == 0 and deployment_id in listed.stdout
    assert listed.stdout.splitlines()[0].split() == ["ID", "URI", "PROTOCOL", "SERVICES"]
    assert "v7 h2" in listed.stdout
    described = _cli(engine, "describe", deployment_id)
    assert "shout(shared)" in described.stdout and b.uri in described.stdout
    assert _cli(engine, "remove", deployment_id).stdout.strip() == f"removed {deployment_id}"
    missing = _cli(engine, "describe", deployment_id)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip() == (
        f"headway: error: GET /deployments/{deployment_id}: 404 deployment not found: "
        f"{deployment_id}"
    )
    bad = _cli(engine, "register", "nope")
    assert bad.returncode == 1 and "invalid deployment uri" in bad.stderr
    assert "Traceback" not in bad.stderr
