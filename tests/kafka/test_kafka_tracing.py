"""Traces across Kafka: a record's `traceparent` header parents the invocation it becomes, and
the records the invocation emits carry the trace on (in-process engine, in-memory exporter)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from broker import TopicFactory
from engine_process import free_port
from headway.connectors.kafka.clusters import KafkaCluster
from headway.connectors.kafka.subscription import Subscription, parse_options
from headway.connectors.kafka.uris import parse_sink, parse_source
from headway.engine.app_loader import load_services
from headway.engine.config import Config
from headway.engine.engine import Engine
from headway.engine.entries import Subscribe
from headway.engine.observability import Observability
from headway.engine.tracing import new_provider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pipeline import produce, read_committed

KAFKA_APP = Path(__file__).parent.parent / "apps" / "kafka_app.py"
TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT = 0x00F067AA0BA902B7


def test_a_records_trace_flows_through_the_invocation_into_its_outputs(
    kafka_bootstrap: str, new_topic: TopicFactory, tmp_path: Path
) -> None:
    topic = new_topic(1)
    new_topic(1, f"{topic}-out")
    produce(kafka_bootstrap, topic, [(b"k", b"{}")],
            headers=[("traceparent", f"00-{TRACE:032x}-{PARENT:016x}-01".encode())])  # fmt: skip
    exporter = InMemorySpanExporter()

    async def run() -> None:
        provider = new_provider(1.0)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        config = Config(
            data_dir=tmp_path / "data", ingress_port=free_port(),
            kafka_clusters=(KafkaCluster("local", (kafka_bootstrap,)),),
        )  # fmt: skip
        engine = Engine(config, load_services(str(KAFKA_APP)))
        engine.observability = Observability(config, provider)
        await engine.start()
        try:
            subscription = Subscription(
                "sub_trace", parse_source(f"kafka://local/{topic}"),
                parse_sink("service://Counts/on_record"), parse_options({}),
            )  # fmt: skip
            await engine.submit(Subscribe(subscription.to_record()))
            await asyncio.to_thread(read_committed, kafka_bootstrap, f"{topic}-out", 1)
        finally:
            await engine.stop()

    asyncio.run(run())
    spans = {span.name: span for span in exporter.get_finished_spans()}
    invocation, attempt = spans["Counts/on_record"], spans["attempt Counts/on_record"]
    assert invocation.context is not None and attempt.context is not None
    assert invocation.context.trace_id == TRACE
    assert invocation.parent is not None and invocation.parent.span_id == PARENT
    [output] = read_committed(kafka_bootstrap, f"{topic}-out", 1)
    headers = dict(output.headers() or [])
    assert headers["traceparent"] == f"00-{TRACE:032x}-{attempt.context.span_id:016x}-01".encode()
