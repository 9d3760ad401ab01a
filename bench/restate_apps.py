"""The bench Counter written with the official Restate Python SDK, for `bench/remote.py`."""

import restate
from restate import ObjectContext

counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    total = (await ctx.get("total", type_hint=int) or 0) + delta
    ctx.set("total", total)
    return total


app = restate.app(services=[counter])
