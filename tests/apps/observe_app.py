"""Services the observability tests (SQL, metrics, traces, web UI) run through a real engine."""

from __future__ import annotations

from datetime import timedelta

from headway import (
    Context,
    ObjectContext,
    Service,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)

counter = VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    total: int = (await ctx.get("total") or 0) + delta
    ctx.set("total", total)
    return total


back = Service("Back")


@back.handler()
async def double(ctx: Context, x: int) -> int:
    return x * 2


front = Service("Front")


@front.handler()
async def relay(ctx: Context, x: int) -> int:
    """Calls Back/double: a call chain ingress -> Front -> Back."""
    doubled: int = await ctx.service_call(double, x)
    return doubled + 1


sleeper = Service("Sleeper")


@sleeper.handler()
async def nap(ctx: Context, seconds: float) -> str:
    """Sleeps durably; with a long sleep the invocation suspends and waits."""
    await ctx.sleep(timedelta(seconds=seconds))
    return "rested"


approval = Workflow("Approval")


@approval.main()
async def run(ctx: WorkflowContext, item: str) -> str:
    decision: str = await ctx.promise("decision").value()
    return f"{item}: {decision}"


@approval.handler()
async def decide(ctx: WorkflowSharedContext, decision: str) -> None:
    await ctx.promise("decision").resolve(decision)
