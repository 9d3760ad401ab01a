"""SQL over a real engine's store: `POST /query` and `headway sql` against real invocations."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from engine_process import EngineProcess
from http_json import call, post, wait_until

APP = Path(__file__).parent.parent / "apps" / "observe_app.py"


def query(engine: EngineProcess, sql: str) -> list[dict[str, Any]]:
    status, body = post(engine.admin + "/query", {"query": sql})
    assert status == 200, body
    return body["rows"]  # type: ignore[no-any-return]


def invocation_status(engine: EngineProcess, invocation_id: str) -> str:
    rows = query(engine, f"select status from sys_invocation where id = '{invocation_id}'")
    return rows[0]["status"] if rows else ""  # type: ignore[no-any-return]


@pytest.fixture
def engine(engine_factory: Any) -> EngineProcess:
    started: EngineProcess = engine_factory(APP, env={"HEADWAY_SUSPEND_AFTER": "0.2"}).start()
    return started


def test_invocations_journal_and_state_rows(engine: EngineProcess) -> None:
    assert post(engine.ingress + "/Counter/ada/add", 5) == (200, 5)
    assert post(engine.ingress + "/Counter/ada/add", 3) == (200, 8)
    assert post(engine.ingress + "/Front/relay", 20) == (200, 41)
    _, sent = post(engine.ingress + "/Sleeper/nap/send", 3600)
    napping = sent["invocationId"]
    wait_until(lambda: invocation_status(engine, napping) == "suspended", what="suspension")

    rows = query(
        engine,
        "select target, target_service_name, target_service_key, target_handler_name,"
        " target_service_ty, status, retry_count, journal_size,"
        " invoked_by_id is not null as called, completion_result, completion_failure,"
        " pinned_deployment_id, idempotency_key from sys_invocation"
        " order by created_at, called, target",
    )
    common = {"retry_count": 0, "pinned_deployment_id": None,
              "idempotency_key": None, "completion_failure": None}  # fmt: skip
    done = {**common, "status": "completed", "completion_result": "success"}
    assert rows == [
        {**done, "target": "Counter/ada/add", "target_service_name": "Counter",
         "target_service_key": "ada", "target_handler_name": "add",
         "target_service_ty": "virtual_object", "journal_size": 2, "called": False},
        {**done, "target": "Counter/ada/add", "target_service_name": "Counter",
         "target_service_key": "ada", "target_handler_name": "add",
         "target_service_ty": "virtual_object", "journal_size": 2, "called": False},
        {**done, "target": "Front/relay", "target_service_name": "Front",
         "target_service_key": None, "target_handler_name": "relay",
         "target_service_ty": "service", "journal_size": 1, "called": False},
        {**done, "target": "Back/double", "target_service_name": "Back",
         "target_service_key": None, "target_handler_name": "double",
         "target_service_ty": "service", "journal_size": 0, "called": True},
        {**common, "target": "Sleeper/nap", "target_service_name": "Sleeper",
         "target_service_key": None, "target_handler_name": "nap",
         "target_service_ty": "service", "status": "suspended", "journal_size": 1,
         "called": False, "completion_result": None},
    ]  # fmt: skip

    # Front/relay may have suspended while Back ran (a second attempt); the others cannot.
    attempts = query(engine, "select target, last_attempt from sys_invocation order by target")
    assert [(a["target"], a["last_attempt"]) for a in attempts if a["target"] != "Front/relay"] == [
        ("Back/double", 1), ("Counter/ada/add", 1), ("Counter/ada/add", 1), ("Sleeper/nap", 1)
    ]  # fmt: skip

    relay, double = query(
        engine,
        "select id, invoked_by_id from sys_invocation where target_service_name in"
        " ('Front', 'Back') order by target_service_name desc",
    )
    assert double["invoked_by_id"] == relay["id"]

    journal = query(
        engine,
        "select i.target, j.index, j.entry_type, j.name, j.completed, j.entry_json"
        " from sys_journal j join sys_invocation i using (id)"
        " where i.target_service_name <> 'Sleeper'"
        " order by i.created_at, i.modified_at, j.id, j.index",
    )
    assert journal == [
        {"target": "Counter/ada/add", "index": 0, "entry_type": "GetState", "name": "total",
         "completed": True, "entry_json": '{"type": "GetState", "name": "total", "value": null}'},
        {"target": "Counter/ada/add", "index": 1, "entry_type": "SetState", "name": "total",
         "completed": True, "entry_json": '{"type": "SetState", "name": "total", "value": "5"}'},
        {"target": "Counter/ada/add", "index": 0, "entry_type": "GetState", "name": "total",
         "completed": True, "entry_json": '{"type": "GetState", "name": "total", "value": "5"}'},
        {"target": "Counter/ada/add", "index": 1, "entry_type": "SetState", "name": "total",
         "completed": True, "entry_json": '{"type": "SetState", "name": "total", "value": "8"}'},
        {"target": "Front/relay", "index": 0, "entry_type": "Call", "name": None,
         "completed": True, "entry_json": journal[4]["entry_json"]},
    ]  # fmt: skip
    assert '"target": "Back/double"' in journal[4]["entry_json"]
    assert '"result": {"value": "40"}' in journal[4]["entry_json"]
    assert '"headers": {}' in journal[4]["entry_json"]  # no trace context unless tracing
    (sleep,) = query(engine, f"select entry_type, completed from sys_journal where id='{napping}'")
    assert sleep == {"entry_type": "Sleep", "completed": False}

    assert query(engine, "select * from state") == [
        {"service_name": "Counter", "service_key": "ada", "key": "total", "value_utf8": "8",
         "value": base64.b64encode(b"8").decode()}
    ]  # fmt: skip


def test_promises_keyed_status_inbox_and_services(engine: EngineProcess) -> None:
    _, sent = post(engine.ingress + "/Approval/a1/run/send", "invoice")
    run_id = sent["invocationId"]
    wait_until(lambda: invocation_status(engine, run_id) == "suspended", what="suspension")
    assert query(engine, "select * from sys_promise") == [
        {"service_name": "Approval", "service_key": "a1", "key": "decision", "completed": False,
         "completion_success_value": None, "completion_success_value_utf8": None,
         "completion_failure": None}
    ]  # fmt: skip
    assert query(engine, "select * from sys_keyed_service_status") == [
        {"service_name": "Approval", "service_key": "a1", "invocation_id": run_id}
    ]
    assert query(engine, "select * from sys_inbox") == []
    assert post(engine.ingress + "/Approval/a1/decide", "yes") == (200, None)
    assert call("GET", engine.ingress + "/restate/workflow/Approval/a1/attach") == (
        200, "invoice: yes"
    )  # fmt: skip
    (promise,) = query(
        engine, "select key, completed, completion_success_value_utf8 from sys_promise"
    )
    assert promise == {
        "key": "decision",
        "completed": True,
        "completion_success_value_utf8": '"yes"',
    }
    assert query(engine, "select * from sys_keyed_service_status") == []

    services = query(
        engine, "select name, ty, public, handlers, deployment_id from sys_service order by name"
    )
    assert services == [
        {"name": "Approval", "ty": "workflow", "public": True, "handlers": ["decide", "run"],
         "deployment_id": None},
        {"name": "Back", "ty": "service", "public": True, "handlers": ["double"],
         "deployment_id": None},
        {"name": "Counter", "ty": "virtual_object", "public": True, "handlers": ["add", "hold"],
         "deployment_id": None},
        {"name": "Flaky", "ty": "service", "public": True, "handlers": ["refuse", "succeed_on"],
         "deployment_id": None},
        {"name": "Front", "ty": "service", "public": True, "handlers": ["relay"],
         "deployment_id": None},
        {"name": "Sleeper", "ty": "service", "public": True, "handlers": ["nap"],
         "deployment_id": None},
    ]  # fmt: skip


def test_arrow_stream_and_errors(engine: EngineProcess) -> None:
    assert post(engine.ingress + "/Counter/bob/add", 2) == (200, 2)
    import urllib.request

    req = urllib.request.Request(
        engine.admin + "/query", method="POST",
        data=b'{"query": "select service_key, value_utf8 from state"}',
        headers={"accept": "application/vnd.apache.arrow.stream"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["content-type"] == "application/vnd.apache.arrow.stream"
        result = pa.ipc.open_stream(resp.read()).read_all()
    assert result.to_pylist() == [{"service_key": "bob", "value_utf8": "2"}]

    status, body = post(engine.admin + "/query", {"query": "selec 1"})
    assert status == 400 and body["code"] == 400
    assert body["message"].startswith('Parser Error: syntax error at or near "selec"')
    status, body = post(engine.admin + "/query", {"query": "select * from nope"})
    assert (status, body["code"]) == (400, 400)
    assert "Table with name nope does not exist" in body["message"]
    status, body = post(
        engine.admin + "/query", {"query": "select * from read_text('/etc/hostname')"}
    )
    assert status == 400 and "disabled by configuration" in body["message"]
    assert post(engine.admin + "/query", {"sql": "select 1"})[0] == 400


def test_cli(engine: EngineProcess) -> None:
    assert post(engine.ingress + "/Counter/ada/add", 7) == (200, 7)
    env = {**os.environ, "HEADWAY_ADMIN_URL": engine.admin}

    def headway(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "headway.engine", *args],
            env=env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    done = headway("sql", "select service_name, service_key, key, value_utf8 from state")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "SERVICE_NAME  SERVICE_KEY  KEY    VALUE_UTF8",
        "Counter       ada          total  7         ",
        "(1 row)",
    ]
    done = headway("sql", "--json", "select key, value_utf8 from state")
    assert done.returncode == 0 and done.stdout.strip() == (
        '[\n  {\n    "key": "total",\n    "value_utf8": "7"\n  }\n]'
    )
    done = headway("sql", "selec 1")
    assert done.returncode == 1
    assert done.stderr == (
        'headway: error: POST /query: 400 Parser Error: syntax error at or near "selec"\n'
    )
