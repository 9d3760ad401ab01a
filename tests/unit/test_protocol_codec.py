"""The service protocol codec: wire format, framing, messages and the journal mapping."""

from __future__ import annotations

import struct

import pytest
from headway.sdk import ids
from headway.sdk import journal as j
from headway.sdk.protocol import messages as m
from headway.sdk.protocol import versions
from headway.sdk.protocol.framing import (
    HEADER,
    FrameDecoder,
    decode_frames,
    encode_frame,
    encode_frames,
)
from headway.sdk.protocol.invocation import read_request
from headway.sdk.protocol.journal_codec import (
    CompletionIds,
    decode_command,
    encode_command,
    notification,
    replay_entries,
)
from headway.sdk.protocol.signals import (
    SIGNAL_BASE,
    awakeable_slot,
    is_named_signal_slot,
    named_signal_slot,
    signal_slot,
)
from headway.sdk.protocol.wire import ProtocolError, decode_varint, encode_varint

EXAMPLES: list[m.Frame] = [
    m.StartMessage(
        id=b"\x01" * 24,
        debug_id="inv_1x",
        known_entries=3,
        state_map=[m.StateEntry(b"a", b"1"), m.StateEntry(b"empty", b"")],
        partial_state=True,
        key="ada",
        retry_count_since_last_stored_entry=2,
        duration_since_last_stored_entry=1500,
        random_seed=(1 << 64) - 1,
    ),
    m.SuspensionMessage(waiting_completions=[1, 2, 300], waiting_signals=[1, 17]),
    m.SuspensionMessage(
        awaiting_on=m.Future(
            waiting_completions=[3],
            nested_futures=[m.Future(waiting_signals=[1, 2], combinator_type=1)],
            combinator_type=4,
        )
    ),
    m.ErrorMessage(
        code=500,
        message="boom",
        stacktrace="tb",
        related_command_index=0,
        related_command_name="",
        next_retry_delay=0,
        behavior=2,
    ),
    m.EndMessage(),
    m.CommandAckMessage(command_index=7),
    m.ProposeRunCompletionMessage(result_completion_id=4, value=b""),
    m.ProposeRunCompletionMessage(result_completion_id=4, failure=m.Failure(400, "no")),
    m.AwaitingOnMessage(awaiting_on=m.Future(waiting_completions=[1]), executing_side_effects=True),
    m.ProposeRunCompletionAckMessage(completion_id=9),
    m.InputCommandMessage(headers=[m.Header("a", "b")], value=m.Value(b'{"x":1}')),
    m.OutputCommandMessage(value=m.Value(b"1")),
    m.OutputCommandMessage(failure=m.Failure(409, "x", [m.FailureMetadata("k", "v")])),
    m.GetLazyStateCommandMessage(key=b"k", result_completion_id=1, name="n"),
    m.SetStateCommandMessage(key=b"k", value=m.Value(b"v")),
    m.ClearStateCommandMessage(key=b"k"),
    m.ClearAllStateCommandMessage(),
    m.GetLazyStateKeysCommandMessage(result_completion_id=2),
    m.GetEagerStateCommandMessage(key=b"k", void=m.Void()),
    m.GetEagerStateCommandMessage(key=b"k", value=m.Value(b"")),
    m.GetEagerStateKeysCommandMessage(value=m.StateKeys([b"a", b"b"])),
    m.GetPromiseCommandMessage(key="p", result_completion_id=1),
    m.PeekPromiseCommandMessage(key="p", result_completion_id=1),
    m.CompletePromiseCommandMessage(
        key="p", completion_value=m.Value(b"1"), result_completion_id=2
    ),
    m.SleepCommandMessage(wake_up_time=1_700_000_000_000, result_completion_id=1, name="nap"),
    m.CallCommandMessage(
        service_name="S",
        handler_name="h",
        parameter=b"1",
        headers=[m.Header("x", "y")],
        key="k",
        idempotency_key="",
        invocation_id_notification_idx=1,
        result_completion_id=2,
    ),
    m.OneWayCallCommandMessage(
        service_name="S", handler_name="h", invoke_time=5, invocation_id_notification_idx=3
    ),
    m.SendSignalCommandMessage(target_invocation_id="inv_1", idx=1, void=m.Void()),
    m.SendSignalCommandMessage(
        target_invocation_id="inv_1", signal_name="s", failure=m.Failure(1, "")
    ),
    m.RunCommandMessage(result_completion_id=1, name="step"),
    m.AttachInvocationCommandMessage(invocation_id="inv_1", result_completion_id=1),
    m.AttachInvocationCommandMessage(
        idempotent_request_target=m.IdempotentRequestTarget("S", None, "h", "ik"),
        result_completion_id=1,
    ),
    m.GetInvocationOutputCommandMessage(workflow_target=m.WorkflowTarget("W", "k")),
    m.CompleteAwakeableCommandMessage(awakeable_id="sign_1x", value=m.Value(b"1")),
    m.SleepCompletionNotificationMessage(completion_id=1, void=m.Void()),
    m.CallInvocationIdCompletionNotificationMessage(completion_id=1, invocation_id="inv_1"),
    m.GetLazyStateKeysCompletionNotificationMessage(completion_id=1, state_keys=m.StateKeys()),
    m.SignalNotificationMessage(signal_id=17, value=m.Value(b"x")),
    m.SignalNotificationMessage(signal_name="n", failure=m.Failure(500, "r")),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda msg: type(msg).__name__)
