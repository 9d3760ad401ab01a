"""Quickstart: a Greeter service and a Counter virtual object.

headway dev examples/quickstart.py
curl -X POST localhost:8080/Greeter/greet -H 'content-type: application/json' -d '"Ada"'
curl -X POST localhost:8080/Counter/ada/add -H 'content-type: application/json' -d '5'
"""

from headway import Context, ObjectContext, ObjectSharedContext, Service, VirtualObject

greeter = Service("Greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return f"Hello, {name}!"


counter = VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    total = (await ctx.get("total") or 0) + delta
    ctx.set("total", total)
    return total


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    return await ctx.get("total") or 0
