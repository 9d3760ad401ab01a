"""Headway's extensions to the service protocol: messages only Headway's SDK and engine know.

The protocol leaves type codes from 0xFC00 up to 0xFFFF to custom messages: Restate's own
definition (`protocol.proto`) places nothing there, its codec reads any code in that range as
`Custom` rather than as an unknown type, and its invoker does not accept one. Headway takes
codes from 0xFC00 upwards, one per extension, so no code of the protocol's control (0x0000+),
command (0x0400+) or notification (0x8000+, signal 0xFBFF) ranges is ever reused: a future
protocol version cannot collide with them, and an official SDK, which never sends one, is
unaffected. The engine decodes exactly the codes listed in `EXTENSIONS`; any other custom
code stays an unknown message type.

Because of that, a Headway SDK service that uses an extension runs only behind Headway's
engine, not Restate's.
"""

from __future__ import annotations

import dataclasses

from .messages import CommandMessage, Frame
from .schema import Field, Message

CUSTOM_RANGE_START = 0xFC00


@dataclasses.dataclass
class RecordHeader(Message):
    """A Kafka record header: headers are bytes, unlike the protocol's string `Header`."""

    key: str = ""
    value: bytes = b""
    FIELDS = (Field(1, "key", "string"), Field(2, "value", "bytes"))


@dataclasses.dataclass
class EmitCommandMessage(CommandMessage):
    """`ctx.emit`: a Kafka record published when the invocation completes successfully.

    Not completable (it takes no completion id) and not answered: the engine journals it as
    the in-process `Emit`, and moves it to the outbox with the invocation's completion.
    `key` and `cluster` keep their presence: an empty key is not a missing one.
    """

    TYPE = CUSTOM_RANGE_START
    topic: str = ""
    value: bytes = b""
    key: bytes | None = None
    headers: list[RecordHeader] = dataclasses.field(default_factory=list)
    cluster: str | None = None
    name: str = ""
    FIELDS = (
        Field(1, "topic", "string"),
        Field(2, "value", "bytes"),
        Field(3, "key", "bytes", optional=True),
        Field(4, "headers", RecordHeader, repeated=True),
        Field(5, "cluster", "string", optional=True),
        Field(12, "name", "string"),
    )


EXTENSIONS: dict[int, type[Frame]] = {cls.TYPE: cls for cls in (EmitCommandMessage,)}
