r"""Approvals: a handler that waits for an external system through an awakeable.

`request` creates an awakeable, stores its id in the object's state (where the external
system, here you with curl, finds it through the shared handler `pending_id`), then waits.
Resolving the awakeable over HTTP wakes the handler with the JSON body as the value;
rejecting it makes the wait raise a TerminalError. While waiting, the invocation suspends.

    headway dev examples/awakeable.py

    # ask for approval of request "order-7" (fire and forget)
    curl -X POST localhost:8080/Approvals/order-7/request/send \
      -H 'content-type: application/json' -d '"refund 20 EUR"'

    # the id the external system needs: a JSON string "prom_1..." (empty once decided)
    curl -X POST localhost:8080/Approvals/order-7/pending_id

    # approve it as "alice" (or POST .../reject with a text body to turn it down)
    curl -X POST localhost:8080/restate/awakeables/AWAKEABLE_ID/resolve \
      -H 'content-type: application/json' -d '"alice"'

    # the outcome, with the invocationId of the first response: "refund 20 EUR: approved by alice"
    curl localhost:8080/restate/invocation/INVOCATION_ID/attach
"""

from __future__ import annotations

from headway import ObjectContext, ObjectSharedContext, TerminalError, VirtualObject

approvals = VirtualObject("Approvals")


@approvals.handler()
async def request(ctx: ObjectContext, what: str) -> str:
    """Waits until someone resolves or rejects the awakeable; returns the decision."""
    awakeable_id, decision = ctx.awakeable()
    ctx.set("awakeable", awakeable_id)
    try:
        approver = await decision
        result = f"{what}: approved by {approver}"
    except TerminalError as e:
        result = f"{what}: rejected ({e.message})"
    ctx.clear("awakeable")
    ctx.set("decision", result)
    return result


@approvals.handler(kind="shared")
async def pending_id(ctx: ObjectSharedContext) -> str | None:
    """The awakeable id a pending `request` waits on, or None (an empty body) if none waits."""
    awakeable_id: str | None = await ctx.get("awakeable")
    return awakeable_id
