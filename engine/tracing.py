"""OpenTelemetry traces: a span per invocation, a span per attempt, calls as child spans.

An invocation outlives processes (it suspends, the engine restarts), so its span cannot be
held open: its ids are derived (`trace_ids.py`), and its span is recorded once, when the
invocation completes, covering creation to completion. Its parent is the W3C `traceparent`
among the invocation's stored headers: the HTTP client's (the ingress stores request
headers), or the calling attempt's, which the invoker adds to every call and send.

For each sampled attempt and invocation the engine hands a small fact (`spans.py`) to a sink:
the OTLP exporter (`otlp_export.py`), which makes and sends the spans in a process of its own,
or an SDK `TracerProvider`'s span processors (`ProviderSink`, for a provider passed in). Only
where handler code could make spans of its own (a tracer provider set in the process, or
passed in) is a running attempt made current in OpenTelemetry's context, so those spans nest
under it; elsewhere that would cost every invocation for nothing, and its calls and sends
name the attempt's derived span id in their `traceparent` all the same.

Most invocations are not sampled (at a ratio below 1), so an unsampled one costs only its
sampling decision. Its calls and sends carry its `traceparent` marked not sampled all the
same, taken from its ids rather than from the context, so the decision passes on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import Generic, TypeVar

from headway.sdk.journal import Target
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from .commit_record import CommittedBatch
from .spans import AttemptFinished, ExceptionInfo, InvocationFinished, SpanRecord, SpanSink
from .trace_ids import (
    ALWAYS,
    TRACEPARENT,
    Ids,
    attempt_span_id,
    format_traceparent,
    invocation_ids,
    sampling_hash,
)

RESOURCE = Resource.create({"service.name": "headway"})
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_KEPT = 4096  # invocations whose ids or express runs are kept, per generation (`_Recent`)
V = TypeVar("V")
# Makes a fact (a NamedTuple of `spans.py`) from a tuple of its fields: one is made for every
# sampled attempt and invocation, and the class's own constructor, Python code entered from C,
# costs several times as much.
_fact = tuple.__new__
_forced_ids: ContextVar[tuple[int, int] | None] = ContextVar("headway_forced_ids", default=None)


class _InvocationIds(IdGenerator):
    """Random ids, except while `ProviderSink` replays a span: then the span's own."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        forced = _forced_ids.get()
        return forced[1] if forced else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _forced_ids.get()
        return forced[0] if forced else self._random.generate_trace_id()


def new_provider(sample_ratio: float = 1.0) -> TracerProvider:
    """An SDK tracer provider that can take Headway's spans (`ProviderSink`); add span
    processors. New traces are kept with probability `sample_ratio`, decided on the trace id's
    lower 64 bits as `Tracing` decides, so every span of a trace agrees."""
    return TracerProvider(
        resource=RESOURCE,
        id_generator=_InvocationIds(),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )


