"""Traces of a real engine (in this process, so an in-memory exporter can collect its spans)
called over real HTTP: ingress -> Front -> call -> Back, and attempts across a suspension."""

from __future__ import annotations

import http.server
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from engine_process import free_port
from headway.engine import keys
from headway.engine.app_loader import load_services
from headway.engine.config import Config
from headway.engine.engine import Engine
from headway.engine.ingress import Ingress, start_site
from headway.engine.observability import Observability
from headway.engine.trace_ids import parent_headers
from headway.engine.tracing import Tracing, new_provider
from headway.sdk.journal import Call, decode_command
from http_json import post
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from processes import children, exited, wait_for

APP = Path(__file__).parent.parent / "apps" / "observe_app.py"
CLIENT_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
CLIENT_SPAN = 0xB7AD6B7169203331
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE:032x}-{CLIENT_SPAN:016x}-01"


class Running:
    def __init__(self, engine: Engine, url: str, exporter: InMemorySpanExporter) -> None:
        self.engine, self.url, self.exporter = engine, url, exporter

    def spans(self) -> dict[str, ReadableSpan]:
        found = {span.name: span for span in self.exporter.get_finished_spans()}
        assert len(found) == len(self.exporter.get_finished_spans()), "span names repeat"
        return found


@pytest.fixture
def sample_ratio() -> float:
    return 1.0


@pytest.fixture
def suspend_after() -> float:
    return 0.2


@pytest.fixture
async def running(
    tmp_path: Path, sample_ratio: float, suspend_after: float
) -> AsyncIterator[Running]:
    exporter = InMemorySpanExporter()
    provider = new_provider(sample_ratio)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = Config(
        data_dir=tmp_path / "data", ingress_port=free_port(), suspend_after=suspend_after,
        trace_sample_ratio=sample_ratio,
    )  # fmt: skip
    engine = Engine(config, load_services(str(APP)))
    engine.observability = Observability(config, provider)
    await engine.start()
    site = await start_site(Ingress(engine).app, "127.0.0.1", config.ingress_port)
    yield Running(engine, f"http://127.0.0.1:{config.ingress_port}", exporter)
    await site.cleanup()
    await engine.stop()


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


@pytest.mark.parametrize("suspend_after", [60.0])  # one attempt each, however slow the machine
async def test_call_chain_spans(running: Running) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            running.url + "/Front/relay", json=20, headers={"traceparent": CLIENT_TRACEPARENT}
        ) as resp,
    ):
        assert (resp.status, await resp.json()) == (200, 41)
    spans = running.spans()
    assert sorted(spans) == [
        "Back/double", "Front/relay", "attempt Back/double", "attempt Front/relay"
    ]  # fmt: skip
    front, front_attempt = spans["Front/relay"], spans["attempt Front/relay"]
    back, back_attempt = spans["Back/double"], spans["attempt Back/double"]
    for span in spans.values():
        assert span.context is not None and span.context.trace_id == CLIENT_TRACE
    assert front.context is not None and front_attempt.context is not None
    assert back.context is not None
    assert parent_of(front) == CLIENT_SPAN
    assert parent_of(front_attempt) == front.context.span_id
    assert parent_of(back) == front_attempt.context.span_id
    assert parent_of(back_attempt) == back.context.span_id
    assert front.kind == back.kind == SpanKind.SERVER
    assert front.attributes is not None and front.attributes["headway.service"] == "Front"

    # The hooks for other carriers: an invocation's traceparent names its span.
    front_id = str(front.attributes["headway.invocation_id"])
    observability = running.engine.observability
    assert observability.traceparent(front_id, {"traceparent": CLIENT_TRACEPARENT}) == (
        f"00-{CLIENT_TRACE:032x}-{front.context.span_id:016x}-01"
    )
    assert parent_headers(CLIENT_TRACEPARENT) == {"traceparent": CLIENT_TRACEPARENT}
    assert parent_headers(None) == {}


async def test_attempts_share_the_invocation_span_across_suspension(running: Running) -> None:
    """No traceparent: the invocation is a root; both attempts (before and after the
    suspension) are children of its span, and a failure marks the span as an error."""
    async with aiohttp.ClientSession() as http:
        async with http.post(running.url + "/Sleeper/nap", json=0.5) as resp:
            assert (resp.status, await resp.json()) == (200, "rested")
        async with http.post(running.url + "/Flaky/refuse", json="no") as resp:
            assert resp.status == 422
    finished = running.exporter.get_finished_spans()
    nap = next(s for s in finished if s.name == "Sleeper/nap")
    attempts = [s for s in finished if s.name == "attempt Sleeper/nap"]
    assert nap.parent is None and nap.context is not None
    assert len(attempts) == 2
    for attempt in attempts:
        assert attempt.context is not None
        assert attempt.context.trace_id == nap.context.trace_id
        assert parent_of(attempt) == nap.context.span_id
    assert [a.attributes and a.attributes["headway.attempt"] for a in attempts] == [1, 2]
    refused = next(s for s in finished if s.name == "Flaky/refuse")
    assert refused.status.status_code == StatusCode.ERROR
    assert refused.status.description == "[422] no"


