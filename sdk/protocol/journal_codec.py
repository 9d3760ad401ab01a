"""The journal as protocol messages, and protocol commands as journal commands.

One journal model serves both transports: a remote attempt's commands are decoded into the
journal's `Command`s, and a replay encodes the journal back into the messages the SDK sent.

Completion ids: the protocol's completable commands carry ids that the SDK allocates in
command order, from 1 (a call takes two: its invocation id, then its result; a one-way call
and a state read one, an eager read included, though no message carries that id). The
journal does not store them; `CompletionIds` reallocates them the same way on replay, and a
command whose ids differ from that allocation is refused, so the mapping cannot drift
silently.
"""

from __future__ import annotations

from collections.abc import Callable

from headway.sdk import ids
from headway.sdk import journal as j

from . import messages as m
from .extensions import EmitCommandMessage, RecordHeader
from .signals import (
    CANCEL_SIGNAL,
    SIGNAL_BASE,
    is_named_signal_slot,
    is_signal_slot,
    named_signal_slot,
)
from .wire import ProtocolError

MintInvocationId = Callable[[j.Target, str | None], str]
FIRST_USER_SIGNAL = 17  # signal indexes below are the protocol's own (1: cancel)
Attaching = j.AttachInvocation | j.GetInvocationOutput


def outcome_message(outcome: j.Outcome) -> tuple[m.Value | None, m.Failure | None]:
    if outcome.failure is not None:
        return None, m.Failure(outcome.failure.code, outcome.failure.message)
    return m.Value(outcome.value or b""), None


def outcome_from(value: m.Value | bytes | None, failure: m.Failure | None) -> j.Outcome:
    if failure is not None:
        return j.Outcome.fail(failure.code, failure.message)
    if isinstance(value, m.Value):
        return j.Outcome.ok(value.content)
    return j.Outcome(value=value)


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} {raw!r} is not UTF-8") from None


def completion_id_count(command: j.Command) -> int:
    """How many completion ids the protocol form of `command` takes."""
    if isinstance(command, j.Call):
        return 2
    if isinstance(command, j.Send | j.Run | j.Sleep | j.GetPromise | j.PeekPromise):
        return 1
    # A state read takes an id even when the SDK answers it from eager state, as the official
    # SDKs allocate one for every read.
    single = j.CompletePromise | j.GetState | j.StateKeys | j.GetLazyState | j.GetLazyStateKeys
    return 1 if isinstance(command, single | Attaching) else 0


class CompletionIds:
    """Completion ids by journal index, allocated in journal order as the SDKs do."""

    def __init__(self) -> None:
        self.next_id = 1
        self.first: dict[int, int] = {}  # journal index -> its first completion id
        self.by_id: dict[int, int] = {}  # completion id -> journal index
        self.invocation_ids: set[int] = set()  # ids carrying a call's invocation id

    def allocate(self, index: int, command: j.Command) -> list[int]:
        count = completion_id_count(command)
        allocated = list(range(self.next_id, self.next_id + count))
        self.next_id += count
        if allocated:
            self.first[index] = allocated[0]
        if isinstance(command, j.Call | j.Send):
            self.invocation_ids.add(allocated[0])
        for cid in allocated:
            self.by_id[cid] = index
        return allocated

    def result_id(self, index: int, command: j.Command) -> int:
        """The completion id that carries the command's result (a call's second one)."""
        return self.first[index] + (1 if isinstance(command, j.Call) else 0)


def _headers(headers: dict[str, str]) -> list[m.Header]:
    return [m.Header(k, v) for k, v in headers.items()]


