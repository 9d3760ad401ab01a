"""Message framing: an 8-byte header (type u16, flags u16, length u32, big-endian), then the body.

A decoder accepts the byte stream in chunks of any size, since HTTP bodies arrive split at
arbitrary points, and yields whole messages as they complete. It knows the protocol's messages
and Headway's extensions (extensions.py); any other type code is an error.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from .extensions import EXTENSIONS
from .messages import FRAMES, Frame
from .wire import ProtocolError

HEADER = struct.Struct(">HHI")
MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # Restate's default message size limit
KNOWN_FRAMES: dict[int, type[Frame]] = FRAMES | EXTENSIONS


def encode_frame(message: Frame, flags: int = 0) -> bytes:
    body = message.encode()
    return HEADER.pack(message.TYPE, flags, len(body)) + body


def encode_frames(messages: list[Frame]) -> bytes:
    return b"".join(encode_frame(m) for m in messages)


class FrameDecoder:
    """Turns chunks of a message stream into messages; `finish` checks nothing is left over."""

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_message_bytes

    def feed(self, chunk: bytes) -> Iterator[tuple[Frame, int]]:
        """Each complete (message, flags) in the stream so far."""
        self._buffer += chunk
        while len(self._buffer) >= HEADER.size:
            type_code, flags, length = HEADER.unpack_from(self._buffer)
            cls = KNOWN_FRAMES.get(type_code)
            if cls is None:
                raise ProtocolError(f"unknown message type {type_code:#06x}")
            if length > self._max:
                raise ProtocolError(
                    f"message {cls.__name__} of {length} bytes exceeds the limit of {self._max}"
                )
            end = HEADER.size + length
            if len(self._buffer) < end:
                return
            body = bytes(self._buffer[HEADER.size : end])
            del self._buffer[:end]
            yield cls.decode(body), flags

    def finish(self) -> None:
        if self._buffer:
            raise ProtocolError(
                f"the stream ended inside a message ({len(self._buffer)} bytes left over)"
            )


def decode_frames(data: bytes) -> list[Frame]:
    """Every message in a complete stream."""
    decoder = FrameDecoder()
    frames = [message for message, _ in decoder.feed(data)]
    decoder.finish()
    return frames
