"""The processor's Kafka side, driven entry by entry over an in-memory store: no broker, no I/O.

Exactly-once ingestion (the applied offset per group, topic and partition, kept in the batch of
the invocation it became), the outbox (emits published in the batch of a successful
completion; dead letters for terminal failures), its trimming once shipped, and the
subscription and cluster records. The harness is the one of test_processor.py: each `batch`
applies entries and their follow-ups over a `StoreView`, then commits into msgpack records.
"""

from __future__ import annotations

from typing import Any

import pytest
from dict_store import DictStore, apply_batch
from headway.connectors.kafka.subscription import Subscription
from headway.connectors.kafka.uris import KafkaSource, ServiceSink
from headway.engine import keys
from headway.engine.actions import (
    AbortAttempt,
    Action,
    Completed,
    KafkaRecordDone,
    OutboxReady,
    RunAttempt,
    ScheduleTimer,
    SubscriptionsChanged,
)
from headway.engine.entries import (
    Append,
    AttemptFailed,
    DeadLetter,
    End,
    Entry,
    Invoke,
    Kill,
    OutboxShipped,
    PutKafkaCluster,
    Subscribe,
    SubscriptionFailed,
    TimerFired,
    Unsubscribe,
    decode_entry,
)
from headway.engine.processor import Processor, dead_letter_headers
from headway.engine.registry import Registry
from headway.engine.store import pack, unpack
from headway.sdk import Context, ObjectContext, Service, VirtualObject, ids
from headway.sdk.ids import InvocationId
from headway.sdk.journal import (
    ClearState,
    Command,
    Emit,
    GetState,
    Outcome,
    SetState,
    Target,
)

NOW = 1_700_000_000_000

relay = Service("KafkaRelay")


@relay.handler()
async def handle(ctx: Context, data: bytes) -> None:
    return None


counts = VirtualObject("KafkaCounts")


@counts.handler()
async def on_record(ctx: ObjectContext, data: bytes) -> None:
    return None


RELAY = Target("KafkaRelay", "handle")
COUNT_A = Target("KafkaCounts", "on_record", "a")
OK = Outcome.ok()
FAILED = Outcome.fail(400, "bad input")


def inv(n: int) -> str:
    return str(InvocationId(n, (n + 5000).to_bytes(16, "big")))


# -- the harness ---------------------------------------------------------------------------


class Partition:
    """One partition's processor and store, applying entries the way the committer does."""

    def __init__(self) -> None:
        self.store = DictStore()
        self.processor = Processor(Registry([relay, counts]))
        self.changes: dict[bytes, Any] = {}
        self.deleted: set[bytes] = set()

    def batch(self, *entries: Entry) -> list[Action]:
        view, effects = apply_batch(self.processor, self.store, entries, NOW)
        self.changes = {k: v for k, v in view.changes.items() if not view.deleted(v)}
        self.deleted = {k for k, v in view.changes.items() if view.deleted(v)}
        return effects.actions

    def get(self, key: bytes) -> Any:
        return self.store.get(key)

    def status(self, invocation_id: str) -> dict[str, Any]:
        status = self.store.get(keys.invocation(invocation_id))
        assert status is not None, f"no status for {invocation_id}"
        return status  # type: ignore[no-any-return]

    def exists(self, invocation_id: str) -> bool:
        return self.store.get(keys.invocation(invocation_id)) is not None

    def offset(self, group: str = "g1", topic: str = "clicks", partition: int = 0) -> Any:
        return self.store.get(keys.kafka_offset(group, topic, partition))

    def outbox(self, cluster: str) -> dict[int, list[Any]]:
        """A cluster's outbox records by sequence number."""
        prefix = keys.outbox_prefix(cluster)
        return {int(k[len(prefix) :], 16): self.store.get(k) for k in self.store.keys(prefix)}

    def all_outbox_keys(self) -> list[bytes]:
        return self.store.keys(keys.OUTBOX)

    def append(self, invocation_id: str, command: Command) -> list[Action]:
        status = self.status(invocation_id)
        return self.batch(Append(invocation_id, status["a"], status["jl"], command))

    def end(
        self, invocation_id: str, outcome: Outcome = OK, journal: tuple[Command, ...] = ()
    ) -> list[Action]:
        return self.batch(End(invocation_id, self.status(invocation_id)["a"], outcome, journal))


