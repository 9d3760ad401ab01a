"""The services the benchmarks drive: `headway dev bench/apps.py`.

- `Counter` (virtual object): `add` is the quickstart's exclusive read-modify-write
  (one GetState, one SetState, per-key lock); `get` is a shared read.
- `Steps` (service): `three` runs three `ctx.run` steps, each journaled and completed
  through the log before the next one starts (3 round trips through group commit).
"""

from headway.sdk.definitions import ServiceDefinition

from headway import Context, ObjectContext, ObjectSharedContext, Service, VirtualObject

counter = VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    total = (await ctx.get("total") or 0) + delta
    ctx.set("total", total)
    return total


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    return await ctx.get("total") or 0


steps = Service("Steps")


async def _step(value: int) -> int:
    return value + 1


@steps.handler()
async def three(ctx: Context, value: int) -> int:
    value = await ctx.run("one", _step, value)
    value = await ctx.run("two", _step, value)
    return await ctx.run("three", _step, value)


app: list[ServiceDefinition] = [counter, steps]
