"""The pipeline in Faust (faust-streaming): exactly-once, per-key count in a Table.

The Table lives in RocksDB (through rocksdict) with a changelog topic; with
``processing_guarantee="exactly_once"`` Faust runs a transactional producer per input
partition and commits every ``broker_commit_interval`` (left at its default, 2.8 s). Run by
bench/kafka_pipeline.py as ``faust_pipeline.py --bootstrap ... --input ... --output ...
--data-dir ...``; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import json
import sys

import faust


def build(bootstrap: str, source: str, sink: str, data_dir: str) -> faust.App:
    """An app whose one agent counts each key's records and sends the running count."""
    app = faust.App(
        f"faust-{source}",
        broker=f"kafka://{bootstrap}",
        processing_guarantee="exactly_once",
        store="rocksdb://",
        datadir=data_dir,
        topic_partitions=4,
        topic_replication_factor=1,
        table_standby_replicas=0,
        web_enabled=False,
    )
    source_topic = app.topic(source, key_type=bytes, value_type=bytes, value_serializer="raw")
    sink_topic = app.topic(sink, key_type=bytes, value_type=bytes, value_serializer="raw")
    counts = app.Table("counts", default=int, partitions=4)

    @app.agent(source_topic)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            key: bytes = event.key
            n = counts[key] + 1
            counts[key] = n
            body = json.dumps({"key": key.decode(), "n": n}).encode()
            await sink_topic.send(key=key, value=body)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    app = build(args.bootstrap, args.input, args.output, args.data_dir)
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


if __name__ == "__main__":
    main()
