"""The SDK side of the protocol, without HTTP: a request's messages in, the response's out."""

from __future__ import annotations

import json
from typing import Any

from headway.sdk import ids
from headway.sdk.definitions import ServiceDefinition
from headway.sdk.journal import Target
from headway.sdk.protocol import messages as m
from headway.sdk.protocol.invocation import ProtocolInvocation, read_request
from headway.sdk.protocol.manifest import build_manifest

from headway import Context, ObjectContext, Service, VirtualObject

tally = VirtualObject("Tally")


@tally.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    total = (await ctx.get("total") or 0) + delta
    ctx.set("total", total)
    return total


work = Service("Work")


@work.handler()
async def twice(ctx: Context, value: int) -> int:
    first = await ctx.run("one", lambda: value + 1)
    return await ctx.run("two", lambda: first * 2)


@work.handler()
async def fail(ctx: Context) -> None:
    raise ValueError("boom")


INV = ids.new_invocation_id(7)


def request(body: Any, *entries: m.Frame, state: dict[str, bytes] | None = None) -> list[m.Frame]:
    journal = [m.InputCommandMessage(value=m.Value(json.dumps(body).encode())), *entries]
    start = m.StartMessage(
        id=ids.invocation_id_bytes(INV), debug_id=INV, known_entries=len(journal), key="k",
        state_map=[m.StateEntry(k.encode(), v) for k, v in (state or {}).items()],
    )  # fmt: skip
    return [start, *journal]


async def respond(definition: ServiceDefinition, handler: str, frames: list[m.Frame]) -> list[Any]:
    target = Target(definition.name, handler, "k" if definition.kind != "service" else None)
    replay = read_request(frames)
    return await ProtocolInvocation(replay, target, definition.handlers[handler]).run()


async def test_a_state_update_answers_commands_output_and_end() -> None:
    out = await respond(tally, "add", request(5, state={"total": b"2"}))
    assert out == [
        m.GetEagerStateCommandMessage(key=b"total", value=m.Value(b"2")),
        m.SetStateCommandMessage(key=b"total", value=m.Value(b"7")),
        m.OutputCommandMessage(value=m.Value(b"7")),
        m.EndMessage(),
    ]


async def test_a_run_is_proposed_then_the_handler_suspends_on_it() -> None:
    out = await respond(work, "twice", request(1))
    assert out == [
        m.RunCommandMessage(result_completion_id=1, name="one"),
        m.ProposeRunCompletionMessage(result_completion_id=1, value=b"2"),
        m.SuspensionMessage(waiting_completions=[1], waiting_signals=[1]),  # 1: cancel
    ]


async def test_a_replay_with_the_run_result_goes_on_from_there() -> None:
    replayed = request(
        1,
        m.RunCommandMessage(result_completion_id=1, name="one"),
        m.RunCompletionNotificationMessage(completion_id=1, value=m.Value(b"2")),
    )
    out = await respond(work, "twice", replayed)
    assert out[:2] == [
        m.RunCommandMessage(result_completion_id=2, name="two"),
        m.ProposeRunCompletionMessage(result_completion_id=2, value=b"4"),
    ]


async def test_a_different_path_on_replay_is_a_journal_mismatch_error() -> None:
    replayed = request(1, m.SleepCommandMessage(result_completion_id=1))
    [error] = await respond(work, "twice", replayed)
    assert isinstance(error, m.ErrorMessage) and error.code == 570


async def test_an_exception_is_a_retryable_error() -> None:
    [error] = await respond(work, "fail", request(None))
    assert error == m.ErrorMessage(code=500, message="ValueError: boom")


def test_the_manifest_lists_services_handlers_and_options() -> None:
    manifest = build_manifest([tally, work], 3)
    assert (manifest["minProtocolVersion"], manifest["maxProtocolVersion"]) == (5, 6)
    services = {s["name"]: s for s in manifest["services"]}
    assert services["Tally"]["ty"] == "VIRTUAL_OBJECT"
    assert [h["name"] for h in services["Work"]["handlers"]] == ["twice", "fail"]
    assert services["Tally"]["handlers"][0]["ty"] == "EXCLUSIVE"
    assert "ty" not in services["Work"]["handlers"][0]
