"""The quickstart example over real HTTP against a real engine process."""

from __future__ import annotations

import json
import urllib.request

from conftest import EXAMPLES


def post(url: str, body: object) -> tuple[int, object]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def test_greeter_and_counter(engine_factory) -> None:  # type: ignore[no-untyped-def]
    engine = engine_factory(EXAMPLES / "quickstart.py").start()
    assert post(engine.ingress + "/Greeter/greet", "Ada") == (200, "Hello, Ada!")
    assert [post(engine.ingress + "/Counter/ada/add", 5)[1] for _ in range(3)] == [5, 10, 15]
    assert post(engine.ingress + "/Counter/ada/get", None) == (200, 15)
    engine.kill()
    engine.start()
    assert post(engine.ingress + "/Counter/ada/get", None) == (200, 15)
