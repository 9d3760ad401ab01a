r"""Trips: a booking saga that undoes completed steps when a later one fails.

`book` books a flight, then a hotel, then charges the payment, each in a journaled
`ctx.run` step. After each step succeeds, its compensation (cancel flight, cancel hotel,
refund) is registered. When a step fails with a TerminalError, the registered compensations
run in reverse order (each journaled, so a crash mid-way neither skips nor repeats one) and
the error is re-raised to the caller. Every booking and cancellation is appended to the
trip's state `events`, which the shared handler `events` returns.

Failure is chosen by the input: `{"fail_at": "flight" | "hotel" | "payment"}` (or `{}`).

    headway dev examples/saga.py

    # succeeds: {"flight":"FL-trip1","hotel":"HT-trip1","payment":"PAY-trip1"}
    curl -X POST localhost:8080/Trips/trip1/book -H 'content-type: application/json' -d '{}'

    # payment declined (402): the hotel then the flight are cancelled
    curl -X POST localhost:8080/Trips/trip2/book \
      -H 'content-type: application/json' -d '{"fail_at": "payment"}'
    curl -X POST localhost:8080/Trips/trip2/events
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from headway import ObjectContext, ObjectSharedContext, TerminalError, VirtualObject

trips = VirtualObject("Trips")

DECLINED = {
    "flight": ("no seats left on the flight", 409),
    "hotel": ("no rooms left at the hotel", 409),
    "payment": ("payment declined", 402),
}


def reserve(step: str, trip: str, fail_at: str | None) -> str:
    """Stands in for a booking API: returns a booking id, or fails terminally on `fail_at`."""
    if step == fail_at:
        message, code = DECLINED[step]
        raise TerminalError(message, code)
    booking = {"flight": "FL", "hotel": "HT", "payment": "PAY"}[step] + f"-{trip}"
    print(f"[saga] booked {booking}", flush=True)
    return booking


def release(booking: str) -> str:
    """Stands in for a cancellation API."""
    print(f"[saga] cancelled {booking}", flush=True)
    return f"cancelled {booking}"


@trips.handler()
async def book(ctx: ObjectContext, request: dict[str, Any]) -> dict[str, str]:
    """Books flight, hotel and payment; on a terminal failure undoes what was done."""
    fail_at = request.get("fail_at")
    if fail_at is not None and fail_at not in DECLINED:
        raise TerminalError(f"fail_at must be one of {sorted(DECLINED)}", 400)
    trip = ctx.key()
    events: list[str] = await ctx.get("events") or []
    compensations: list[tuple[str, Callable[[], str]]] = []
    bookings: dict[str, str] = {}
    try:
        for step in ("flight", "hotel", "payment"):
            booking = await ctx.run(f"book {step}", reserve, step, trip, fail_at)
            bookings[step] = booking
            events.append(f"booked {booking}")
            ctx.set("events", events)
            compensations.append((f"undo {step}", functools.partial(release, booking)))
    except TerminalError:
        for name, undo in reversed(compensations):
            events.append(await ctx.run(name, undo))
            ctx.set("events", events)
        raise
    return bookings


@trips.handler(kind="shared")
async def events(ctx: ObjectSharedContext) -> list[str]:
    """What the saga did for this trip, in order: bookings then cancellations."""
    return await ctx.get("events") or []
