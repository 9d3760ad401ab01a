"""Fixtures for tests against a real Apache Kafka broker, started once per test session.

Set ``HEADWAY_KAFKA_BOOTSTRAP`` (e.g. ``127.0.0.1:9092``) to use a running broker instead.
A broker that cannot be reached or started fails the tests: it is never a reason to skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from broker import KafkaBroker, KafkaBrokerError, TopicFactory, check_broker

# NewTopic's documented home; the package's stubs just do not re-export it.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from engine_process import EngineProcess

KAFKA_APP = Path(__file__).parent.parent / "apps" / "kafka_app.py"

BOOTSTRAP_ENV = "HEADWAY_KAFKA_BOOTSTRAP"


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker | None]:
    """The broker the suite started, for outage tests; None when using an external one.

    A test that stops it (``stop_process()``) must start it again before it ends.
    """
    if os.environ.get(BOOTSTRAP_ENV):
        yield None
        return
    broker = _start_broker()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker | None) -> str:
    """The ``bootstrap.servers`` of a broker that serves metadata, groups and transactions."""
    if kafka_broker is not None:
        return kafka_broker.bootstrap
    bootstrap = os.environ[BOOTSTRAP_ENV]
    try:
        check_broker(bootstrap, timeout=30.0)
        return bootstrap
    except KafkaBrokerError as exc:
        message = f"{BOOTSTRAP_ENV}={bootstrap} is not a working Kafka: {exc}"
    pytest.fail(message, pytrace=False)


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> TopicFactory:
    """A factory that creates a uniquely named topic and returns its name.

    Unique names let tests share one broker without seeing each other's records.
    """

    def create(partitions: int = 1, name: str | None = None) -> str:
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        # A client per call: pytest may hold the fixture's value, and a client kept alive
        # past the session would log its disconnection when the broker stops.
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        future = admin.create_topics([NewTopic(name, partitions, 1)])[name]
        future.result(timeout=30.0)
        return name

    return create


def _start_broker() -> KafkaBroker:
    try:
        broker = KafkaBroker()
        broker.start()
        return broker
    except KafkaBrokerError as exc:
        message = f"could not start the Kafka test broker: {exc}"
    # Failing outside the except block keeps the report to this message, without the
    # chain of tracebacks behind it.
    pytest.fail(message, pytrace=False)


@pytest.fixture
def kafka_engine(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Callable[..., EngineProcess]]:
    """Starts `headway dev tests/apps/kafka_app.py` with the test broker as cluster `local`."""
    started: list[EngineProcess] = []

    def start(name: str = "engine", env: dict[str, str] | None = None) -> EngineProcess:
        config = tmp_path / f"{name}.toml"
        config.write_text(f'[[kafka.clusters]]\nname = "local"\nbrokers = ["{kafka_bootstrap}"]\n')
        engine = EngineProcess(
            KAFKA_APP, tmp_path / name, {"HEADWAY_CONFIG": str(config), **(env or {})}
        )
        started.append(engine)
        return engine.start()

    yield start
    for engine in started:
        engine.stop()
