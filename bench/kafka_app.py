"""The Headway side of bench/kafka_pipeline.py: a per-key counter fed by a Kafka subscription.

``on_record`` is the exactly-once pipeline (state plus one transactional output per record, to
``<input topic>-out``); ``on_record_quiet`` only counts, to measure ingestion and execution
without the output path; ``count`` reads a key's count back for the at-least-once check.
"""

from __future__ import annotations

from typing import Any

from headway import ObjectContext, ObjectSharedContext, VirtualObject

counts = VirtualObject("Counts")


@counts.handler()
async def on_record(ctx: ObjectContext, record: dict[str, Any]) -> None:
    """Count the key's records and emit the running count."""
    n = (await ctx.get("n") or 0) + 1
    ctx.set("n", n)
    topic = ctx.request().kafka["topic"]  # type: ignore[index]
    ctx.emit(f"{topic}-out", {"key": ctx.key(), "n": n}, key=ctx.key())


@counts.handler()
async def on_record_quiet(ctx: ObjectContext, record: dict[str, Any]) -> None:
    """Count the key's records; no output."""
    ctx.set("n", (await ctx.get("n") or 0) + 1)


@counts.handler(kind="shared")
async def count(ctx: ObjectSharedContext) -> int:
    """The key's count so far."""
    return await ctx.get("n") or 0