async def test_an_express_invocation_has_its_run_as_attempt_zero(running: Running) -> None:
    """Counter/add runs in the express lane (ahead of the log, created and completed in one
    entry): its one run is attempt 0, a child of the invocation's span, within it."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(running.url + "/Counter/k/add", json=5) as resp,
    ):
        assert (resp.status, await resp.json()) == (200, 5)
    spans = running.spans()
    assert sorted(spans) == ["Counter/add", "attempt Counter/add"]
    invocation, run = spans["Counter/add"], spans["attempt Counter/add"]
    assert invocation.context is not None and run.context is not None
    assert run.context.trace_id == invocation.context.trace_id
    assert parent_of(run) == invocation.context.span_id
    assert run.attributes is not None and run.attributes["headway.attempt"] == 0
    assert invocation.attributes is not None and invocation.attributes["headway.key"] == "k"
    assert invocation.start_time is not None and run.start_time is not None
    assert run.end_time is not None and invocation.end_time is not None
    assert invocation.start_time // 1_000_000 <= run.start_time // 1_000_000
    assert run.start_time <= run.end_time <= invocation.end_time + 1_000_000


@pytest.mark.parametrize("sample_ratio", [0.0])
async def test_unsampled_traces_record_nothing_and_pass_the_decision_on(running: Running) -> None:
    """Ratio 0: no spans at all, and the call carries a traceparent marked not sampled, so the
    callee does not start a trace of its own."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(running.url + "/Front/relay", json=1) as resp,
    ):
        assert (resp.status, await resp.json()) == (200, 3)
    assert running.exporter.get_finished_spans() == ()
    assert running.engine.store is not None
    (front_id,) = [
        key[len(keys.INVOCATION) :].decode()
        for key, status in running.engine.store.scan(keys.INVOCATION)
        if status["t"][0] == "Front"
    ]
    call = decode_command(running.engine.store.get(keys.journal(front_id, 0)))
    assert isinstance(call, Call)
    version, _, span_id, flags = call.headers["traceparent"].split("-")
    assert (version, flags) == ("00", "00")
    assert span_id == f"{_derived_span_id(front_id):016x}"


def _derived_span_id(invocation_id: str) -> int:
    traceparent = Tracing(new_provider()).traceparent(invocation_id, {})
    return int(traceparent.split("-")[2], 16)


class _Collector:
    """An OTLP/HTTP collector on loopback that keeps the span names of every request."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                assert self.path == "/v1/traces"
                received.append(self.rfile.read(int(self.headers["content-length"])))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def names(self) -> set[str]:
        names = set()
        for body in self.received:
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    names.update(span.name for span in scope_spans.spans)
        return names


@pytest.fixture
def collector() -> Iterator[_Collector]:
    collector = _Collector()
    yield collector
    collector.server.shutdown()


def test_engine_exports_over_otlp_when_an_endpoint_is_set(
    engine_factory: Any, collector: _Collector
) -> None:
    """A real engine process with HEADWAY_OTLP_ENDPOINT sends its spans to a collector."""
    engine = engine_factory(APP, env={"HEADWAY_OTLP_ENDPOINT": collector.endpoint}).start()
    assert post(engine.ingress + "/Front/relay", 1) == (200, 3)
    engine.stop()  # a clean stop flushes the spans still buffered
    assert collector.names() == {
        "Front/relay", "attempt Front/relay", "Back/double", "attempt Back/double"
    }  # fmt: skip


def test_the_exporting_process_leaves_when_its_engine_is_killed(
    engine_factory: Any, collector: _Collector
) -> None:
    """Spans are made and sent by a process of the engine's; SIGKILL the engine and that
    process, its input ended, stops by itself: nothing is left running."""
    engine = engine_factory(APP, env={"HEADWAY_OTLP_ENDPOINT": collector.endpoint}).start()
    assert post(engine.ingress + "/Front/relay", 1) == (200, 3)
    wait_for(lambda: len(collector.names()) == 4)  # sent within a second, by that process
    assert engine.proc is not None
    (exporting,) = children(engine.proc.pid)
    assert "headway.engine.otlp_process" in Path(f"/proc/{exporting}/cmdline").read_text()
    engine.kill()
    wait_for(lambda: exited(exporting))
