"""ctx.emit in a handler served by `headway serve`: its records reach Kafka exactly once."""

from __future__ import annotations

import json
from pathlib import Path

from broker import TopicFactory
from deployment_process import APPS, HeadwayServeProcess
from engine_process import EngineProcess
from http_json import post
from pipeline import read_committed


def test_a_served_handlers_emits_are_published_once_and_only_on_success(
    kafka_bootstrap: str, new_topic: TopicFactory, tmp_path: Path
) -> None:
    topic = new_topic(1)
    config = tmp_path / "headway.toml"
    config.write_text(f'[[kafka.clusters]]\nname = "local"\nbrokers = ["{kafka_bootstrap}"]\n')
    deployment = HeadwayServeProcess(str(APPS / "headway_served_app.py"), tmp_path / "serve.log")
    engine = EngineProcess(None, tmp_path / "engine", {"HEADWAY_CONFIG": str(config)})
    try:
        deployment.start()
        engine.start()
        status, body = post(f"{engine.admin}/deployments", {"uri": deployment.uri})
        assert status == 201, body
        ship = f"{engine.ingress}/Shipments/{{}}/ship"
        # Three items: a step after the first makes the second attempt replay its emit.
        order = {"topic": topic, "id": "o1", "items": ["x", "y", "z"]}
        assert post(ship.format("a"), order) == (200, 3)
        assert post(ship.format("b"), {"topic": topic, "id": "o2", "items": ["w"]}) == (200, 1)
        declined = {"topic": topic, "id": "o3", "items": ["v", "u"], "declined": True}
        assert post(ship.format("a"), declined) == (
            402,
            {"code": 402, "message": "payment declined"},
        )
        records = read_committed(kafka_bootstrap, topic, expected=4)
    finally:
        engine.stop()
        deployment.kill()
    assert [(r.key(), json.loads(r.value()), r.headers()) for r in records] == [
        (b"a", {"item": "x", "n": 1}, [("order", b"o1")]),
        (b"a", {"item": "y", "n": 2}, [("order", b"o1")]),
        (b"a", {"item": "z", "n": 3}, [("order", b"o1")]),
        (b"b", {"item": "w", "n": 1}, [("order", b"o2")]),
    ]
