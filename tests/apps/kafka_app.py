"""Handlers the Kafka tests subscribe to topics. Outputs go to `<input topic>-out`, so a test
that owns a unique input topic owns its output topic too."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pydantic

from headway import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    Service,
    TerminalError,
    VirtualObject,
)

counts = VirtualObject("Counts")


@counts.handler()
async def on_record(ctx: ObjectContext, record: dict[str, Any]) -> None:
    """Counts the records of its key and emits the running count."""
    if record.get("fail"):
        raise TerminalError(f"record asked to fail: {record['fail']}", 422)
    if record.get("step"):  # a journaled step: this record cannot take the express lane
        await ctx.run("step", lambda: None)
    n = (await ctx.get("n") or 0) + 1
    ctx.set("n", n)
    topic = ctx.request().kafka["topic"]  # type: ignore[index]
    ctx.emit(f"{topic}-out", {"key": ctx.key(), "n": n}, key=ctx.key())


@counts.handler(kind="shared")
async def count(ctx: ObjectSharedContext) -> int:
    return await ctx.get("n") or 0


@counts.handler()
async def bump(ctx: ObjectContext) -> int:
    """Adds one to the count from outside the stream (over HTTP), through a journaled step."""
    await ctx.run("bump", lambda: None)
    n: int = (await ctx.get("n") or 0) + 1
    ctx.set("n", n)
    return n


audit = Service("Audit")


@audit.handler()
async def on_event(ctx: Context, event: Any) -> dict[str, Any]:
    """Echoes what a service sink sees of its record, as an output."""
    if isinstance(event, dict) and event.get("sleep_ms"):
        await asyncio.sleep(event["sleep_ms"] / 1000)  # outside the journal: only slows it
    kafka = ctx.request().kafka or {}
    meta = {
        "topic": kafka.get("topic"), "partition": kafka.get("partition"),
        "offset": kafka.get("offset"), "key": (kafka.get("key") or b"").hex(),
        "headers": sorted(ctx.request().headers), "event": event,
    }  # fmt: skip
    ctx.emit(f"{kafka.get('topic')}-out", meta, key=kafka.get("key"))
    return meta


@audit.handler()
async def raw(ctx: Context, data: bytes) -> None:
    kafka = ctx.request().kafka or {}
    ctx.emit(f"{kafka.get('topic')}-out", data, key=kafka.get("key"))


tally = VirtualObject("Tally")


@tally.handler("on_record")
async def tally_record(ctx: ObjectContext, record: dict[str, Any]) -> None:
    """Like Counts, for a second subscription on the same topic: outputs to `<topic>-tally`."""
    n = (await ctx.get("n") or 0) + 1
    ctx.set("n", n)
    topic = ctx.request().kafka["topic"]  # type: ignore[index]
    ctx.emit(f"{topic}-tally", {"key": ctx.key(), "n": n}, key=ctx.key())


gate = VirtualObject("Gate")


@gate.handler("on_record")
async def gate_record(ctx: ObjectContext, record: dict[str, Any]) -> None:
    """Records with "wait" block on an awakeable (its id is in state "awakeable") until a test
    resolves it; every record then emits its key and position."""
    if record.get("wait"):
        awakeable_id, promise = ctx.awakeable(type_hint=str)
        ctx.set("awakeable", awakeable_id)
        await promise
    kafka = ctx.request().kafka or {}
    ctx.emit(f"{kafka['topic']}-out", {"key": ctx.key(), "offset": kafka["offset"]}, key=ctx.key())


@dataclasses.dataclass
class Click:
    user: str
    page: str


class Purchase(pydantic.BaseModel):
    user: str
    cents: int


@audit.handler()
async def on_click(ctx: Context, click: Click) -> None:
    """A dataclass input: the record's JSON is decoded into it."""
    topic = (ctx.request().kafka or {})["topic"]
    ctx.emit(f"{topic}-out", {"type": type(click).__name__, "user": click.user})


@audit.handler()
async def on_purchase(ctx: Context, purchase: Purchase) -> None:
    """A pydantic input: a record that does not validate fails terminally (dead letter)."""
    topic = (ctx.request().kafka or {})["topic"]
    ctx.emit(f"{topic}-out", {"type": type(purchase).__name__, "cents": purchase.cents})
