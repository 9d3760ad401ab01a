"""Headway's spans: what the engine records when an attempt or an invocation finishes (a
small, plain fact), and the span made from it.

The engine records facts, not spans: a fact is one tuple of what only the engine knows (ids
to derive from, names, times, outcome), cheap to make on the event loop and to hand to
another process. The span (ids derived, shape looked up, attributes laid out) is made from it
where the span is exported: by the OTLP exporter's own process, or by `ProviderSink` for a
tracer provider passed in.

These spans are plain `SpanRecord`s, not OpenTelemetry SDK spans (whose locks, attribute
validation and processor chain cost more than the work they describe). What the spans of
one handler share (name, kind, attribute names) is one `SpanShape`, so a record carries only
what varies and the encoder writes the rest once per shape. Span names name the handler, not
the key (`Counter/add`), as OpenTelemetry asks of span names: a name per object key would
make every key its own operation in a trace viewer.
"""

from __future__ import annotations

import dataclasses
import functools
import traceback
from collections.abc import Mapping
from typing import NamedTuple, Protocol

from opentelemetry.trace import SpanKind

from .trace_ids import ALWAYS, EXPRESS_ATTEMPT, attempt_span_id, invocation_ids


@dataclasses.dataclass(frozen=True, eq=False)  # compared and hashed by identity: made once
class SpanShape:
    """What every span of one kind shares: its name and kind, the attributes that never change
    (`fixed`) and the names of those that do (`keys`, the order of `SpanRecord.values`)."""

    name: str
    kind: SpanKind
    fixed: Mapping[str, str | int]
    keys: tuple[str, ...]


class ExceptionInfo(NamedTuple):
    """A failed attempt's exception, as text (it may cross to another process)."""

    type: str
    message: str
    stacktrace: str

    @staticmethod
    def of(error: BaseException) -> ExceptionInfo:
        return ExceptionInfo(
            type(error).__qualname__, str(error), "".join(traceback.format_exception(error))
        )

    def attributes(self) -> dict[str, str]:
        """The attributes of the `exception` event of OpenTelemetry's semantic conventions, as
        the SDK's `record_exception` makes them."""
        return {
            "exception.type": self.type,
            "exception.message": self.message,
            "exception.stacktrace": self.stacktrace,
            "exception.escaped": "False",
        }


@dataclasses.dataclass(slots=True)
class SpanRecord:
    """A finished, sampled span. `parent_id` 0: a root; `values`: its varying attributes, in
    the order of `shape.keys`; `error`: the status of a failed span."""

    shape: SpanShape
    trace_id: int
    span_id: int
    parent_id: int
    start_ns: int
    end_ns: int
    values: tuple[str | int, ...]
    error: str | None = None
    exception: ExceptionInfo | None = None

    @property
    def name(self) -> str:
        return self.shape.name

    @property
    def kind(self) -> SpanKind:
        return self.shape.kind

    @property
    def attributes(self) -> dict[str, str | int]:
        return {**self.shape.fixed, **dict(zip(self.shape.keys, self.values, strict=True))}


class HandlerShapes(NamedTuple):
    """The shapes of one handler's spans: its invocations' and its attempts'."""

    invocation: SpanShape
    attempt: SpanShape


@functools.lru_cache(maxsize=4096)
def handler_shapes(service: str, handler: str) -> HandlerShapes:
    """The shapes of a handler's spans, made once per handler (the same objects after)."""
    name = f"{service}/{handler}"
    return HandlerShapes(
        SpanShape(
            name, SpanKind.SERVER, {"headway.service": service, "headway.handler": handler},
            ("headway.invocation_id", "headway.key", "headway.retry_count"),
        ),
        SpanShape(
            f"attempt {name}", SpanKind.INTERNAL, {}, ("headway.invocation_id", "headway.attempt")
        ),
    )  # fmt: skip


class AttemptFinished(NamedTuple):
    """A sampled attempt ended. `parent`: its invocation's stored `traceparent` header."""

    invocation_id: str
    parent: str | None
    service: str
    handler: str
    attempt: int
    start_ns: int
    end_ns: int
    error: str | None
    exception: ExceptionInfo | None

    def span(self) -> SpanRecord:
        """The attempt's span: a child of its invocation's."""
        ids = invocation_ids(self.invocation_id, self.parent, ALWAYS)
        exception = self.exception
        return SpanRecord(
            handler_shapes(self.service, self.handler).attempt, ids.trace_id,
            attempt_span_id(self.invocation_id, self.attempt), ids.span_id, self.start_ns,
            self.end_ns, (self.invocation_id, self.attempt), self.error,
            None if exception is None else ExceptionInfo(*exception),
        )  # fmt: skip


class InvocationFinished(NamedTuple):
    """A sampled invocation completed (`error`: how it failed, if it did). `express_run`: the
    start and end of its express run (attempt `EXPRESS_ATTEMPT`, the handler run ahead of the
    log), if it had one; that attempt's span is made from this fact too."""

    invocation_id: str
    parent: str | None
    service: str
    handler: str
    key: str
    start_ms: int
    end_ms: int
    retries: int
    error: str | None
    express_run: tuple[int, int] | None = None

    def spans(self) -> list[SpanRecord]:
        """The invocation's span, from its creation to its completion, and its express run's."""
        ids = invocation_ids(self.invocation_id, self.parent, ALWAYS)
        shapes = handler_shapes(self.service, self.handler)
        made = [
            SpanRecord(
                shapes.invocation, ids.trace_id, ids.span_id, ids.parent_id,
                self.start_ms * 1_000_000, self.end_ms * 1_000_000,
                (self.invocation_id, self.key, self.retries), self.error,
            )
        ]  # fmt: skip
        if self.express_run is not None:
            made.append(SpanRecord(
                shapes.attempt, ids.trace_id, attempt_span_id(self.invocation_id, EXPRESS_ATTEMPT),
                ids.span_id, self.express_run[0], self.express_run[1],
                (self.invocation_id, EXPRESS_ATTEMPT),
            ))  # fmt: skip
        return made


class SpanSink(Protocol):
    """Where the facts of finished, sampled attempts and invocations go: an attempt's as it
    ends, invocations' a committed batch at a time."""

    def attempt_finished(self, fact: AttemptFinished) -> None: ...

    def invocations_finished(self, facts: list[InvocationFinished]) -> None: ...

    def shutdown(self) -> None: ...
