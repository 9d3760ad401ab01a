"""Every example over real HTTP against a real engine process, normally and in always-replay.

In always-replay mode (`HEADWAY_ALWAYS_REPLAY=1`) the engine suspends and replays each
invocation after every step, so these tests also check that the examples are deterministic
and that no journaled side effect runs twice. Idle waiting attempts suspend after 0.2 s.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from conftest import EXAMPLES
from engine_process import EngineProcess

T = TypeVar("T")
Start = Callable[[str], EngineProcess]
LOG_LINE_START = re.compile(r"(?=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [A-Z]+ headway)")

MODES = {
    "normal": {"HEADWAY_ALWAYS_REPLAY": "0", "HEADWAY_SUSPEND_AFTER": "0.2"},
    "always-replay": {"HEADWAY_ALWAYS_REPLAY": "1", "HEADWAY_SUSPEND_AFTER": "0.2"},
}


@pytest.fixture(params=sorted(MODES))
def start_example(
    request: pytest.FixtureRequest, engine_factory: Callable[..., EngineProcess]
) -> Start:
    """Starts an engine running one example file, in the mode this test is parametrized with."""

    def start(example: str) -> EngineProcess:
        return engine_factory(EXAMPLES / example, env=MODES[request.param]).start()

    return start


def http(method: str, url: str, body: object = None, raw: bytes | None = None) -> tuple[int, Any]:
    """One request; returns the status and the decoded JSON body (None when empty)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            status, payload = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    return status, json.loads(payload) if payload else None


def post(url: str, body: object = None) -> tuple[int, Any]:
    return http("POST", url, body)


