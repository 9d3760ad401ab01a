r"""Fan-out/fan-in: one handler calls a worker once per item and combines the results.

`FanOut/process` issues one durable `ctx.service_call` per item to `Worker/square` (they all
run concurrently), then waits for all of them with `headway.gather` and sums the results.
The calls are journaled, so after a crash the coordinator neither re-sends nor loses one.

    headway dev examples/fan_out.py

    # {"results": [1, 4, 9, 16], "total": 30}
    curl -X POST localhost:8080/FanOut/process \
      -H 'content-type: application/json' -d '[1, 2, 3, 4]'
"""

from __future__ import annotations

from typing import Any

from headway import Context, Service, gather

worker = Service("Worker")


def compute_square(x: int) -> int:
    """Stands in for real work done by a worker."""
    return x * x


@worker.handler()
async def square(ctx: Context, x: int) -> int:
    """One unit of work, in a journaled step."""
    return await ctx.run("square", compute_square, x)


fan_out = Service("FanOut")


@fan_out.handler()
async def process(ctx: Context, items: list[int]) -> dict[str, Any]:
    """Squares every item on a worker, in parallel; returns the squares and their sum."""
    calls = [ctx.service_call(square, x) for x in items]
    results: list[int] = await gather(*calls)
    return {"results": results, "total": sum(results)}