def test_every_message_round_trips(message: m.Frame) -> None:
    assert type(message).decode(message.encode()) == message
    assert decode_frames(encode_frame(message)) == [message]


def test_every_frame_type_has_an_example() -> None:
    assert {type(x) for x in EXAMPLES} >= set(m.FRAMES.values()) - {
        m.GetLazyStateCompletionNotificationMessage,
        m.GetPromiseCompletionNotificationMessage,
        m.PeekPromiseCompletionNotificationMessage,
        m.CompletePromiseCompletionNotificationMessage,
        m.CallCompletionNotificationMessage,
        m.RunCompletionNotificationMessage,
        m.AttachInvocationCompletionNotificationMessage,
        m.GetInvocationOutputCompletionNotificationMessage,
    }  # fmt: skip (these share the notification shape with the examples)


def test_header_layout_is_type_flags_length_big_endian() -> None:
    frame = encode_frame(m.RunCommandMessage(result_completion_id=1), flags=0x8000)
    assert frame[:8] == struct.pack(">HHI", 0x0411, 0x8000, len(frame) - 8)


def test_known_bytes_match_protobuf_encoding() -> None:
    # field 11 varint 1 = 0x58 0x01; field 12 "a" = 0x62 0x01 0x61
    assert m.RunCommandMessage(result_completion_id=1, name="a").encode() == b"\x58\x01\x62\x01a"
    # packed repeated uint32 field 1 = [1, 300]
    assert m.SuspensionMessage(waiting_completions=[1, 300]).encode() == b"\x0a\x03\x01\xac\x02"


def test_unpacked_repeated_and_unknown_fields_are_accepted() -> None:
    data = b"\x08\x01\x08\x02" + b"\xa0\x06\x05" + b"\xaa\x06\x02hi"  # 1:[1,2], 100:5, 101:"hi"
    assert m.SuspensionMessage.decode(data).waiting_completions == [1, 2]


def test_optional_fields_keep_presence() -> None:
    message = m.ProposeRunCompletionMessage(result_completion_id=1, value=b"")
    assert m.ProposeRunCompletionMessage.decode(message.encode()).value == b""
    assert m.ProposeRunCompletionMessage.decode(b"\x08\x01").value is None


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 8, 9, 64, 10_000])
def test_decoder_reassembles_across_chunk_boundaries(chunk: int) -> None:
    stream = encode_frames(EXAMPLES)
    decoder = FrameDecoder()
    out: list[m.Frame] = []
    for start in range(0, len(stream), chunk):
        out.extend(message for message, _ in decoder.feed(stream[start : start + chunk]))
    decoder.finish()
    assert out == EXAMPLES


def test_unknown_message_type_is_a_clear_error() -> None:
    with pytest.raises(ProtocolError, match="unknown message type 0x0bad"):
        list(FrameDecoder().feed(HEADER.pack(0x0BAD, 0, 0)))


