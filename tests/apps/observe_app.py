"""Services the observability tests (SQL, metrics, traces, web UI) run through a real engine."""

from __future__ import annotations

from datetime import timedelta

from headway import (
    Context,
    HandlerOptions,
    ObjectContext,
    RetryPolicy,
    Service,
    TerminalError,
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


@counter.handler()
async def hold(ctx: ObjectContext, seconds: float) -> None:
    """Keeps the key's lock while it sleeps: later calls on the key queue in its inbox."""
    await ctx.sleep(timedelta(seconds=seconds))


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


flaky = Service("Flaky")


@flaky.handler(
    options=HandlerOptions(
        retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=50), factor=1.0)
    )
)
async def succeed_on(ctx: Context, attempt: int) -> int:
    """Fails with a retryable error until attempt number `attempt`."""
    if ctx.request().attempt < attempt:
        raise RuntimeError(f"attempt {ctx.request().attempt} fails")
    return ctx.request().attempt


@flaky.handler()
async def refuse(ctx: Context, reason: str) -> None:
    raise TerminalError(reason, 422)
