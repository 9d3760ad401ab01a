"""The service protocol's messages, as typed dataclasses with their field tables and type codes.

Written from the protocol's published definition (Restate `service-protocol/dev/restate/
service/protocol.proto`): field numbers and type codes are the protocol's; names follow it.
Type codes: 0x0000+ control messages, 0x0400+ commands, 0x8000+ notifications, 0xFBFF signal.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .schema import Field, Message

# -- nested ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Void(Message):
    pass


@dataclasses.dataclass
class Value(Message):
    content: bytes = b""
    FIELDS = (Field(1, "content", "bytes"),)


@dataclasses.dataclass
class FailureMetadata(Message):
    key: str = ""
    value: str = ""
    FIELDS = (Field(1, "key", "string"), Field(2, "value", "string"))


@dataclasses.dataclass
class Failure(Message):
    code: int = 0
    message: str = ""
    metadata: list[FailureMetadata] = dataclasses.field(default_factory=list)  # since V6
    FIELDS = (
        Field(1, "code", "uint"),
        Field(2, "message", "string"),
        Field(3, "metadata", FailureMetadata, repeated=True),
    )


@dataclasses.dataclass
class Header(Message):
    key: str = ""
    value: str = ""
    FIELDS = (Field(1, "key", "string"), Field(2, "value", "string"))


@dataclasses.dataclass
class StateKeys(Message):
    keys: list[bytes] = dataclasses.field(default_factory=list)
    FIELDS = (Field(1, "keys", "bytes", repeated=True),)


@dataclasses.dataclass
class StateEntry(Message):
    key: bytes = b""
    value: bytes = b""
    FIELDS = (Field(1, "key", "bytes"), Field(2, "value", "bytes"))


@dataclasses.dataclass
class WorkflowTarget(Message):
    workflow_name: str = ""
    workflow_key: str = ""
    scope: str | None = None  # since V7
    FIELDS = (
        Field(1, "workflow_name", "string"),
        Field(2, "workflow_key", "string"),
        Field(3, "scope", "string", optional=True),
    )


@dataclasses.dataclass
class IdempotentRequestTarget(Message):
    service_name: str = ""
    service_key: str | None = None
    handler_name: str = ""
    idempotency_key: str = ""
    scope: str | None = None  # since V7
    FIELDS = (
        Field(1, "service_name", "string"),
        Field(2, "service_key", "string", optional=True),
        Field(3, "handler_name", "string"),
        Field(4, "idempotency_key", "string"),
        Field(5, "scope", "string", optional=True),
    )


@dataclasses.dataclass
class Future(Message):
    """A V7 await point: the notifications waited on, combined."""

    waiting_completions: list[int] = dataclasses.field(default_factory=list)
    waiting_signals: list[int] = dataclasses.field(default_factory=list)
    waiting_named_signals: list[str] = dataclasses.field(default_factory=list)
    nested_futures: list[Future] = dataclasses.field(default_factory=list)
    combinator_type: int = 0
    FIELDS: ClassVar[tuple[Field, ...]] = ()


Future.FIELDS = (
    Field(1, "waiting_completions", "uint", repeated=True),
    Field(2, "waiting_signals", "uint", repeated=True),
    Field(3, "waiting_named_signals", "string", repeated=True),
    Field(4, "nested_futures", Future, repeated=True),
    Field(5, "combinator_type", "uint"),
)


class Frame(Message):
    """A message that travels on its own, behind a header with its type code."""

    TYPE: ClassVar[int]


# -- control --------------------------------------------------------------------------------


@dataclasses.dataclass
class StartMessage(Frame):
    TYPE = 0x0000
    id: bytes = b""
    debug_id: str = ""
    known_entries: int = 0
    state_map: list[StateEntry] = dataclasses.field(default_factory=list)
    partial_state: bool = False
    key: str = ""
    retry_count_since_last_stored_entry: int = 0
    duration_since_last_stored_entry: int = 0
    random_seed: int = 0  # since V6
    FIELDS = (
        Field(1, "id", "bytes"),
        Field(2, "debug_id", "string"),
        Field(3, "known_entries", "uint"),
        Field(4, "state_map", StateEntry, repeated=True),
        Field(5, "partial_state", "bool"),
        Field(6, "key", "string"),
        Field(7, "retry_count_since_last_stored_entry", "uint"),
        Field(8, "duration_since_last_stored_entry", "uint"),
        Field(9, "random_seed", "uint"),
    )


@dataclasses.dataclass
class SuspensionMessage(Frame):
    """V5/V6 list what the handler waits on (fields 1-3); V7 sends a Future (field 4)."""

    TYPE = 0x0001
    waiting_completions: list[int] = dataclasses.field(default_factory=list)
    waiting_signals: list[int] = dataclasses.field(default_factory=list)
    waiting_named_signals: list[str] = dataclasses.field(default_factory=list)
    awaiting_on: Future | None = None
    FIELDS = (
        Field(1, "waiting_completions", "uint", repeated=True),
        Field(2, "waiting_signals", "uint", repeated=True),
        Field(3, "waiting_named_signals", "string", repeated=True),
        Field(4, "awaiting_on", Future),
    )


@dataclasses.dataclass
class ErrorMessage(Frame):
    TYPE = 0x0002
    code: int = 0
    message: str = ""
    stacktrace: str = ""
    related_command_index: int | None = None
    related_command_name: str | None = None
    related_command_type: int | None = None
    next_retry_delay: int | None = None
    behavior: int = 0  # V7: 0 retry, 1 pause, 2 fail
    FIELDS = (
        Field(1, "code", "uint"),
        Field(2, "message", "string"),
        Field(3, "stacktrace", "string"),
        Field(4, "related_command_index", "uint", optional=True),
        Field(5, "related_command_name", "string", optional=True),
        Field(6, "related_command_type", "uint", optional=True),
        Field(8, "next_retry_delay", "uint", optional=True),
        Field(9, "behavior", "uint"),
    )


@dataclasses.dataclass
class EndMessage(Frame):
    TYPE = 0x0003


@dataclasses.dataclass
class CommandAckMessage(Frame):
    TYPE = 0x0004
    command_index: int = 0
    FIELDS = (Field(1, "command_index", "uint"),)


@dataclasses.dataclass
class ProposeRunCompletionMessage(Frame):
    TYPE = 0x0005
    result_completion_id: int = 0
    value: bytes | None = None
    failure: Failure | None = None
    FIELDS = (
        Field(1, "result_completion_id", "uint"),
        Field(14, "value", "bytes", optional=True),
        Field(15, "failure", Failure),
    )


@dataclasses.dataclass
class AwaitingOnMessage(Frame):
    TYPE = 0x0006
    awaiting_on: Future | None = None
    executing_side_effects: bool = False
    FIELDS = (Field(1, "awaiting_on", Future), Field(2, "executing_side_effects", "bool"))


@dataclasses.dataclass
class ProposeRunCompletionAckMessage(Frame):
    TYPE = 0x0007
    completion_id: int = 0
    FIELDS = (Field(1, "completion_id", "uint"),)


# -- commands -------------------------------------------------------------------------------


class CommandMessage(Frame):
    """A command the handler issued; `name` is its optional entry name."""

    name: str


@dataclasses.dataclass
class InputCommandMessage(CommandMessage):
    TYPE = 0x0400
    headers: list[Header] = dataclasses.field(default_factory=list)
    value: Value | None = None
    name: str = ""
    FIELDS = (
        Field(1, "headers", Header, repeated=True),
        Field(14, "value", Value),
        Field(12, "name", "string"),
    )


@dataclasses.dataclass
class OutputCommandMessage(CommandMessage):
    TYPE = 0x0401
    value: Value | None = None
    failure: Failure | None = None
    name: str = ""
    FIELDS = (Field(14, "value", Value), Field(15, "failure", Failure), Field(12, "name", "string"))


@dataclasses.dataclass
class GetLazyStateCommandMessage(CommandMessage):
    TYPE = 0x0402
    key: bytes = b""
    result_completion_id: int = 0
    name: str = ""
    FIELDS = (
        Field(1, "key", "bytes"),
        Field(11, "result_completion_id", "uint"),
        Field(12, "name", "string"),
    )


@dataclasses.dataclass
class SetStateCommandMessage(CommandMessage):
    TYPE = 0x0403
    key: bytes = b""
    value: Value | None = None
    name: str = ""
    FIELDS = (Field(1, "key", "bytes"), Field(3, "value", Value), Field(12, "name", "string"))


@dataclasses.dataclass
class ClearStateCommandMessage(CommandMessage):
    TYPE = 0x0404
    key: bytes = b""
    name: str = ""
    FIELDS = (Field(1, "key", "bytes"), Field(12, "name", "string"))


@dataclasses.dataclass
class ClearAllStateCommandMessage(CommandMessage):
    TYPE = 0x0405
    name: str = ""
    FIELDS = (Field(12, "name", "string"),)


@dataclasses.dataclass
class GetLazyStateKeysCommandMessage(CommandMessage):
    TYPE = 0x0406
    result_completion_id: int = 0
    name: str = ""
    FIELDS = (Field(11, "result_completion_id", "uint"), Field(12, "name", "string"))


@dataclasses.dataclass
class GetEagerStateCommandMessage(CommandMessage):
    TYPE = 0x0407
    key: bytes = b""
    void: Void | None = None
    value: Value | None = None
    name: str = ""
    FIELDS = (
        Field(1, "key", "bytes"),
        Field(13, "void", Void),
        Field(14, "value", Value),
        Field(12, "name", "string"),
    )


@dataclasses.dataclass
class GetEagerStateKeysCommandMessage(CommandMessage):
    TYPE = 0x0408
    value: StateKeys | None = None
    name: str = ""
    FIELDS = (Field(14, "value", StateKeys), Field(12, "name", "string"))


@dataclasses.dataclass
class GetPromiseCommandMessage(CommandMessage):
    TYPE = 0x0409
    key: str = ""
    result_completion_id: int = 0
    name: str = ""
    FIELDS = (
        Field(1, "key", "string"),
        Field(11, "result_completion_id", "uint"),
        Field(12, "name", "string"),
    )


@dataclasses.dataclass
class PeekPromiseCommandMessage(CommandMessage):
    TYPE = 0x040A
    key: str = ""
    result_completion_id: int = 0
    name: str = ""
    FIELDS = GetPromiseCommandMessage.FIELDS


@dataclasses.dataclass
class CompletePromiseCommandMessage(CommandMessage):
    TYPE = 0x040B
    key: str = ""
    completion_value: Value | None = None
    completion_failure: Failure | None = None
    result_completion_id: int = 0
    name: str = ""
    FIELDS = (
        Field(1, "key", "string"),
        Field(2, "completion_value", Value),
        Field(3, "completion_failure", Failure),
        Field(11, "result_completion_id", "uint"),
        Field(12, "name", "string"),
    )


@dataclasses.dataclass
class SleepCommandMessage(CommandMessage):
    TYPE = 0x040C
    wake_up_time: int = 0
    result_completion_id: int = 0
    name: str = ""
    FIELDS = (
        Field(1, "wake_up_time", "uint"),
        Field(11, "result_completion_id", "uint"),
        Field(12, "name", "string"),
    )


@dataclasses.dataclass
class CallCommandMessage(CommandMessage):
    TYPE = 0x040D
    service_name: str = ""
    handler_name: str = ""
    parameter: bytes = b""
    headers: list[Header] = dataclasses.field(default_factory=list)
    key: str = ""
    idempotency_key: str | None = None
    scope: str | None = None  # since V7
    limit_key: str | None = None  # since V7
    invocation_id_notification_idx: int = 0
    result_completion_id: int = 0
    name: str = ""
    FIELDS = (
        Field(1, "service_name", "string"),
        Field(2, "handler_name", "string"),
        Field(3, "parameter", "bytes"),
        Field(4, "headers", Header, repeated=True),
        Field(5, "key", "string"),
        Field(6, "idempotency_key", "string", optional=True),
        Field(7, "scope", "string", optional=True),
        Field(8, "limit_key", "string", optional=True),
        Field(10, "invocation_id_notification_idx", "uint"),
        Field(11, "result_completion_id", "uint"),
        Field(12, "name", "string"),
    )


@dataclasses.dataclass
class OneWayCallCommandMessage(CommandMessage):
    TYPE = 0x040E
    service_name: str = ""
    handler_name: str = ""
    parameter: bytes = b""
    invoke_time: int = 0
    headers: list[Header] = dataclasses.field(default_factory=list)
    key: str = ""
    idempotency_key: str | None = None
    scope: str | None = None  # since V7
    limit_key: str | None = None  # since V7
    invocation_id_notification_idx: int = 0
    name: str = ""
    FIELDS = (
        Field(1, "service_name", "string"),
        Field(2, "handler_name", "string"),
        Field(3, "parameter", "bytes"),
        Field(4, "invoke_time", "uint"),
        Field(5, "headers", Header, repeated=True),
        Field(6, "key", "string"),
        Field(7, "idempotency_key", "string", optional=True),
        Field(8, "scope", "string", optional=True),
        Field(9, "limit_key", "string", optional=True),
        Field(10, "invocation_id_notification_idx", "uint"),
        Field(12, "name", "string"),
    )


@dataclasses.dataclass
class SendSignalCommandMessage(CommandMessage):
    TYPE = 0x0410
    target_invocation_id: str = ""
    idx: int | None = None
    signal_name: str | None = None
    void: Void | None = None
    value: Value | None = None
    failure: Failure | None = None
    name: str = ""  # the protocol's `entry_name`
    FIELDS = (
        Field(1, "target_invocation_id", "string"),
        Field(2, "idx", "uint", optional=True),
        Field(3, "signal_name", "string", optional=True),
        Field(4, "void", Void),
        Field(5, "value", Value),
        Field(6, "failure", Failure),
        Field(12, "name", "string"),
    )


@dataclasses.dataclass
class RunCommandMessage(CommandMessage):
    TYPE = 0x0411
    result_completion_id: int = 0
    name: str = ""
    FIELDS = (Field(11, "result_completion_id", "uint"), Field(12, "name", "string"))


@dataclasses.dataclass
class AttachInvocationCommandMessage(CommandMessage):
    TYPE = 0x0412
    invocation_id: str | None = None
    idempotent_request_target: IdempotentRequestTarget | None = None
    workflow_target: WorkflowTarget | None = None
    result_completion_id: int = 0
    name: str = ""
    FIELDS = (
        Field(1, "invocation_id", "string", optional=True),
        Field(3, "idempotent_request_target", IdempotentRequestTarget),
        Field(4, "workflow_target", WorkflowTarget),
        Field(11, "result_completion_id", "uint"),
        Field(12, "name", "string"),
    )


@dataclasses.dataclass
class GetInvocationOutputCommandMessage(CommandMessage):
    TYPE = 0x0413
    invocation_id: str | None = None
    idempotent_request_target: IdempotentRequestTarget | None = None
    workflow_target: WorkflowTarget | None = None
    result_completion_id: int = 0
    name: str = ""
    FIELDS = AttachInvocationCommandMessage.FIELDS


@dataclasses.dataclass
class CompleteAwakeableCommandMessage(CommandMessage):
    TYPE = 0x0414
    awakeable_id: str = ""
    value: Value | None = None
    failure: Failure | None = None
    name: str = ""
    FIELDS = (
        Field(1, "awakeable_id", "string"),
        Field(2, "value", Value),
        Field(3, "failure", Failure),
        Field(12, "name", "string"),
    )


# -- notifications --------------------------------------------------------------------------


@dataclasses.dataclass
class NotificationMessage(Frame):
    """The shape every notification shares: an id (completion or signal) and a result."""

    completion_id: int | None = None
    signal_id: int | None = None
    signal_name: str | None = None
    void: Void | None = None
    value: Value | None = None
    failure: Failure | None = None
    invocation_id: str | None = None
    state_keys: StateKeys | None = None
    FIELDS = (
        Field(1, "completion_id", "uint", optional=True),
        Field(2, "signal_id", "uint", optional=True),
        Field(3, "signal_name", "string", optional=True),
        Field(4, "void", Void),
        Field(5, "value", Value),
        Field(6, "failure", Failure),
        Field(16, "invocation_id", "string", optional=True),
        Field(17, "state_keys", StateKeys),
    )


def _notification(name: str, code: int) -> type[NotificationMessage]:
    return type(name, (NotificationMessage,), {"TYPE": code, "__slots__": ()})


GetLazyStateCompletionNotificationMessage = _notification("GetLazyStateCompletion", 0x8002)
GetLazyStateKeysCompletionNotificationMessage = _notification("GetLazyStateKeysCompletion", 0x8006)
GetPromiseCompletionNotificationMessage = _notification("GetPromiseCompletion", 0x8009)
PeekPromiseCompletionNotificationMessage = _notification("PeekPromiseCompletion", 0x800A)
CompletePromiseCompletionNotificationMessage = _notification("CompletePromiseCompletion", 0x800B)
SleepCompletionNotificationMessage = _notification("SleepCompletion", 0x800C)
CallCompletionNotificationMessage = _notification("CallCompletion", 0x800D)
CallInvocationIdCompletionNotificationMessage = _notification("CallInvocationIdCompletion", 0x800E)
RunCompletionNotificationMessage = _notification("RunCompletion", 0x8011)
AttachInvocationCompletionNotificationMessage = _notification("AttachInvocationCompletion", 0x8012)
GetInvocationOutputCompletionNotificationMessage = _notification(
    "GetInvocationOutputCompletion", 0x8013
)
SignalNotificationMessage = _notification("SignalNotification", 0xFBFF)


FRAMES: dict[int, type[Frame]] = {
    cls.TYPE: cls
    for cls in (
        StartMessage, SuspensionMessage, ErrorMessage, EndMessage, CommandAckMessage,
        ProposeRunCompletionMessage, AwaitingOnMessage, ProposeRunCompletionAckMessage,
        InputCommandMessage, OutputCommandMessage, GetLazyStateCommandMessage,
        SetStateCommandMessage, ClearStateCommandMessage, ClearAllStateCommandMessage,
        GetLazyStateKeysCommandMessage, GetEagerStateCommandMessage,
        GetEagerStateKeysCommandMessage, GetPromiseCommandMessage, PeekPromiseCommandMessage,
        CompletePromiseCommandMessage, SleepCommandMessage, CallCommandMessage,
        OneWayCallCommandMessage, SendSignalCommandMessage, RunCommandMessage,
        AttachInvocationCommandMessage, GetInvocationOutputCommandMessage,
        CompleteAwakeableCommandMessage, GetLazyStateCompletionNotificationMessage,
        GetLazyStateKeysCompletionNotificationMessage, GetPromiseCompletionNotificationMessage,
        PeekPromiseCompletionNotificationMessage, CompletePromiseCompletionNotificationMessage,
        SleepCompletionNotificationMessage, CallCompletionNotificationMessage,
        CallInvocationIdCompletionNotificationMessage, RunCompletionNotificationMessage,
        AttachInvocationCompletionNotificationMessage,
        GetInvocationOutputCompletionNotificationMessage, SignalNotificationMessage,
    )
}  # fmt: skip