def test_truncated_stream_and_oversized_message_are_errors() -> None:
    decoder = FrameDecoder()
    assert list(decoder.feed(encode_frame(m.EndMessage()) + b"\x00\x03")) == [(m.EndMessage(), 0)]
    with pytest.raises(ProtocolError, match="ended inside a message"):
        decoder.finish()
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        list(FrameDecoder(max_message_bytes=10).feed(HEADER.pack(0x0003, 0, 11)))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x08", "truncated varint"),
        (b"\x0a\x05ab", "runs past the end"),
        (b"\x00\x01", "field number 0"),
        (b"\x0b", "unsupported wire type 3"),
        (b"\x12\x01a", "wire type 2, expected 0"),  # field 2 (idx) as bytes
        (b"\x08" + b"\xff" * 10 + b"\x01", "longer than 64 bits"),
    ],
)
def test_malformed_bodies_are_errors(data: bytes, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        m.SendSignalCommandMessage.decode(data)


def test_invalid_utf8_string_is_an_error() -> None:
    with pytest.raises(ProtocolError, match="not valid UTF-8"):
        m.RunCommandMessage.decode(b"\x62\x01\xff")


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 1 << 32, (1 << 64) - 1])
def test_varints_round_trip(value: int) -> None:
    out = bytearray()
    encode_varint(value, out)
    assert decode_varint(bytes(out), 0) == (value, len(out))


def test_negative_varint_is_refused() -> None:
    with pytest.raises(ProtocolError):
        encode_varint(-1, bytearray())


def test_content_types_and_negotiation() -> None:
    assert versions.invocation_content_type(5) == "application/vnd.restate.invocation.v5"
    assert versions.parse_invocation_content_type("application/vnd.restate.invocation.v6") == 6
    assert versions.parse_invocation_content_type("application/json") is None
    assert versions.parse_manifest_content_type(versions.manifest_content_type(3)) == 3
    bad = "application/vnd.restate.endpointmanifest.v+json"
    assert versions.parse_manifest_content_type(bad) is None
    assert "v2+json" in versions.manifest_accept_header()
    assert versions.negotiate(5, 7) == 7
    assert versions.negotiate(5, 6) == 6
    assert versions.negotiate(1, 4) is None


# -- the journal mapping ---------------------------------------------------------------------

TARGET = j.Target("Counter", "add", "ada")
JOURNAL: list[j.Command] = [
    j.GetState("count", b"1"),
    j.GetState("missing", None),
    j.StateKeys(["count"]),
    j.SetState("count", b"2"),
    j.ClearState("count"),
    j.ClearAllState(),
    j.Run("step"),
    j.Sleep("nap", 1_700_000_000_000),
    j.Call(TARGET, b"1", {"x": "y"}, None, "inv_callee"),
    j.Send(j.Target("S", "h"), b"", {}, "ik", "inv_sent", 42),
    j.GetPromise("p"),
    j.PeekPromise("p"),
    j.CompletePromise("p", j.Outcome.ok(b"1")),
    j.CompletePromise("q", j.Outcome.fail(400, "bad")),
    j.CompleteAwakeable("sign_1abc", j.Outcome.ok(b"1")),
    j.CancelInvocation("inv_other"),
    j.GetLazyState("count"),
    j.GetLazyStateKeys(),
    j.SendSignal("inv_other", 17, None, j.Outcome.ok(b"1")),
    j.SendSignal("inv_other", None, "approved", j.Outcome.fail(400, "no")),
    j.SendSignal("inv_other", None, "ping", j.Outcome(value=None)),
    j.AttachInvocation("inv_other", None, None),
    j.AttachInvocation(
        ids.deterministic_invocation_id("Counter", "add", "ada", "ik"),
        j.Target("Counter", "add", "ada"),
        "ik",
    ),
    j.GetInvocationOutput(
        ids.deterministic_invocation_id("Signup", "", "ann", None, workflow_run=True),
        j.Target("Signup", "", "ann"),
        None,
    ),
]


def _mint(target: j.Target, idempotency_key: str | None) -> str:
    return {"Counter": "inv_callee", "S": "inv_sent"}[target.service]


def test_every_journal_command_round_trips_through_its_message() -> None:
    encoder, decoder = CompletionIds(), CompletionIds()
    for index, command in enumerate(JOURNAL):
        message = encode_command(command, encoder.allocate(index, command))
        wire = type(message).decode(message.encode())
        decoded = decode_command(wire, decoder.next_id, _mint)
        decoder.allocate(index, decoded)
        assert decoded == command


def test_completion_ids_are_allocated_in_order_from_one() -> None:
    cids = CompletionIds()
    allocated = [cids.allocate(i, c) for i, c in enumerate(JOURNAL)]
    # Eager state reads take an id, as the official SDKs allocate one for every read.
    assert allocated[:3] == [[1], [2], [3]] and allocated[3:6] == [[], [], []]
    assert allocated[6] == [4] and allocated[7] == [5] and allocated[8] == [6, 7]
    assert allocated[9] == [8] and allocated[13] == [12] and allocated[14] == []
    assert cids.result_id(8, JOURNAL[8]) == 7 and cids.by_id[6] == 8


