"""The bench services written with the official Restate Python SDK, for `bench/remote.py`."""

import restate
from restate import Context, ObjectContext

counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    total = (await ctx.get("total", type_hint=int) or 0) + delta
    ctx.set("total", total)
    return total


steps = restate.Service("Steps")


async def _step(value: int) -> int:
    return value + 1


@steps.handler()
async def three(ctx: Context, value: int) -> int:
    value = await ctx.run_typed("one", _step, value=value)
    value = await ctx.run_typed("two", _step, value=value)
    return await ctx.run_typed("three", _step, value=value)


app = restate.app(services=[counter, steps])
