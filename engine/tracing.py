"""OpenTelemetry traces: a span per invocation, a span per attempt, calls as child spans.

An invocation outlives processes (it suspends, the engine restarts), so its span cannot be
held open. Its ids are instead derived from the invocation id: every attempt, on any run of
the engine, knows its parent without storing anything, and the invocation's span is emitted
once, when the invocation completes, covering creation to completion. Its parent is the W3C
`traceparent` among the invocation's stored headers: the HTTP client's (the ingress stores
request headers), or the calling attempt's, which the invoker adds to every call and send.

These spans are made for every invocation, so they are recorded as plain `SpanRecord`s, not
OpenTelemetry SDK spans (whose locks, attribute validation and processor chain cost more
than the work they describe), and handed to a sink: the OTLP exporter (`otlp_export.py`), or
an SDK `TracerProvider`'s span processors (`ProviderSink`, for a provider passed in). While
a sampled attempt runs its span is current in OpenTelemetry's context, so spans a handler makes
with the OpenTelemetry API nest under it.

Most invocations are not sampled (at a ratio below 1), so an unsampled one costs only its
sampling decision: no span is built, and its context is made current only where a handler
could see it (once a tracer provider is set in the process). Its calls and sends carry its
`traceparent` marked not sampled all the same, taken from its ids rather than from the
context, so the decision passes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
import time
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import NamedTuple, Protocol

from headway.sdk.journal import Failure, Target
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from xxhash import xxh3_64_intdigest

from .commit_record import CommittedBatch

TRACEPARENT = "traceparent"
RESOURCE = Resource.create({"service.name": "headway"})
_TRACEPARENT = re.compile(
    r"^\s*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\s*$"
)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_forced_ids: ContextVar[tuple[int, int] | None] = ContextVar("headway_forced_ids", default=None)


@dataclasses.dataclass(slots=True)
class SpanRecord:
    """A finished, sampled span. `parent_id` 0: a root; `error`: the status of a failed span."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int
    kind: SpanKind
    start_ns: int
    end_ns: int
    attributes: dict[str, str | int]
    error: str | None = None
    exception: BaseException | None = None


class SpanSink(Protocol):
    """Where finished spans go."""

    def add(self, span: SpanRecord) -> None: ...

    def shutdown(self) -> None: ...


class Ids(NamedTuple):
    """An invocation span's ids; `parent_id` 0 when it starts a trace."""

    trace_id: int
    span_id: int
    parent_id: int
    sampled: bool


_HASH = hashlib.blake2b(digest_size=24, person=b"headway")  # copied: cheaper than made anew
_KEPT = 4096  # invocations whose ids are kept, per generation (see `Tracing.invocation_ids`)


def _derived_ids(invocation_id: str) -> tuple[int, int]:
    """A trace id and a span id from the invocation id (one hash; neither is ever 0)."""
    hashed = _HASH.copy()
    hashed.update(invocation_id.encode())
    digest = int.from_bytes(hashed.digest())
    return (digest >> 64) or 1, (digest & 0xFFFF_FFFF_FFFF_FFFF) or 1


def _new_ids(invocation_id: str, parent: str | None, bound: int) -> Ids:
    """An invocation's ids: in its parent's trace if `parent` is a valid `traceparent` (whose
    decision it follows), else a new trace, kept as `_new_trace_sampled` decides."""
    trace_id, span_id = _derived_ids(invocation_id)
    if parent is not None and (context := parse_traceparent(parent)) is not None:
        return Ids(context[0], span_id, context[1], context[2])
    return Ids(trace_id, span_id, 0, _new_trace_sampled(invocation_id.encode(), bound))


def _new_trace_sampled(invocation_id: bytes, bound: int) -> bool:
    """Whether an invocation that starts a trace is sampled: the XXH3 hash of its (encoded)
    id, a uniform 64-bit number, falls below `bound` (the ratio's share of 2**64). Decided
    without deriving the trace's ids, which only a sampled invocation needs: most are not,
    and this is the one thing each of them pays for at its attempt and at its completion."""
    return xxh3_64_intdigest(invocation_id) < bound