def encode_command(command: j.Command, cids: list[int]) -> m.CommandMessage:
    """The protocol message of a journal command, with its allocated completion ids."""
    if isinstance(command, j.GetState):
        found = command.value is not None
        return m.GetEagerStateCommandMessage(
            key=command.name.encode(),
            void=None if found else m.Void(),
            value=m.Value(command.value or b"") if found else None,
        )
    if isinstance(command, j.StateKeys):
        return m.GetEagerStateKeysCommandMessage(
            value=m.StateKeys([k.encode() for k in command.keys])
        )
    if isinstance(command, j.SetState):
        return m.SetStateCommandMessage(key=command.name.encode(), value=m.Value(command.value))
    if isinstance(command, j.ClearState):
        return m.ClearStateCommandMessage(key=command.name.encode())
    if isinstance(command, j.ClearAllState):
        return m.ClearAllStateCommandMessage()
    if isinstance(command, j.Run):
        return m.RunCommandMessage(result_completion_id=cids[0], name=command.name)
    if isinstance(command, j.Sleep):
        return m.SleepCommandMessage(
            wake_up_time=command.wake_at_ms, result_completion_id=cids[0], name=command.name
        )
    if isinstance(command, j.Call):
        return m.CallCommandMessage(
            service_name=command.target.service, handler_name=command.target.handler,
            parameter=command.input, headers=_headers(command.headers),
            key=command.target.key or "", idempotency_key=command.idempotency_key,
            invocation_id_notification_idx=cids[0], result_completion_id=cids[1],
        )  # fmt: skip
    if isinstance(command, j.Send):
        return m.OneWayCallCommandMessage(
            service_name=command.target.service, handler_name=command.target.handler,
            parameter=command.input, invoke_time=command.invoke_at_ms,
            headers=_headers(command.headers), key=command.target.key or "",
            idempotency_key=command.idempotency_key, invocation_id_notification_idx=cids[0],
        )  # fmt: skip
    if isinstance(command, j.GetPromise):
        return m.GetPromiseCommandMessage(key=command.name, result_completion_id=cids[0])
    if isinstance(command, j.PeekPromise):
        return m.PeekPromiseCommandMessage(key=command.name, result_completion_id=cids[0])
    if isinstance(command, j.CompletePromise):
        value, failure = outcome_message(command.outcome)
        return m.CompletePromiseCommandMessage(
            key=command.name, completion_value=value, completion_failure=failure,
            result_completion_id=cids[0],
        )  # fmt: skip
    if isinstance(command, j.CompleteAwakeable):
        value, failure = outcome_message(command.outcome)
        return m.CompleteAwakeableCommandMessage(
            awakeable_id=command.awakeable_id, value=value, failure=failure
        )
    if isinstance(command, j.CancelInvocation):
        return m.SendSignalCommandMessage(
            target_invocation_id=command.invocation_id, idx=CANCEL_SIGNAL, void=m.Void()
        )
    if isinstance(command, j.Emit):
        return EmitCommandMessage(
            topic=command.topic, value=command.value, key=command.key,
            headers=[RecordHeader(k, v) for k, v in command.headers.items()],
            cluster=command.cluster,
        )  # fmt: skip
    return _encode_lazy_command(command, cids)


def _encode_lazy_command(command: j.Command, cids: list[int]) -> m.CommandMessage:
    """Lazy state, signals and attaching: the commands the engine answers from its store."""
    if isinstance(command, j.GetLazyState):
        return m.GetLazyStateCommandMessage(key=command.name.encode(), result_completion_id=cids[0])
    if isinstance(command, j.GetLazyStateKeys):
        return m.GetLazyStateKeysCommandMessage(result_completion_id=cids[0])
    if isinstance(command, j.SendSignal):
        value, failure = outcome_message(command.outcome)
        void = m.Void() if command.outcome == j.Outcome(value=None) else None
        return m.SendSignalCommandMessage(
            target_invocation_id=command.invocation_id, idx=command.index,
            signal_name=command.signal_name, void=void, value=None if void else value,
            failure=failure,
        )  # fmt: skip
    if isinstance(command, Attaching):
        cls = (
            m.AttachInvocationCommandMessage
            if isinstance(command, j.AttachInvocation)
            else m.GetInvocationOutputCommandMessage
        )
        message = cls(result_completion_id=cids[0])
        if command.target is None:
            message.invocation_id = command.invocation_id
        elif command.idempotency_key is not None:
            message.idempotent_request_target = m.IdempotentRequestTarget(
                service_name=command.target.service, service_key=command.target.key,
                handler_name=command.target.handler, idempotency_key=command.idempotency_key,
            )  # fmt: skip
        else:
            message.workflow_target = m.WorkflowTarget(
                workflow_name=command.target.service, workflow_key=command.target.key or ""
            )
        return message
    raise ProtocolError(f"{j.describe(command)} has no form in the service protocol")


