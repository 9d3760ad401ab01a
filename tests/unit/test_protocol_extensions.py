"""Headway's protocol extensions: the emit message, its framing and its journal mapping."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from headway.sdk import ids
from headway.sdk import journal as j
from headway.sdk.journal import Target
from headway.sdk.protocol import messages as m
from headway.sdk.protocol.extensions import EmitCommandMessage, RecordHeader
from headway.sdk.protocol.framing import HEADER, FrameDecoder, decode_frames, encode_frame
from headway.sdk.protocol.invocation import ProtocolInvocation, read_request
from headway.sdk.protocol.journal_codec import (
    CompletionIds,
    decode_command,
    encode_command,
    replay_entries,
)
from headway.sdk.protocol.wire import ProtocolError

from headway import Context, Service

FULL = j.Emit("orders", b'{"n":1}', b"k1", {"trace": b"\x00\xff", "t": b""}, "east")
BARE = j.Emit("orders", b"", None, {}, None)
EMPTY_KEY = j.Emit("orders", b"v", b"", {}, "")


def _no_mint(target: j.Target, idempotency_key: str | None) -> str:
    raise AssertionError("an emit mints no invocation id")


@pytest.mark.parametrize("emit", [FULL, BARE, EMPTY_KEY], ids=["full", "bare", "empty-key"])
def test_an_emit_round_trips_through_its_message_and_frame(emit: j.Emit) -> None:
    message = encode_command(emit, [])
    assert isinstance(message, EmitCommandMessage)
    [wire] = decode_frames(encode_frame(message))
    assert wire == message
    assert isinstance(wire, m.CommandMessage)
    assert decode_command(wire, 1, _no_mint) == emit


def test_an_emit_takes_no_completion_id() -> None:
    cids = CompletionIds()
    assert cids.allocate(0, FULL) == [] and cids.next_id == 1


def test_the_emit_frame_has_the_first_custom_type_code_and_protobuf_fields() -> None:
    frame = encode_frame(EmitCommandMessage(topic="t", value=b"v", key=b""))
    assert frame[:8] == struct.pack(">HHI", 0xFC00, 0, len(frame) - 8)
    # field 1 "t", field 2 b"v", field 3 b"" (present: an empty key is not a missing one)
    assert frame[8:] == b"\x0a\x01t" + b"\x12\x01v" + b"\x1a\x00"
    header = RecordHeader("h", b"\x01")
    assert EmitCommandMessage(headers=[header]).encode() == b"\x22\x06" + header.encode()


@pytest.mark.parametrize("code", [0xFC01, 0xFD00, 0xFFFF])
def test_other_custom_type_codes_stay_unknown(code: int) -> None:
    with pytest.raises(ProtocolError, match=f"unknown message type {code:#06x}"):
        list(FrameDecoder().feed(HEADER.pack(code, 0, 0)))


def test_a_replayed_emit_reads_back_into_the_journal() -> None:
    journal: list[j.Command] = [j.Run("a"), FULL, j.Sleep("", 7), BARE]
    completions = {0: (0, j.Outcome.ok(b"r"))}
    entries = replay_entries(m.InputCommandMessage(), journal, completions, CompletionIds())
    replay = read_request([m.StartMessage(known_entries=len(entries)), *entries])
    assert replay.journal == journal
    assert replay.cids.next_id == 3  # the emits took none


shop = Service("Shop")


@shop.handler()
async def order(ctx: Context, n: int) -> int:
    ctx.emit("orders", {"n": n}, key=f"o{n}", headers={"h": "v"})
    await ctx.run("charge", lambda: n)
    ctx.emit("audit", b"raw", cluster="east")
    return n


def _request(*entries: m.Frame) -> list[m.Frame]:
    inv = ids.new_invocation_id(3)
    journal = [m.InputCommandMessage(value=m.Value(b"5")), *entries]
    start = m.StartMessage(id=ids.invocation_id_bytes(inv), debug_id=inv)
    start.known_entries = len(journal)
    return [start, *journal]


async def _respond(frames: list[m.Frame]) -> list[Any]:
    replay = read_request(frames)
    return await ProtocolInvocation(replay, Target("Shop", "order"), shop.handlers["order"]).run()


async def test_a_served_handler_sends_its_emits_and_replays_them() -> None:
    first = EmitCommandMessage(
        topic="orders", value=b'{"n":5}', key=b"o5", headers=[RecordHeader("h", b"v")]
    )
    out = await _respond(_request())
    assert out[:2] == [first, m.RunCommandMessage(result_completion_id=1, name="charge")]
    replayed = _request(
        first,
        m.RunCommandMessage(result_completion_id=1, name="charge"),
        m.RunCompletionNotificationMessage(completion_id=1, value=m.Value(b"5")),
    )
    assert await _respond(replayed) == [
        EmitCommandMessage(topic="audit", value=b"raw", cluster="east"),
        m.OutputCommandMessage(value=m.Value(b"5")),
        m.EndMessage(),
    ]


async def test_a_replay_where_the_journal_has_no_emit_is_a_mismatch() -> None:
    replayed = _request(m.RunCommandMessage(result_completion_id=1, name="charge"))
    [error] = await _respond(replayed)
    assert isinstance(error, m.ErrorMessage) and error.code == 570
