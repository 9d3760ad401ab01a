"""The journal's entry model: commands a handler issued and the outcomes that completed them.

It mirrors the Restate protocol's commands and notifications, so the HTTP transport is a codec
over the same journal rather than a second model. Entries encode to plain lists (msgpack-ready)
with a numeric tag first; the tags are part of the on-disk format and never change.
"""

from __future__ import annotations

import dataclasses
import json
import operator
from collections.abc import Callable
from typing import Any, ClassVar

from .frozen import frozen


@frozen
class Failure:
    """A terminal failure: an HTTP-style code and a message."""

    code: int
    message: str


@frozen
class Outcome:
    """What completed a command or an invocation: a value, or a failure."""

    value: bytes | None = None
    failure: Failure | None = None

    def encode(self) -> list[Any]:
        if self.failure is not None:
            return [1, self.failure.code, self.failure.message]
        return [0, self.value]

    @staticmethod
    def decode(raw: list[Any]) -> Outcome:
        if raw[0] == 1:
            return Outcome(failure=Failure(raw[1], raw[2]))
        return Outcome(value=raw[1])

    @staticmethod
    def ok(value: bytes = b"") -> Outcome:
        return Outcome(value=value)

    @staticmethod
    def fail(code: int, message: str) -> Outcome:
        return Outcome(failure=Failure(code, message))


@frozen
class Target:
    """Which handler an invocation runs: service, handler and (for objects/workflows) key."""

    service: str
    handler: str
    key: str | None = None

    def encode(self) -> list[Any]:
        return [self.service, self.handler, self.key]

    @staticmethod
    def decode(raw: list[Any]) -> Target:
        return Target(raw[0], raw[1], raw[2])

    def __str__(self) -> str:
        if self.key is None:
            return f"{self.service}/{self.handler}"
        return f"{self.service}/{self.key}/{self.handler}"


class Command:
    """Base of journal commands. `completable` ones wait for a later completion."""

    TAG: ClassVar[int]
    completable: ClassVar[bool] = False

    def encode(self) -> list[Any]:
        return _encoder(type(self))(self)


_LAYOUTS: dict[type[Command], tuple[tuple[str, str], ...]] = {}
_ENCODERS: dict[type[Command], Callable[[Command], list[Any]]] = {}


def _encoder(cls: type[Command]) -> Callable[[Command], list[Any]]:
    """The encoding function of a command class, built once: encoding is on every journaled
    step, and a Kafka record's state reads, writes and emits are encoded for the log."""
    encoder = _ENCODERS.get(cls)
    if encoder is not None:
        return encoder
    layout = _layout(cls)
    tag = cls.TAG
    names = [name for name, _ in layout]
    nested = any(kind.startswith(("Outcome", "Target")) for _, kind in layout)
    if nested:

        def encoder(command: Command) -> list[Any]:
            out: list[Any] = [tag]
            for name in names:
                value = getattr(command, name)
                out.append(value.encode() if isinstance(value, (Outcome, Target)) else value)
            return out

    elif not names:

        def encoder(command: Command) -> list[Any]:
            return [tag]

    elif len(names) == 1:
        get_one = operator.attrgetter(names[0])

        def encoder(command: Command) -> list[Any]:
            return [tag, get_one(command)]

    else:
        get_all = operator.attrgetter(*names)

        def encoder(command: Command) -> list[Any]:
            return [tag, *get_all(command)]

    _ENCODERS[cls] = encoder
    return encoder


def _layout(cls: type[Command]) -> tuple[tuple[str, str], ...]:
    """A command class's field names and declared types, computed once (encoding is hot)."""
    layout = _LAYOUTS.get(cls)
    if layout is None:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        layout = _LAYOUTS[cls] = tuple((f.name, str(f.type)) for f in fields)
    return layout


@frozen
class Run(Command):
    """A side effect; its outcome arrives as a completion once it is durable."""

    TAG: ClassVar[int] = 1
    completable: ClassVar[bool] = True
    name: str


@frozen
class GetState(Command):
    TAG: ClassVar[int] = 2
    name: str
    value: bytes | None


@frozen
class StateKeys(Command):
    TAG: ClassVar[int] = 3
    keys: list[str]


@frozen
class SetState(Command):
    TAG: ClassVar[int] = 4
    name: str
    value: bytes


@frozen
class ClearState(Command):
    TAG: ClassVar[int] = 5
    name: str


@frozen
class ClearAllState(Command):
    TAG: ClassVar[int] = 6


@frozen
class Sleep(Command):
    TAG: ClassVar[int] = 7
    completable: ClassVar[bool] = True
    name: str
    wake_at_ms: int


@frozen
class Call(Command):
    TAG: ClassVar[int] = 8
    completable: ClassVar[bool] = True
    target: Target
    input: bytes
    headers: dict[str, str]
    idempotency_key: str | None
    invocation_id: str


