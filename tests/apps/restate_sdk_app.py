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


# Lazy state: the engine sends no state with the request; each read is a command it answers.
lazy_counter = restate.VirtualObject("LazyCounter", state_preload=False)


@lazy_counter.handler(name="add")
async def lazy_add(ctx: ObjectContext, delta: int) -> dict[str, Any]:
    before = await ctx.get("count", type_hint=int)
    total = (before or 0) + delta
    ctx.set("count", total)
    ctx.set(f"added {delta}", True)
    return {"before": before, "total": total, "keys": sorted(await ctx.state_keys())}


@lazy_counter.handler(kind="shared", name="get")
async def lazy_get(ctx: ObjectSharedContext) -> dict[str, Any]:
    return {"count": await ctx.get("count", type_hint=int), "keys": await ctx.state_keys()}


@lazy_counter.handler(name="reset")
async def lazy_reset(ctx: ObjectContext) -> list[str]:
    ctx.clear_all()
    return await ctx.state_keys()


# Many keys: with a small eager state limit, the engine sends some and the SDK reads the rest.
profile = restate.VirtualObject("Profile")


@profile.handler()
async def fill(ctx: ObjectContext, fields: dict[str, str]) -> None:
    for name, value in fields.items():
        ctx.set(name, value)


@profile.handler(kind="shared")
async def read(ctx: ObjectSharedContext, names: list[str]) -> dict[str, Any]:
    return {name: await ctx.get(name, type_hint=str) for name in names}


attacher = restate.Service("Attacher")


@attacher.handler()
async def attach(ctx: Context, invocation_id: str) -> Any:
    """Waits for another invocation's result (a failure of it fails this one alike)."""
    return await ctx.attach_invocation(invocation_id, type_hint=str)


# Named signals and awakeables resolved from another handler, not through the ingress.
signals = restate.Service("Signals", inactivity_timeout=timedelta(milliseconds=500))


@signals.handler()
async def await_named(ctx: Context, path: str) -> str:
    invocation_id = ctx.request().id
    await ctx.run_typed("publish id", lambda: _append(path, invocation_id))
    value = await ctx.signal("approved", type_hint=str)
    return f"approved by {value}"


@signals.handler()
async def await_awakeable(ctx: Context, path: str) -> str:
    awakeable_id, promise = ctx.awakeable(type_hint=str)
    await ctx.run_typed("publish id", lambda: _append(path, awakeable_id))
    return f"woken with {await promise}"


@signals.handler()
async def send_named(ctx: Context, req: dict[str, str]) -> str:
    if "reject" in req:
        ctx.reject_signal(req["id"], "approved", req["reject"], 403)
    else:
        ctx.resolve_signal(req["id"], "approved", req["value"])
    return "sent"


@signals.handler()
async def resolve(ctx: Context, req: dict[str, str]) -> str:
    ctx.resolve_awakeable(req["id"], req["value"])
    return "resolved"


app_a = restate.app(
    services=[
        counter, steps, greeter, signup, waiter, sleeper, stuck, lazy_counter, profile,
        attacher, signals,
    ]
)  # fmt: skip
app_b = restate.app(services=[echo])
