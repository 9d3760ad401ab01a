"""Tracing's per-invocation work: what a sampled and an unsampled invocation record, make
current and pass on to the calls they issue."""

from __future__ import annotations

from typing import Any

import pytest
from headway.engine import keys, tracing
from headway.engine.commit_record import CommittedBatch
from headway.engine.config import Config
from headway.engine.observability import Observability
from headway.engine.spans import AttemptFinished, InvocationFinished, SpanRecord
from headway.engine.store import StoreView
from headway.engine.trace_ids import EXPRESS_ATTEMPT, attempt_span_id, format_traceparent
from headway.engine.tracing import Tracing, new_provider
from headway.sdk.journal import Call, Target
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TARGET = Target("Counter", "add", "k")
PARENT_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
SAMPLED_PARENT = f"00-{PARENT_TRACE:032x}-b7ad6b7169203331-01"
UNSAMPLED_PARENT = f"00-{PARENT_TRACE:032x}-b7ad6b7169203331-00"


class Sink:
    """Keeps the span of every fact it is given, each checked to have all its fields (facts
    are made without their class's constructor, which would check)."""

    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []

    def attempt_finished(self, fact: AttemptFinished) -> None:
        assert len(fact) == len(AttemptFinished._fields)
        self.spans.append(fact.span())

    def invocations_finished(self, facts: list[InvocationFinished]) -> None:
        for fact in facts:
            assert len(fact) == len(InvocationFinished._fields)
            self.spans.extend(fact.spans())

    def shutdown(self) -> None:
        pass


def completed_batch(invocation_id: str, headers: dict[str, str]) -> CommittedBatch:
    """A batch in which the invocation was created and completed with a value."""
    view = StoreView({})
    status = {
        "st": "completed", "h": headers, "t": TARGET.encode(), "ca": 1_000, "ma": 1_002,
        "rc": 0, "o": [0, b"1"],
    }  # fmt: skip
    view.put(keys.invocation(invocation_id), status)
    return CommittedBatch(
        entries=1, fsync_seconds=0.0, now_ms=1_002, view=view, finished=[(invocation_id, status)]
    )


def current_context() -> trace.SpanContext:
    return trace.get_current_span().get_span_context()


def run_attempt(tracer: Tracing, invocation_id: str, headers: dict[str, str]) -> Any:
    """One attempt, start to end: the context current while it ran."""
    span = tracer.attempt_started(invocation_id, headers, 1)
    seen = current_context()
    tracer.attempt_ended(span, invocation_id, headers, TARGET, 1, None)
    return seen


def test_an_unsampled_invocation_records_nothing_and_leaves_the_context_alone() -> None:
    sink = Sink()
    tracer = Tracing(sink, sample_ratio=0.0)
    before = current_context()
    assert not tracer.handlers_can_trace()
    seen = run_attempt(tracer, "inv-1", {})
    tracer.batch_committed(completed_batch("inv-1", {}))
    assert sink.spans == []
    assert seen == before and not seen.is_valid
    assert current_context() == before


def test_an_unsampled_invocations_calls_carry_its_traceparent_marked_not_sampled() -> None:
    observability = Observability(Config(metrics=False, trace_sample_ratio=0.0), new_provider(0.0))
    assert observability.tracing is not None
    ids = observability.tracing.invocation_ids("inv-2", {})
    call = Call(TARGET, b"1", {"x": "y"}, None, "callee")
    span = observability.tracing.attempt_started("inv-2", {}, 1)
    sent = observability.outgoing(call, "inv-2", {}, 1)
    observability.tracing.attempt_ended(span, "inv-2", {}, TARGET, 1, None)
    assert isinstance(sent, Call)
    assert sent.headers == {
        "x": "y", "traceparent": format_traceparent(ids.trace_id, ids.span_id, False)
    }  # fmt: skip
    assert not ids.sampled and ids.parent_id == 0


def test_an_unsampled_parent_is_followed_and_passed_on() -> None:
    """A caller's decision not to sample holds even at ratio 1."""
    sink = Sink()
    observability = Observability(Config(metrics=False), new_provider())
    assert observability.tracing is not None
    observability.tracing.sink = sink
    headers = {"traceparent": UNSAMPLED_PARENT}
    span = observability.tracing.attempt_started("inv-3", headers, 1)
    sent = observability.outgoing(Call(TARGET, b"1", {}, None, "callee"), "inv-3", headers, 1)
    observability.tracing.attempt_ended(span, "inv-3", headers, TARGET, 1, None)
    observability.tracing.batch_committed(completed_batch("inv-3", headers))
    assert sink.spans == []
    assert isinstance(sent, Call)
    version, trace_id, _, flags = sent.headers["traceparent"].split("-")
    assert (version, int(trace_id, 16), flags) == ("00", PARENT_TRACE, "00")


