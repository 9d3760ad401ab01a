"""Metrics and traces, attached to an engine's committer and invoker through small hooks.

Metrics are on by default and count once per committed batch and once per attempt. Traces
are on only when an OTLP endpoint is configured (or a tracer provider is passed in). With
both off nothing is attached: the committer and invoker run as if this did not exist.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter as Tally
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from headway.sdk.journal import Call, Command, Emit, Send
from opentelemetry.sdk.trace import TracerProvider

from .commit_record import CommittedBatch
from .config import Config
from .metrics import EngineMetrics
from .otlp_export import OtlpExporter
from .spans import SpanSink
from .store import Store
from .trace_ids import TRACEPARENT
from .tracing import RESOURCE, Tracing

if TYPE_CHECKING:
    from .committer import Committer
    from .invoker import Attempt, Invoker


class Observability:
    """One engine's metrics registry and, if enabled, its tracing."""

    def __init__(self, config: Config, tracer_provider: TracerProvider | None = None) -> None:
        self.metrics = EngineMetrics() if config.metrics else None
        sink: SpanSink | TracerProvider | None = tracer_provider
        if sink is None and config.otlp_endpoint:
            sink = OtlpExporter(
                config.otlp_endpoint, RESOURCE.attributes,
                log_format=config.log_format, log_level=config.log_level,
            )  # fmt: skip
        self.tracing = Tracing(sink, config.trace_sample_ratio) if sink is not None else None
        self._counted: asyncio.Task[None] | None = None

    def attach(self, committer: Committer, invoker: Invoker, store: Store) -> None:
        """Hooks into a starting engine; call before its committer commits anything."""
        if self.metrics is None and self.tracing is None:
            return
        committer.on_commit = self.batch_committed
        invoker.observer = self
        if self.metrics is None:
            return
        # The iterator is made now, before any batch: the count it takes and the changes the
        # batches report from here on add up exactly.
        count = self.metrics.store_counter(store.db)
        self._counted = asyncio.get_running_loop().create_task(self._count(count))

    async def _count(self, count: Callable[[], Tally[str]]) -> None:
        base = await asyncio.to_thread(count)
        if self.metrics is not None:
            self.metrics.add_base(base)

    async def ready(self) -> None:
        """Waits until the gauges include the work that was in the store at start."""
        if self._counted is not None:
            await asyncio.shield(self._counted)

    def batch_committed(self, batch: CommittedBatch) -> None:
        if self.metrics is not None:
            self.metrics.batch_committed(batch)
        if self.tracing is not None:
            self.tracing.batch_committed(batch)

    async def run_attempt(self, attempt: Attempt, run: Coroutine[Any, Any, None]) -> None:
        """Runs one attempt's coroutine, timed, inside its span when tracing."""
        target = attempt.target
        started = time.perf_counter()
        try:
            if self.tracing is None:
                await run
            else:
                headers: dict[str, str] = attempt.status["h"]  # type: ignore[assignment]
                invocation_id, number = attempt.invocation_id, attempt.attempt
                span = self.tracing.attempt_started(invocation_id, headers, number)
                try:
                    await run
                finally:
                    self.tracing.attempt_ended(
                        span, invocation_id, headers, target, number, attempt.failure
                    )
        finally:
            run.close()  # cancelled before it began: nothing ran, and nothing should warn
            if self.metrics is not None:
                self.metrics.attempt_ended(target.service, target.handler, started)

    def outgoing(
        self, command: Call | Send | Emit, invocation_id: str, headers: Mapping[str, str],
        attempt: int,
    ) -> Command:  # fmt: skip
        """A call, send or emitted Kafka record (`trace_ids.CARRIERS`) that attempt `attempt` of
        `invocation_id` (whose stored headers are `headers`) issues, carrying the attempt's
        trace context in its headers (an emit keeps a `traceparent` the handler set itself)."""
        if self.tracing is None:
            return command
        if isinstance(command, Emit) and TRACEPARENT in command.headers:
            return command
        traceparent = self.tracing.outgoing_traceparent(invocation_id, headers, attempt)
        if isinstance(command, Emit):
            carried = {**command.headers, TRACEPARENT: traceparent.encode()}
            return dataclasses.replace(command, headers=carried)
        return dataclasses.replace(command, headers={**command.headers, TRACEPARENT: traceparent})

    def traceparent(self, invocation_id: str, headers: dict[str, str]) -> str | None:
        """The W3C `traceparent` of an invocation's span, or None when tracing is off.

        For carriers other than HTTP (the headers of Kafka records an invocation emits); the
        other direction is `trace_ids.parent_headers`.
        """
        return None if self.tracing is None else self.tracing.traceparent(invocation_id, headers)

    async def stop(self) -> None:
        if self._counted is not None:
            self._counted.cancel()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)
