"""A real engine process's log lines: JSON objects with HEADWAY_LOG_FORMAT=json, readable text by
default, and a bad value refused with one line before anything starts.

observe_app.py prints nothing, so everything the process writes is its log: the engine's output
file holds its stdout and stderr together, and every line of it must be a log line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from engine_process import EngineProcess
from http_json import get, post

APP = Path(__file__).parent.parent / "apps" / "observe_app.py"
SERVICES = [
    ("Counter", "object", ["add", "hold"]),
    ("Back", "service", ["double"]),
    ("Front", "service", ["relay"]),
    ("Sleeper", "service", ["nap"]),
    ("Approval", "workflow", ["decide", "run"]),
    ("Flaky", "service", ["refuse", "succeed_on"]),
]


def run_one_retried_call(engine: EngineProcess) -> str:
    """Flaky/succeed_on(2) fails its first attempt (an INFO event) and succeeds on the second;
    the engine is stopped cleanly afterwards. Returns the invocation id."""
    status, accepted = post(f"{engine.ingress}/Flaky/succeed_on/send", 2)
    assert status == 202, accepted
    invocation_id: str = accepted["invocationId"]
    assert get(f"{engine.ingress}/restate/invocation/{invocation_id}/attach") == (200, 2)
    engine.stop()
    assert engine.proc is not None and engine.proc.returncode == 0, engine.log()
    return invocation_id


def test_every_line_is_a_json_event_with_its_fields(
    engine_factory: Callable[..., EngineProcess],
) -> None:
    started = datetime.now(UTC)
    engine = engine_factory(APP, env={"HEADWAY_LOG_FORMAT": "json"}).start()
    invocation_id = run_one_retried_call(engine)
    stopped = datetime.now(UTC)

    events: list[dict[str, Any]] = [json.loads(line) for line in engine.log().splitlines()]
    for event in events:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["time"]), event
        moment = datetime.fromisoformat(event.pop("time"))
        assert started - timedelta(seconds=1) <= moment <= stopped + timedelta(seconds=1)
    [ready] = [e for e in events if e["message"] == "ready"]
    assert isinstance(ready["recovery_ms"], int) and 0 <= ready["recovery_ms"] < 20_000
    data_dir = str(engine.data_dir.resolve())
    start_up = {"level": "INFO", "logger": "headway"}
    assert events == [
        {**start_up, "message": "opening", "data_dir": data_dir},
        {**start_up, "message": "ingress", "url": engine.ingress},
        {**start_up, "message": "admin", "url": engine.admin},
        *[
            {**start_up, "message": "serving", "service": name, "kind": kind,
             "handlers": handlers}
            for name, kind, handlers in SERVICES
        ],
        {**start_up, "message": "ready", "data_dir": data_dir,
         "recovery_ms": ready["recovery_ms"], "resumed": 0},
        {"level": "INFO", "logger": "headway.invoker",
         "message": f"{invocation_id} attempt 1 failed: RuntimeError: attempt 1 fails",
         "invocation_id": invocation_id, "attempt": 1},
        {**start_up, "message": "shutting down"},
    ]  # fmt: skip


def test_text_lines_by_default(engine_factory: Callable[..., EngineProcess]) -> None:
    engine = engine_factory(APP).start()
    invocation_id = run_one_retried_call(engine)

    data_dir = engine.data_dir.resolve()
    lines = engine.log().splitlines()
    for line in lines:
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO headway", line), line
    without_time = [line.split(" ", 1)[1] for line in lines]
    ready = re.fullmatch(
        rf"INFO headway: ready data_dir={data_dir} recovery_ms=\d+ resumed=0", without_time[-3]
    )
    assert ready, without_time[-3]
    assert without_time == [
        f"INFO headway: opening data_dir={data_dir}",
        f"INFO headway: ingress url={engine.ingress}",
        f"INFO headway: admin url={engine.admin}",
        *[
            f"INFO headway: serving service={name} kind={kind} "
            f"handlers={json.dumps(handlers, separators=(',', ':'))}"
            for name, kind, handlers in SERVICES
        ],
        ready.group(0),
        f"INFO headway.invoker: {invocation_id} attempt 1 failed: RuntimeError: attempt 1 fails"
        f" invocation_id={invocation_id} attempt=1",
        "INFO headway: shutting down",
    ]


@pytest.mark.parametrize(
    ("option", "env", "error"),
    [
        (["--log-format", "xml"], {},
         "headway: error: option: log_format must be one of text, json, got 'xml'"),
        ([], {"HEADWAY_LOG_LEVEL": "loud"},
         "headway: error: HEADWAY_LOG_LEVEL: log_level must be one of debug, info, warning, "
         "error, got 'loud'"),
    ],
)  # fmt: skip
def test_a_bad_value_stops_the_engine_with_one_line(
    tmp_path: Path, option: list[str], env: dict[str, str], error: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "headway.engine", "dev", str(APP),
         "--data-dir", str(tmp_path / "data"), *option],
        capture_output=True, text=True, timeout=30, env={**os.environ, **env},
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (1, "", error + "\n")
    assert not (tmp_path / "data").exists()
