"""Bad input gets a precise 4xx JSON error, the engine keeps serving, nothing accepted is lost.

Also: a second engine on a data directory already in use is refused with a one-line error.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine_process import EngineProcess, free_port
from http_json import call, get, post, wait_until

APP = Path(__file__).parent.parent / "apps" / "guarantees_app.py"
HEADWAY = Path(sys.executable).parent / "headway"


def raw_request(port: int, request: bytes) -> tuple[int, Any]:
    """Sends bytes exactly as given (paths a URL library would normalise); returns the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
            if line.lower().startswith(b"content-length:")
        )  # fmt: skip
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
    try:
        return int(head.split()[1]), json.loads(body)
    except ValueError:
        return int(head.split()[1]), body.decode(errors="replace")


def test_bad_requests_get_precise_errors_and_good_ones_are_exact(
    engine_factory: Any,
) -> None:
    """Each kind of bad request, interleaved with good adds: every error is the right 4xx with a
    JSON `{"code", "message"}` body; every good add lands exactly once, also after a SIGKILL."""
    engine: EngineProcess = engine_factory(APP, env={"HEADWAY_MAX_BODY_BYTES": "1024"}).start()
    ingress = engine.ingress
    total = 0
    expected_answers: list[int] = []
    answers: list[int] = []

    def good_add(delta: int) -> None:
        nonlocal total
        total += delta
        expected_answers.append(total)
        status, body = post(f"{ingress}/Counter/acct/add", delta)
        assert status == 200, body
        answers.append(body)

    def bad(method: str, path: str, expected: tuple[int, str], **kwargs: Any) -> None:
        """A bad request and the exact error it must get; then a good add."""
        status, body = call(method, ingress + path, **kwargs)
        assert (status, body) == (expected[0], {"code": expected[0], "message": expected[1]})
        good_add(len(expected_answers) + 1)

    good_add(1)
    bad("POST", "/Counter/acct/add", (400, "malformed request body for Counter/acct/add: "
        "Expecting value: line 1 column 1 (char 0)"), raw=b"not json")  # fmt: skip
    bad("POST", "/Counter/acct/add", (400, "malformed request body for Counter/acct/add: "
        "Expecting ',' delimiter: line 1 column 4 (char 3)"), raw=b"[1 2]")  # fmt: skip
    bad("POST", "/Nope/acct/add", (404, "service not found: Nope"), body=1)
    bad("POST", "/Counter/acct/subtract", (404, "handler not found: Counter/subtract"), body=1)
    bad("POST", "/Counter/add", (404, "Counter is an object: call it as /{name}/{key}/{handler}"),
        body=1)  # fmt: skip
    bad("POST", "/Sleeper/x/nap", (404, "Sleeper is a service: call it as /{name}/{handler}"),
        body=1)  # fmt: skip
    bad("GET", "/Counter/acct/add", (405, "use POST to invoke a handler, not GET"))
    bad("POST", "/Counter/acct/add", (400, "Counter/acct/add needs an input: the body is empty "
        "or null"), raw=b"")  # fmt: skip
    bad("POST", "/Counter/acct/add", (400, "Counter/acct/add needs an input: the body is empty "
        "or null"), raw=b"null")  # fmt: skip
    bad("POST", "/Counter/acct/add", (413, "request body too large"), raw=b"1" + b" " * 2000)
    bad("POST", "/Counter/acct/add/send?delay=soon", (400, "invalid duration 'soon': use "
        "forms like 500ms, 10s, 5m, 1h30m"), body=1)  # fmt: skip
    bad("POST", "/Counter/acct/add/send?delay=-5s", (400, "invalid duration '-5s': use "
        "forms like 500ms, 10s, 5m, 1h30m"), body=1)  # fmt: skip
    bad("POST", "/Counter/acct/add?delay=1s", (400, "?delay= is only allowed with /send"), body=1)
    bad("GET", "/restate/invocation/inv_nope/attach", (404, "invocation not found: inv_nope"))
    bad("GET", "/restate/workflow/Counter/acct/attach", (404, "workflow not found: Counter"))

    # An empty key, sent byte for byte so no client library can collapse the double slash.
    status, body = raw_request(
        engine.ingress_port,
        b"POST /Counter//add HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1\r\nConnection: close\r\n\r\n7",
    )
    assert (status, body) == (400, {"code": 400, "message": "Counter is keyed: the key must not "
                                     "be empty"})  # fmt: skip
    good_add(5)
    # A body declared far over the limit is refused up front, without waiting for its bytes.
    status, body = raw_request(
        engine.ingress_port,
        b"POST /Counter/acct/add HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n"
        b"Connection: close\r\n\r\n1",
    )
    assert (status, body) == (413, {"code": 413, "message": "request body too large"})
    good_add(6)
    bad("POST", "/Counter/%FF/add", (400, "the path is not valid UTF-8: /Counter/%FF/add"), body=1)
    bad("POST", "/Counter/team/blue/add", (404, "expected /{service}/{handler} or "
        "/{object}/{key}/{handler}"), body=1)  # fmt: skip
    # Each path segment is decoded on its own: a key may contain an encoded slash.
    assert post(f"{ingress}/Counter/team%2Fblue/add", 40) == (200, 40)
    assert post(f"{ingress}/Counter/team%2Fblue/get") == (200, 40)
    assert engine.admin_json("GET", "/services/Counter/state/team%2Fblue")["state"] == {
        "total": "40"
    }

    # A good delayed send is accepted and applied once its delay passes, not before.
    sent = time.monotonic()
    status, accepted = post(f"{ingress}/Counter/acct/add/send?delay=300ms", 100)
    assert status == 202 and accepted["status"] == "Accepted", accepted
    total += 100
    assert get(f"{ingress}/restate/invocation/{accepted['invocationId']}/attach") == (200, total)
    assert time.monotonic() - sent >= 0.3

    assert answers == expected_answers
    assert post(f"{ingress}/Counter/acct/get") == (200, total)
    # Nothing of it was lost, and nothing bad was half-accepted: only the good adds exist.
    listed = engine.admin_json("GET", "/invocations?service=Counter")["invocations"]
    assert sorted(i["target"] for i in listed) == sorted(
        ["Counter/acct/add"] * (len(answers) + 1) + ["Counter/acct/get"]
        + ["Counter/team/blue/add", "Counter/team/blue/get"]
    )  # fmt: skip
    assert {i["status"] for i in listed} == {"completed"}
    engine.kill()
    engine.start()
    assert post(f"{ingress}/Counter/acct/get") == (200, total)