class ProviderSink:
    """Hands each span to an SDK provider's span processors (as an SDK span with the same ids,
    times, attributes and status); the provider must come from `new_provider`."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("headway")

    def attempt_finished(self, fact: AttemptFinished) -> None:
        self._export(fact.span())

    def invocations_finished(self, facts: list[InvocationFinished]) -> None:
        for fact in facts:
            for span in fact.spans():
                self._export(span)

    def _export(self, span: SpanRecord) -> None:
        context = Context()
        if span.parent_id:
            parent = SpanContext(span.trace_id, span.parent_id, True, _SAMPLED)
            context = trace.set_span_in_context(NonRecordingSpan(parent))
        token = _forced_ids.set((span.trace_id, span.span_id))
        try:
            made = self._tracer.start_span(
                span.name, context, span.kind, span.attributes, start_time=span.start_ns
            )
        finally:
            _forced_ids.reset(token)
        if span.exception is not None:
            made.add_event("exception", span.exception.attributes(), span.end_ns)
        if span.error is not None:
            made.set_status(trace.StatusCode.ERROR, span.error)
        made.end(span.end_ns)

    def shutdown(self) -> None:
        self.provider.shutdown()


# A running attempt's span: its start, whether it is recorded, and the token that undoes making
# it current in OpenTelemetry's context (None where handlers cannot trace). A plain tuple: one is
# made for every sampled attempt.
AttemptSpan = tuple[int, bool, "Token[Context] | None"]


class _Recent(Generic[V]):
    """What was last put for 4,096 to 8,192 invocations: two generations of dicts, the older
    dropped whole when the newer fills (cheaper than an LRU, and what is needed again is
    needed within milliseconds)."""

    def __init__(self) -> None:
        self._newer: dict[str, V] = {}
        self._older: dict[str, V] = {}

    def __len__(self) -> int:
        return len(self._newer) + len(self._older)

    def get(self, invocation_id: str) -> V | None:
        found = self._newer.get(invocation_id)
        return self._older.get(invocation_id) if found is None else found

    def put(self, invocation_id: str, value: V) -> None:
        if len(self._newer) >= _KEPT:
            self._older, self._newer = self._newer, {}
        self._newer[invocation_id] = value

    def pop(self, invocation_id: str) -> V | None:
        found = self._newer.pop(invocation_id, None)
        return self._older.pop(invocation_id, None) if found is None else found


class Tracing:
    """Spans of invocations and attempts, to one sink."""

    def __init__(self, sink: SpanSink | TracerProvider, sample_ratio: float = 1.0) -> None:
        """`sink`: where spans go (a provider: through `ProviderSink`, and handler code may
        make spans with it); `sample_ratio`: the share of new traces recorded."""
        self._provider_given = isinstance(sink, TracerProvider)
        self.sink = ProviderSink(sink) if isinstance(sink, TracerProvider) else sink
        self._bound = TraceIdRatioBased.get_bound_for_rate(sample_ratio)
        self._every_trace = self._bound >= ALWAYS  # then no new trace needs its hash to decide
        self._ids: _Recent[Ids] = _Recent()
        # The start and end of each sampled express run, until its invocation's completion
        # carries them (`express_ran`).
        self._express_runs: _Recent[tuple[int, int]] = _Recent()
        trace.get_tracer_provider()  # sets one named by OTEL_PYTHON_TRACER_PROVIDER, if any

    def invocation_ids(self, invocation_id: str, headers: Mapping[str, str]) -> Ids:
        """The ids of an invocation's span: its parent's trace (or its own), its derived span
        id, and whether it is sampled (the parent's decision, or the ratio's on a new trace).

        Kept for the last 4,096 to 8,192 invocations seen (`_Recent`): an attempt, its calls
        and the invocation's completion need the same ids, usually within milliseconds.
        `headers` (the invocation's stored headers) never change, so the invocation id alone
        is the key."""
        ids = self._ids.get(invocation_id)
        if ids is None:
            ids = invocation_ids(invocation_id, headers.get(TRACEPARENT), self._bound)
            self._ids.put(invocation_id, ids)
        return ids

    def sampled(self, invocation_id: str, headers: Mapping[str, str]) -> bool:
        """Whether an invocation's spans are recorded (its ids, `invocation_ids`, say the
        same): a new trace's by its id's hash, otherwise by its parent's decision."""
        if TRACEPARENT not in headers:
            return self._every_trace or sampling_hash(invocation_id.encode()) < self._bound
        return self.invocation_ids(invocation_id, headers).sampled

    def traceparent(self, invocation_id: str, headers: Mapping[str, str]) -> str:
        """The W3C `traceparent` of an invocation's span (`headers`: its stored headers).

        The hook for carriers other than HTTP: a Kafka record an invocation emits carries this
        in its headers, so its consumers' spans join the invocation's trace.
        """
        ids = self.invocation_ids(invocation_id, headers)
        return format_traceparent(ids.trace_id, ids.span_id, ids.sampled)

    def attempt_started(
        self, invocation_id: str, headers: Mapping[str, str], attempt: int
    ) -> AttemptSpan | None:
        """Starts an attempt's span; None if there is nothing to record or make current.

        An unsampled attempt records nothing. Where handler code could make spans
        (`handlers_can_trace`), the attempt's span is current in OpenTelemetry's context
        (in the running task's context, until `attempt_ended`) so that theirs nest under it;
        an unsampled invocation's context is made current there too, marked not sampled, so
        their spans are not recorded either and what they pass on carries the decision."""
        sampled = self.sampled(invocation_id, headers)
        if not self.handlers_can_trace():
            return (time.time_ns(), True, None) if sampled else None
        ids = self.invocation_ids(invocation_id, headers)
        if sampled:
            current = SpanContext(
                ids.trace_id, attempt_span_id(invocation_id, attempt), False, _SAMPLED
            )
        else:
            current = SpanContext(ids.trace_id, ids.span_id, False, _NOT_SAMPLED)
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(current)))
        return time.time_ns(), sampled, token

    def attempt_ended(
        self, span: AttemptSpan | None, invocation_id: str, headers: Mapping[str, str],
        target: Target, attempt: int, failure: BaseException | None,
    ) -> None:  # fmt: skip
        if span is None:
            return
        start_ns, sampled, context_token = span
        if context_token is not None:
            otel_context.detach(context_token)
        if not sampled:
            return
        self.sink.attempt_finished(_fact(AttemptFinished, (
            invocation_id, headers.get(TRACEPARENT), target.service, target.handler, attempt,
            start_ns, time.time_ns(),
            None if failure is None else f"{type(failure).__name__}: {failure}",
            None if failure is None else ExceptionInfo.of(failure),
        )))  # fmt: skip

    def attempt_dropped(self, span: AttemptSpan | None) -> None:
        """Undoes `attempt_started` without recording anything: the attempt did not count (an
        express run given up, which runs again the ordinary way)."""
        if span is not None and span[2] is not None:
            otel_context.detach(span[2])

    def express_ran(self, span: AttemptSpan | None, invocation_id: str) -> None:
        """Ends the span of an express run (attempt `EXPRESS_ATTEMPT` of `express.py`, a
        handler run to the end ahead of the log) that took effect. Its times wait for the
        invocation's completion, whose fact carries them: one fact, and both spans made from it
        where they are exported. A run that then does not take effect (its invocation runs the
        durable way) still has its span, with the durable attempts' beside it."""
        if span is None:
            return
        start_ns, sampled, context_token = span
        if context_token is not None:
            otel_context.detach(context_token)
        if sampled:
            self._express_runs.put(invocation_id, (start_ns, time.time_ns()))

    def outgoing_traceparent(
        self, invocation_id: str, headers: Mapping[str, str], attempt: int
    ) -> str:
        """The `traceparent` of a call, send or record that attempt `attempt` of an invocation
        issues: if sampled, the current span's (one the handler made in the attempt) or else
        the attempt's; if not, the invocation's own, marked not sampled (nothing records its
        span ids)."""
        ids = self.invocation_ids(invocation_id, headers)
        if not ids.sampled:
            return format_traceparent(ids.trace_id, ids.span_id, False)
        if self.handlers_can_trace():
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                sampled = context.trace_flags.sampled
                return format_traceparent(context.trace_id, context.span_id, sampled)
        return format_traceparent(ids.trace_id, attempt_span_id(invocation_id, attempt), True)

    def batch_committed(self, batch: CommittedBatch) -> None:
        """Records every sampled invocation the batch completed. One with an express run kept
        is sampled (only sampled runs are kept); the others are decided on their ids (first
        the run: the default ratio, 1, samples every invocation)."""
        facts: list[InvocationFinished] = []
        for invocation_id, new in batch.finished:
            headers = new["h"]
            run = self._express_runs.pop(invocation_id)
            if run is None and not self.sampled(invocation_id, headers):
                continue  # most, at a low ratio: decided on the id's hash, nothing decoded
            outcome = new["o"]  # an encoded Outcome: [1, code, message] is a failure
            service, handler, key = new["t"]  # an encoded Target
            facts.append(_fact(InvocationFinished, (
                invocation_id, headers.get(TRACEPARENT), service, handler, key or "", new["ca"],
                new["ma"], new["rc"], f"[{outcome[1]}] {outcome[2]}" if outcome[0] == 1 else None,
                run,
            )))  # fmt: skip
        for express in batch.expressed:
            invoke = express.invoke
            invocation_id, headers, target = invoke.resolved_id, invoke.headers, invoke.target
            run = self._express_runs.pop(invocation_id)
            if run is not None or self.sampled(invocation_id, headers):
                facts.append(_fact(InvocationFinished, (
                    invocation_id, headers.get(TRACEPARENT), target.service, target.handler,
                    target.key or "", express.ran_at_ms, batch.now_ms, 0, None, run,
                )))  # fmt: skip
        if facts:
            self.sink.invocations_finished(facts)

    def handlers_can_trace(self) -> bool:
        """Whether handler code could make spans, so that an attempt must be current in
        OpenTelemetry's context: with the provider passed in, or once one is set in the process
        (until then OpenTelemetry's API makes nothing). The latter is read from OpenTelemetry's
        module global: the one check cheap enough to make for every attempt."""
        return self._provider_given or trace._TRACER_PROVIDER is not None

    def shutdown(self) -> None:
        """Exports what is buffered; blocking."""
        self.sink.shutdown()