def _check_ids(message: m.CommandMessage, expected: list[int], actual: list[int]) -> None:
    if expected != actual:
        raise ProtocolError(
            f"{type(message).__name__} uses completion ids {actual}, expected {expected} "
            "(ids are allocated in command order from 1)"
        )


def decode_command(message: m.CommandMessage, next_id: int, mint: MintInvocationId) -> j.Command:
    """The journal command for a command message the SDK sent.

    `next_id` is the next completion id the journal allocates; `mint` makes the invocation id
    of a call or one-way call.
    """
    expected_ids = [next_id, next_id + 1]
    if isinstance(message, m.GetEagerStateCommandMessage):
        value = message.value.content if message.value is not None else None
        return j.GetState(_utf8(message.key, "state key"), value)
    if isinstance(message, m.GetEagerStateKeysCommandMessage):
        keys = message.value.keys if message.value is not None else []
        return j.StateKeys([_utf8(k, "state key") for k in keys])
    if isinstance(message, m.SetStateCommandMessage):
        content = message.value.content if message.value is not None else b""
        return j.SetState(_utf8(message.key, "state key"), content)
    if isinstance(message, m.ClearStateCommandMessage):
        return j.ClearState(_utf8(message.key, "state key"))
    if isinstance(message, m.ClearAllStateCommandMessage):
        return j.ClearAllState()
    if isinstance(message, m.RunCommandMessage):
        _check_ids(message, expected_ids[:1], [message.result_completion_id])
        return j.Run(message.name)
    if isinstance(message, m.SleepCommandMessage):
        _check_ids(message, expected_ids[:1], [message.result_completion_id])
        return j.Sleep(message.name, message.wake_up_time)
    if isinstance(message, m.CallCommandMessage | m.OneWayCallCommandMessage):
        return _decode_call(message, expected_ids, mint)
    if isinstance(message, m.GetPromiseCommandMessage | m.PeekPromiseCommandMessage):
        _check_ids(message, expected_ids[:1], [message.result_completion_id])
        if isinstance(message, m.GetPromiseCommandMessage):
            return j.GetPromise(message.key)
        return j.PeekPromise(message.key)
    if isinstance(message, m.CompletePromiseCommandMessage):
        _check_ids(message, expected_ids[:1], [message.result_completion_id])
        outcome = outcome_from(message.completion_value, message.completion_failure)
        return j.CompletePromise(message.key, outcome)
    if isinstance(message, m.CompleteAwakeableCommandMessage):
        outcome = outcome_from(message.value, message.failure)
        return j.CompleteAwakeable(message.awakeable_id, outcome)
    if isinstance(message, m.SendSignalCommandMessage):
        return _decode_signal(message)
    if isinstance(message, m.GetLazyStateCommandMessage):
        _check_ids(message, expected_ids[:1], [message.result_completion_id])
        return j.GetLazyState(_utf8(message.key, "state key"))
    if isinstance(message, m.GetLazyStateKeysCommandMessage):
        _check_ids(message, expected_ids[:1], [message.result_completion_id])
        return j.GetLazyStateKeys()
    if isinstance(message, m.AttachInvocationCommandMessage | m.GetInvocationOutputCommandMessage):
        _check_ids(message, expected_ids[:1], [message.result_completion_id])
        return _decode_attaching(message)
    if isinstance(message, EmitCommandMessage):
        headers = {h.key: h.value for h in message.headers}
        return j.Emit(message.topic, message.value, message.key, headers, message.cluster)
    raise ProtocolError(f"{type(message).__name__} is not supported by this engine")


