"""Services written with the official Restate Python SDK, served by hypercorn as deployments.

`app_a` and `app_b` are two deployments; Greeter (on A) calls Echo (on B). Steps appends a
line per executed `ctx.run` to a file named in its input, so a test can count re-executions.
"""

import asyncio
from datetime import timedelta
from typing import Any

import restate
from restate import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    WorkflowContext,
    WorkflowSharedContext,
)

counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    total = (await ctx.get("count", type_hint=int) or 0) + delta
    ctx.set("count", total)
    return total


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    return await ctx.get("count", type_hint=int) or 0


steps = restate.Service("Steps")


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


@steps.handler()
async def run_steps(ctx: Context, req: dict[str, Any]) -> list[str]:
    """Runs `count` steps; each one appends to the file, then pauses `pause` seconds."""
    done = []
    for i in range(int(req["count"])):

        async def step(i: int = i) -> str:
            _append(req["file"], f"step {i}")
            await asyncio.sleep(float(req.get("pause", 0)))
            return f"done {i}"

        done.append(await ctx.run_typed(f"step {i}", step))
    return done


echo = restate.Service("Echo")


@echo.handler()
async def shout(ctx: Context, text: str) -> str:
    return text.upper()


greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    loud = await ctx.service_call(shout, arg=name)
    return f"hello {loud}!"


signup = restate.Workflow("Signup")


@signup.main()
async def run(ctx: WorkflowContext, email: str) -> str:
    code = await ctx.promise("confirm", type_hint=str).value()
    return f"{email} confirmed with {code}"


@signup.handler()
async def confirm(ctx: WorkflowSharedContext, code: str) -> str:
    await ctx.promise("confirm", type_hint=str).resolve(code)
    return "ok"


# Over a stream, a short inactivity timeout makes the engine ask the waiting handler to suspend.
waiter = restate.Service("Waiter", inactivity_timeout=timedelta(milliseconds=500))


@waiter.handler()
async def wait(ctx: Context, path: str) -> str:
    awakeable_id, promise = ctx.awakeable(type_hint=str)
    await ctx.run_typed("publish id", lambda: _append(path, awakeable_id))
    value = await promise
    return f"got {value}"


sleeper = restate.Service("Sleeper")


@sleeper.handler()
async def nap(ctx: Context, millis: int) -> str:
    await ctx.sleep(timedelta(milliseconds=millis))
    return "rested"


stuck = restate.Service(
    "Stuck",
    inactivity_timeout=timedelta(milliseconds=300),
    abort_timeout=timedelta(milliseconds=300),
)


@stuck.handler()
async def hang(ctx: Context, path: str) -> str:
    """A step that never finishes in time: the engine must drop the attempt and retry."""

    async def slow() -> str:
        _append(path, "attempt")
        await asyncio.sleep(60)
        return "never"

    return await ctx.run_typed("slow", slow)


app_a = restate.app(services=[counter, steps, greeter, signup, waiter, sleeper, stuck])
app_b = restate.app(services=[echo])