def get(url: str) -> tuple[int, Any]:
    return http("GET", url)


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 15.0) -> T:
    """Polls `probe` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None and value is not False:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def log_lines(engine: EngineProcess, prefix: str) -> list[str]:
    """The lines of the engine's output that start with `prefix` (examples print effects).

    A SIGKILL can cut a printed line before its newline; the restarted engine's first log line
    then continues it, so log lines (`TIME LEVEL headway...: ...`) are split off first.
    """
    text = LOG_LINE_START.sub("\n", engine.log())
    return [line for line in text.splitlines() if line.startswith(prefix)]


# -- signup_workflow.py ----------------------------------------------------------------------


def emailed_secret(engine: EngineProcess, user: str) -> str:
    """The secret in the verification email the workflow printed for `user`."""
    pattern = re.compile(rf"^\[email\] to \S+: verify at \S+/Signup/{user}/click (\S+)$")

    def probe() -> str | None:
        for line in engine.log().splitlines():
            match = pattern.match(line)
            if match:
                return match.group(1)
        return None

    return wait_for(probe, f"the verification email of {user}")


def test_signup_workflow_runs_once_and_verifies(start_example: Start) -> None:
    engine = start_example("signup_workflow.py")
    base = engine.ingress + "/Signup/ada"
    status, accepted = post(base + "/run/send", "ada@example.com")
    assert status == 202 and accepted["invocationId"].startswith("inv_1")
    secret = emailed_secret(engine, "ada")

    # A second run for the same id attaches to the first one instead of starting another.
    second: dict[str, tuple[int, Any]] = {}
    attacher = threading.Thread(
        target=lambda: second.setdefault("run", post(base + "/run", "other@example.com"))
    )
    attacher.start()
    time.sleep(0.3)  # long enough for the waiting attempt to suspend
    assert get(engine.ingress + "/restate/workflow/Signup/ada/output")[0] == 470

    assert post(base + "/click", secret) == (200, "thanks for clicking")
    expected = {"user": "ada", "email": "ada@example.com", "verified": True}
    assert get(engine.ingress + "/restate/workflow/Signup/ada/attach") == (200, expected)
    attacher.join(20)
    assert second["run"] == (200, expected)

    # Completed: run again returns the stored result; the output is there; nothing re-ran.
    assert post(base + "/run", "other@example.com") == (200, expected)
    assert post(base + "/run/send", "other@example.com")[1]["status"] == "PreviouslyAccepted"
    assert get(engine.ingress + "/restate/workflow/Signup/ada/output") == (200, expected)
    assert get(engine.ingress + f"/restate/invocation/{accepted['invocationId']}/output") == (
        200,
        expected,
    )
    assert log_lines(engine, "[db] created user") == ["[db] created user ada <ada@example.com>"]
    assert len(log_lines(engine, "[email] to ada@example.com")) == 1
    # The promise is resolved once; a second click is refused.
    status, body = post(base + "/click", secret)
    assert status == 409 and body["message"] == "promise already completed"


def test_signup_workflow_wrong_secret_across_a_crash(start_example: Start) -> None:
    engine = start_example("signup_workflow.py")
    assert post(engine.ingress + "/Signup/bob/run/send", "bob@example.com")[0] == 202
    secret = emailed_secret(engine, "bob")
    time.sleep(0.3)  # suspended on the promise
    engine.kill()  # SIGKILL while the workflow waits; it resumes from its journal
    engine.start()
    assert post(engine.ingress + "/Signup/bob/click", secret + "-forged") == (
        200,
        "thanks for clicking",
    )
    expected = {"user": "bob", "email": "bob@example.com", "verified": False}
    assert get(engine.ingress + "/restate/workflow/Signup/bob/attach") == (200, expected)
    assert len(log_lines(engine, "[db] created user bob")) == 1
    assert len(log_lines(engine, "[email] to bob@example.com")) == 1


# -- awakeable.py ----------------------------------------------------------------------------


def pending_awakeable(engine: EngineProcess, key: str) -> str:
    """The id the handler waiting for `key` stored, once it is there."""
    url = f"{engine.ingress}/Approvals/{key}/pending_id"
    awakeable_id: str = wait_for(lambda: post(url)[1], f"the awakeable id of {key}")
    return awakeable_id


def test_awakeable_resolved_and_rejected_over_http(start_example: Start) -> None:
    engine = start_example("awakeable.py")
    approvals = engine.ingress + "/Approvals"

    status, accepted = post(approvals + "/order-7/request/send", "refund 20 EUR")
    assert status == 202
    awakeable_id = pending_awakeable(engine, "order-7")
    assert re.fullmatch(r"(sign|prom)_1[A-Za-z0-9_-]+", awakeable_id)
    time.sleep(0.3)  # let the waiting attempt suspend
    url = f"{engine.ingress}/restate/awakeables/{awakeable_id}/resolve"
    assert http("POST", url, "alice")[0] == 202
    attach = f"{engine.ingress}/restate/invocation/{accepted['invocationId']}/attach"
    assert get(attach) == (200, "refund 20 EUR: approved by alice")
    assert post(approvals + "/order-7/pending_id") == (200, None)

    status, accepted = post(approvals + "/order-8/request/send", "refund 900 EUR")
    awakeable_id = pending_awakeable(engine, "order-8")
    url = f"{engine.ingress}/restate/awakeables/{awakeable_id}/reject"
    assert http("POST", url, raw=b"too expensive")[0] == 202
    attach = f"{engine.ingress}/restate/invocation/{accepted['invocationId']}/attach"
    assert get(attach) == (200, "refund 900 EUR: rejected (too expensive)")

    # A malformed id is refused.
    bogus = f"{engine.ingress}/restate/awakeables/sign_1nope/resolve"
    assert http("POST", bogus, "x")[0] == 400


# -- saga.py ---------------------------------------------------------------------------------

SAGA_CASES: list[tuple[str | None, int, Any, list[str]]] = [
    (
        None,
        200,
        {"flight": "FL-t0", "hotel": "HT-t0", "payment": "PAY-t0"},
        ["booked FL-t0", "booked HT-t0", "booked PAY-t0"],
    ),
    ("flight", 409, {"code": 409, "message": "no seats left on the flight"}, []),
    (
        "hotel",
        409,
        {"code": 409, "message": "no rooms left at the hotel"},
        ["booked FL-t2", "cancelled FL-t2"],
    ),
    (
        "payment",
        402,
        {"code": 402, "message": "payment declined"},
        ["booked FL-t3", "booked HT-t3", "cancelled HT-t3", "cancelled FL-t3"],
    ),
]


def test_saga_runs_exact_compensations_in_reverse(start_example: Start) -> None:
    engine = start_example("saga.py")
    for i, (fail_at, status, body, events) in enumerate(SAGA_CASES):
        request = {} if fail_at is None else {"fail_at": fail_at}
        assert post(f"{engine.ingress}/Trips/t{i}/book", request) == (status, body), fail_at
        assert post(f"{engine.ingress}/Trips/t{i}/events") == (200, events), fail_at
    # Each booking and cancellation happened exactly once, in this order, across all trips.
    assert log_lines(engine, "[saga]") == [
        f"[saga] {event}" for _, _, _, events in SAGA_CASES for event in events
    ]
    assert post(f"{engine.ingress}/Trips/t9/book", {"fail_at": "moon"})[0] == 400
    assert post(f"{engine.ingress}/Trips/t9/events") == (200, [])


# -- periodic_job.py -------------------------------------------------------------------------


def job_status(engine: EngineProcess, job: str) -> dict[str, Any]:
    status, body = post(f"{engine.ingress}/Jobs/{job}/status")
    assert status == 200
    return body  # type: ignore[no-any-return]


def test_periodic_job_runs_exactly_max_runs(start_example: Start) -> None:
    engine = start_example("periodic_job.py")
    started = post(f"{engine.ingress}/Jobs/report/start", {"max_runs": 3, "interval_ms": 100})
    assert started == (200, "started report: 3 runs every 100 ms")
    wait_for(lambda: not job_status(engine, "report")["active"], "the job to finish")
    time.sleep(0.4)  # a fourth run would have happened by now
    assert job_status(engine, "report") == {
        "runs": 3,
        "max_runs": 3,
        "active": False,
        "last": "report run 3 done",
    }
    assert log_lines(engine, "[job] report:") == [f"[job] report: run {i}" for i in (1, 2, 3)]


def test_periodic_job_survives_a_crash(start_example: Start) -> None:
    engine = start_example("periodic_job.py")
    assert (
        post(f"{engine.ingress}/Jobs/nightly/start", {"max_runs": 4, "interval_ms": 150})[0] == 200
    )
    wait_for(lambda: job_status(engine, "nightly")["runs"] >= 1, "the first run")
    engine.kill()  # the next tick is a durable timer: it fires after the restart
    engine.start()
    wait_for(lambda: not job_status(engine, "nightly")["active"], "the job to finish")
    time.sleep(0.3)
    assert job_status(engine, "nightly")["runs"] == 4
    # A run cut off by the kill before its step was journaled may print twice, never skip.
    runs = log_lines(engine, "[job] nightly:")
    assert sorted(set(runs)) == [f"[job] nightly: run {i}" for i in (1, 2, 3, 4)]


def test_periodic_job_stop_and_restart(start_example: Start) -> None:
    engine = start_example("periodic_job.py")
    jobs = f"{engine.ingress}/Jobs/sync"
    assert post(jobs + "/start", {"max_runs": 1000, "interval_ms": 100})[0] == 200
    wait_for(lambda: job_status(engine, "sync")["runs"] >= 2, "two runs")
    status, runs = post(jobs + "/stop")
    assert status == 200 and runs >= 2
    time.sleep(0.4)  # the tick scheduled before the stop fires and does nothing
    assert job_status(engine, "sync")["runs"] == runs
    assert len(log_lines(engine, "[job] sync:")) == runs

    # Restarting begins a new generation: the old chain stays dead, the new one runs twice.
    assert post(jobs + "/start", {"max_runs": 2, "interval_ms": 100})[0] == 200
    wait_for(lambda: not job_status(engine, "sync")["active"], "the restarted job to finish")
    time.sleep(0.3)
    assert job_status(engine, "sync") == {
        "runs": 2,
        "max_runs": 2,
        "active": False,
        "last": "sync run 2 done",
    }
    assert len(log_lines(engine, "[job] sync:")) == runs + 2


# -- fan_out.py ------------------------------------------------------------------------------


def test_fan_out_gathers_every_result(start_example: Start) -> None:
    engine = start_example("fan_out.py")
    items = list(range(1, 11))
    expected = {"results": [x * x for x in items], "total": 385}
    assert post(engine.ingress + "/FanOut/process", items) == (200, expected)
    assert post(engine.ingress + "/FanOut/process", [7, -3, 0]) == (
        200,
        {"results": [49, 9, 0], "total": 58},
    )
    assert post(engine.ingress + "/FanOut/process", []) == (200, {"results": [], "total": 0})
    assert post(engine.ingress + "/Worker/square", 12) == (200, 144)
