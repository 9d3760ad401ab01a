"""Services the crash, concurrency and bad-input tests drive through a real engine process.

Side effects the tests inspect go to files whose paths come in the handlers' inputs, so a test
can count how often a step really ran, independently of what the engine reports.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from headway import (
    Context,
    HandlerOptions,
    ObjectContext,
    ObjectSharedContext,
    RetryPolicy,
    Service,
    TerminalError,
    VirtualObject,
    Workflow,
    WorkflowContext,
)


def append_line(path: str, line: str) -> None:
    """Appends one line to `path` (a single small write, so lines never tear)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


async def pause(seconds: float) -> None:
    """Waits without blocking the engine's loop; used inside `ctx.run` steps."""
    await asyncio.sleep(seconds)


# -- counters: exactly-once state updates under crashes --------------------------------------

counter = VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    """Adds `delta` to the key's total and returns the new total."""
    total: int = (await ctx.get("total") or 0) + delta
    ctx.set("total", total)
    return total


@counter.handler()
async def add_in_step(ctx: ObjectContext, delta: int) -> int:
    """`add` after a journaled step: an invocation that always runs the durable way."""
    await ctx.run("step", lambda: None)
    total: int = (await ctx.get("total") or 0) + delta
    ctx.set("total", total)
    return total


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    """The key's total."""
    return int(await ctx.get("total") or 0)


# -- a workflow whose journaled side effect must happen once ---------------------------------

journey = Workflow("FileJourney")


@journey.main()
async def run(ctx: WorkflowContext, req: dict[str, Any]) -> str:
    """Appends a line to a file in a `ctx.run` step, sleeps durably, then answers."""
    await ctx.run("append", append_line, req["path"], req["line"])
    await ctx.sleep(timedelta(seconds=req["sleep"]))
    return f"wrote {req['line']} once"


# -- durable timers ----------------------------------------------------------------------------

sleeper = Service("Sleeper")


@sleeper.handler()
async def nap(ctx: Context, seconds: float) -> dict[str, float]:
    """Records the time before and after a durable sleep of `seconds`."""
    before: float = await ctx.run("before", time.time)
    await ctx.sleep(timedelta(seconds=seconds))
    after: float = await ctx.run("after", time.time)
    return {"before": before, "after": after}


# -- exclusive vs shared handlers on one key ---------------------------------------------------

ledger = VirtualObject("Ledger")


@ledger.handler()
async def exclusive_step(ctx: ObjectContext, req: dict[str, Any]) -> str:
    """Logs enter, pauses, logs exit: two of these on one key must never overlap."""
    await ctx.run("enter", append_line, req["path"], f"enter {req['label']}")
    await ctx.run("work", pause, req["pause"])
    await ctx.run("exit", append_line, req["path"], f"exit {req['label']}")
    return str(req["label"])


@ledger.handler(kind="shared")
async def shared_step(ctx: ObjectSharedContext, req: dict[str, Any]) -> str:
    """The same steps in a shared handler: these may, and should, run side by side."""
    await ctx.run("enter", append_line, req["path"], f"enter {req['label']}")
    await ctx.run("work", pause, req["pause"])
    await ctx.run("exit", append_line, req["path"], f"exit {req['label']}")
    return str(req["label"])


# -- failures ----------------------------------------------------------------------------------

failing = Service("Failing")

FAST_BACKOFF = HandlerOptions(
    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), factor=2.0)
)


@failing.handler(options=FAST_BACKOFF)
async def flaky(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    """Fails its first `failures` attempts (logging each to a file), then succeeds."""
    attempt = ctx.request().attempt
    append_line(req["path"], f"{attempt} {time.time()}")
    if attempt <= req["failures"]:
        raise RuntimeError(f"transient failure on attempt {attempt}")
    return {"attempt": attempt, "echo": req["echo"]}


@failing.handler()
async def refuse(ctx: Context, reason: str) -> str:
    """Ends with a terminal error: never retried, the caller sees code and message."""
    raise TerminalError(f"refused: {reason}", 422)


def _reject_in_step(reason: str) -> str:
    raise TerminalError(f"step rejected: {reason}", 418)


@failing.handler()
async def refuse_in_step(ctx: Context, reason: str) -> str:
    """A terminal error raised inside a `ctx.run` step ends the invocation with its code."""
    return await ctx.run("reject", _reject_in_step, reason)
