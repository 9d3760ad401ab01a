"""`GET /metrics` of a real engine after real calls: exact counters and gauges, also after a
restart (the gauges then come from the store)."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

from engine_process import EngineProcess
from http_json import post, wait_until
from prometheus_client.parser import text_string_to_metric_families

APP = Path(__file__).parent.parent / "apps" / "observe_app.py"


def scrape(engine: EngineProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, by name and sorted labels."""
    with urllib.request.urlopen(engine.admin + "/metrics", timeout=10) as resp:
        assert resp.headers["content-type"].startswith("text/plain; version=")
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def by_handler(samples: dict[Any, float], name: str) -> dict[str, float]:
    """`service/handler` -> value, for the non-zero samples of one metric (a handler's series
    all appear at zero once it has run)."""
    return {
        f"{dict(labels)['service']}/{dict(labels)['handler']}": value
        for (sample, labels), value in samples.items()
        if sample == name and value != 0
    }


def status_of(engine: EngineProcess, invocation_id: str) -> str:
    _, body = post(
        engine.admin + "/query",
        {"query": f"select status from sys_invocation where id='{invocation_id}'"},
    )
    return body["rows"][0]["status"] if body["rows"] else ""  # type: ignore[no-any-return]


def test_counters_histograms_and_gauges(engine_factory: Any) -> None:
    engine: EngineProcess = engine_factory(APP, env={"HEADWAY_SUSPEND_AFTER": "0.2"}).start()
    for delta in (1, 2, 3):
        assert post(engine.ingress + "/Counter/ada/add", delta)[0] == 200
    assert post(engine.ingress + "/Front/relay", 1) == (200, 3)
    assert post(engine.ingress + "/Front/relay", 2) == (200, 5)
    assert post(engine.ingress + "/Flaky/succeed_on", 3) == (200, 3)
    assert post(engine.ingress + "/Flaky/refuse", "no")[0] == 422
    _, nap = post(engine.ingress + "/Sleeper/nap/send", 3600)
    _, hold = post(engine.ingress + "/Counter/bob/hold/send", 3600)
    wait_until(lambda: status_of(engine, hold["invocationId"]) == "suspended", what="hold")
    _, queued = post(engine.ingress + "/Counter/bob/add/send", 1)
    wait_until(lambda: status_of(engine, nap["invocationId"]) == "suspended", what="nap")
    assert status_of(engine, queued["invocationId"]) == "pending"

    m = scrape(engine)
    assert by_handler(m, "headway_invocations_started_total") == {
        "Counter/add": 3, "Front/relay": 2, "Back/double": 2, "Flaky/succeed_on": 1,
        "Flaky/refuse": 1, "Sleeper/nap": 1, "Counter/hold": 1,
    }  # fmt: skip
    assert by_handler(m, "headway_invocations_completed_total") == {
        "Counter/add": 3, "Front/relay": 2, "Back/double": 2, "Flaky/succeed_on": 1,
    }  # fmt: skip
    assert by_handler(m, "headway_invocations_failed_total") == {"Flaky/refuse": 1}
    assert by_handler(m, "headway_invocation_retries_total") == {"Flaky/succeed_on": 2}
    assert by_handler(m, "headway_invocation_duration_seconds_count") == {
        "Counter/add": 3, "Front/relay": 2, "Back/double": 2, "Flaky/succeed_on": 1,
        "Flaky/refuse": 1,
    }  # fmt: skip
    attempts = by_handler(m, "headway_attempt_duration_seconds_count")
    assert attempts.pop("Front/relay") >= 2  # 2, or 3 if it suspended while Back ran
    assert attempts == {
        "Counter/add": 3, "Back/double": 2, "Flaky/succeed_on": 3,
        "Flaky/refuse": 1, "Sleeper/nap": 1, "Counter/hold": 1,
    }  # fmt: skip
    assert m[("headway_invocations", (("status", "suspended"),))] == 2
    assert m[("headway_invocations", (("status", "pending"),))] == 1
    assert m[("headway_invocations", (("status", "completed"),))] == 9
    assert m[("headway_invocations", (("status", "running"),))] == 0
    assert m[("headway_inbox_depth", ())] == 1
    # a purge timer per completed invocation, and the two sleeps
    assert m[("headway_timers_pending", ())] == 9 + 2
    commits = m[("headway_group_commit_entries_count", ())]
    assert commits >= 10 and m[("headway_group_commit_entries_sum", ())] >= commits
    assert m[("headway_group_commit_fsync_seconds_count", ())] == commits
    assert m[("headway_group_commit_fsync_seconds_sum", ())] > 0

    engine.kill()
    engine.start()
    m = scrape(engine)
    assert m[("headway_invocations", (("status", "suspended"),))] == 2
    assert m[("headway_invocations", (("status", "pending"),))] == 1
    assert m[("headway_invocations", (("status", "completed"),))] == 9
    assert m[("headway_inbox_depth", ())] == 1
    assert m[("headway_timers_pending", ())] == 11
    assert by_handler(m, "headway_invocations_started_total") == {}
