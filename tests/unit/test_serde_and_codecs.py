"""Encodings that reach disk or the wire, serdes, durations and option helpers."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pydantic
import pytest
from headway.engine.durations import parse_duration_ms
from headway.engine.entries import (
    Append,
    AttemptFailed,
    Caller,
    Cancel,
    Complete,
    DeadLetter,
    End,
    Entry,
    Express,
    Invoke,
    Kill,
    OutboxShipped,
    PutKafkaCluster,
    ReplaceState,
    Subscribe,
    SubscriptionFailed,
    Suspend,
    TimerFired,
    Unsubscribe,
    decode_entry,
)
from headway.engine.store import pack, pack_array, unpack
from headway.sdk import HandlerOptions, RetryPolicy
from headway.sdk.journal import (
    AttachInvocation,
    Awakeable,
    Call,
    CancelInvocation,
    ClearAllState,
    ClearState,
    Command,
    CompleteAwakeable,
    CompletePromise,
    Emit,
    Failure,
    GetInvocationOutput,
    GetLazyState,
    GetLazyStateKeys,
    GetPromise,
    GetState,
    Outcome,
    PeekPromise,
    Run,
    Send,
    SendSignal,
    SetState,
    Sleep,
    StateKeys,
    Target,
    decode_command,
    describe,
    same_command,
)
from headway.sdk.serde import (
    DEFAULT_SERDE,
    BytesSerde,
    DataclassSerde,
    JsonSerde,
    PydanticSerde,
    serde_for,
)

INV = "inv_1fBuS9KMPNrt0zQBGdilypucn1EeT7AO5j"
KEYED = Target("Obj", "h", "key")
UNKEYED = Target("Svc", "h")

COMMANDS: list[Command] = [
    Run("step"),
    Run(""),
    GetState("name", b"\x00\xffvalue"),
    GetState("name", None),
    StateKeys(["a", "b", "ключ"]),
    StateKeys([]),
    SetState("name", b'{"a":1}'),
    SetState("empty", b""),
    ClearState("name"),
    ClearAllState(),
    Sleep("nap", 1_700_000_000_000),
    Sleep("", 0),
    Call(KEYED, b"in", {"h": "v"}, "idem", INV),
    Call(UNKEYED, b"", {}, None, INV),
    Send(KEYED, b"in", {"h": "v"}, None, INV, 1_700_000_000_123),
    Send(UNKEYED, b"", {}, "idem", INV, 0),
    Awakeable(),
    CompleteAwakeable("prom_1abc", Outcome.ok(b"1")),
    CompleteAwakeable("sign_1abc", Outcome.fail(418, "teapot")),
    GetPromise("p"),
    PeekPromise("p"),
    CompletePromise("p", Outcome.ok(b'"v"')),
    CompletePromise("p", Outcome.fail(409, "taken")),
    Emit("topic", b"value", b"key", {"h": b"\x00"}, "cluster"),
    Emit("topic", b"", None, {}, None),
    CancelInvocation(INV),
    GetLazyState("count"),
    GetLazyStateKeys(),
    SendSignal(INV, 17, None, Outcome.ok(b"1")),
    SendSignal(INV, None, "approved", Outcome(value=None)),
    AttachInvocation(INV, None, None),
    AttachInvocation(INV, Target("S", "h", "k"), "ik"),
    GetInvocationOutput(INV, Target("W", "", "k"), None),
]

ENTRIES: list[Entry] = [
    Invoke(INV, KEYED, b"input", {"h": "v"}),
    Invoke(
        INV,
        UNKEYED,
        b"",
        {},
        Caller("inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz", 3),
        1_700_000_000_000,
        "idem",
        {"subscription": "sub_1", "topic": "t", "partition": 2, "offset": 99},
    ),
    *(Append(INV, 2, i, command) for i, command in enumerate(COMMANDS)),
    Complete(INV, 4, Outcome.ok(b"v")),
    Complete(INV, 1 << 40, Outcome.ok(b"v"), "approved"),
    Complete(INV, 4, Outcome.ok()),
    Complete(INV, 4, Outcome(value=None)),
    Complete(INV, 0, Outcome.fail(500, "boom")),
    End(INV, 1, Outcome.ok(b'"done"')),
    End(INV, 3, Outcome.fail(400, "bad input")),
    AttemptFailed(INV, 1, "ValueError: x", 1_700_000_000_500),
    Suspend(INV, 2, [0, 3, 7]),
    TimerFired(b"tm/0000018bcfe56800/0000000000000003"),
    Cancel(INV),
    Kill(INV),
    ReplaceState("Obj", "key", {"a": b"1", "b": b""}),
    ReplaceState("Obj", "key", {}),
    Subscribe(
        {
            "id": "sub_1",
            "source": "kafka://local/t",
            "sink": "service://S/h",
            "options": {"auto.offset.reset": "earliest"},
            "dlq": None,
            "failed": None,
        }
    ),
    Unsubscribe("sub_1"),
    DeadLetter(
        {
            "sub": "sub_1",
            "group": "g",
            "cluster": "local",
            "topic": "t",
            "partition": 1,
            "offset": 5,
            "key": None,
            "headers": {"h": b"\x00"},
        },
        ["dlq", b"k", b"not json", {"headway.error.reason": b"bad"}],
    ),
    OutboxShipped("local", 42),
    OutboxShipped("", 0),
    SubscriptionFailed("sub_1", "record t/0@3 cannot be invoked"),
    PutKafkaCluster("local", {"name": "local", "brokers": ["127.0.0.1:9092"], "properties": {}}),
    PutKafkaCluster("local", None),
    Express(
        Invoke(
            INV,
            Target("Obj", "b64:AAE=", "on_record"),
            b"{}",
            {"h": "v"},
            None,
            0,
            None,
            {
                "sub": "sub_1",
                "group": "g",
                "cluster": "local",
                "topic": "t",
                "partition": 0,
                "offset": 9,
                "timestamp": 1,
                "key": b"\x00\x01",
                "headers": {},
            },
        ),
        (GetState("n", None), SetState("n", b"1"), Emit("out", b"{}", b"k", {}, None)),
        1_700_000_000_000,
    ),
]


def _name(value: Any) -> str:
    return type(value).__name__


# -- journal commands and log entries -----------------------------------------------------


def test_every_command_type_is_covered() -> None:
    covered = {type(c) for c in COMMANDS}
    # names: `slots=True` leaves the pre-slots class behind among the subclasses
    assert {c.__name__ for c in covered} == {c.__name__ for c in Command.__subclasses__()}
    assert len({c.TAG for c in covered}) == len(covered)


def test_every_entry_type_is_covered() -> None:
    covered = {type(e) for e in ENTRIES}
    assert {e.__name__ for e in covered} == {e.__name__ for e in Entry.__subclasses__()}
    assert len({e.TAG for e in covered}) == len(covered)


@pytest.mark.parametrize("command", COMMANDS, ids=_name)
def test_command_round_trips_through_msgpack(command: Command) -> None:
    raw = command.encode()
    assert raw[0] == command.TAG
    decoded = decode_command(unpack(pack(raw)))
    assert decoded == command
    assert type(decoded) is type(command)


@pytest.mark.parametrize("entry", ENTRIES, ids=_name)
def test_entry_round_trips_through_msgpack(entry: Entry) -> None:
    raw = entry.encode()
    assert raw[0] == entry.TAG
    decoded = decode_entry(unpack(pack(raw)))
    assert decoded == entry
    assert type(decoded) is type(entry)


def test_tags_are_stable() -> None:
    # The tags are part of the on-disk format: changing one breaks existing data.
    assert {type(c).__name__: c.TAG for c in COMMANDS} == {
        "Run": 1, "GetState": 2, "StateKeys": 3, "SetState": 4, "ClearState": 5,
        "ClearAllState": 6, "Sleep": 7, "Call": 8, "Send": 9, "Awakeable": 10,
        "CompleteAwakeable": 11, "GetPromise": 12, "PeekPromise": 13, "CompletePromise": 14,
        "Emit": 15, "CancelInvocation": 16, "GetLazyState": 17, "GetLazyStateKeys": 18,
        "SendSignal": 19, "AttachInvocation": 20, "GetInvocationOutput": 21,
    }  # fmt: skip
    assert {type(e).__name__: e.TAG for e in ENTRIES} == {
        "Invoke": 1, "Append": 2, "Complete": 3, "End": 4, "AttemptFailed": 5, "Suspend": 6,
        "TimerFired": 7, "Cancel": 8, "Kill": 9, "ReplaceState": 10, "Subscribe": 11,
        "Unsubscribe": 12, "DeadLetter": 13, "OutboxShipped": 14, "SubscriptionFailed": 15,
        "PutKafkaCluster": 16, "Express": 20,
    }  # fmt: skip


def test_completable_commands() -> None:
    completable = {type(c).__name__ for c in COMMANDS if c.completable}
    assert completable == {
        "Run", "Sleep", "Call", "Awakeable", "GetPromise", "PeekPromise", "CompletePromise",
        "GetLazyState", "GetLazyStateKeys", "AttachInvocation", "GetInvocationOutput",
    }  # fmt: skip


def test_unknown_tags_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log entry tag 99"):
        decode_entry([99])
    with pytest.raises(KeyError):
        decode_command([99])


def test_commands_with_a_wrong_number_of_fields_are_rejected() -> None:
    with pytest.raises(ValueError):
        decode_command([Run.TAG])
    with pytest.raises(ValueError):
        decode_command([Run.TAG, "a", "b"])


# -- outcome and target --------------------------------------------------------------------


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome.ok(),
        Outcome.ok(b"\x00\x01"),
        Outcome(value=None),
        Outcome.fail(409, "cancelled"),
        Outcome.fail(500, ""),
    ],
)
def test_outcome_round_trips(outcome: Outcome) -> None:
    assert Outcome.decode(unpack(pack(outcome.encode()))) == outcome


def test_outcome_helpers() -> None:
    assert Outcome.ok() == Outcome(value=b"")
    assert Outcome.ok() != Outcome(value=None)
    assert Outcome.fail(400, "x") == Outcome(failure=Failure(400, "x"))
    assert Outcome.fail(400, "x").encode() == [1, 400, "x"]
    assert Outcome.ok(b"v").encode() == [0, b"v"]


@pytest.mark.parametrize("target", [KEYED, UNKEYED, Target("S", "h", "")])
def test_target_round_trips(target: Target) -> None:
    assert Target.decode(unpack(pack(target.encode()))) == target


def test_target_text() -> None:
    assert str(KEYED) == "Obj/key/h"
    assert str(UNKEYED) == "Svc/h"


def test_describe_and_same_command() -> None:
    assert describe(Run("a")) == "Run('a')"
    assert describe(ClearAllState()) == "ClearAllState"
    assert describe(Call(KEYED, b"", {}, None, INV)) == "Call(Obj/key/h)"
    assert describe(Send(UNKEYED, b"", {}, None, INV, 0)) == "Send(Svc/h)"
    assert same_command(Run("a"), Run("a"))
    assert not same_command(Run("a"), Run("b"))
    assert not same_command(Run("a"), GetState("a", None))
    assert same_command(SetState("x", b"1"), SetState("x", b"2"))
    assert same_command(Call(KEYED, b"1", {}, None, INV), Call(KEYED, b"2", {}, "k", "other"))
    assert not same_command(Call(KEYED, b"", {}, None, INV), Call(UNKEYED, b"", {}, None, INV))
    assert not same_command(Call(KEYED, b"", {}, None, INV), Send(KEYED, b"", {}, None, INV, 0))


# -- serdes --------------------------------------------------------------------------------


@dataclasses.dataclass
class Order:
    id: str
    qty: int
    tags: list[str] = dataclasses.field(default_factory=list)


class Model(pydantic.BaseModel):
    name: str
    score: float = 0.0


def test_serde_for_picks_by_type_hint() -> None:
    assert isinstance(serde_for(bytes), BytesSerde)
    assert isinstance(serde_for(Order), DataclassSerde)
    assert isinstance(serde_for(Model), PydanticSerde)
    for hint in (None, dict, dict[str, int], list[int], str, int, Any, type(None)):
        assert isinstance(serde_for(hint), JsonSerde)
    assert isinstance(DEFAULT_SERDE, JsonSerde)


@pytest.mark.parametrize(
    "value",
    [{"a": 1, "b": [1, 2, {"c": None}]}, [], [1, "x"], "text", "", 0, 1.5, True, False, None],
)
def test_json_serde_round_trips(value: Any) -> None:
    serde = serde_for(type(value))
    assert serde.deserialize(serde.serialize(value)) == value


def test_json_serde_encoding() -> None:
    serde: JsonSerde[Any] = JsonSerde()
    assert serde.serialize({"a": 1, "b": "ü"}) == '{"a":1,"b":"ü"}'.encode()
    assert serde.serialize(None) == b""
    assert serde.deserialize(b"") is None
    assert serde.serialize("") == b'""'
    # dataclasses and models nested in plain values are converted too
    assert serde.serialize({"o": Order("1", 2)}) == b'{"o":{"id":"1","qty":2,"tags":[]}}'
    assert serde.serialize([Model(name="m")]) == b'[{"name":"m","score":0.0}]'
    with pytest.raises(TypeError, match="not JSON serializable"):
        serde.serialize({"x": object()})


def test_dataclass_serde() -> None:
    serde = serde_for(Order)
    order = Order("o-1", 3, ["a"])
    data = serde.serialize(order)
    assert data == b'{"id":"o-1","qty":3,"tags":["a"]}'
    assert serde.deserialize(data) == order
    assert serde.deserialize(b'{"id":"o-2","qty":1}') == Order("o-2", 1)
    with pytest.raises(ValueError, match="expected a JSON object for Order"):
        serde.deserialize(b"[1]")
    with pytest.raises(ValueError):
        serde.deserialize(b"")
    with pytest.raises(TypeError):
        serde.deserialize(b'{"id":"x","qty":1,"extra":true}')


def test_pydantic_serde() -> None:
    serde = serde_for(Model)
    model = Model(name="n", score=2.5)
    data = serde.serialize(model)
    assert serde.deserialize(data) == model
    assert serde.deserialize(b'{"name":"x"}') == Model(name="x")
    with pytest.raises(pydantic.ValidationError):
        serde.deserialize(b'{"score":1}')
    with pytest.raises(pydantic.ValidationError):
        serde.deserialize(b"")


def test_bytes_serde_passes_through() -> None:
    serde = serde_for(bytes)
    for value in (b"", b"\x00\xff", b"text"):
        assert serde.serialize(value) == value
        assert serde.deserialize(value) == value
    assert serde.serialize(bytearray(b"ab")) == b"ab"
    assert type(serde.serialize(bytearray(b"ab"))) is bytes


# -- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("0", 0),
        ("250", 250),
        ("500ms", 500),
        ("0s", 0),
        ("10s", 10_000),
        ("1.5s", 1_500),
        ("5m", 300_000),
        ("2h", 7_200_000),
        ("1d", 86_400_000),
        ("1h30m", 5_400_000),
        ("1m30s", 90_000),
        ("1s500ms", 1_500),
        ("10m5s", 605_000),
        ("1d2h3m4s5ms", 93_784_005),
        ("  10s \n", 10_000),
        ("0.5ms", 0),
    ],
)
def test_parse_duration_valid(text: str, expected: int) -> None:
    assert parse_duration_ms(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", "s", "ms", "abc", "10x", "-5s", "-5", "10 s", "1h 30m", "1.5.5s", "5S", "1e3",
     "10s!", "PT10S", "1,5s", ".5s", "5.s"],
)  # fmt: skip
def test_parse_duration_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration_ms(text)


# -- retry policy and handler options ------------------------------------------------------


def test_retry_policy_backs_off_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(
        initial_interval=timedelta(milliseconds=100), factor=3.0, max_interval=timedelta(seconds=2)
    )
    assert [policy.delay_after(n) for n in (1, 2, 3)] == pytest.approx([0.1, 0.3, 0.9])
    assert policy.delay_after(4) == 2.0
    assert policy.delay_after(50) == 2.0
    assert policy.delay_after(0) == pytest.approx(0.1)


def test_retry_policy_defaults() -> None:
    policy = RetryPolicy()
    assert policy.delay_after(1) == 0.5
    assert policy.delay_after(2) == 1.0
    assert policy.delay_after(8) == 60.0
    assert not policy.exhausted(1_000_000)


def test_retry_delay_stays_capped_after_very_many_failures() -> None:
    # Retrying forever is the default; the delay must not overflow after ~17 hours of retries.
    policy = RetryPolicy()
    for failures in (1_024, 1_025, 5_000, 10**9):
        assert policy.delay_after(failures) == 60.0
    zero = RetryPolicy(initial_interval=timedelta(0))
    assert zero.delay_after(5_000) == 0.0
    steady = RetryPolicy(factor=1.0)
    assert steady.delay_after(10**9) == 0.5


def test_retry_policy_exhausted() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.exhausted(n) for n in (0, 1, 2, 3, 4)] == [False, False, False, True, True]
    assert RetryPolicy(max_attempts=1).exhausted(1)


def test_handler_options_merge_field_by_field() -> None:
    retry = RetryPolicy(max_attempts=2)
    base = HandlerOptions(
        retry_policy=RetryPolicy(),
        inactivity_timeout=timedelta(seconds=10),
        journal_retention=timedelta(hours=1),
        ingress_private=True,
    )
    own = HandlerOptions(retry_policy=retry, journal_retention=timedelta(0), ingress_private=False)
    merged = own.merged_over(base)
    assert merged == HandlerOptions(
        retry_policy=retry,
        inactivity_timeout=timedelta(seconds=10),
        journal_retention=timedelta(0),  # set, even if falsy
        ingress_private=False,  # set, even if falsy
    )
    assert HandlerOptions().merged_over(base) == base
    assert base.merged_over(HandlerOptions()) == base
    assert HandlerOptions().merged_over(HandlerOptions()) == HandlerOptions()


@pytest.mark.parametrize("count", [0, 1, 15, 16, 65_535, 65_536])  # msgpack's header sizes
def test_an_array_of_packed_values_is_exactly_the_packed_list(count: int) -> None:
    values: list[Any] = [[n, f"v{n}", {"k": b"\xff" * (n % 3)}] for n in range(count)]
    joined = pack_array([pack(value) for value in values])
    assert joined == pack(values)
    assert unpack(joined) == values
