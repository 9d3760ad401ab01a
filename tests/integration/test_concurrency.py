"""Per-key concurrency against a real engine: exclusive handlers serialize, shared ones do not.

Handlers log `enter LABEL` / `exit LABEL` lines to a file from `ctx.run` steps with a pause in
between; the order of the lines in the file is the order the steps really ran in.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine_process import EngineProcess
from http_json import get, post

APP = Path(__file__).parent.parent / "apps" / "guarantees_app.py"


def events(path: Path) -> list[tuple[str, str]]:
    """(kind, label) per logged line, in file order."""
    return [tuple(line.split(" ", 1)) for line in path.read_text().splitlines()]  # type: ignore[misc]


def max_overlap(logged: list[tuple[str, str]]) -> int:
    """The largest number of steps that were between enter and exit at the same moment."""
    inside, most = 0, 0
    for kind, _ in logged:
        inside += 1 if kind == "enter" else -1
        most = max(most, inside)
    return most


def call_all(urls_and_bodies: list[tuple[str, Any]]) -> tuple[list[tuple[int, Any]], float]:
    """Sends all requests at once (one thread each); returns the answers and the wall time."""
    started = time.monotonic()
    with ThreadPoolExecutor(len(urls_and_bodies)) as pool:
        answers = list(pool.map(lambda ub: post(ub[0], ub[1]), urls_and_bodies))
    return answers, time.monotonic() - started


def test_exclusive_calls_on_one_key_never_interleave(engine_factory: Any, tmp_path: Path) -> None:
    """Ten concurrent exclusive calls on one key: each call's enter is followed by its own
    exit before any other call enters, and every call ran exactly once."""
    engine: EngineProcess = engine_factory(APP).start()
    log = tmp_path / "exclusive.txt"
    labels = [f"x{i}" for i in range(10)]
    url = f"{engine.ingress}/Ledger/acct-1/exclusive_step"
    answers, elapsed = call_all(
        [(url, {"path": str(log), "label": label, "pause": 0.05}) for label in labels]
    )
    assert answers == [(200, label) for label in labels]
    logged = events(log)
    assert len(logged) == 2 * len(labels)
    for i in range(0, len(logged), 2):
        (kind_in, label_in), (kind_out, label_out) = logged[i], logged[i + 1]
        assert (kind_in, kind_out) == ("enter", "exit"), logged
        assert label_in == label_out, logged
    assert sorted(label for kind, label in logged if kind == "enter") == sorted(labels)
    assert max_overlap(logged) == 1
    assert elapsed >= 10 * 0.05


def test_shared_calls_on_one_key_run_concurrently(engine_factory: Any, tmp_path: Path) -> None:
    """Eight shared calls on one key overlap: several are inside their pause at once, and the
    wall time is well below the sum of the pauses."""
    engine: EngineProcess = engine_factory(APP).start()
    log = tmp_path / "shared.txt"
    labels = [f"s{i}" for i in range(8)]
    url = f"{engine.ingress}/Ledger/acct-1/shared_step"
    answers, elapsed = call_all(
        [(url, {"path": str(log), "label": label, "pause": 0.5}) for label in labels]
    )
    assert answers == [(200, label) for label in labels]
    logged = events(log)
    assert sorted(logged) == sorted([("enter", x) for x in labels] + [("exit", x) for x in labels])
    assert max_overlap(logged) >= 4, logged
    assert elapsed < 8 * 0.5 / 2, elapsed


def test_shared_call_is_not_blocked_by_a_running_exclusive_call(
    engine_factory: Any, tmp_path: Path
) -> None:
    """A shared call on a key answers while an exclusive call holds that key's lock."""
    engine: EngineProcess = engine_factory(APP).start()
    log = tmp_path / "mixed.txt"
    base = f"{engine.ingress}/Ledger/acct-1"
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(
            post, f"{base}/exclusive_step", {"path": str(log), "label": "slow", "pause": 1.5}
        )
        while not log.exists():
            time.sleep(0.01)
        answer = post(f"{base}/shared_step", {"path": str(log), "label": "quick", "pause": 0})
        assert answer == (200, "quick")
        assert not slow.done()
        assert slow.result() == (200, "slow")
    assert events(log) == [
        ("enter", "slow"), ("enter", "quick"), ("exit", "quick"), ("exit", "slow"),
    ]  # fmt: skip


def test_exclusive_calls_on_different_keys_run_concurrently(
    engine_factory: Any, tmp_path: Path
) -> None:
    """One key's lock does not stall other keys: exclusive calls on six keys overlap."""
    engine: EngineProcess = engine_factory(APP).start()
    log = tmp_path / "keys.txt"
    requests = [
        (f"{engine.ingress}/Ledger/acct-{i}/exclusive_step",
         {"path": str(log), "label": f"k{i}", "pause": 0.5})
        for i in range(6)
    ]  # fmt: skip
    answers, elapsed = call_all(requests)
    assert answers == [(200, f"k{i}") for i in range(6)]
    assert max_overlap(events(log)) >= 3
    assert elapsed < 6 * 0.5 / 2, elapsed


def test_exclusive_calls_stay_serial_across_sigkill(engine_factory: Any, tmp_path: Path) -> None:
    """The key's lock is durable: with the engine SIGKILLed twice while twelve exclusive calls
    queue on one key, no call ever enters while another is inside, and each completes once.

    A step cut off by the kill before its result was journaled runs again when its invocation
    resumes, so a call may log `enter` or `exit` twice in a row; it must still be that call.
    """
    engine: EngineProcess = engine_factory(APP).start()
    log = tmp_path / "serial.txt"
    labels = [f"q{i}" for i in range(12)]
    ids = []
    for label in labels:
        status, accepted = post(
            f"{engine.ingress}/Ledger/acct-1/exclusive_step/send",
            {"path": str(log), "label": label, "pause": 0.15},
        )
        assert status == 202, accepted
        ids.append(accepted["invocationId"])
    for enters in (3, 7):
        while sum(kind == "enter" for kind, _ in events(log)) < enters:
            time.sleep(0.01)
        engine.kill()
        engine.start()
    results = [get(f"{engine.ingress}/restate/invocation/{inv}/attach") for inv in ids]
    assert results == [(200, label) for label in labels]

    holder: str | None = None
    last_exit: str | None = None
    completed: list[str] = []
    for kind, label in events(log):
        if kind == "enter":
            assert holder in (None, label), f"{label} entered while {holder} was inside"
            holder = label
        elif holder == label:
            holder, last_exit = None, label
            completed.append(label)
        else:
            assert holder is None and last_exit == label, f"stray exit of {label}"
    assert holder is None
    assert sorted(completed) == sorted(labels)