def source(
    offset: int, *, sub: str = "sub_1", group: str = "g1", cluster: str = "local",
    topic: str = "clicks", partition: int = 0, key: bytes | None = b"k",
    headers: dict[str, bytes] | None = None, **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    """A Kafka record source, as the consumer builds it."""
    return {
        "sub": sub, "group": group, "cluster": cluster, "topic": topic,
        "partition": partition, "offset": offset, "timestamp": 1_699_999_999_000,
        "key": key, "headers": {"trace": b"t-1"} if headers is None else headers, **extra,
    }  # fmt: skip


def kafka_invoke(
    n: int, src: dict[str, Any], target: Target = RELAY, data: bytes = b'{"v": 1}'
) -> Invoke:
    return Invoke(inv(n), target, data, {"trace": "t-1"}, None, 0, None, src)


def emit(topic: str, value: bytes, key: bytes | None = None, cluster: str | None = None,
         headers: dict[str, bytes] | None = None) -> Emit:  # fmt: skip
    return Emit(topic, value, key, headers or {}, cluster)


def done(group: str = "g1", topic: str = "clicks", partition: int = 0) -> KafkaRecordDone:
    return KafkaRecordDone(group, topic, partition)


def without_timers(actions: list[Action]) -> list[Action]:
    return [a for a in actions if not isinstance(a, ScheduleTimer)]


def kinds(actions: list[Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


def subscription_record(dlq: str | None = "dead", sub_id: str = "sub_1") -> dict[str, Any]:
    options = {"auto.offset.reset": "earliest", "group.id": "g1"}
    if dlq is not None:
        options["dead.letter.topic"] = dlq
    subscription = Subscription(
        sub_id, KafkaSource("local", "clicks"), ServiceSink("KafkaRelay", "handle"), options
    )
    return subscription.to_record()


@pytest.fixture
def p() -> Partition:
    return Partition()


# -- exactly-once ingestion ----------------------------------------------------------------


def test_kafka_invoke_stores_its_offset_and_runs(p: Partition) -> None:
    src = source(5)
    actions = p.batch(kafka_invoke(1, src))
    assert actions == [RunAttempt(inv(1))]
    assert p.offset() == 5
    assert p.get(keys.kafka_offset("g1", "clicks", 0)) == 5
    assert keys.kafka_offset("g1", "clicks", 0) == b"ko/g1\x00clicks\x000"
    assert p.status(inv(1))["src"] == src
    assert p.status(inv(1))["st"] == "running"
    assert keys.kafka_offset("g1", "clicks", 0) in p.changes  # in the invocation's batch
    assert keys.invocation(inv(1)) in p.changes


def test_a_record_without_an_id_becomes_the_invocation_its_source_names(p: Partition) -> None:
    src = source(5)
    entry = Invoke("", RELAY, b'{"v": 1}', {}, None, 0, None, src)
    derived = ids.record_invocation_id("KafkaRelay", None, "g1", "clicks", 0, 5)
    assert entry.resolved_id == derived
    assert p.batch(entry) == [RunAttempt(derived)]
    assert p.status(derived)["src"] == src
    assert keys.invocation("") not in p.changes


@pytest.mark.parametrize("offset", [5, 4, 0])
def test_same_or_lower_offset_is_dropped(p: Partition, offset: int) -> None:
    p.batch(kafka_invoke(1, source(5)))
    actions = p.batch(kafka_invoke(2, source(offset)))
    assert actions == [done()]
    assert not p.exists(inv(2))
    assert p.changes == {}
    assert p.deleted == set()
    assert p.offset() == 5


def test_redelivery_with_the_same_invocation_id_is_dropped(p: Partition) -> None:
    p.batch(kafka_invoke(1, source(5)))
    before = p.status(inv(1))
    assert p.batch(kafka_invoke(1, source(5))) == [done()]
    assert p.status(inv(1)) == before


def test_higher_offset_is_accepted(p: Partition) -> None:
    p.batch(kafka_invoke(1, source(5)))
    assert p.batch(kafka_invoke(2, source(6))) == [RunAttempt(inv(2))]
    assert p.offset() == 6
    assert p.exists(inv(2))
    assert p.batch(kafka_invoke(3, source(100))) == [RunAttempt(inv(3))]
    assert p.offset() == 100
    assert p.batch(kafka_invoke(4, source(99))) == [done()]
    assert p.offset() == 100


def test_duplicates_within_one_batch_are_dropped(p: Partition) -> None:
    actions = p.batch(
        kafka_invoke(1, source(7)), kafka_invoke(2, source(7)), kafka_invoke(3, source(8))
    )
    assert actions == [RunAttempt(inv(1)), done(), RunAttempt(inv(3))]
    assert p.exists(inv(1))
    assert not p.exists(inv(2))
    assert p.offset() == 8


@pytest.mark.parametrize(
    ("other", "key"),
    [
        ({"group": "g2"}, ("g2", "clicks", 0)),
        ({"topic": "views"}, ("g1", "views", 0)),
        ({"partition": 1}, ("g1", "clicks", 1)),
        ({"partition": 10}, ("g1", "clicks", 10)),
    ],
)
def test_groups_topics_and_partitions_are_independent(
    p: Partition, other: dict[str, Any], key: tuple[str, str, int]
) -> None:
    p.batch(kafka_invoke(1, source(5)))
    assert p.batch(kafka_invoke(2, source(5, **other))) == [RunAttempt(inv(2))]
    assert p.batch(kafka_invoke(3, source(2, **other))) == [done(*key)]
    assert p.offset(*key) == 5
    assert p.offset() == 5
    assert p.batch(kafka_invoke(4, source(3))) == [done()]
    assert p.offset() == 5


def test_offset_keys_do_not_collide_across_names() -> None:
    assert keys.kafka_offset("g", "t1", 0) != keys.kafka_offset("g", "t", 10)
    assert keys.kafka_offset("g1", "t", 0) != keys.kafka_offset("g", "1t", 0)


def test_non_kafka_sources_store_no_offset(p: Partition) -> None:
    entry = Invoke(inv(1), RELAY, b"", {}, None, 0, None, {"via": "ingress"})
    assert p.batch(entry) == [RunAttempt(inv(1))]
    assert p.store.keys(keys.KAFKA_OFFSET) == []
    assert p.status(inv(1))["src"] == {"via": "ingress"}


def test_completion_of_a_kafka_invocation_frees_its_slot_once(p: Partition) -> None:
    p.batch(kafka_invoke(1, source(5, partition=3)))
    actions = p.end(inv(1))
    assert without_timers(actions) == [done("g1", "clicks", 3), Completed(inv(1), OK)]
    assert p.end(inv(1)) == []  # a repeated End is stale: nothing again


def test_purging_a_kafka_invocation_keeps_its_offset(p: Partition) -> None:
    p.batch(kafka_invoke(1, source(5)))
    (purge,) = [a for a in p.end(inv(1)) if isinstance(a, ScheduleTimer)]
    assert p.get(purge.timer_key) == ["purge", inv(1)]
    p.batch(TimerFired(purge.timer_key))
    assert not p.exists(inv(1))
    assert p.offset() == 5
    assert p.batch(kafka_invoke(1, source(5))) == [done()]
    assert not p.exists(inv(1))


def test_a_plain_invocation_frees_no_kafka_slot(p: Partition) -> None:
    p.batch(Invoke(inv(1), RELAY, b"", {}, None, 0, None, None))
    assert without_timers(p.end(inv(1))) == [Completed(inv(1), OK)]


def test_keyed_kafka_invocations_queue_and_each_frees_its_slot(p: Partition) -> None:
    actions = p.batch(kafka_invoke(1, source(1), COUNT_A), kafka_invoke(2, source(2), COUNT_A))
    assert actions == [RunAttempt(inv(1))]
    assert p.status(inv(2))["st"] == "pending"
    assert p.offset() == 2
    actions = p.end(inv(1))
    # the lock passes to the next record before the completion is announced
    assert without_timers(actions) == [RunAttempt(inv(2)), done(), Completed(inv(1), OK)]
    assert without_timers(p.end(inv(2))) == [done(), Completed(inv(2), OK)]


# -- emits: published with the completion ----------------------------------------------------


def test_emits_land_in_the_outbox_with_the_completion(p: Partition) -> None:
    p.batch(kafka_invoke(1, source(5)))
    p.append(inv(1), emit("out", b"v1", b"k1", headers={"h": b"1"}))
    p.append(inv(1), emit("out", b"v2", None))
    assert p.all_outbox_keys() == []  # nothing is published before the invocation ends
    assert p.status(inv(1))["em"] == [0, 1]
    actions = p.end(inv(1), OK, (emit("more", b"v3", b"k3"),))
    assert p.outbox("local") == {
        1: ["out", b"k1", b"v1", {"h": b"1"}],
        2: ["out", None, b"v2", {}],
        3: ["more", b"k3", b"v3", {}],
    }
    assert p.get(keys.outbox_seq("local")) == 3
    assert p.get(keys.outbox("local", 1)) == ["out", b"k1", b"v1", {"h": b"1"}]
    for seq in (1, 2, 3):
        assert keys.outbox("local", seq) in p.changes  # the completion's batch
    assert keys.outbox_seq("local") in p.changes
    assert p.changes[keys.invocation(inv(1))]["st"] == "completed"
    assert without_timers(actions) == [OutboxReady("local"), done(), Completed(inv(1), OK)]


def test_emit_cluster_is_its_own_else_the_sources_else_empty(p: Partition) -> None:
    p.batch(kafka_invoke(1, source(5, cluster="src-cluster")))
    p.append(inv(1), emit("a", b"1", cluster="other"))
    p.append(inv(1), emit("b", b"2"))
    p.append(inv(1), emit("c", b"3", cluster=""))  # empty: falls back like None
    actions = p.end(inv(1))
    assert p.outbox("other") == {1: ["a", None, b"1", {}]}
    assert p.outbox("src-cluster") == {1: ["b", None, b"2", {}], 2: ["c", None, b"3", {}]}
    assert without_timers(actions) == [
        OutboxReady("other"), OutboxReady("src-cluster"), done(), Completed(inv(1), OK),
    ]  # fmt: skip

    p.batch(Invoke(inv(2), RELAY, b"", {}, None, 0, None, None))
    p.append(inv(2), emit("d", b"4"))
    p.append(inv(2), emit("e", b"5", cluster="other"))
    actions = p.end(inv(2))
    assert p.outbox("") == {1: ["d", None, b"4", {}]}
    assert p.outbox("other") == {1: ["a", None, b"1", {}], 2: ["e", None, b"5", {}]}
    assert without_timers(actions) == [OutboxReady(""), OutboxReady("other"), Completed(inv(2), OK)]


def test_outbox_ready_actions_come_in_the_order_clusters_were_first_emitted_to(
    p: Partition,
) -> None:
    names = [f"c{n}" for n in (3, 0, 7, 1, 5, 2, 6, 4)]  # neither name nor hash order
    p.batch(kafka_invoke(1, source(1)))
    journal = tuple(emit("t", name.encode(), cluster=name) for name in names)
    actions = p.end(inv(1), OK, journal)
    assert [a for a in actions if isinstance(a, OutboxReady)] == [OutboxReady(n) for n in names]
    for name in names:
        assert p.outbox(name) == {1: ["t", None, name.encode(), {}]}


def test_sequence_numbers_continue_across_invocations(p: Partition) -> None:
    for n in (1, 2):
        p.batch(kafka_invoke(n, source(n)))
    p.append(inv(2), emit("t", b"from-2a"))
    p.append(inv(1), emit("t", b"from-1"))
    p.append(inv(2), emit("t", b"from-2b"))
    p.end(inv(2))
    p.end(inv(1))
    assert [r[2] for r in p.outbox("local").values()] == [b"from-2a", b"from-2b", b"from-1"]
    assert sorted(p.outbox("local")) == [1, 2, 3]


def test_emits_in_one_batch_from_two_completions(p: Partition) -> None:
    p.batch(kafka_invoke(1, source(1)), kafka_invoke(2, source(2)))
    actions = p.batch(
        End(inv(1), 1, OK, (emit("t", b"a"), emit("t", b"b"))),
        End(inv(2), 1, OK, (emit("t", b"c"),)),
    )
    assert p.outbox("local") == {1: ["t", None, b"a", {}], 2: ["t", None, b"b", {}],
                                 3: ["t", None, b"c", {}]}  # fmt: skip
    # One wake-up for the outbox, however many records the batch put in it.
    assert kinds(without_timers(actions)) == [
        "OutboxReady", "KafkaRecordDone", "Completed", "KafkaRecordDone", "Completed",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "outcome", [FAILED, Outcome.fail(500, "boom"), Outcome.fail(409, "cancelled")]
)
def test_a_failed_invocation_publishes_no_emits(p: Partition, outcome: Outcome) -> None:
    p.batch(Invoke(inv(1), RELAY, b"", {}, None, 0, None, None))
    p.append(inv(1), emit("t", b"a"))
    actions = p.end(inv(1), outcome, (emit("t", b"b"),))
    assert p.all_outbox_keys() == []
    assert p.get(keys.outbox_seq("")) is None
    assert without_timers(actions) == [Completed(inv(1), outcome)]
    assert p.status(inv(1))["em"] == [0, 1]  # journaled, never published


def test_a_failed_kafka_invocation_without_subscription_publishes_nothing(p: Partition) -> None:
    p.batch(kafka_invoke(1, source(5)))
    p.append(inv(1), emit("t", b"a"))
    actions = p.end(inv(1), FAILED)
    assert p.all_outbox_keys() == []
    assert without_timers(actions) == [done(), Completed(inv(1), FAILED)]


def test_emits_after_retries_are_published_once(p: Partition) -> None:
    p.batch(kafka_invoke(1, source(5)))
    p.append(inv(1), emit("t", b"a"))
    p.batch(AttemptFailed(inv(1), 1, "flaky", NOW + 10))
    timer = p.store.keys(keys.TIMER)[0]
    assert p.batch(TimerFired(timer)) == [RunAttempt(inv(1))]
    assert p.status(inv(1))["a"] == 2
    p.end(inv(1), OK, (emit("t", b"b"),))
    assert p.outbox("local") == {1: ["t", None, b"a", {}], 2: ["t", None, b"b", {}]}


# -- dead letters after terminal failures ----------------------------------------------------


def expected_letter(
    src: dict[str, Any], value: bytes, code: int, reason: str, topic: str = "dead"
) -> list[Any]:
    return [topic, src["key"], value, {
        **src["headers"],
        "headway.error.code": str(code).encode(),
        "headway.error.reason": reason.encode(),
        "headway.source.topic": src["topic"].encode(),
        "headway.source.partition": str(src["partition"]).encode(),
        "headway.source.offset": str(src["offset"]).encode(),
        "headway.subscription": src["sub"].encode(),
    }]  # fmt: skip


def test_terminal_failure_dead_letters_the_record(p: Partition) -> None:
    p.batch(Subscribe(subscription_record(dlq="dead")))
    src = source(42, partition=2, key=b"user-1", headers={"trace": b"t-9", "x": b""})
    p.batch(kafka_invoke(1, src, data=b'{"a": 1}'))
    p.append(inv(1), emit("never", b"published"))
    actions = p.end(inv(1), FAILED)
    assert p.outbox("local") == {
        1: ["dead", b"user-1", b'{"a": 1}', {
            "trace": b"t-9", "x": b"",
            "headway.error.code": b"400",
            "headway.error.reason": b"bad input",
            "headway.source.topic": b"clicks",
            "headway.source.partition": b"2",
            "headway.source.offset": b"42",
            "headway.subscription": b"sub_1",
        }],
    }  # fmt: skip
    assert p.all_outbox_keys() == [keys.outbox("local", 1)]
    assert keys.outbox("local", 1) in p.changes
    assert without_timers(actions) == [
        OutboxReady("local"),
        done("g1", "clicks", 2),
        Completed(inv(1), FAILED),
    ]


def test_dead_letter_keeps_the_original_value_when_the_source_has_it(p: Partition) -> None:
    p.batch(Subscribe(subscription_record()))
    src = source(1, value=b"\x00avro-bytes", key=None)
    p.batch(kafka_invoke(1, src, data=b'{"decoded": true}'))
    p.end(inv(1), Outcome.fail(422, "nope"))
    assert p.outbox("local") == {1: expected_letter(src, b"\x00avro-bytes", 422, "nope")}
    assert p.outbox("local")[1][1] is None


def test_dead_letter_headers_override_same_named_record_headers(p: Partition) -> None:
    p.batch(Subscribe(subscription_record()))
    src = source(3, headers={"headway.error.code": b"spoofed", "keep": b"1"})
    p.batch(kafka_invoke(1, src))
    p.end(inv(1), FAILED)
    headers = p.outbox("local")[1][3]
    assert headers["headway.error.code"] == b"400"
    assert headers["keep"] == b"1"
    assert len(headers) == 7


def test_unicode_reason_and_headers_function() -> None:
    src = source(9, partition=1)
    assert dead_letter_headers(src, 500, "échec") == {
        "headway.error.code": b"500",
        "headway.error.reason": "échec".encode(),
        "headway.source.topic": b"clicks",
        "headway.source.partition": b"1",
        "headway.source.offset": b"9",
        "headway.subscription": b"sub_1",
    }


@pytest.mark.parametrize("dlq", [None, ""])
def test_no_dead_letter_topic_no_outbox(p: Partition, dlq: str | None) -> None:
    record = subscription_record(dlq=None) | {"dlq": dlq}
    p.batch(Subscribe(record))
    p.batch(kafka_invoke(1, source(5)))
    actions = p.end(inv(1), FAILED)
    assert p.all_outbox_keys() == []
    assert p.get(keys.outbox_seq("local")) is None
    assert without_timers(actions) == [done(), Completed(inv(1), FAILED)]


def test_dead_letter_uses_the_records_own_subscription(p: Partition) -> None:
    p.batch(Subscribe(subscription_record(dlq="dead-1", sub_id="sub_1")))
    p.batch(Subscribe(subscription_record(dlq=None, sub_id="sub_2")))
    p.batch(kafka_invoke(1, source(1, sub="sub_2", group="g2")))
    p.end(inv(1), FAILED)
    assert p.all_outbox_keys() == []
    p.batch(kafka_invoke(2, source(1, sub="sub_1")))
    p.end(inv(2), FAILED)
    assert [r[0] for r in p.outbox("local").values()] == ["dead-1"]


def test_no_dead_letter_once_the_subscription_is_removed(p: Partition) -> None:
    p.batch(Subscribe(subscription_record()))
    p.batch(kafka_invoke(1, source(5)))
    p.batch(Unsubscribe("sub_1"))
    actions = p.end(inv(1), FAILED)
    assert p.all_outbox_keys() == []
    assert without_timers(actions) == [done(), Completed(inv(1), FAILED)]


def test_unknown_handler_dead_letters_in_the_invoke_batch(p: Partition) -> None:
    p.batch(Subscribe(subscription_record()))
    src = source(8)
    target = Target("KafkaRelay", "missing")
    actions = p.batch(kafka_invoke(1, src, target, data=b"[]"))
    failure = Outcome.fail(404, f"service or handler not found: {target}")
    reason = f"service or handler not found: {target}"
    assert reason == "service or handler not found: KafkaRelay/missing"
    assert p.outbox("local") == {1: expected_letter(src, b"[]", 404, reason)}
    assert without_timers(actions) == [OutboxReady("local"), done(), Completed(inv(1), failure)]
    assert p.offset() == 8


def test_keyed_sink_with_an_empty_record_key_is_dead_lettered(p: Partition) -> None:
    """An empty record key encodes to "" (record_keys), which a keyed target refuses."""
    p.batch(Subscribe(subscription_record()))
    src = source(2, key=b"")
    actions = p.batch(kafka_invoke(1, src, Target("KafkaCounts", "on_record", "")))
    reason = "KafkaCounts is keyed: the key must not be empty"
    assert p.outbox("local") == {1: expected_letter(src, b'{"v": 1}', 400, reason)}
    assert without_timers(actions) == [
        OutboxReady("local"), done(), Completed(inv(1), Outcome.fail(400, reason))
    ]  # fmt: skip


def test_killed_kafka_invocation_is_dead_lettered(p: Partition) -> None:
    p.batch(Subscribe(subscription_record()))
    src = source(4)
    p.batch(kafka_invoke(1, src))
    actions = p.batch(Kill(inv(1)))
    killed = Outcome.fail(409, "killed")
    assert p.outbox("local") == {1: expected_letter(src, b'{"v": 1}', 409, "killed")}
    assert without_timers(actions) == [
        AbortAttempt(inv(1)),
        OutboxReady("local"),
        done(),
        Completed(inv(1), killed),
    ]


def test_a_successful_kafka_invocation_sends_no_dead_letter(p: Partition) -> None:
    p.batch(Subscribe(subscription_record()))
    p.batch(kafka_invoke(1, source(4)))
    actions = p.end(inv(1), Outcome(value=b"fine"))
    assert p.all_outbox_keys() == []
    assert without_timers(actions) == [done(), Completed(inv(1), Outcome(value=b"fine"))]


# -- DeadLetter entries (undecodable records) ----------------------------------------------


def test_dead_letter_entry_is_accepted_once_per_offset(p: Partition) -> None:
    src = source(11)
    record = ["dead", b"k", b"\xffnot json", {"trace": b"t-1", "headway.error.code": b"400"}]
    actions = p.batch(DeadLetter(src, record))
    assert actions == [OutboxReady("local"), done()]
    assert p.outbox("local") == {1: record}
    assert p.offset() == 11
    assert set(p.changes) == {
        keys.kafka_offset("g1", "clicks", 0),
        keys.outbox("local", 1),
        keys.outbox_seq("local"),
    }
    assert p.batch(DeadLetter(src, record)) == [done()]
    assert p.changes == {}
    assert p.batch(DeadLetter(source(10), record)) == [done()]
    assert p.outbox("local") == {1: record}
    assert p.batch(DeadLetter(source(12, cluster="c2"), record)) == [OutboxReady("c2"), done()]
    assert p.outbox("c2") == {1: record}
    assert p.offset() == 12


def test_dead_letter_and_invoke_share_the_offset(p: Partition) -> None:
    record: list[Any] = ["dead", None, None, {}]
    p.batch(DeadLetter(source(5), record))
    assert p.batch(kafka_invoke(1, source(5))) == [done()]
    assert not p.exists(inv(1))
    p.batch(kafka_invoke(2, source(6)))
    assert p.batch(DeadLetter(source(6), record)) == [done()]
    assert p.outbox("local") == {1: record}


# -- the outbox's trimming -----------------------------------------------------------------


def fill(p: Partition, cluster: str, count: int, first_offset: int) -> None:
    for i in range(count):
        p.batch(DeadLetter(source(first_offset + i, cluster=cluster), ["t", None, b"%d" % i, {}]))


def test_outbox_shipped_deletes_up_to_seq(p: Partition) -> None:
    fill(p, "local", 5, 0)
    fill(p, "other", 2, 100)
    assert p.batch(OutboxShipped("local", 3)) == []
    assert p.deleted == {keys.outbox("local", s) for s in (1, 2, 3)}
    assert sorted(p.outbox("local")) == [4, 5]
    assert sorted(p.outbox("other")) == [1, 2]
    assert p.get(keys.outbox_trimmed("local")) == 3
    assert p.get(keys.outbox_trimmed("other")) is None
    assert p.get(keys.outbox_seq("local")) == 5


def test_outbox_shipped_is_idempotent_and_never_goes_back(p: Partition) -> None:
    fill(p, "local", 5, 0)
    p.batch(OutboxShipped("local", 3))
    for seq in (3, 2, 0):
        assert p.batch(OutboxShipped("local", seq)) == []
        assert p.changes == {}
        assert p.deleted == set()
    assert sorted(p.outbox("local")) == [4, 5]
    assert p.get(keys.outbox_trimmed("local")) == 3


def test_outbox_shipped_beyond_the_last_written(p: Partition) -> None:
    fill(p, "local", 5, 0)
    p.batch(OutboxShipped("local", 3))
    p.batch(OutboxShipped("local", 99))
    assert p.deleted == {keys.outbox("local", 4), keys.outbox("local", 5)}
    assert p.outbox("local") == {}
    assert p.get(keys.outbox_trimmed("local")) == 5
    fill(p, "local", 2, 50)
    assert sorted(p.outbox("local")) == [6, 7]
    p.batch(OutboxShipped("local", 6))
    assert p.deleted == {keys.outbox("local", 6)}
    assert p.outbox("local") == {7: ["t", None, b"1", {}]}
    assert p.get(keys.outbox_trimmed("local")) == 6


def test_outbox_shipped_for_an_unknown_or_empty_cluster(p: Partition) -> None:
    fill(p, "local", 2, 0)
    assert p.batch(OutboxShipped("nowhere", 5)) == []
    assert p.changes == {}
    assert p.deleted == set()
    assert sorted(p.outbox("local")) == [1, 2]


def test_cluster_prefixes_do_not_overlap(p: Partition) -> None:
    fill(p, "a", 3, 0)
    fill(p, "ab", 2, 10)
    p.batch(OutboxShipped("a", 3))
    assert p.outbox("a") == {}
    assert sorted(p.outbox("ab")) == [1, 2]


# -- subscription and cluster records ------------------------------------------------------


def test_subscribe_stores_the_record(p: Partition) -> None:
    record = subscription_record()
    assert p.batch(Subscribe(record)) == [SubscriptionsChanged()]
    assert p.get(keys.subscription("sub_1")) == record
    replaced = record | {"dlq": None}
    assert p.batch(Subscribe(replaced)) == [SubscriptionsChanged()]
    assert p.get(keys.subscription("sub_1")) == replaced


def test_unsubscribe_removes_the_record_and_keeps_offsets(p: Partition) -> None:
    p.batch(Subscribe(subscription_record()))
    p.batch(kafka_invoke(1, source(5)))
    assert p.batch(Unsubscribe("sub_1")) == [SubscriptionsChanged()]
    assert p.deleted == {keys.subscription("sub_1")}
    assert p.get(keys.subscription("sub_1")) is None
    assert p.offset() == 5
    p.batch(Subscribe(subscription_record()))
    assert p.batch(kafka_invoke(2, source(5))) == [done()]  # resumes after the stored offset


def test_subscription_failed_marks_the_record(p: Partition) -> None:
    record = subscription_record()
    p.batch(Subscribe(record))
    assert p.batch(SubscriptionFailed("sub_1", "record clicks/0@3 cannot be invoked")) == [
        SubscriptionsChanged()
    ]
    assert p.get(keys.subscription("sub_1")) == record | {
        "failed": "record clicks/0@3 cannot be invoked"
    }


def test_subscription_failed_for_an_unknown_id_does_nothing(p: Partition) -> None:
    p.batch(Subscribe(subscription_record()))
    assert p.batch(SubscriptionFailed("sub_404", "boom")) == []
    assert p.changes == {}
    assert p.deleted == set()
    assert p.get(keys.subscription("sub_404")) is None
    assert p.get(keys.subscription("sub_1"))["failed"] is None


def test_put_kafka_cluster_defines_and_removes(p: Partition) -> None:
    cluster = {"name": "local", "brokers": ["h:1"], "properties": {"acks": "all"}}
    assert p.batch(PutKafkaCluster("local", cluster)) == [SubscriptionsChanged()]
    assert p.get(keys.kafka_cluster("local")) == cluster
    assert p.get(keys.kafka_cluster("other")) is None
    assert p.batch(PutKafkaCluster("local", None)) == [SubscriptionsChanged()]
    assert p.deleted == {keys.kafka_cluster("local")}
    assert p.get(keys.kafka_cluster("local")) is None


@pytest.mark.parametrize(
    "entry",
    [
        Subscribe({"id": "s", "source": "kafka://c/t", "sink": "service://A/b", "options": {}}),
        Unsubscribe("sub_x"),
        SubscriptionFailed("sub_x", "why"),
        PutKafkaCluster("c", {"name": "c", "brokers": ["h:1"], "properties": {}}),
        PutKafkaCluster("c", None),
        DeadLetter(source(3), ["dead", b"k", b"v", {"a": b"b"}]),
        OutboxShipped("c", 4),
    ],
)
def test_kafka_entries_round_trip_through_msgpack(entry: Entry) -> None:
    assert decode_entry(unpack(pack(entry.encode()))) == entry


def test_end_with_a_journal_round_trips() -> None:
    entry = End(inv(1), 2, FAILED, (GetState("a", None), SetState("b", b"2"), ClearState("c"),
                                    emit("t", b"v", b"k", "c", {"h": b"1"})))  # fmt: skip
    assert decode_entry(unpack(pack(entry.encode()))) == entry


# -- End with deferred commands ------------------------------------------------------------


def test_end_journals_deferred_commands_after_the_existing_journal(p: Partition) -> None:
    p.batch(kafka_invoke(1, source(5), COUNT_A))
    p.append(inv(1), SetState("n", b"1"))
    p.append(inv(1), SetState("gone", b"x"))
    p.append(inv(1), GetState("n", b"1"))
    assert p.status(inv(1))["jl"] == 3
    deferred: tuple[Command, ...] = (
        GetState("n", b"1"),
        SetState("m", b"2"),
        ClearState("gone"),
        emit("out", b"v", b"key", headers={"h": b"1"}),
        SetState("n", b"3"),
    )
    actions = p.end(inv(1), OK, deferred)
    for offset, command in enumerate(deferred):
        assert p.get(keys.journal(inv(1), 3 + offset)) == command.encode()
        assert keys.journal(inv(1), 3 + offset) in p.changes
    assert p.get(keys.journal(inv(1), 8)) is None
    status = p.status(inv(1))
    assert status["jl"] == 8
    assert status["em"] == [6]
    assert status["st"] == "completed"
    assert p.get(keys.state("KafkaCounts", "a")) == {"n": b"3", "m": b"2"}
    assert p.outbox("local") == {1: ["out", b"key", b"v", {"h": b"1"}]}
    assert without_timers(actions) == [OutboxReady("local"), done(), Completed(inv(1), OK)]
    assert p.get(keys.object_lock("KafkaCounts", "a")) is None


def test_end_journal_on_an_empty_journal_starts_at_zero(p: Partition) -> None:
    p.batch(Invoke(inv(1), COUNT_A, b"", {}, None, 0, None, None))
    p.end(inv(1), OK, (SetState("a", b"1"), ClearState("a"), SetState("b", b"2")))
    assert [p.get(keys.journal(inv(1), i)) for i in range(3)] == [
        SetState("a", b"1").encode(),
        ClearState("a").encode(),
        SetState("b", b"2").encode(),
    ]
    assert p.status(inv(1))["jl"] == 3
    assert p.get(keys.state("KafkaCounts", "a")) == {"b": b"2"}


def test_end_journal_clearing_the_last_key_deletes_the_state(p: Partition) -> None:
    p.batch(Invoke(inv(1), COUNT_A, b"", {}, None, 0, None, None))
    p.append(inv(1), SetState("only", b"1"))
    p.end(inv(1), OK, (ClearState("only"),))
    assert p.get(keys.state("KafkaCounts", "a")) is None
    assert keys.state("KafkaCounts", "a") in p.deleted


def test_failed_end_still_journals_and_applies_state(p: Partition) -> None:
    p.batch(Invoke(inv(1), COUNT_A, b"", {}, None, 0, None, None))
    p.end(inv(1), FAILED, (SetState("a", b"1"), emit("t", b"v")))
    assert p.status(inv(1))["jl"] == 2
    assert p.get(keys.state("KafkaCounts", "a")) == {"a": b"1"}
    assert p.all_outbox_keys() == []


@pytest.mark.parametrize("attempt_delta", [-1, 1, 5])
def test_stale_end_applies_nothing(p: Partition, attempt_delta: int) -> None:
    p.batch(kafka_invoke(1, source(5), COUNT_A))
    p.append(inv(1), SetState("n", b"1"))
    before = dict(p.store.data)
    attempt = p.status(inv(1))["a"] + attempt_delta
    actions = p.batch(
        End(inv(1), attempt, OK, (SetState("n", b"2"), emit("t", b"v"), GetState("n", b"2")))
    )
    assert actions == []
    assert p.changes == {}
    assert p.deleted == set()
    assert p.store.data == before
    assert p.status(inv(1))["jl"] == 1
    assert p.status(inv(1))["st"] == "running"


def test_end_of_a_previous_attempt_after_a_retry_applies_nothing(p: Partition) -> None:
    p.batch(kafka_invoke(1, source(5), COUNT_A))
    p.batch(AttemptFailed(inv(1), 1, "flaky", NOW + 10))
    p.batch(TimerFired(p.store.keys(keys.TIMER)[0]))
    assert p.status(inv(1))["a"] == 2
    assert p.batch(End(inv(1), 1, OK, (SetState("n", b"1"),))) == []
    assert p.get(keys.state("KafkaCounts", "a")) is None
    assert p.status(inv(1))["jl"] == 0
    assert without_timers(p.batch(End(inv(1), 2, OK, (SetState("n", b"2"),)))) == [
        done(),
        Completed(inv(1), OK),
    ]
    assert p.get(keys.state("KafkaCounts", "a")) == {"n": b"2"}


def test_end_for_a_backing_off_or_unknown_invocation_applies_nothing(p: Partition) -> None:
    assert p.batch(End(inv(9), 1, OK, (SetState("n", b"1"),))) == []
    assert p.changes == {}
    p.batch(kafka_invoke(1, source(5), COUNT_A))
    p.batch(AttemptFailed(inv(1), 1, "flaky", NOW + 10))
    assert p.batch(End(inv(1), 1, OK, (emit("t", b"v"),))) == []
    assert p.changes == {}
    assert p.status(inv(1))["st"] == "backing-off"
