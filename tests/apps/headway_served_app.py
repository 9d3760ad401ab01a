"""Headway SDK services for `headway serve`: state, steps, calls, a sleep, a workflow, Kafka
emits and a cancellable hold with its compensation.

Steps appends a line per executed `ctx.run` to a file named in its input, so a test can count
re-executions. The same module runs in-process too (`headway dev`), for comparison.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from headway import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    Service,
    TerminalError,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)

tally = VirtualObject("Tally")


@tally.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    total = (await ctx.get("total") or 0) + delta
    ctx.set("total", total)
    return total


@tally.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    return await ctx.get("total") or 0


chores = Service("Chores")


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


@chores.handler()
async def do(ctx: Context, req: dict[str, Any]) -> list[str]:
    done = []
    for i in range(int(req["count"])):

        async def step(i: int = i) -> str:
            _append(req["file"], f"chore {i}")
            await asyncio.sleep(float(req.get("pause", 0)))
            return f"did {i}"

        done.append(await ctx.run(f"chore {i}", step))
    await ctx.sleep(timedelta(milliseconds=200))
    total = await ctx.object_call(add, key="chores", arg=len(done))
    return [*done, f"tally {total}"]


approval = Workflow("Approval")


@approval.main()
async def run(ctx: WorkflowContext, item: str) -> str:
    verdict = await ctx.promise("verdict").value()
    return f"{item}: {verdict}"


@approval.handler()
async def decide(ctx: WorkflowSharedContext, verdict: str) -> None:
    await ctx.promise("verdict").resolve(verdict)


doorbell = Service("Doorbell")


@doorbell.handler()
async def ring(ctx: Context, path: str) -> str:
    """Publishes an awakeable's id to `path`, then waits for someone to resolve it."""
    awakeable_id, answer = ctx.awakeable(str)
    await ctx.run("publish", _append, path, awakeable_id)
    return f"opened by {await answer}"


shipments = VirtualObject("Shipments")


@shipments.handler()
async def ship(ctx: ObjectContext, order: dict[str, Any]) -> int:
    """Emits a record per item, with a step between two of them so that the second attempt
    replays the first emit; a declined order emits nothing, as its invocation fails."""
    shipped = await ctx.get("shipped") or 0
    items = list(order["items"])
    for i, item in enumerate(items):
        if i == 1:
            await ctx.run("pack", lambda: None)
        shipped += 1
        record = {"item": item, "n": shipped}
        ctx.emit(order["topic"], record, key=ctx.key(), headers={"order": order["id"]})
    ctx.set("shipped", shipped)
    if order.get("declined"):
        raise TerminalError("payment declined", 402)
    return shipped


holds = Service("Holds")


@holds.handler()
async def hold(ctx: Context, req: dict[str, str]) -> str:
    """Holds a seat, then waits a day (`"wait": "sleep"`) or for an awakeable; cancelled, it
    releases the seat in a compensating step and fails as it was told."""
    await ctx.run("hold", _append, req["file"], "held")
    try:
        if req["wait"] == "sleep":
            await ctx.sleep(timedelta(days=1))
        else:
            _, answer = ctx.awakeable(str)
            await answer
    except TerminalError:
        await ctx.run("release", _append, req["file"], "released")
        raise
    return "kept"
