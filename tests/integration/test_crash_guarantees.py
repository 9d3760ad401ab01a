"""Durability guarantees proven by SIGKILLing real engine processes mid-work.

Every test here runs `headway dev tests/apps/guarantees_app.py` in a subprocess, kills it with
SIGKILL (no shutdown code runs) at a chosen moment, restarts it on the same data directory and
checks exact results: totals, file contents, timer fire times, invocation statuses.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from engine_process import EngineProcess
from http_json import call, get, post, wait_until

APP = Path(__file__).parent.parent / "apps" / "guarantees_app.py"


def describe(engine: EngineProcess, invocation_id: str) -> dict[str, Any]:
    """The admin API's view of one invocation, journal included."""
    status, body = get(f"{engine.admin}/invocations/{invocation_id}")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def journal_types(engine: EngineProcess, invocation_id: str) -> list[str]:
    return [e["entry_type"] for e in describe(engine, invocation_id)["journal"]]


def wait_status(engine: EngineProcess, invocation_id: str, status: str) -> None:
    """Waits until the admin API reports the invocation in `status`."""

    def reached() -> bool:
        return describe(engine, invocation_id)["status"] == status

    wait_until(reached, what=f"{invocation_id} to be {status}")


def send(engine: EngineProcess, path: str, body: Any) -> str:
    """Fire-and-forget; returns the new invocation's id."""
    status, accepted = post(f"{engine.ingress}{path}/send", body)
    assert status == 202, accepted
    return str(accepted["invocationId"])


# -- 1. exact counters under repeated SIGKILL --------------------------------------------------


