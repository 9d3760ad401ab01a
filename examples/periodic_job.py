r"""Jobs: a periodic job that reschedules itself with a delayed send to its own key.

`start` records the schedule and sends the first `tick` with a delay. Each `tick` does the
work in a journaled `ctx.run` step, counts it in state, and sends the next `tick` to itself
with `send_delay` until `max_runs` is reached. `stop` ends the chain early: every schedule
has a generation number, and a tick of an older generation does nothing. Delayed sends are
durable timers, so the schedule survives restarts.

    headway dev examples/periodic_job.py

    # run the "report" job 5 times, one second apart
    curl -X POST localhost:8080/Jobs/report/start \
      -H 'content-type: application/json' -d '{"max_runs": 5, "interval_ms": 1000}'

    # {"runs": ..., "max_runs": 5, "active": ..., "last": ...}
    curl -X POST localhost:8080/Jobs/report/status

    # stop before max_runs
    curl -X POST localhost:8080/Jobs/report/stop
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from headway import ObjectContext, ObjectSharedContext, TerminalError, VirtualObject

jobs = VirtualObject("Jobs")


def do_work(job: str, run: int) -> str:
    """Stands in for the periodic work: a report, a cleanup, a sync."""
    print(f"[job] {job}: run {run}", flush=True)
    return f"{job} run {run} done"


def _schedule_tick(ctx: ObjectContext, generation: int, interval_ms: int) -> None:
    ctx.object_send(tick, ctx.key(), generation, send_delay=timedelta(milliseconds=interval_ms))


@jobs.handler()
async def start(ctx: ObjectContext, params: dict[str, Any]) -> str:
    """Starts (or restarts) the schedule: `{"max_runs": N, "interval_ms": MS}`."""
    max_runs = int(params.get("max_runs", 3))
    interval_ms = int(params.get("interval_ms", 1000))
    if max_runs < 1 or interval_ms < 0:
        raise TerminalError("max_runs must be >= 1 and interval_ms >= 0", 400)
    generation = (await ctx.get("generation") or 0) + 1
    ctx.set("generation", generation)
    ctx.set("runs", 0)
    ctx.set("max_runs", max_runs)
    ctx.set("interval_ms", interval_ms)
    ctx.set("active", True)
    ctx.clear("last")
    _schedule_tick(ctx, generation, interval_ms)
    return f"started {ctx.key()}: {max_runs} runs every {interval_ms} ms"


@jobs.handler()
async def tick(ctx: ObjectContext, generation: int) -> str:
    """One run of the job; schedules the next one unless it was the last or was stopped."""
    if generation != await ctx.get("generation"):
        return "stale tick: the job was stopped or restarted"
    runs = (await ctx.get("runs") or 0) + 1
    max_runs: int = await ctx.get("max_runs")
    result = await ctx.run("work", do_work, ctx.key(), runs)
    ctx.set("runs", runs)
    ctx.set("last", result)
    if runs < max_runs:
        _schedule_tick(ctx, generation, await ctx.get("interval_ms"))
    else:
        ctx.set("active", False)
    return result


@jobs.handler()
async def stop(ctx: ObjectContext) -> int:
    """Stops the schedule; a tick already scheduled will find it stopped. Returns the runs."""
    ctx.set("generation", (await ctx.get("generation") or 0) + 1)
    ctx.set("active", False)
    runs: int = await ctx.get("runs") or 0
    return runs


@jobs.handler(kind="shared")
async def status(ctx: ObjectSharedContext) -> dict[str, Any]:
    """How many runs happened, the limit, whether the schedule is active, the last result."""
    return {
        "runs": await ctx.get("runs") or 0,
        "max_runs": await ctx.get("max_runs"),
        "active": bool(await ctx.get("active")),
        "last": await ctx.get("last"),
    }
