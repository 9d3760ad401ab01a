"""Fixtures shared by the whole suite."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from engine_process import EngineProcess

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def engine_factory(tmp_path: Path) -> Iterator[type[EngineProcess]]:
    """Makes engine processes in this test's temp dir and kills them all at the end."""
    started: list[EngineProcess] = []

    def make(
        app: str | Path | None, name: str = "data", env: dict[str, str] | None = None
    ) -> EngineProcess:
        engine = EngineProcess(app, tmp_path / name, env)
        started.append(engine)
        return engine

    yield make  # type: ignore[misc]
    for engine in started:
        engine.kill()