def test_once_a_provider_is_set_handlers_see_an_unsampled_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a tracer provider in the process, handler code can make spans: the invocation's
    context, not sampled, is current while its attempt runs, so they are not sampled either."""
    provider = new_provider()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    sink = Sink()
    tracer = Tracing(sink, sample_ratio=0.0)
    ids = tracer.invocation_ids("inv-4", {})
    span = tracer.attempt_started("inv-4", {}, 1)
    seen = current_context()
    with provider.get_tracer("handler").start_as_current_span("work") as made:
        recording = made.is_recording()
    tracer.attempt_ended(span, "inv-4", {}, TARGET, 1, None)
    assert (seen.trace_id, seen.span_id, seen.trace_flags.sampled) == (
        ids.trace_id, ids.span_id, False,
    )  # fmt: skip
    assert not recording
    assert sink.spans == []
    assert not current_context().is_valid


def test_a_sampled_attempt_is_current_and_handler_spans_and_calls_nest_under_it() -> None:
    sink = Sink()
    observability = Observability(Config(metrics=False), new_provider())
    assert observability.tracing is not None
    tracer = observability.tracing
    tracer.sink = sink
    headers = {"traceparent": SAMPLED_PARENT}
    ids = tracer.invocation_ids("inv-5", headers)
    span = tracer.attempt_started("inv-5", headers, 1)
    attempt = current_context()
    direct = observability.outgoing(Call(TARGET, b"1", {}, None, "a"), "inv-5", headers, 1)
    with new_provider().get_tracer("handler").start_as_current_span("work") as made:
        inner = observability.outgoing(Call(TARGET, b"1", {}, None, "b"), "inv-5", headers, 1)
    tracer.attempt_ended(span, "inv-5", headers, TARGET, 1, None)
    tracer.batch_committed(completed_batch("inv-5", headers))

    assert ids.sampled and ids.trace_id == PARENT_TRACE and ids.parent_id == 0xB7AD6B7169203331
    assert attempt.trace_id == PARENT_TRACE and attempt.trace_flags.sampled
    assert isinstance(direct, Call) and isinstance(inner, Call)
    assert direct.headers["traceparent"] == format_traceparent(PARENT_TRACE, attempt.span_id, True)
    made_context = made.get_span_context()
    assert made.parent is not None and made.parent.span_id == attempt.span_id
    assert inner.headers["traceparent"] == format_traceparent(
        PARENT_TRACE, made_context.span_id, True
    )
    (attempt_span, invocation_span) = sink.spans
    assert (attempt_span.name, attempt_span.span_id, attempt_span.parent_id) == (
        "attempt Counter/add", attempt.span_id, ids.span_id,
    )  # fmt: skip
    assert (invocation_span.name, invocation_span.span_id, invocation_span.parent_id) == (
        "Counter/add", ids.span_id, ids.parent_id,
    )  # fmt: skip
    assert not current_context().is_valid


def test_ids_are_kept_for_recent_invocations_and_stay_the_same_when_forgotten() -> None:
    tracer = Tracing(Sink(), sample_ratio=0.5)
    first = tracer.invocation_ids("inv-0", {})
    assert tracer.invocation_ids("inv-0", {}) is first
    for i in range(3 * tracing._KEPT):
        tracer.invocation_ids(f"other-{i}", {})
    assert len(tracer._ids) <= 2 * tracing._KEPT
    again = tracer.invocation_ids("inv-0", {})
    assert again is not first and again == first
    sampled = sum(tracer.invocation_ids(f"other-{i}", {}).sampled for i in range(2000))
    assert 800 < sampled < 1200  # about half, at ratio 0.5


def test_the_quick_sampling_decision_agrees_with_the_ids_and_keeps_the_ratio() -> None:
    tracer = Tracing(Sink(), sample_ratio=0.25)
    invocation_ids = [f"inv_1{n:026d}" for n in range(4_000)]
    decided = [tracer.sampled(i, {}) for i in invocation_ids]
    assert decided == [tracer.invocation_ids(i, {}).sampled for i in invocation_ids]
    assert 0.22 < sum(decided) / len(decided) < 0.28
    # With a parent, its flag decides, whatever the id's hash says (other invocations: an
    # invocation's headers never change, and its ids are kept by id).
    children = [f"inv_2{n:026d}" for n in range(400)]
    assert all(tracer.sampled(i, {"traceparent": SAMPLED_PARENT}) for i in children[:200])
    assert not any(tracer.sampled(i, {"traceparent": UNSAMPLED_PARENT}) for i in children[200:])


def test_completions_get_spans_exactly_when_their_invocations_are_sampled() -> None:
    """The batch's completed invocations (the processor's list) are the candidates; a changed
    invocation that did not complete is not among them and gets no span."""
    sink = Sink()
    tracer = Tracing(sink, sample_ratio=0.5)
    view = StoreView({})
    invocation_ids = [f"inv_1{n:026d}" for n in range(200)]
    finished = []
    for n, invocation_id in enumerate(invocation_ids):
        status = {
            "st": "completed" if n % 10 else "running", "h": {}, "t": TARGET.encode(),
            "ca": 1_000, "ma": 1_002, "rc": 0, "o": [0, b"1"],
        }  # fmt: skip
        view.put(keys.invocation(invocation_id), status)
        if n % 10:
            finished.append((invocation_id, status))
    tracer.batch_committed(
        CommittedBatch(entries=200, fsync_seconds=0.0, now_ms=1, view=view, finished=finished)
    )
    expected = [
        i for n, i in enumerate(invocation_ids) if n % 10 and tracer.invocation_ids(i, {}).sampled
    ]
    assert 60 < len(expected) < 120
    assert [span.attributes["headway.invocation_id"] for span in sink.spans] == expected


def test_without_a_provider_calls_name_the_attempts_derived_span() -> None:
    """The OTLP exporter's case: nothing is made current (no handler could see it), and a
    call from attempt 2 names attempt 2's span, the one its attempt span gets."""
    sink = Sink()
    tracer = Tracing(sink)
    headers = {"traceparent": SAMPLED_PARENT}
    span = tracer.attempt_started("inv-6", headers, 2)
    seen = current_context()
    sent = tracer.outgoing_traceparent("inv-6", headers, 2)
    tracer.attempt_ended(span, "inv-6", headers, TARGET, 2, ValueError("boom"))
    (attempt_span,) = sink.spans
    assert not seen.is_valid
    assert attempt_span.span_id == attempt_span_id("inv-6", 2) != attempt_span_id("inv-6", 1)
    assert sent == format_traceparent(PARENT_TRACE, attempt_span.span_id, True)
    assert attempt_span.attributes["headway.attempt"] == 2
    assert attempt_span.error == "ValueError: boom"
    assert attempt_span.exception is not None and attempt_span.exception.message == "boom"


