"""OpenTelemetry traces: a span per invocation, a span per attempt, calls as child spans.

An invocation outlives processes (it suspends, the engine restarts), so its span cannot be
held open. Its ids are instead derived from the invocation id: every attempt, on any run of
the engine, knows its parent without storing anything, and the invocation's span is emitted
once, when the invocation completes, covering creation to completion. Its parent is the W3C
`traceparent` among the invocation's stored headers: the HTTP client's (the ingress stores
request headers), or the calling attempt's, which the invoker adds to every call and send.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar

from headway.sdk.journal import Failure, Outcome, Target
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .commit_record import CommittedBatch

TRACEPARENT = "traceparent"
_W3C = TraceContextTextMapPropagator()
_forced_ids: ContextVar[tuple[int, int] | None] = ContextVar("headway_forced_ids", default=None)


def _derived_ids(invocation_id: str) -> tuple[int, int]:
    """A trace id and a span id from the invocation id (one hash; neither is ever 0)."""
    digest = hashlib.blake2b(invocation_id.encode(), digest_size=24, person=b"headway").digest()
    return int.from_bytes(digest[:16]) or 1, int.from_bytes(digest[16:]) or 1


class _InvocationIds(IdGenerator):
    """Random ids, except while an invocation's own span is made: then the derived ones."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        forced = _forced_ids.get()
        return forced[1] if forced else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _forced_ids.get()
        return forced[0] if forced else self._random.generate_trace_id()


def new_provider(sample_ratio: float = 1.0) -> TracerProvider:
    """A tracer provider that gives invocation spans their derived ids; add span processors.

    New traces are kept with probability `sample_ratio` (decided on the trace id, so every
    span of a trace agrees); a trace begun elsewhere keeps its own decision.
    """
    return TracerProvider(
        resource=Resource.create({"service.name": "headway"}),
        id_generator=_InvocationIds(),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )


def otlp_provider(endpoint: str, sample_ratio: float = 1.0) -> TracerProvider:
    """A provider exporting over OTLP/HTTP to `endpoint` (a collector's base URL), in batches."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = new_provider(sample_ratio)
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _parent(headers: Mapping[str, str]) -> Context:
    return _W3C.extract({TRACEPARENT: headers[TRACEPARENT]} if TRACEPARENT in headers else {})


def parent_headers(parent: str | None) -> dict[str, str]:
    """Headers that make a new invocation a child of the W3C `traceparent` given.

    The hook for carriers other than HTTP: Kafka ingestion merges these into an `Invoke`'s
    headers from a record's `traceparent` header; the invocation stores them like HTTP ones.
    """
    return {TRACEPARENT: parent} if parent else {}


class Tracing:
    """Spans of invocations and attempts, through one tracer provider."""

    def __init__(self, provider: TracerProvider, sample_ratio: float = 1.0) -> None:
        """`sample_ratio`: the one `provider` was made with (see `new_provider`)."""
        self.provider = provider
        self.tracer = provider.get_tracer("headway")
        self._bound = TraceIdRatioBased.get_bound_for_rate(sample_ratio)

    def invocation_span_context(
        self, invocation_id: str, headers: Mapping[str, str]
    ) -> SpanContext:
        """The ids of an invocation's span: its parent's trace (or its own), its derived span
        id, and whether it is sampled (as the provider's sampler decides for a new trace)."""
        trace_id, span_id = _derived_ids(invocation_id)
        parent = None
        if TRACEPARENT in headers:
            parent = trace.get_current_span(_parent(headers)).get_span_context()
        if parent is not None and parent.is_valid:
            trace_id, flags = parent.trace_id, parent.trace_flags
        else:
            sampled = trace_id & TraceIdRatioBased.TRACE_ID_LIMIT < self._bound
            flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        return SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)

    def traceparent(self, invocation_id: str, headers: Mapping[str, str]) -> str:
        """The W3C `traceparent` of an invocation's span (`headers`: its stored headers).

        The hook for carriers other than HTTP: a Kafka record an invocation emits carries this
        in its headers, so its consumers' spans join the invocation's trace.
        """
        carrier: dict[str, str] = {}
        span = NonRecordingSpan(self.invocation_span_context(invocation_id, headers))
        _W3C.inject(carrier, trace.set_span_in_context(span))
        return carrier[TRACEPARENT]

    @contextlib.contextmanager
    def attempt_span(
        self, invocation_id: str, headers: Mapping[str, str], target: Target, attempt: int
    ) -> Iterator[trace.Span]:
        """The span of one attempt, current while its handler runs (so calls inherit it)."""
        parent = NonRecordingSpan(self.invocation_span_context(invocation_id, headers))
        if not parent.get_span_context().trace_flags.sampled:
            # Not recorded: only make the context current, so calls carry the decision on.
            token = otel_context.attach(trace.set_span_in_context(parent))
            try:
                yield parent
            finally:
                otel_context.detach(token)
            return
        with self.tracer.start_as_current_span(
            f"attempt {target}",
            context=trace.set_span_in_context(parent),
            attributes={"headway.invocation_id": invocation_id, "headway.attempt": attempt},
        ) as span:
            yield span

    def outgoing_headers(self) -> dict[str, str]:
        """The current span as W3C headers, for a call or send the current attempt issues."""
        carrier: dict[str, str] = {}
        _W3C.inject(carrier)
        return carrier

    def batch_committed(self, batch: CommittedBatch) -> None:
        """Emits the span of every invocation the batch completed."""
        for invocation_id, old, new in batch.invocations:
            completed_now = old is None or old["st"] != "completed"
            if new is not None and new["st"] == "completed" and completed_now:
                self._invocation_span(
                    invocation_id, new["h"], Target.decode(new["t"]), new["ca"], new["ma"],
                    new["rc"], Outcome.decode(new["o"]).failure,
                )  # fmt: skip
        for express in batch.expressed:
            invoke = express.invoke
            self._invocation_span(
                invoke.invocation_id, invoke.headers, invoke.target, express.ran_at_ms,
                batch.now_ms, 0, None,
            )  # fmt: skip

    def _invocation_span(
        self, invocation_id: str, headers: dict[str, str], target: Target, start_ms: int,
        end_ms: int, retries: int, failure: Failure | None,
    ) -> None:  # fmt: skip
        own = self.invocation_span_context(invocation_id, headers)
        if not own.trace_flags.sampled:
            return
        token = _forced_ids.set((own.trace_id, own.span_id))
        try:
            span = self.tracer.start_span(
                str(target), context=_parent(headers), kind=SpanKind.SERVER,
                start_time=start_ms * 1_000_000,
                attributes={
                    "headway.invocation_id": invocation_id, "headway.service": target.service,
                    "headway.handler": target.handler, "headway.key": target.key or "",
                    "headway.retry_count": retries,
                },
            )  # fmt: skip
        finally:
            _forced_ids.reset(token)
        if failure is not None:
            span.set_status(trace.StatusCode.ERROR, f"[{failure.code}] {failure.message}")
        span.end(end_time=end_ms * 1_000_000)

    def shutdown(self) -> None:
        """Exports what is buffered; blocking."""
        self.provider.shutdown()