def handlers_can_trace() -> bool:
    """Whether handler code could make or pass on spans: once a tracer provider is set in the
    process (until then OpenTelemetry's API makes nothing). Read from OpenTelemetry's module
    global, the one check cheap enough to make for every attempt."""
    return trace._TRACER_PROVIDER is not None


def parse_traceparent(value: str) -> tuple[int, int, bool] | None:
    """(trace id, span id, sampled) of a W3C `traceparent`; None if it is not a valid one."""
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_hex, span_hex, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


def format_traceparent(trace_id: int, span_id: int, sampled: bool) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


def parent_headers(parent: str | None) -> dict[str, str]:
    """Headers that make a new invocation a child of the W3C `traceparent` given.

    The hook for carriers other than HTTP: Kafka ingestion merges these into an `Invoke`'s
    headers from a record's `traceparent` header; the invocation stores them like HTTP ones.
    """
    return {TRACEPARENT: parent} if parent else {}


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
    processors. New traces are kept with probability `sample_ratio`, decided on the trace id
    as `Tracing` decides, so every span of a trace agrees."""
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

    def add(self, span: SpanRecord) -> None:
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
            made.record_exception(span.exception, timestamp=span.end_ns)
        if span.error is not None:
            made.set_status(trace.StatusCode.ERROR, span.error)
        made.end(span.end_ns)

    def shutdown(self) -> None:
        self.provider.shutdown()


class AttemptSpan(NamedTuple):
    """A running attempt's span: its invocation's ids, its own span id, its start, and the
    token that undoes making it current."""

    ids: Ids
    span_id: int
    start_ns: int
    token: Token[Context]


class Tracing:
    """Spans of invocations and attempts, to one sink."""

    def __init__(self, sink: SpanSink | TracerProvider, sample_ratio: float = 1.0) -> None:
        """`sink`: where spans go (a provider: through `ProviderSink`); `sample_ratio`: the
        share of new traces recorded."""
        self.sink = ProviderSink(sink) if isinstance(sink, TracerProvider) else sink
        self._bound = TraceIdRatioBased.get_bound_for_rate(sample_ratio)
        self._recent: dict[str, Ids] = {}
        self._older: dict[str, Ids] = {}
        trace.get_tracer_provider()  # sets one named by OTEL_PYTHON_TRACER_PROVIDER, if any

    def invocation_ids(self, invocation_id: str, headers: Mapping[str, str]) -> Ids:
        """The ids of an invocation's span: its parent's trace (or its own), its derived span
        id, and whether it is sampled (the parent's decision, or the ratio's on a new trace).

        Kept for the last 4,096 to 8,192 invocations seen (two generations of dicts, cheaper
        than an LRU): an attempt, its calls and the invocation's completion need the same
        ids, usually within milliseconds. `headers` (the invocation's stored headers) never
        change, so the invocation id alone is the key."""
        ids = self._recent.get(invocation_id)
        if ids is None:
            ids = self._older.get(invocation_id) or _new_ids(
                invocation_id, headers.get(TRACEPARENT), self._bound
            )
            if len(self._recent) >= _KEPT:
                self._older, self._recent = self._recent, {}
            self._recent[invocation_id] = ids
        return ids

    def sampled(self, invocation_id: str, headers: Mapping[str, str]) -> bool:
        """Whether an invocation's spans are recorded (its ids, `invocation_ids`, say the
        same): a new trace's by its id's hash, otherwise by its parent's decision."""
        if TRACEPARENT not in headers:
            return _new_trace_sampled(invocation_id.encode(), self._bound)
        return self.invocation_ids(invocation_id, headers).sampled

    def traceparent(self, invocation_id: str, headers: Mapping[str, str]) -> str:
        """The W3C `traceparent` of an invocation's span (`headers`: its stored headers).

        The hook for carriers other than HTTP: a Kafka record an invocation emits carries this
        in its headers, so its consumers' spans join the invocation's trace.
        """
        ids = self.invocation_ids(invocation_id, headers)
        return format_traceparent(ids.trace_id, ids.span_id, ids.sampled)

    def attempt_started(self, invocation_id: str, headers: Mapping[str, str]) -> AttemptSpan | None:
        """Makes a sampled attempt's span current (in the running task's context) until
        `attempt_ended`.

        An unsampled attempt records nothing. Its invocation's context (not sampled) is made
        current only if handler code could see it (`handlers_can_trace`): its spans are then
        not recorded either, and what it passes on carries the decision. Otherwise there is
        nothing to end (None, which `attempt_ended` and `attempt_dropped` take as a no-op): the
        usual case, an unsampled new trace with no provider set, costs one hash and two tests."""
        if not self.sampled(invocation_id, headers) and not handlers_can_trace():
            return None
        ids = self.invocation_ids(invocation_id, headers)
        if ids.sampled:
            span_id = random.getrandbits(64) or 1
            current = SpanContext(ids.trace_id, span_id, False, _SAMPLED)
        else:
            span_id = ids.span_id
            current = SpanContext(ids.trace_id, span_id, False, _NOT_SAMPLED)
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(current)))
        return AttemptSpan(ids, span_id, time.time_ns(), token)

    def attempt_ended(
        self, span: AttemptSpan | None, invocation_id: str, target: Target, attempt: int,
        failure: BaseException | None,
    ) -> None:  # fmt: skip
        if span is None:
            return
        otel_context.detach(span.token)
        if not span.ids.sampled:
            return
        self.sink.add(SpanRecord(
            f"attempt {target}", span.ids.trace_id, span.span_id, span.ids.span_id,
            SpanKind.INTERNAL, span.start_ns, time.time_ns(),
            {"headway.invocation_id": invocation_id, "headway.attempt": attempt},
            None if failure is None else f"{type(failure).__name__}: {failure}", failure,
        ))  # fmt: skip

    def attempt_dropped(self, span: AttemptSpan | None) -> None:
        """Undoes `attempt_started` without recording anything: the attempt did not count (an
        express run given up, which runs again the ordinary way)."""
        if span is not None:
            otel_context.detach(span.token)

    def outgoing_traceparent(self, invocation_id: str, headers: Mapping[str, str]) -> str:
        """The `traceparent` of a call, send or record the running attempt of an invocation
        issues: if sampled, the current span's (the attempt's, or one the handler made in it);
        if not, the invocation's own, marked not sampled (nothing records its span ids)."""
        ids = self.invocation_ids(invocation_id, headers)
        if ids.sampled:
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                sampled = context.trace_flags.sampled
                return format_traceparent(context.trace_id, context.span_id, sampled)
        return format_traceparent(ids.trace_id, ids.span_id, ids.sampled)

    def batch_committed(self, batch: CommittedBatch) -> None:
        """Records the span of every invocation the batch completed."""
        for invocation_id, new in batch.finished:
            headers = new["h"]
            if not self.sampled(invocation_id, headers):
                continue  # most: decided on the id's hash, nothing decoded
            ids = self.invocation_ids(invocation_id, headers)
            outcome = new["o"]  # an encoded Outcome: [1, code, message] is a failure
            self._invocation_span(
                ids, invocation_id, Target.decode(new["t"]), new["ca"], new["ma"],
                new["rc"], Failure(outcome[1], outcome[2]) if outcome[0] == 1 else None,
            )  # fmt: skip
        for express in batch.expressed:
            invoke = express.invoke
            invocation_id, headers = invoke.resolved_id, invoke.headers
            if self.sampled(invocation_id, headers):
                ids = self.invocation_ids(invocation_id, headers)
                self._invocation_span(
                    ids, invocation_id, invoke.target, express.ran_at_ms, batch.now_ms, 0, None
                )

    def _invocation_span(
        self, ids: Ids, invocation_id: str, target: Target, start_ms: int, end_ms: int,
        retries: int, failure: Failure | None,
    ) -> None:  # fmt: skip
        self.sink.add(SpanRecord(
            str(target), ids.trace_id, ids.span_id, ids.parent_id, SpanKind.SERVER,
            start_ms * 1_000_000, end_ms * 1_000_000,
            {
                "headway.invocation_id": invocation_id, "headway.service": target.service,
                "headway.handler": target.handler, "headway.key": target.key or "",
                "headway.retry_count": retries,
            },
            None if failure is None else f"[{failure.code}] {failure.message}",
        ))  # fmt: skip

    def shutdown(self) -> None:
        """Exports what is buffered; blocking."""
        self.sink.shutdown()