def test_second_engine_on_same_data_dir_is_refused(engine_factory: Any) -> None:
    """`headway dev` on a data directory another engine holds exits 1 with one clear line and
    no traceback; the first engine keeps serving."""
    engine: EngineProcess = engine_factory(APP).start()
    assert post(f"{engine.ingress}/Counter/a/add", 3) == (200, 3)
    second = subprocess.run(
        [
            str(HEADWAY), "dev", str(APP), "--data-dir", str(engine.data_dir),
            "--ingress-port", str(free_port()), "--admin-port", str(free_port()),
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert second.returncode == 1, second.stderr
    assert "Traceback" not in second.stderr
    errors = [line for line in second.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        f"headway: error: the data directory {engine.data_dir} is in use by another Headway "
        "engine (only one engine may open it at a time)"
    ], second.stderr
    assert post(f"{engine.ingress}/Counter/a/add", 4) == (200, 7)
    wait_until(lambda: get(f"{engine.admin}/health") == (200, {"status": "ok"}), what="health")


def test_undecodable_input_is_refused_without_harming_concurrent_requests(
    engine_factory: Any,
) -> None:
    """Requests the log cannot hold (header bytes that are not UTF-8, a delay beyond any clock)
    get a precise 400 while 16 clients keep adding: none of their adds fails or is lost."""
    engine: EngineProcess = engine_factory(APP).start()
    poison = [
        (b"/Counter/p/add", b"x-trace: caf\xe9\r\n",
         (400, "header 'x-trace' is not valid UTF-8")),
        (b"/Counter/p/add", b"idempotency-key: \xff\xfe\r\n",
         (400, "header 'idempotency-key' is not valid UTF-8")),
        (b"/Counter/p/add/send?delay=99999999999999999999d", b"",
         (400, "delay '99999999999999999999d' is too long: at most 36500d")),
    ]  # fmt: skip
    stop = False

    def poisoner() -> list[tuple[int, Any]]:
        answers = []
        while not stop:
            for path, header, _ in poison:
                answers.append(raw_request(
                    engine.ingress_port,
                    b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + header
                    + b"Content-Length: 1\r\nConnection: close\r\n\r\n1",
                ))  # fmt: skip
        return answers

    def adder(client: int) -> list[tuple[int, Any]]:
        return [
            post(f"{engine.ingress}/Counter/c{client % 4}/add", 1,
                 headers={"idempotency-key": f"{client}-{i}"}, timeout=10)
            for i in range(40)
        ]  # fmt: skip

    with ThreadPoolExecutor(17) as pool:
        bad = pool.submit(poisoner)
        adds = [pool.submit(adder, c) for c in range(16)]
        try:
            results = [a.result() for a in adds]
        finally:
            stop = True
        refused = bad.result()
    assert all(status == 200 for answers in results for status, _ in answers), results
    for c in range(4):
        assert post(f"{engine.ingress}/Counter/c{c}/get") == (200, 4 * 40)
    assert len(refused) >= len(poison)
    expected = [(p[2][0], {"code": p[2][0], "message": p[2][1]}) for p in poison]
    for i, answer in enumerate(refused):
        assert answer == expected[i % len(poison)]
    assert post(f"{engine.ingress}/Counter/p/get") == (200, 0)
