"""Trace ids of invocations and attempts, derived from invocation ids; W3C `traceparent`.

An invocation outlives processes (it suspends, the engine restarts), so its span cannot be
held open, and its ids are not stored either: they are derived from the invocation id (and
its parent's `traceparent`, which the invocation's stored headers keep), and an attempt's
span id from the invocation id and the attempt's number. Whatever needs them (an attempt's
calls, the span of a completed invocation, the process that exports spans) derives the same
ids on its own.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from headway.sdk.journal import Call, Emit, Send
from xxhash import xxh3_64_intdigest

TRACEPARENT = "traceparent"
# The commands that carry their issuer's trace context (a tuple: cheaper to test). Callers of
# `Observability.outgoing` test for these first: most commands (state reads and writes, steps)
# are not, and the test costs less than the call.
CARRIERS = (Call, Emit, Send)
_TRACEPARENT = re.compile(
    r"^\s*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\s*$"
)
# XXH3 seeds: of a trace id's upper half, of an invocation's span id, of attempt 0's span id.
_TRACE_SEED, _SPAN_SEED, _ATTEMPT_SEED = 1, 2, 16
ALWAYS = 1 << 64  # a sampling bound every hash falls below
# An express run's attempt number in its span and trace context (`express.py`): it comes before
# the durable attempts, so a run that does not take effect (its invocation then runs the durable
# way, from attempt 1) keeps a span of its own.
EXPRESS_ATTEMPT = 0


class Ids(NamedTuple):
    """An invocation span's ids; `parent_id` 0 when it starts a trace."""

    trace_id: int
    span_id: int
    parent_id: int
    sampled: bool


def invocation_ids(invocation_id: str, parent: str | None, bound: int) -> Ids:
    """An invocation's ids, derived from its id by XXH3 (no id is ever 0): in its parent's
    trace if `parent` is a valid `traceparent` (whose decision it follows), else a new trace,
    sampled if its `sampling_hash` (the trace id's lower 64 bits) is below `bound`.
    OpenTelemetry's ratio sampler decides on those same bits, so a provider's sampler keeps
    exactly the traces Headway does."""
    encoded = invocation_id.encode()
    span_id = xxh3_64_intdigest(encoded, _SPAN_SEED) or 1
    if parent is not None and (context := parse_traceparent(parent)) is not None:
        return Ids(context[0], span_id, context[1], context[2])
    low = sampling_hash(encoded)
    trace_id = (xxh3_64_intdigest(encoded, _TRACE_SEED) << 64 | low) or 1
    return Ids(trace_id, span_id, 0, low < bound)


# The hash a new trace is sampled on: of an invocation's encoded id, a uniform 64-bit number (the
# trace id's lower half), sampled if below the ratio's share of 2**64. OpenTelemetry's ratio
# sampler decides on the same bits. Deciding needs only this, not the trace's ids: most
# invocations are not sampled, and this is what each of them pays, at its attempt and at its
# completion (a C function, called directly: a function around it costs more than the hash).
sampling_hash = xxh3_64_intdigest


def attempt_span_id(invocation_id: str, attempt: int) -> int:
    """An attempt's span id, from its invocation id and number (never 0)."""
    return xxh3_64_intdigest(invocation_id.encode(), _ATTEMPT_SEED + attempt) or 1


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
