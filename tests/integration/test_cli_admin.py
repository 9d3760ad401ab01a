"""The command line against a real engine: every admin capability, errors, completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from engine_process import EngineProcess, free_port
from http_json import get, post, wait_until

APP = Path(__file__).parent.parent / "apps" / "observe_app.py"


def headway(admin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headway.engine", *args],
        env={**os.environ, "HEADWAY_ADMIN_URL": admin},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


@pytest.fixture
def engine(engine_factory: Any) -> EngineProcess:
    started: EngineProcess = engine_factory(APP, env={"HEADWAY_SUSPEND_AFTER": "0.2"}).start()
    return started


def test_admin_commands(engine: EngineProcess) -> None:
    assert post(engine.ingress + "/Counter/ada/add", 5) == (200, 5)
    _, sent = post(engine.ingress + "/Sleeper/nap/send", 3600)
    napping = sent["invocationId"]
    wait_until(
        lambda: get(f"{engine.admin}/invocations/{napping}")[1]["status"] == "suspended",
        what="suspension",
    )

    listed = headway(engine.admin, "invocations", "list", "--status", "suspended")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "TARGET", "STATUS", "RETRY_COUNT", "LAST_FAILURE"]
    assert [line.split() for line in lines[1:]] == [[napping, "Sleeper/nap", "suspended", "0"]]

    done = headway(engine.admin, "state", "set", "Counter", "ada", '{"total": 9, "note": "x"}')
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["NAME   VALUE", 'note   "x"  ', "total  9    "]
    assert post(engine.ingress + "/Counter/ada/add", 1) == (200, 10)

    done = headway(engine.admin, "health")
    assert (done.returncode, done.stdout) == (0, "ok\n")
    done = headway(engine.admin, "metrics")
    assert done.returncode == 0
    assert 'headway_invocations_started_total{handler="add",service="Counter"} 2.0' in done.stdout

    done = headway(engine.admin, "invocations", "cancel", napping)
    assert (done.returncode, done.stdout) == (0, f"cancel requested for {napping}\n")
    wait_until(
        lambda: get(f"{engine.admin}/invocations/{napping}")[1]["status"] == "completed",
        what="the cancellation",
    )


def test_errors_are_one_line_with_exit_code_1(engine: EngineProcess) -> None:
    done = headway(engine.admin, "invocations", "describe", "inv_missing")
    assert done.returncode == 1
    assert done.stderr == (
        "headway: error: GET /invocations/inv_missing: 404 invocation not found: inv_missing\n"
    )
    done = headway(engine.admin, "state", "set", "Counter", "ada", "{not json")
    assert done.returncode == 1
    assert done.stderr.startswith("headway: error: STATE is not JSON: ")
    unreachable = f"http://127.0.0.1:{free_port()}"
    prefix = f"headway: error: cannot reach the admin API at {unreachable}:"
    for args in (["health"], ["metrics"], ["sql", "select 1"], ["services", "list"]):
        done = headway(unreachable, *args)
        assert done.returncode == 1, args
        assert done.stderr.startswith(prefix)
        assert done.stderr.count("\n") == 1
    done = headway(unreachable, "invocations", "frobnicate")
    assert done.returncode == 2  # usage errors: argparse's code


def test_bash_completion() -> None:
    script = headway("http://unused", "completion", "bash")
    assert script.returncode == 0

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in ("headway", *words))
        done = subprocess.run(
            ["bash", "-c", f'{script.stdout}\nCOMP_WORDS=({line}); COMP_CWORD={len(words)}; '
             '_headway; printf "%s\\n" "${COMPREPLY[@]}"'],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        return done.stdout.split()

    assert complete("invocations", "l") == ["list"]
    assert complete("invocations", "list", "--st") == ["--status"]
    assert complete("sq") == ["sql"]
    assert complete("completion", "") == ["--help", "bash", "zsh"]
    assert complete("state", "") == ["--help", "get", "set"]
    assert "invocations" in complete("")


def test_invocations_list_by_key(engine: EngineProcess) -> None:
    """`--key` keeps one virtual object's invocations (the key travels URL-encoded)."""
    assert post(engine.ingress + "/Counter/ada/add", 1) == (200, 1)
    assert post(engine.ingress + "/Counter/a%20b%26c/add", 2) == (200, 2)
    assert post(engine.ingress + "/Counter/a%20b%26c/add", 3) == (200, 5)

    listed = headway(engine.admin, "invocations", "list", "--key", "a b&c", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(row["target"], row["key"]) for row in rows] == [("Counter/a b&c/add", "a b&c")] * 2

    status, body = get(f"{engine.admin}/invocations?key=ada")
    assert status == 200
    assert [row["target"] for row in body["invocations"]] == ["Counter/ada/add"]
    status, body = get(f"{engine.admin}/invocations?key=nobody")
    assert (status, body["invocations"]) == (200, [])