def test_a_providers_sampler_keeps_exactly_the_traces_headway_samples() -> None:
    """The trace id's lower 64 bits are the hash Headway decides on, which is what
    OpenTelemetry's ratio sampler reads: every sampled root reaches the provider's exporter."""
    exporter = InMemorySpanExporter()
    provider = new_provider(0.5)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = Tracing(provider, sample_ratio=0.5)
    invocation_ids = [f"inv_1{n:026d}" for n in range(400)]
    for invocation_id in invocation_ids:
        run_attempt(tracer, invocation_id, {})
        tracer.batch_committed(completed_batch(invocation_id, {}))
    sampled = {i for i in invocation_ids if tracer.sampled(i, {})}
    exported = exporter.get_finished_spans()
    assert 150 < len(sampled) < 250
    for name in ("Counter/add", "attempt Counter/add"):
        assert {
            span.attributes["headway.invocation_id"] for span in exported if span.name == name
        } == sampled  # fmt: skip


def test_an_express_runs_span_comes_with_its_invocations_completion() -> None:
    """The run's times wait for the completion's fact; a run given up (its invocation then
    completed the durable way, from attempt 1) keeps its attempt 0 span beside attempt 1's."""
    sink = Sink()
    tracer = Tracing(sink)
    span = tracer.attempt_started("inv-7", {}, EXPRESS_ATTEMPT)
    tracer.express_ran(span, "inv-7")
    assert sink.spans == []
    durable = tracer.attempt_started("inv-7", {}, 1)
    tracer.attempt_ended(durable, "inv-7", {}, TARGET, 1, None)
    tracer.batch_committed(completed_batch("inv-7", {}))
    attempt_1, invocation, attempt_0 = sink.spans
    ids = tracer.invocation_ids("inv-7", {})
    assert (invocation.name, invocation.span_id) == ("Counter/add", ids.span_id)
    for attempt, number in ((attempt_0, 0), (attempt_1, 1)):
        assert attempt.name == "attempt Counter/add" and attempt.parent_id == ids.span_id
        assert attempt.span_id == attempt_span_id("inv-7", number)
        assert attempt.attributes["headway.attempt"] == number
        assert attempt.start_ns <= attempt.end_ns
    tracer.batch_committed(completed_batch("inv-7", {}))  # its run went with the first
    assert [span.name for span in sink.spans[3:]] == ["Counter/add"]


def test_an_unsampled_express_run_keeps_nothing() -> None:
    sink = Sink()
    tracer = Tracing(sink, sample_ratio=0.0)
    tracer.express_ran(tracer.attempt_started("inv-8", {}, EXPRESS_ATTEMPT), "inv-8")
    tracer.batch_committed(completed_batch("inv-8", {}))
    assert sink.spans == [] and len(tracer._express_runs) == 0
