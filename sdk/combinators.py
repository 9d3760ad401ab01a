"""Waiting on several durable futures at once: gather, select, as_completed.

They wait through the state machine, so an invocation blocked on all of them suspends, and
`select` picks by the journaled completion order, so a replay picks the same winner.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .context import DurableFuture
from .server_context import ServerDurableFuture


def _durable(futures: tuple[DurableFuture[Any], ...]) -> list[ServerDurableFuture[Any]]:
    out = []
    for f in futures:
        if not isinstance(f, ServerDurableFuture):
            raise TypeError("gather/select/as_completed take futures returned by ctx methods")
        out.append(f)
    return out


async def gather(*futures: DurableFuture[Any]) -> list[Any]:
    """Waits for all futures; returns their results in argument order (raises the first error)."""
    durable = _durable(futures)
    if durable:
        await durable[0].sm.wait([f.index for f in durable], first=False)
    return [await f for f in durable]


async def select(**futures: DurableFuture[Any]) -> tuple[str, Any]:
    """Waits for the first future to complete; returns its name and its result."""
    durable = dict(zip(futures, _durable(tuple(futures.values())), strict=True))
    if not durable:
        raise ValueError("select needs at least one future")
    sm = next(iter(durable.values())).sm
    await sm.wait([f.index for f in durable.values()], first=True)
    done = [(sm.completion_order(f.index), name) for name, f in durable.items() if f.done()]
    _, name = min(done)
    return name, await durable[name]


async def as_completed(*futures: DurableFuture[Any]) -> AsyncIterator[DurableFuture[Any]]:
    """Yields the futures in the order they complete (the journaled order on replay)."""
    remaining = _durable(futures)
    while remaining:
        sm = remaining[0].sm
        await sm.wait([f.index for f in remaining], first=True)
        nxt = min((f for f in remaining if f.done()), key=lambda f: sm.completion_order(f.index))
        remaining.remove(nxt)
        yield nxt