def _decode_signal(message: m.SendSignalCommandMessage) -> j.Command:
    if message.idx == CANCEL_SIGNAL and message.signal_name is None:
        return j.CancelInvocation(message.target_invocation_id)
    if (message.idx is None) == (message.signal_name is None):
        raise ProtocolError("SendSignalCommandMessage needs exactly one of idx and name")
    if message.idx is not None and message.idx < FIRST_USER_SIGNAL:
        raise ProtocolError(f"signal index {message.idx} is reserved (below {FIRST_USER_SIGNAL})")
    if message.signal_name == "":
        raise ProtocolError("a signal name must not be empty")
    outcome = outcome_from(message.value, message.failure)  # void: value None
    return j.SendSignal(message.target_invocation_id, message.idx, message.signal_name, outcome)


def _decode_attaching(
    message: m.AttachInvocationCommandMessage | m.GetInvocationOutputCommandMessage,
) -> j.Command:
    """An attach or get-output command, its target resolved to an invocation id."""
    target: j.Target | None = None
    idempotency_key: str | None = None
    if message.invocation_id is not None:
        invocation_id = message.invocation_id
    elif (request := message.idempotent_request_target) is not None:
        _unscoped(message, request.scope)
        target = j.Target(request.service_name, request.handler_name, request.service_key)
        idempotency_key = request.idempotency_key
        invocation_id = ids.deterministic_invocation_id(
            target.service, target.handler, target.key, idempotency_key
        )
    elif (workflow := message.workflow_target) is not None:
        _unscoped(message, workflow.scope)
        target = j.Target(workflow.workflow_name, "", workflow.workflow_key)
        invocation_id = ids.deterministic_invocation_id(
            target.service, "", target.key, None, workflow_run=True
        )
    else:
        raise ProtocolError(f"{type(message).__name__} names no target")
    if isinstance(message, m.AttachInvocationCommandMessage):
        return j.AttachInvocation(invocation_id, target, idempotency_key)
    return j.GetInvocationOutput(invocation_id, target, idempotency_key)


def _unscoped(message: m.CommandMessage, scope: str | None) -> None:
    """Refuses V7 scopes and limit keys: they change the target's invocation id and partition,
    which this engine does not model, so dropping them would misroute the call."""
    if scope:
        raise ProtocolError(f"{type(message).__name__}: scopes and limit keys are not supported")


def _decode_call(
    message: m.CallCommandMessage | m.OneWayCallCommandMessage,
    expected_ids: list[int],
    mint: MintInvocationId,
) -> j.Command:
    _unscoped(message, message.scope or message.limit_key)
    target = j.Target(message.service_name, message.handler_name, message.key or None)
    headers = {h.key: h.value for h in message.headers}
    idempotency_key = message.idempotency_key or None
    invocation_id = mint(target, idempotency_key)
    if isinstance(message, m.CallCommandMessage):
        actual = [message.invocation_id_notification_idx, message.result_completion_id]
        _check_ids(message, expected_ids, actual)
        return j.Call(target, message.parameter, headers, idempotency_key, invocation_id)
    _check_ids(message, expected_ids[:1], [message.invocation_id_notification_idx])
    return j.Send(
        target, message.parameter, headers, idempotency_key, invocation_id, message.invoke_time
    )