def test_a_command_with_unexpected_completion_ids_is_refused() -> None:
    message = m.RunCommandMessage(result_completion_id=5, name="step")
    with pytest.raises(ProtocolError, match=r"completion ids \[5\], expected \[1\]"):
        decode_command(message, 1, _mint)


def test_engine_answered_commands_take_one_completion_id() -> None:
    cids = CompletionIds()
    allocated = [cids.allocate(i, c) for i, c in enumerate(JOURNAL)]
    assert allocated[16:] == [[13], [14], [], [], [], [15], [16], [17]]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (m.OutputCommandMessage(), "not supported"),
        (m.SendSignalCommandMessage(target_invocation_id="inv_1", idx=5), "reserved"),
        (m.SendSignalCommandMessage(target_invocation_id="inv_1"), "exactly one of idx and name"),
        (m.SendSignalCommandMessage(target_invocation_id="inv_1", signal_name=""), "not be empty"),
        (m.AttachInvocationCommandMessage(result_completion_id=1), "names no target"),
        (m.GetLazyStateCommandMessage(key=b"k", result_completion_id=2), r"expected \[1\]"),
        (
            m.CallCommandMessage(
                service_name="S",
                handler_name="h",
                scope="tenant-1",
                invocation_id_notification_idx=1,
                result_completion_id=2,
            ),
            "scopes and limit keys are not supported",
        ),
        (
            m.OneWayCallCommandMessage(
                service_name="S", handler_name="h", limit_key="k", invocation_id_notification_idx=1
            ),
            "scopes and limit keys are not supported",
        ),
        (
            m.AttachInvocationCommandMessage(
                workflow_target=m.WorkflowTarget("W", "k", scope="t"), result_completion_id=1
            ),
            "scopes and limit keys are not supported",
        ),
    ],
)
def test_refused_commands_are_clear_errors(message: m.CommandMessage, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        decode_command(message, 1, _mint)


def test_replay_interleaves_notifications_in_arrival_order() -> None:
    journal: list[j.Command] = [j.Call(TARGET, b"", {}, None, "inv_c"), j.Run("a"), j.Run("b")]
    completions = {
        2: (0, j.Outcome.ok(b"b")),  # the second run finished first
        signal_slot(17): (1, j.Outcome.ok(b"s")),
        0: (2, j.Outcome.fail(500, "no")),
    }
    cids = CompletionIds()
    entries = replay_entries(
        m.InputCommandMessage(value=m.Value(b"in")), journal, completions, cids
    )
    assert cids.next_id == 5 and cids.by_id == {1: 0, 2: 0, 3: 1, 4: 2}
    kinds = [type(e).__name__ for e in entries]
    assert kinds == [
        "InputCommandMessage",
        "CallCommandMessage",
        "CallInvocationIdCompletion",
        "RunCommandMessage",
        "RunCommandMessage",
        "RunCompletion",
        "SignalNotification",
        "CallCompletion",
    ]
    assert entries[5] == m.RunCompletionNotificationMessage(completion_id=4, value=m.Value(b"b"))
    assert entries[7] == m.CallCompletionNotificationMessage(
        completion_id=2, failure=m.Failure(500, "no")
    )


def test_notifications_take_the_result_shape_of_their_command() -> None:
    assert notification(j.Sleep("", 0), 1, j.Outcome.ok()) == (
        m.SleepCompletionNotificationMessage(completion_id=1, void=m.Void())
    )
    assert notification(j.PeekPromise("p"), 1, j.Outcome(value=None)).void == m.Void()
    assert notification(j.CompletePromise("p", j.Outcome.ok()), 1, j.Outcome.ok()).void == m.Void()
    with pytest.raises(ProtocolError):
        notification(j.SetState("a", b""), 1, j.Outcome.ok())


def test_engine_answered_commands_have_their_notification_shapes() -> None:
    lazy = notification(j.GetLazyState("a"), 1, j.Outcome(value=None))
    assert lazy == m.GetLazyStateCompletionNotificationMessage(completion_id=1, void=m.Void())
    assert notification(j.GetLazyState("a"), 1, j.Outcome.ok(b"")).value == m.Value(b"")
    state_keys = notification(
        j.GetLazyStateKeys(), 2, j.Outcome.ok(j.encode_state_keys(["b", "a"]))
    )
    assert state_keys == m.GetLazyStateKeysCompletionNotificationMessage(
        completion_id=2, state_keys=m.StateKeys([b"a", b"b"])
    )
    attach = j.AttachInvocation("inv_1", None, None)
    assert notification(attach, 3, j.Outcome.fail(404, "gone")) == (
        m.AttachInvocationCompletionNotificationMessage(
            completion_id=3, failure=m.Failure(404, "gone")
        )
    )
    output = j.GetInvocationOutput("inv_1", None, None)
    assert notification(output, 4, j.Outcome(value=None)).void == m.Void()
    assert notification(output, 4, j.Outcome.ok(b"1")).value == m.Value(b"1")


def test_named_signals_replay_by_name_and_read_back_into_their_slots() -> None:
    named = named_signal_slot("approved")
    assert is_named_signal_slot(named) and not is_named_signal_slot(signal_slot((1 << 32) - 1))
    completions = {
        named: (0, j.Outcome.ok(b"yes")),
        signal_slot(17): (1, j.Outcome(value=None)),
        named_signal_slot("nameless"): (2, j.Outcome.ok()),  # no name: cannot be addressed
    }
    entries = replay_entries(
        m.InputCommandMessage(), [], completions, CompletionIds(), {named: "approved"}
    )
    assert entries[1:] == [
        m.SignalNotificationMessage(signal_name="approved", value=m.Value(b"yes")),
        m.SignalNotificationMessage(signal_id=17, void=m.Void()),
    ]
    replay = read_request([m.StartMessage(known_entries=len(entries)), *entries])
    assert replay.completions == {
        named: (0, j.Outcome.ok(b"yes")),
        signal_slot(17): (1, j.Outcome(value=None)),
    }


def test_awakeable_ids_map_to_signal_slots_or_journal_indexes() -> None:
    inv = ids.new_invocation_id(5)
    assert awakeable_slot(ids.awakeable_id(inv, 17)) == (inv, SIGNAL_BASE + 17)
    assert awakeable_slot(ids.awakeable_id(inv, 3, legacy=True)) == (inv, 3)
    with pytest.raises(ValueError, match="reserved"):
        awakeable_slot(ids.awakeable_id(inv, 1))


def test_a_replay_reads_back_as_the_same_journal_and_completions() -> None:
    journal: list[j.Command] = [
        j.GetState("count", b"1"),
        j.Run("a"),
        j.Call(TARGET, b"1", {"h": "v"}, "ik", "inv_called"),
        j.Send(j.Target("S", "h"), b"", {}, None, "inv_sent", 42),
        j.Sleep("", 7),
        j.PeekPromise("p"),
        j.CompletePromise("p", j.Outcome.ok(b"1")),
    ]
    completions = {
        1: (0, j.Outcome.ok(b"r")),
        4: (1, j.Outcome.ok()),
        2: (2, j.Outcome.fail(500, "no")),
        5: (3, j.Outcome(value=None)),
        6: (4, j.Outcome.ok()),
        signal_slot(17): (5, j.Outcome.ok(b"s")),
    }
    entries = replay_entries(m.InputCommandMessage(), journal, completions, CompletionIds())
    replay = read_request([m.StartMessage(known_entries=len(entries)), *entries])
    assert replay.journal == journal
    assert replay.completions == completions
    assert replay.cids.next_id == 9  # the state read took 1


@pytest.mark.parametrize(
    ("frames", "error"),
    [
        ([], "begin with StartMessage"),
        ([m.StartMessage(known_entries=2), m.InputCommandMessage()], "announced 2 entries"),
        ([m.StartMessage(known_entries=1), m.RunCommandMessage()], "begin with InputCommand"),
        (
            [m.StartMessage(known_entries=2), m.InputCommandMessage(), m.EndMessage()],
            "cannot appear in a journal",
        ),
        (
            [
                m.StartMessage(known_entries=2),
                m.InputCommandMessage(),
                m.RunCompletionNotificationMessage(completion_id=3, value=m.Value()),
            ],
            "unknown completion 3",
        ),
    ],
)
def test_malformed_requests_are_clear_errors(frames: list[m.Frame], error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        read_request(frames)


def test_a_v7_suspension_tree_is_flattened() -> None:
    from headway.engine.deployments.attempt import _waiting

    message = m.SuspensionMessage(
        awaiting_on=m.Future(
            waiting_completions=[3],
            nested_futures=[m.Future(waiting_signals=[1, 17], waiting_named_signals=["n"])],
        )
    )
    assert _waiting(message) == ([3], [1, 17], ["n"])
    assert _waiting(m.SuspensionMessage(waiting_completions=[2])) == ([2], [], [])
