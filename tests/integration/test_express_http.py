"""HTTP calls through the express lane, beside the durable way and across a SIGKILL.

`Counter/add` only reads and writes state, so it runs ahead of the log; `Counter/add_in_step`
takes a journaled step first and always runs the durable way, holding the key's lock. Mixed
on one hot key, every call must see the total its predecessor left (the answers are exactly
1..N), and nothing an HTTP client was told is lost when the engine is killed.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine_process import EngineProcess
from http_json import post

APP = Path(__file__).parent.parent / "apps" / "guarantees_app.py"


def test_a_hot_key_mixing_both_ways_loses_no_update(engine_factory: Any) -> None:
    engine: EngineProcess = engine_factory(APP).start()
    clients, calls = 32, 40

    def client(n: int) -> list[int]:
        answers = []
        for i in range(calls):
            handler = "add_in_step" if (n + i) % 5 == 0 else "add"
            status, total = post(f"{engine.ingress}/Counter/hot/{handler}", 1)
            assert status == 200, total
            answers.append(total)
        return answers

    with ThreadPoolExecutor(clients) as pool:
        answers = [total for got in pool.map(client, range(clients)) for total in got]
    # Each call added one to exactly the total the one before it left.
    assert sorted(answers) == list(range(1, clients * calls + 1))
    assert post(f"{engine.ingress}/Counter/hot/get", None) == (200, clients * calls)
    # Express runs leave the record an ordinary run would: every call is listed, completed
    # after one attempt, and its journal holds what the handler did.
    everything = engine.admin_json("GET", "/invocations?service=Counter&limit=5000")
    listed = [i for i in everything["invocations"] if i["handler"] != "get"]
    assert len(listed) == clients * calls
    assert {(i["handler"], i["status"], i["attempt"]) for i in listed} == {
        ("add", "completed", 1), ("add_in_step", "completed", 1),
    }  # fmt: skip
    some_add = next(i["id"] for i in listed if i["handler"] == "add")
    journal = engine.admin_json("GET", f"/invocations/{some_add}")["journal"]
    assert [entry["entry_type"] for entry in journal] == ["GetState", "SetState"]


def test_nothing_acknowledged_is_lost_across_a_sigkill(engine_factory: Any) -> None:
    engine: EngineProcess = engine_factory(APP).start()
    keys = [f"k{i}" for i in range(4)]
    acknowledged: dict[str, list[int]] = {key: [] for key in keys}
    unknown: dict[str, int] = dict.fromkeys(keys, 0)
    lock = threading.Lock()
    stop = threading.Event()

    def client(key: str) -> None:
        while not stop.is_set():
            try:
                status, total = post(f"{engine.ingress}/Counter/{key}/add", 1, timeout=5)
            except OSError:  # the engine died mid-call: the add may or may not have happened
                with lock:
                    unknown[key] += 1
                time.sleep(0.05)
                continue
            with lock:
                if status == 200:
                    acknowledged[key].append(total)
                else:
                    unknown[key] += 1

    threads = [threading.Thread(target=client, args=(keys[i % 4],)) for i in range(16)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    engine.kill()
    engine.start()
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join()
    for key in keys:
        status, final = post(f"{engine.ingress}/Counter/{key}/get", None)
        assert status == 200
        acked = acknowledged[key]
        assert len(acked) > 0
        assert len(set(acked)) == len(acked), f"{key}: two calls saw the same total"
        # Every acknowledged add is in the total; only calls cut off by the kill may be too.
        assert max(acked) <= final
        assert len(acked) <= final <= len(acked) + unknown[key], (key, final, len(acked))