@frozen
class Send(Command):
    TAG: ClassVar[int] = 9
    target: Target
    input: bytes
    headers: dict[str, str]
    idempotency_key: str | None
    invocation_id: str
    invoke_at_ms: int


@frozen
class Awakeable(Command):
    TAG: ClassVar[int] = 10
    completable: ClassVar[bool] = True


@frozen
class CompleteAwakeable(Command):
    TAG: ClassVar[int] = 11
    awakeable_id: str
    outcome: Outcome


@frozen
class GetPromise(Command):
    TAG: ClassVar[int] = 12
    completable: ClassVar[bool] = True
    name: str


@frozen
class PeekPromise(Command):
    """Completes with the value, a failure, or an empty outcome (value None) if unresolved."""

    TAG: ClassVar[int] = 13
    completable: ClassVar[bool] = True
    name: str


@frozen
class CompletePromise(Command):
    """Completes with an empty value, or failure 409 if the promise was already completed."""

    TAG: ClassVar[int] = 14
    completable: ClassVar[bool] = True
    name: str
    outcome: Outcome


@frozen
class Emit(Command):
    """A record for a Kafka topic, published when the invocation completes successfully."""

    TAG: ClassVar[int] = 15
    topic: str
    value: bytes
    key: bytes | None
    headers: dict[str, bytes]
    cluster: str | None


@frozen
class CancelInvocation(Command):
    """Asks another invocation to cancel: its pending steps fail with code 409."""

    TAG: ClassVar[int] = 16
    invocation_id: str


@frozen
class GetLazyState(Command):
    """A state read the engine answers from the committed state (the SDK was not sent it):
    completes with the value, or an empty outcome (value None) if the key is unset."""

    TAG: ClassVar[int] = 17
    completable: ClassVar[bool] = True
    name: str


@frozen
class GetLazyStateKeys(Command):
    """The state's key names, read by the engine: completes with `encode_state_keys`."""

    TAG: ClassVar[int] = 18
    completable: ClassVar[bool] = True


@frozen
class SendSignal(Command):
    """Delivers a signal to another invocation, by index (an awakeable) or by name."""

    TAG: ClassVar[int] = 19
    invocation_id: str
    index: int | None
    signal_name: str | None
    outcome: Outcome


@frozen
class AttachInvocation(Command):
    """Waits for another invocation's outcome.

    `invocation_id` is the one waited on; `target` and `idempotency_key` record how the
    handler named it when not by id (an idempotent request, or a workflow run with an empty
    handler name), so a replay sends the same command back.
    """

    TAG: ClassVar[int] = 20
    completable: ClassVar[bool] = True
    invocation_id: str
    target: Target | None
    idempotency_key: str | None


@frozen
class GetInvocationOutput(Command):
    """Like `AttachInvocation`, without waiting: completes with an empty outcome (value None)
    if the invocation has not completed."""

    TAG: ClassVar[int] = 21
    completable: ClassVar[bool] = True
    invocation_id: str
    target: Target | None
    idempotency_key: str | None


def encode_state_keys(keys: list[str]) -> bytes:
    """The completion value of `GetLazyStateKeys`: the key names as a JSON list."""
    return json.dumps(sorted(keys)).encode()


def decode_state_keys(value: bytes | None) -> list[str]:
    return list(json.loads(value)) if value else []


_BY_TAG: dict[int, type[Command]] = {
    cls.TAG: cls
    for cls in (
        Run, GetState, StateKeys, SetState, ClearState, ClearAllState, Sleep, Call, Send,
        Awakeable, CompleteAwakeable, GetPromise, PeekPromise, CompletePromise, Emit,
        CancelInvocation, GetLazyState, GetLazyStateKeys, SendSignal, AttachInvocation,
        GetInvocationOutput,
    )
}  # fmt: skip


def decode_command(raw: list[Any]) -> Command:
    """The command a list from `Command.encode` describes."""
    cls = _BY_TAG[raw[0]]
    values: list[Any] = []
    for (_, kind), value in zip(_layout(cls), raw[1:], strict=True):
        if kind == "Outcome":
            value = Outcome.decode(value)
        elif kind in ("Target", "Target | None") and value is not None:
            value = Target.decode(value)
        values.append(value)
    return cls(*values)


def same_command(recorded: Command, issued: Command) -> bool:
    """Whether a command issued on replay matches the one the journal holds at that index.

    Only what identifies the step is compared (its type, name, target), not results, which
    the journal supplies on replay.
    """
    if type(recorded) is not type(issued):
        return False
    if isinstance(recorded, (Call, Send)):
        assert isinstance(issued, (Call, Send))
        return recorded.target == issued.target
    return getattr(recorded, "name", "") == getattr(issued, "name", "")


def describe(command: Command) -> str:
    """A short human description, used in journal-mismatch errors and the admin API."""
    name = getattr(command, "name", "")
    if isinstance(command, (Call, Send)):
        return f"{type(command).__name__}({command.target})"
    return f"{type(command).__name__}({name!r})" if name else type(command).__name__
