"""Headway's own SDK served over the service protocol by `headway serve`, run by an engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from deployment_process import APPS, HeadwayServeProcess
from engine_process import EngineProcess
from http_json import call, get, post, wait_until


@pytest.fixture
def served(
    tmp_path: Path, engine_factory: Callable[..., EngineProcess]
) -> Iterator[tuple[EngineProcess, HeadwayServeProcess]]:
    deployment = HeadwayServeProcess(str(APPS / "headway_served_app.py"), tmp_path / "serve.log")
    deployment.start()
    try:
        engine = engine_factory(None).start()
        status, body = post(f"{engine.admin}/deployments", {"uri": deployment.uri})
        assert status == 201, body
        yield engine, deployment
    finally:
        deployment.kill()


def test_served_services_run_through_the_engine(
    served: tuple[EngineProcess, HeadwayServeProcess], tmp_path: Path
) -> None:
    engine, _ = served
    _, listed = get(f"{engine.admin}/deployments")
    [deployment] = listed["deployments"]
    assert {s["name"]: s["kind"] for s in deployment["services"]} == {
        "Tally": "object", "Chores": "service", "Approval": "workflow", "Doorbell": "service",
        "Shipments": "object", "Holds": "service",
    }  # fmt: skip
    assert post(f"{engine.ingress}/Tally/a/add", 4) == (200, 4)
    assert post(f"{engine.ingress}/Tally/a/add", 3) == (200, 7)
    assert post(f"{engine.ingress}/Tally/a/get") == (200, 7)
    chores_file = tmp_path / "chores.txt"
    result = post(f"{engine.ingress}/Chores/do", {"count": 3, "file": str(chores_file)})
    assert result == (200, ["did 0", "did 1", "did 2", "tally 3"])
    assert chores_file.read_text().splitlines() == ["chore 0", "chore 1", "chore 2"]
    status, accepted = post(f"{engine.ingress}/Approval/car/run/send", "car")
    assert status == 202, accepted
    assert post(f"{engine.ingress}/Approval/car/decide", "approved")[0] == 200
    assert get(f"{engine.ingress}/restate/workflow/Approval/car/attach") == (200, "car: approved")


def test_a_killed_deployment_redoes_only_the_unfinished_step(
    served: tuple[EngineProcess, HeadwayServeProcess], tmp_path: Path
) -> None:
    engine, deployment = served
    chores_file = tmp_path / "chores.txt"
    body = {"count": 3, "file": str(chores_file), "pause": 1.0}
    _, accepted = post(f"{engine.ingress}/Chores/do/send", body)

    def lines() -> list[str]:
        return chores_file.read_text().splitlines() if chores_file.exists() else []

    wait_until(lambda: "chore 1" in lines(), timeout=20, what="chore 1 to start")
    deployment.kill()  # inside chore 1: chore 0 is journaled, chore 1 is not
    deployment.start()
    invocation = f"{engine.ingress}/restate/invocation/{accepted['invocationId']}/attach"
    assert get(invocation, timeout=60) == (200, ["did 0", "did 1", "did 2", "tally 3"])
    assert lines() == ["chore 0", "chore 1", "chore 1", "chore 2"]


def test_an_awakeable_is_a_signal_resolved_over_http(
    served: tuple[EngineProcess, HeadwayServeProcess], tmp_path: Path
) -> None:
    engine, _ = served
    id_file = tmp_path / "awakeable.txt"
    status, accepted = post(f"{engine.ingress}/Doorbell/ring/send", str(id_file))
    assert status == 202, accepted
    wait_until(id_file.exists, what="the awakeable id")
    [awakeable_id] = id_file.read_text().splitlines()
    assert awakeable_id.startswith("sign_1")
    wait_until(
        lambda: (
            get(f"{engine.admin}/invocations/{accepted['invocationId']}")[1]["status"]
            == "suspended"
        ),
        what="the handler to suspend",
    )
    status, _ = post(f"{engine.ingress}/restate/awakeables/{awakeable_id}/resolve", "ada")
    assert status == 202
    invocation = f"{engine.ingress}/restate/invocation/{accepted['invocationId']}/attach"
    assert get(invocation) == (200, "opened by ada")


@pytest.mark.parametrize("wait", ["sleep", "awakeable"])
@pytest.mark.parametrize("where", ["served", "in-process"])
def test_a_cancelled_handler_fails_with_409_after_its_compensation(
    where: str, wait: str, request: pytest.FixtureRequest, tmp_path: Path,
    engine_factory: Callable[..., EngineProcess],
) -> None:  # fmt: skip
    """Cancelling a served handler that waits behaves as cancelling it in-process: what it
    waits on fails with 409 once, its compensating step runs, and it fails as told."""
    if where == "served":
        engine, _ = request.getfixturevalue("served")
    else:
        engine = engine_factory(APPS / "headway_served_app.py").start()
    steps = tmp_path / "steps.txt"
    _, accepted = post(f"{engine.ingress}/Holds/hold/send", {"file": str(steps), "wait": wait})
    invocation_id = accepted["invocationId"]
    wait_until(lambda: steps.exists() and steps.read_text(), what="the seat to be held")
    status, _ = call("PATCH", f"{engine.admin}/invocations/{invocation_id}/cancel")
    assert status == 202
    attach = f"{engine.ingress}/restate/invocation/{invocation_id}/attach"
    assert get(attach, timeout=30) == (409, {"code": 409, "message": "cancelled"})
    assert steps.read_text().splitlines() == ["held", "released"]


def test_the_endpoint_answers_discovery_and_refuses_bad_requests(
    served: tuple[EngineProcess, HeadwayServeProcess],
) -> None:
    _, deployment = served
    accept = {"accept": "application/vnd.restate.endpointmanifest.v3+json"}
    status, manifest = get(f"{deployment.uri}/discover", headers=accept)
    assert status == 200 and manifest["protocolMode"] == "REQUEST_RESPONSE"
    assert (manifest["minProtocolVersion"], manifest["maxProtocolVersion"]) == (5, 6)
    status, body = get(f"{deployment.uri}/discover", headers={"accept": "text/plain"})
    assert status == 415 and "manifest version" in body["message"]
    invoke = f"{deployment.uri}/invoke/Tally/add"
    status, body = post(invoke, raw=b"x", headers={"content-type": "application/json"})
    assert status == 415 and "protocol version" in body["message"]
    v6 = {"content-type": "application/vnd.restate.invocation.v6"}
    status, body = post(invoke, raw=b"\x00\x00\x00\x00\x00\x00\x00\x05ab", headers=v6)
    assert status == 400 and "ended inside a message" in body["message"]
    status, body = post(f"{deployment.uri}/invoke/Nope/x", raw=b"", headers=v6)
    assert status == 404
