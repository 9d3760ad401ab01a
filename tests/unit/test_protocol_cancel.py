"""The cancel signal behind `headway serve`: delivered once, to what the handler waits on.

Each case is a request as the engine would send it (the journal with the cancel signal among
its notifications, in arrival order) and the response the served handler gives.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from headway.sdk import ids
from headway.sdk.errors import TerminalError
from headway.sdk.journal import Target
from headway.sdk.protocol import messages as m
from headway.sdk.protocol.invocation import ProtocolInvocation, read_request

from headway import Context, Service

trip = Service("Trip")


@trip.handler()
async def nap(ctx: Context) -> str:
    """Sleeps; if cancelled, undoes its booking in a step of its own."""
    try:
        await ctx.sleep(timedelta(hours=1))
    except TerminalError as e:
        undone = await ctx.run("undo", lambda: "undone")
        return f"{undone} after {e.status_code} {e.message}"
    return "woke"


@trip.handler()
async def nap_after_step(ctx: Context) -> str:
    """A step, then a sleep: a cancel during the step reaches the sleep."""
    done = await ctx.run("step", lambda: "done")
    try:
        await ctx.sleep(timedelta(hours=1))
    except TerminalError as e:
        return f"{done}, then {e.status_code}"
    return f"{done}, then woke"


SLEEP = m.SleepCommandMessage(wake_up_time=1, result_completion_id=1)
WOKE = m.SleepCompletionNotificationMessage(completion_id=1, void=m.Void())
CANCEL = m.SignalNotificationMessage(signal_id=1, void=m.Void())
CANCELLED = "undone after 409 cancelled"


def request(*entries: m.Frame) -> list[m.Frame]:
    inv = ids.new_invocation_id(5)
    journal = [m.InputCommandMessage(), *entries]
    start = m.StartMessage(id=ids.invocation_id_bytes(inv), debug_id=inv)
    start.known_entries = len(journal)
    return [start, *journal]


async def respond(handler: str, *entries: m.Frame) -> list[Any]:
    replay = read_request(request(*entries))
    return await ProtocolInvocation(replay, Target("Trip", handler), trip.handlers[handler]).run()


def output(value: str) -> list[m.Frame]:
    return [m.OutputCommandMessage(value=m.Value(f'"{value}"'.encode())), m.EndMessage()]


async def test_a_suspension_also_waits_for_the_cancel_signal() -> None:
    out = await respond("nap")
    assert isinstance(out[0], m.SleepCommandMessage)
    assert out[1:] == [m.SuspensionMessage(waiting_completions=[1], waiting_signals=[1])]


async def test_the_awaited_sleep_fails_with_409_and_the_compensation_runs() -> None:
    out = await respond("nap", SLEEP, CANCEL)
    assert out == [
        m.RunCommandMessage(result_completion_id=2, name="undo"),
        m.ProposeRunCompletionMessage(result_completion_id=2, value=b'"undone"'),
        m.SuspensionMessage(waiting_completions=[2]),  # the cancel is known: not waited for
    ]
    undo = m.RunCommandMessage(result_completion_id=2, name="undo")
    undone = m.RunCompletionNotificationMessage(completion_id=2, value=m.Value(b'"undone"'))
    assert await respond("nap", SLEEP, CANCEL, undo, undone) == output(CANCELLED)


async def test_a_completion_after_the_cancel_loses_to_it() -> None:
    undo = m.RunCommandMessage(result_completion_id=2, name="undo")
    undone = m.RunCompletionNotificationMessage(completion_id=2, value=m.Value(b'"undone"'))
    assert await respond("nap", SLEEP, CANCEL, WOKE, undo, undone) == output(CANCELLED)


async def test_a_completion_before_the_cancel_wins() -> None:
    assert await respond("nap", SLEEP, WOKE, CANCEL) == output("woke")


async def test_a_step_is_not_cancelled_the_next_wait_is() -> None:
    step = m.RunCommandMessage(result_completion_id=1, name="step")
    done = m.RunCompletionNotificationMessage(completion_id=1, value=m.Value(b'"done"'))
    sleep = m.SleepCommandMessage(wake_up_time=1, result_completion_id=2)
    # The cancel came while the step ran: the step's result stands, the sleep fails.
    out = await respond("nap_after_step", step, CANCEL, done)
    assert isinstance(out[0], m.SleepCommandMessage) and out[0].result_completion_id == 2
    assert out[1:] == output("done, then 409")
    woke = m.SleepCompletionNotificationMessage(completion_id=2, void=m.Void())
    assert await respond("nap_after_step", step, CANCEL, done, sleep, woke) == output(
        "done, then 409"
    )
