"""The processor's answers to commands only deployments send: lazy state reads, attaching to
or reading another invocation's output, and signals by index or by name.

Entries are applied over an in-memory store the way the committer applies them (follow-up
entries in the same batch), as in test_processor.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from dict_store import DictStore, apply_batch
from headway.engine import keys
from headway.engine.actions import Action, Completed, Notify, RunAttempt
from headway.engine.deployments.manifest import parse_manifest
from headway.engine.entries import Append, Complete, End, Entry, Invoke, Kill, Suspend, decode_entry
from headway.engine.processor import Processor
from headway.engine.registry import Registry
from headway.sdk.ids import InvocationId
from headway.sdk.journal import (
    AttachInvocation,
    Command,
    GetInvocationOutput,
    GetLazyState,
    GetLazyStateKeys,
    Outcome,
    SendSignal,
    SetState,
    Target,
    decode_state_keys,
)
from headway.sdk.protocol.signals import named_signal_slot, signal_slot

NOW = 1_700_000_000_000
OBJECT_A = Target("Store", "put", "a")
WORKER = Target("Worker", "run")
MANIFEST = {
    "minProtocolVersion": 5,
    "maxProtocolVersion": 7,
    "services": [
        {"name": "Store", "ty": "VIRTUAL_OBJECT", "handlers": [{"name": "put"}]},
        {"name": "Worker", "ty": "SERVICE", "handlers": [{"name": "run"}]},
    ],
}


def inv(n: int) -> str:
    return str(InvocationId(n, (n + 7000).to_bytes(16, "big")))


class Partition:
    """A processor over an in-memory store; each `batch` commits like the committer."""

    def __init__(self) -> None:
        self.store = DictStore()
        self.processor = Processor(Registry(parse_manifest(MANIFEST, "dp_1x").services))

    def batch(self, *entries: Entry) -> list[Action]:
        return apply_batch(self.processor, self.store, entries, NOW)[1].actions

    def status(self, invocation_id: str) -> dict[str, Any]:
        status = self.store.get(keys.invocation(invocation_id))
        assert status is not None
        return status  # type: ignore[no-any-return]

    def invoke(self, invocation_id: str, target: Target) -> None:
        self.batch(Invoke(invocation_id, target, b"", {}))

    def append(self, invocation_id: str, command: Command) -> list[Action]:
        status = self.status(invocation_id)
        return self.batch(Append(invocation_id, status["a"], status["jl"], command))

    def completion(self, invocation_id: str, index: int) -> list[Any] | None:
        return self.store.get(keys.completion(invocation_id, index))  # type: ignore[no-any-return]


def outcome_at(p: Partition, invocation_id: str, index: int) -> Outcome | None:
    raw = p.completion(invocation_id, index)
    return None if raw is None else Outcome.decode(raw[1])


@pytest.fixture
def p() -> Partition:
    return Partition()


# -- lazy state ------------------------------------------------------------------------------


def test_lazy_state_reads_answer_from_the_committed_state(p: Partition) -> None:
    p.invoke(inv(1), OBJECT_A)
    p.append(inv(1), SetState("b", b"2"))
    p.append(inv(1), SetState("a", b"1"))
    actions = p.append(inv(1), GetLazyState("a"))
    assert [a for a in actions if isinstance(a, Notify)] == [Notify(inv(1), 2, 0, Outcome.ok(b"1"))]
    p.append(inv(1), GetLazyState("missing"))
    assert outcome_at(p, inv(1), 3) == Outcome(value=None)
    p.append(inv(1), GetLazyStateKeys())
    keys_outcome = outcome_at(p, inv(1), 4)
    assert keys_outcome is not None and decode_state_keys(keys_outcome.value) == ["a", "b"]
    assert p.status(inv(1))["p"] == []


def test_a_lazy_read_in_the_batch_of_a_write_sees_it(p: Partition) -> None:
    p.invoke(inv(1), OBJECT_A)
    p.batch(
        Append(inv(1), 1, 0, SetState("a", b"new")),
        Append(inv(1), 1, 1, GetLazyState("a")),
    )
    assert outcome_at(p, inv(1), 1) == Outcome.ok(b"new")


def test_lazy_keys_of_an_object_without_state_are_empty(p: Partition) -> None:
    p.invoke(inv(1), OBJECT_A)
    p.append(inv(1), GetLazyStateKeys())
    outcome = outcome_at(p, inv(1), 0)
    assert outcome is not None and decode_state_keys(outcome.value) == []


# -- attach and get-output -------------------------------------------------------------------


def test_attach_waits_for_the_target_and_gets_its_outcome(p: Partition) -> None:
    p.invoke(inv(1), WORKER)
    p.invoke(inv(2), WORKER)
    p.append(inv(2), AttachInvocation(inv(1), None, None))
    assert p.completion(inv(2), 0) is None
    p.batch(Suspend(inv(2), 1, [0]))
    actions = p.batch(End(inv(1), 1, Outcome.ok(b"done")))
    assert outcome_at(p, inv(2), 0) == Outcome.ok(b"done")
    assert RunAttempt(inv(2)) in actions
    # Attaching once it completed answers at once, a failure included.
    p.invoke(inv(3), WORKER)
    p.append(inv(3), AttachInvocation(inv(1), None, None))
    assert outcome_at(p, inv(3), 0) == Outcome.ok(b"done")


def test_attach_sees_a_kill_as_the_outcome(p: Partition) -> None:
    p.invoke(inv(1), WORKER)
    p.invoke(inv(2), WORKER)
    p.append(inv(2), AttachInvocation(inv(1), None, None))
    p.batch(Kill(inv(1)))
    assert outcome_at(p, inv(2), 0) == Outcome.fail(409, "killed")


def test_get_output_answers_not_ready_then_the_outcome(p: Partition) -> None:
    p.invoke(inv(1), WORKER)
    p.invoke(inv(2), WORKER)
    p.append(inv(2), GetInvocationOutput(inv(1), None, None))
    assert outcome_at(p, inv(2), 0) == Outcome(value=None)
    assert p.status(inv(1))["w"] == []  # nobody waits
    actions = p.batch(End(inv(1), 1, Outcome.fail(400, "bad")))
    assert Completed(inv(1), Outcome.fail(400, "bad")) in actions
    p.append(inv(2), GetInvocationOutput(inv(1), None, None))
    assert outcome_at(p, inv(2), 1) == Outcome.fail(400, "bad")


@pytest.mark.parametrize("kind", [AttachInvocation, GetInvocationOutput])
def test_attaching_to_an_unknown_invocation_is_404(p: Partition, kind: Any) -> None:
    p.invoke(inv(2), WORKER)
    p.append(inv(2), kind(inv(9), None, None))
    assert outcome_at(p, inv(2), 0) == Outcome.fail(404, f"invocation not found: {inv(9)}")


# -- signals ---------------------------------------------------------------------------------


def test_a_signal_by_index_lands_in_its_slot_and_wakes_the_target(p: Partition) -> None:
    p.invoke(inv(1), WORKER)
    p.batch(Suspend(inv(1), 1, [signal_slot(17)]))
    p.invoke(inv(2), WORKER)
    actions = p.append(inv(2), SendSignal(inv(1), 17, None, Outcome.ok(b"yes")))
    assert outcome_at(p, inv(1), signal_slot(17)) == Outcome.ok(b"yes")
    assert RunAttempt(inv(1)) in actions


def test_a_named_signal_keeps_its_name_and_wakes_the_target(p: Partition) -> None:
    slot = named_signal_slot("approved")
    p.invoke(inv(1), WORKER)
    p.batch(Suspend(inv(1), 1, [slot]))
    p.invoke(inv(2), WORKER)
    actions = p.append(inv(2), SendSignal(inv(1), None, "approved", Outcome.fail(400, "no")))
    assert p.completion(inv(1), slot) == [0, [1, 400, "no"], "approved"]
    assert RunAttempt(inv(1)) in actions
    # Delivered once: a second signal of that name is dropped.
    p.append(inv(2), SendSignal(inv(1), None, "approved", Outcome.ok(b"late")))
    assert p.completion(inv(1), slot) == [0, [1, 400, "no"], "approved"]


def test_a_named_signal_before_anyone_waits_is_kept(p: Partition) -> None:
    slot = named_signal_slot("early")
    p.invoke(inv(1), WORKER)
    p.invoke(inv(2), WORKER)
    p.append(inv(2), SendSignal(inv(1), None, "early", Outcome(value=None)))
    actions = p.batch(Suspend(inv(1), 1, [slot]))  # it arrived already: resume at once
    assert RunAttempt(inv(1)) in actions


def test_signals_to_unknown_or_completed_invocations_are_dropped(p: Partition) -> None:
    p.invoke(inv(1), WORKER)
    p.batch(End(inv(1), 1, Outcome.ok()))
    p.invoke(inv(2), WORKER)
    p.append(inv(2), SendSignal(inv(1), None, "x", Outcome.ok()))
    p.append(inv(2), SendSignal(inv(9), 17, None, Outcome.ok()))
    assert p.completion(inv(1), named_signal_slot("x")) is None


def test_a_named_complete_entry_round_trips_and_an_old_one_still_decodes() -> None:
    named = Complete(inv(1), named_signal_slot("n"), Outcome.ok(b"1"), "n")
    assert decode_entry(named.encode()) == named
    plain = Complete(inv(1), 3, Outcome.ok())
    assert plain.encode() == [3, inv(1), 3, [0, b""]]  # the format before named signals
    assert decode_entry(plain.encode()) == plain