async def _add_until_ok(
    session: aiohttp.ClientSession,
    url: str,
    delta: int,
    key: str,
    oddities: list[str],
    retried: set[str] | None = None,
) -> int:
    """POSTs one add with its idempotency key until it gets a 200; returns the new total.

    Keys that needed more than one try (the engine died under them) are added to `retried`.
    """
    while True:
        try:
            async with session.post(
                url, json=delta, headers={"idempotency-key": key},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as resp:  # fmt: skip
                if resp.status == 200:
                    return int(await resp.json())
                oddities.append(f"{key}: HTTP {resp.status} {await resp.text()}")
        except TimeoutError:
            oddities.append(f"{key}: no answer within 30 s")
        except aiohttp.ClientError:
            # The engine is down or was killed mid-request: ask again when it is back.
            if retried is not None:
                retried.add(key)
        await asyncio.sleep(0.05)


async def test_counter_totals_exact_after_repeated_sigkill(engine_factory: Any) -> None:
    """32 clients add with idempotency keys while the engine is SIGKILLed 4 times.

    Proves: every accepted add is applied exactly once (totals exact), adds on one key are
    serial (each response is the previous total plus its own delta), and an idempotency key's
    answer never changes (re-asked after one more kill, every response is the same).
    """
    engine: EngineProcess = engine_factory(APP).start()
    clients, per_client, counters = 32, 25, 4
    rng = random.Random(20240501)
    plan = [
        [(f"k{c % counters}", f"client{c}-add{i}", rng.randint(1, 9)) for i in range(per_client)]
        for c in range(clients)
    ]
    total_requests = clients * per_client
    answers: dict[str, int] = {}
    oddities: list[str] = []
    kills: list[int] = []
    retried: set[str] = set()

    async def client(session: aiohttp.ClientSession, requests: list[tuple[str, str, int]]) -> None:
        for counter, key, delta in requests:
            url = f"{engine.ingress}/Counter/{counter}/add"
            answers[key] = await _add_until_ok(session, url, delta, key, oddities, retried)

    async def killer() -> None:
        for fraction in (0.1, 0.3, 0.55, 0.8):
            while len(answers) < fraction * total_requests:
                await asyncio.sleep(0.005)
            kills.append(len(answers))
            await asyncio.to_thread(engine.kill)
            await asyncio.sleep(0.2)
            await asyncio.to_thread(engine.start)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.wait_for(
            asyncio.gather(killer(), *(client(session, p) for p in plan)), timeout=120
        )
        assert len(kills) == 4
        assert all(0 < k < total_requests for k in kills), kills
        assert oddities == []
        # The kills hit live traffic: many requests lost their connection and were re-sent.
        assert len(retried) >= 32, len(retried)

    # One more kill after the traffic: everything answered must have been durable.
    engine.kill()
    engine.start()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for c in range(counters):
            expected = sum(d for p in plan for counter, _, d in p if counter == f"k{c}")
            async with session.post(f"{engine.ingress}/Counter/k{c}/get") as resp:
                assert (resp.status, await resp.json()) == (200, expected)
            # Serial, exactly-once application: sorted by the total they returned, each add's
            # total is the previous one plus its own delta.
            chain = sorted(
                (answers[key], delta) for p in plan for counter, key, delta in p
                if counter == f"k{c}"
            )  # fmt: skip
            previous = 0
            for total, delta in chain:
                assert total == previous + delta, (c, total, previous, delta)
                previous = total
            assert previous == expected

        # Re-asking every idempotency key returns the stored answer and applies nothing again.
        again: dict[str, int] = {}

        async def reask(requests: list[tuple[str, str, int]]) -> None:
            for counter, key, delta in requests:
                url = f"{engine.ingress}/Counter/{counter}/add"
                again[key] = await _add_until_ok(session, url, delta, key, oddities)

        await asyncio.gather(*(reask(p) for p in plan))
        assert again == answers
        assert oddities == []
        for c in range(counters):
            expected = sum(d for p in plan for counter, _, d in p if counter == f"k{c}")
            async with session.post(f"{engine.ingress}/Counter/k{c}/get") as resp:
                assert (resp.status, await resp.json()) == (200, expected)

    listed = engine.admin_json("GET", "/invocations?service=Counter&limit=100000")["invocations"]
    adds = [i for i in listed if i["handler"] == "add"]
    assert len(adds) == total_requests
    assert {i["status"] for i in adds} == {"completed"}
    assert sorted(i["idempotency_key"] for i in adds) == sorted(answers)


# -- 2. a journaled side effect happens once across a crash -----------------------------------


def test_workflow_side_effect_once_across_sigkill(engine_factory: Any, tmp_path: Path) -> None:
    """SIGKILL during the workflow's durable sleep; after restart the `ctx.run` step that
    appended to a file is replayed from the journal, not re-run: exactly one line, right output.
    """
    engine: EngineProcess = engine_factory(APP).start()
    out = tmp_path / "side-effect.txt"
    req = {"path": str(out), "line": "charged card 4242", "sleep": 1.5}
    inv = send(engine, "/FileJourney/order-7/run", req)
    wait_until(lambda: "Sleep" in journal_types(engine, inv), what="the workflow to sleep")
    assert out.read_text() == "charged card 4242\n"
    engine.kill()
    engine.start()

    status, output = get(f"{engine.ingress}/restate/workflow/FileJourney/order-7/attach")
    assert (status, output) == (200, "wrote charged card 4242 once")
    assert out.read_text() == "charged card 4242\n"
    assert get(f"{engine.ingress}/restate/workflow/FileJourney/order-7/output") == (
        200, "wrote charged card 4242 once",
    )  # fmt: skip
    # Submitting the same workflow id again joins the finished run instead of running twice.
    assert post(f"{engine.ingress}/FileJourney/order-7/run", req) == (
        200, "wrote charged card 4242 once",
    )  # fmt: skip
    assert out.read_text() == "charged card 4242\n"
    summary = describe(engine, inv)
    assert summary["status"] == "completed"
    assert [e["entry_type"] for e in summary["journal"]] == ["Run", "Sleep"]


# -- 3. durable timers keep their due time across restarts ------------------------------------


def test_durable_sleep_fires_at_original_due_time_across_restart(
    engine_factory: Any,
) -> None:
    """Three sleeps, one engine kill:

    - `late`: suspended, due after the restart: fires at its original due time, not restarted.
    - `missed`: suspended, came due while the engine was down: fires promptly after restart.
    - `running`: still in memory (not yet suspended) when killed, came due while down: the
      attempt is re-run from its journal and its timer fires promptly after restart.
    """
    engine: EngineProcess = engine_factory(APP, env={"HEADWAY_SUSPEND_AFTER": "0.6"}).start()
    late = send(engine, "/Sleeper/nap", 4.0)
    missed = send(engine, "/Sleeper/nap", 1.5)
    for inv in (late, missed):
        wait_status(engine, inv, "suspended")
    running = send(engine, "/Sleeper/nap", 1.0)
    wait_until(lambda: "Sleep" in journal_types(engine, running), what="the third sleep")
    assert describe(engine, running)["status"] == "running"
    engine.kill()
    time.sleep(1.6)  # `missed` and `running` come due while the engine is down
    engine.start()
    ready = time.time()

    results = {}
    for name, inv, seconds in (("late", late, 4.0), ("missed", missed, 1.5),
                               ("running", running, 1.0)):  # fmt: skip
        status, body = get(f"{engine.ingress}/restate/invocation/{inv}/attach")
        assert status == 200, body
        due = body["before"] + seconds
        # Never early (the due time is taken just after `before`, in whole milliseconds)...
        assert body["after"] >= due - 0.002, (name, body)
        # ...and not late: at the due time, or right after the restart if it came due before.
        assert body["after"] <= max(due, ready) + 1.5, (name, body, ready)
        results[name] = (due, body["after"])
    assert results["late"][0] > ready  # this one really was due after the restart
    assert results["missed"][0] < ready and results["running"][0] < ready


# -- 5. retries with backoff; terminal errors reach the caller --------------------------------


def test_retry_with_backoff_then_success(engine_factory: Any, tmp_path: Path) -> None:
    """A handler failing its first two attempts is retried with growing delays and succeeds on
    the third; the admin API records two retries."""
    engine: EngineProcess = engine_factory(APP).start()
    attempts = tmp_path / "attempts.txt"
    req = {"path": str(attempts), "failures": 2, "echo": "paid"}
    inv = send(engine, "/Failing/flaky", req)
    status, result = get(f"{engine.ingress}/restate/invocation/{inv}/attach")
    assert (status, result) == (200, {"attempt": 3, "echo": "paid"})
    logged = [line.split() for line in attempts.read_text().splitlines()]
    assert [int(n) for n, _ in logged] == [1, 2, 3]
    times = [float(t) for _, t in logged]
    # The policy's delays are 200 ms then 400 ms.
    assert times[1] - times[0] >= 0.2
    assert times[2] - times[1] >= 0.4
    summary = describe(engine, inv)
    assert summary["status"] == "completed"
    assert summary["retry_count"] == 2
    assert summary["attempt"] == 3
    assert "transient failure on attempt 2" in summary["last_failure"]
    assert summary["outcome"] == {"value": '{"attempt":3,"echo":"paid"}'}


def test_terminal_error_reaches_http_caller(engine_factory: Any) -> None:
    """A TerminalError is not retried: the HTTP caller gets its code and message as JSON."""
    engine: EngineProcess = engine_factory(APP).start()
    assert post(f"{engine.ingress}/Failing/refuse", "no funds") == (
        422, {"code": 422, "message": "refused: no funds"},
    )  # fmt: skip
    assert post(f"{engine.ingress}/Failing/refuse_in_step", "bad card") == (
        418, {"code": 418, "message": "step rejected: bad card"},
    )  # fmt: skip
    inv = send(engine, "/Failing/refuse", "closed account")
    assert get(f"{engine.ingress}/restate/invocation/{inv}/attach") == (
        422, {"code": 422, "message": "refused: closed account"},
    )  # fmt: skip
    summary = describe(engine, inv)
    assert (summary["status"], summary["retry_count"], summary["attempt"]) == ("completed", 0, 1)
    assert summary["outcome"] == {"failure": {"code": 422, "message": "refused: closed account"}}


# -- 8. suspended invocations survive a kill and can be cancelled ------------------------------


def _cli(engine: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headway.engine", *args],
        env={**os.environ, "HEADWAY_ADMIN_URL": engine.admin},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_suspended_invocations_survive_sigkill_and_cancel(engine_factory: Any) -> None:
    """Invocations suspended on a long sleep are still suspended after a SIGKILL; cancelling
    one (admin API or CLI) completes it with a 409 cancelled failure; the others stay put."""
    engine: EngineProcess = engine_factory(APP, env={"HEADWAY_SUSPEND_AFTER": "0.2"}).start()
    invs = [send(engine, "/Sleeper/nap", 600) for _ in range(3)]
    for inv in invs:
        wait_status(engine, inv, "suspended")
    engine.kill()
    engine.start()

    listed = _cli(engine, "invocations", "list", "--status", "suspended", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["id"] for r in rows) == sorted(invs)
    assert {r["target"] for r in rows} == {"Sleeper/nap"}
    for inv in invs:
        summary = describe(engine, inv)
        assert summary["status"] == "suspended"
        assert [(e["entry_type"], e["completed"]) for e in summary["journal"]] == [
            ("Run", True), ("Sleep", False),
        ]  # fmt: skip

    first, second, third = invs
    status, body = call("PATCH", f"{engine.admin}/invocations/{first}/cancel")
    assert (status, body) == (202, {"id": first, "operation": "cancel"})
    cancelled = (409, {"code": 409, "message": "cancelled"})
    assert get(f"{engine.ingress}/restate/invocation/{first}/attach") == cancelled
    cli_cancel = _cli(engine, "invocations", "cancel", second)
    assert cli_cancel.returncode == 0, cli_cancel.stderr
    assert get(f"{engine.ingress}/restate/invocation/{second}/attach") == cancelled
    for inv in (first, second):
        summary = describe(engine, inv)
        assert summary["status"] == "completed"
        assert summary["outcome"] == {"failure": {"code": 409, "message": "cancelled"}}
    assert describe(engine, third)["status"] == "suspended"
    assert get(f"{engine.ingress}/restate/invocation/{third}/output") == (
        470, {"code": 470, "message": f"invocation {third} has not completed yet"},
    )  # fmt: skip
    still = engine.admin_json("GET", "/invocations?status=suspended")["invocations"]
    assert [r["id"] for r in still] == [third]