def notification(command: j.Command, completion_id: int, outcome: j.Outcome) -> m.Frame:
    """The notification that carries `outcome`, the completion of `command`."""
    value, failure = outcome_message(outcome)
    if isinstance(command, j.Sleep):
        cls = m.SleepCompletionNotificationMessage
        value = None
    elif isinstance(command, j.Run):
        cls = m.RunCompletionNotificationMessage
    elif isinstance(command, j.Call):
        cls = m.CallCompletionNotificationMessage
    elif isinstance(command, j.GetPromise):
        cls = m.GetPromiseCompletionNotificationMessage
    elif isinstance(command, j.PeekPromise):
        cls = m.PeekPromiseCompletionNotificationMessage
        value = None if outcome.value is None and failure is None else value
    elif isinstance(command, j.CompletePromise):
        cls = m.CompletePromiseCompletionNotificationMessage
        value = None
    elif isinstance(command, j.GetLazyStateKeys):
        keys = [k.encode() for k in j.decode_state_keys(outcome.value)]
        return m.GetLazyStateKeysCompletionNotificationMessage(
            completion_id=completion_id, state_keys=m.StateKeys(keys)
        )
    elif isinstance(command, j.GetLazyState | j.GetInvocationOutput):
        cls = (
            m.GetLazyStateCompletionNotificationMessage
            if isinstance(command, j.GetLazyState)
            else m.GetInvocationOutputCompletionNotificationMessage
        )
        value = None if outcome.value is None else value  # unset, or not completed yet
    elif isinstance(command, j.AttachInvocation):
        cls = m.AttachInvocationCompletionNotificationMessage
    else:
        raise ProtocolError(f"{j.describe(command)} has no completion in the service protocol")
    void = m.Void() if value is None and failure is None else None
    return cls(completion_id=completion_id, void=void, value=value, failure=failure)


def signal_notification(slot: int, outcome: j.Outcome, name: str | None = None) -> m.Frame:
    """The notification of the signal in completion `slot` (`name`: a named signal's)."""
    value, failure = outcome_message(outcome)
    signal_id = None if is_named_signal_slot(slot) else slot - SIGNAL_BASE
    if signal_id == CANCEL_SIGNAL or outcome == j.Outcome(value=None):
        value, failure = None, None
    void = m.Void() if value is None and failure is None else None
    return m.SignalNotificationMessage(
        signal_id=signal_id, signal_name=name if signal_id is None else None, void=void,
        value=value, failure=failure,
    )  # fmt: skip


def signal_slot_of(message: m.NotificationMessage) -> int:
    """The completion slot a SignalNotificationMessage lands in."""
    if message.signal_name is not None:
        return named_signal_slot(message.signal_name)
    if message.signal_id is None:
        raise ProtocolError("a signal notification needs an index or a name")
    return SIGNAL_BASE + message.signal_id


def replay_entries(
    input_message: m.InputCommandMessage,
    journal: list[j.Command],
    completions: dict[int, tuple[int, j.Outcome]],
    cids: CompletionIds,
    signal_names: dict[int, str] | None = None,
) -> list[m.Frame]:
    """The journal as the entries after StartMessage: commands and notifications, interleaved.

    A completion is placed after its command and after every completion that arrived before it
    (its sequence number), so a replay sees notifications in the order they came in. `cids`
    ends up holding the journal's completion ids, ready for the commands that follow.
    `signal_names` names the named signals' slots.
    """
    names = signal_names or {}
    out: list[m.Frame] = [input_message]
    next_command = 0

    def emit_commands_through(index: int) -> None:
        nonlocal next_command
        while next_command <= index and next_command < len(journal):
            command = journal[next_command]
            allocated = cids.allocate(next_command, command)
            out.append(encode_command(command, allocated))
            if isinstance(command, j.Call | j.Send):
                out.append(
                    m.CallInvocationIdCompletionNotificationMessage(
                        completion_id=allocated[0], invocation_id=command.invocation_id
                    )
                )
            next_command += 1

    for index, (_, outcome) in sorted(completions.items(), key=lambda item: item[1][0]):
        if is_signal_slot(index):
            if is_named_signal_slot(index) and index not in names:
                continue  # its name is unknown: it cannot be addressed
            out.append(signal_notification(index, outcome, names.get(index)))
            continue
        if index >= len(journal):
            continue
        emit_commands_through(index)
        command = journal[index]
        out.append(notification(command, cids.result_id(index, command), outcome))
    emit_commands_through(len(journal) - 1)
    return out
