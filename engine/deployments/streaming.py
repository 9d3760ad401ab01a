"""A remote attempt over an HTTP/2 (h2c) bidirectional stream, for deployments registered with
`"http2": true`.

Unlike request/response, the stream stays open while the handler runs: completions the
engine makes durable (run results, timers, call results, signals) are sent as notifications,
so a `ctx.run` costs no suspension and no replay. When the deployment has been silent for the
inactivity timeout the engine closes its side of the stream, which asks the SDK to suspend;
after the abort timeout more it resets the stream and the attempt is retried.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
from headway.sdk.journal import Call, Outcome, Send
from headway.sdk.protocol import journal_codec as codec
from headway.sdk.protocol import messages as m
from headway.sdk.protocol import versions
from headway.sdk.protocol.framing import FrameDecoder, encode_frame
from headway.sdk.protocol.signals import SIGNAL_BASE, is_signal_slot
from headway.sdk.protocol.wire import ProtocolError

from ..entries import Append, AttemptFailed, Complete, End, Suspend
from .attempt import RemoteAttempt

if TYPE_CHECKING:
    from .catalog import Deployment


class StreamingAttempt(RemoteAttempt):
    """Drives one attempt over one HTTP/2 stream, feeding it completions as they land."""

    conn: h2.connection.H2Connection
    writer: asyncio.StreamWriter
    stream_id: int
    version: int

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.out = bytearray()
        self.open = False
        self.closing = False  # the engine asked the SDK to suspend by ending its input
        self.input_closed = False
        self.proposed: set[int] = set()

    async def _exchange(self, deployment: Deployment) -> None:
        parts = urlsplit(deployment.uri)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        reader, self.writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        try:
            await self._stream(deployment, reader, parts.path)
        finally:
            self.open = False
            self.writer.close()

    async def _stream(
        self, deployment: Deployment, reader: asyncio.StreamReader, base: str
    ) -> None:
        self.version = deployment.protocol
        content_type = versions.invocation_content_type(self.version)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.conn.initiate_connection()
        self.stream_id = self.conn.get_next_available_stream_id()
        path = f"{base.rstrip('/')}/invoke/{self.target.service}/{self.target.handler}"
        authority = urlsplit(deployment.uri).netloc
        self.conn.send_headers(self.stream_id, [
            (":method", "POST"), (":scheme", "http"), (":authority", authority),
            (":path", path), ("content-type", content_type), ("accept", content_type),
        ])  # fmt: skip
        self.open = True
        self.out += self._request_body(self.version)
        self._pump()
        inactivity, abort = self._timeouts()
        silence = inactivity
        decoder = FrameDecoder()
        while True:
            try:
                data = await asyncio.wait_for(reader.read(65536), silence)
            except TimeoutError:
                if not self.closing:
                    self.closing = True  # asks the SDK to suspend
                    self._pump()
                    silence = abort
                    continue
                raise TimeoutError(
                    f"no message from the deployment for {inactivity + abort:.0f}s"
                ) from None
            if not data:
                raise ConnectionError("the deployment closed the connection")
            silence = inactivity
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = {bytes(k): bytes(v) for k, v in event.headers}.get(b":status")
                    if status != b"200":
                        answered = (status or b"?").decode(errors="replace")
                        raise ConnectionError(f"POST {path} answered {answered}")
                elif isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                    for message, _ in decoder.feed(event.data):
                        if self._handle(message):
                            self.conn.close_connection()
                            self._flush()
                            return
                elif isinstance(event, h2.events.StreamEnded):
                    raise ProtocolError("the stream ended without End, Suspension or Error")
                elif isinstance(event, h2.events.StreamReset | h2.events.ConnectionTerminated):
                    raise ConnectionError(f"the deployment ended the stream: {event}")
            self._pump()

    # -- sending ---------------------------------------------------------------------------

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    def _pump(self) -> None:
        """Sends as much of the outgoing buffer as flow control allows, then the end, if due."""
        while self.out:
            window = min(
                self.conn.local_flow_control_window(self.stream_id),
                self.conn.max_outbound_frame_size,
            )
            if window <= 0:
                break
            chunk = bytes(self.out[:window])
            del self.out[:window]
            self.conn.send_data(self.stream_id, chunk)
        if self.closing and not self.input_closed and not self.out:
            self.conn.end_stream(self.stream_id)
            self.input_closed = True
        self._flush()

    def _send(self, message: m.Frame) -> None:
        """Queues a notification; once the input is ending, the next attempt carries it."""
        if self.open and not self.closing:
            self.out += encode_frame(message)
            self._pump()

    # -- completions reach the open stream --------------------------------------------------

    def notify(self, index: int, seq: int, outcome: Outcome) -> None:
        if is_signal_slot(index):
            self._send(codec.signal_notification(index - SIGNAL_BASE, outcome))
        elif index < len(self.journal):
            command = self.journal[index]
            if index in self.proposed and self.version >= 7:
                self._send(m.ProposeRunCompletionAckMessage(completion_id=self.cids.first[index]))
            else:
                self._send(
                    codec.notification(command, self.cids.result_id(index, command), outcome)
                )

    def _submit(self, entry: Append | Complete | End | Suspend | AttemptFailed) -> None:
        durable = self.invoker.committer.submit(entry)
        if isinstance(entry, Complete):
            self.proposed.add(entry.index)
        if isinstance(entry, Append) and isinstance(entry.command, Call | Send):
            cid = self.cids.first[entry.index]
            notification = m.CallInvocationIdCompletionNotificationMessage(
                completion_id=cid, invocation_id=entry.command.invocation_id
            )
            durable.add_done_callback(lambda _: self._send(notification))
