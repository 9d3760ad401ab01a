"""The pipeline in Quix Streams: exactly-once, per-key count in its RocksDB state store.

Quix keeps the state in RocksDB with a changelog topic, and commits a checkpoint (offsets,
outputs and changelog in one Kafka transaction) every ``commit_interval`` seconds, left at its
default. Run by bench/kafka_pipeline.py; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
from typing import Any

from quixstreams import Application, State


def count(value: Any, key: str, _timestamp: int, _headers: Any, state: State) -> dict[str, Any]:
    """Count the key's records and return the running count as the output."""
    n = (state.get("n") or 0) + 1
    state.set("n", n)
    return {"key": key, "n": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=f"quix-{args.input}",
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    source = app.topic(args.input, key_deserializer="str", value_deserializer="json")
    sink = app.topic(args.output, key_serializer="str", value_serializer="json")
    app.dataframe(source).apply(count, stateful=True, metadata=True).to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
