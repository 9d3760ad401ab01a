"""A remote attempt over an HTTP/2 (h2c) bidirectional stream, for deployments registered with
`"http2": true`; streams share pooled connections (h2_connection.py).

Unlike request/response, the stream stays open while the handler runs: completions the
engine makes durable (run results, timers, call results, signals) are sent as notifications,
so a `ctx.run` costs no suspension and no replay. When the deployment has been silent for the
inactivity timeout the engine closes its side of the stream, which asks the SDK to suspend;
after the abort timeout more it resets the stream and the attempt is retried.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import h2.events
from headway.sdk.journal import Call, Outcome, Send
from headway.sdk.protocol import journal_codec as codec
from headway.sdk.protocol import messages as m
from headway.sdk.protocol import versions
from headway.sdk.protocol.framing import FrameDecoder, encode_frame
from headway.sdk.protocol.signals import is_named_signal_slot, is_signal_slot
from headway.sdk.protocol.wire import ProtocolError

from .. import keys
from ..entries import Append, AttemptFailed, Complete, End, Suspend
from .attempt import RemoteAttempt
from .h2_connection import CLOSED, H2Pool, H2Stream

if TYPE_CHECKING:
    from ..invoker import Invoker
    from .catalog import Deployment


class StreamingAttempt(RemoteAttempt):
    """Drives one attempt over one HTTP/2 stream, feeding it completions as they land."""

    def __init__(
        self, invoker: Invoker, session: aiohttp.ClientSession, deployment: Deployment | None,
        invocation_id: str, status: dict[str, Any], pool: H2Pool, eager_state_limit: int,
    ) -> None:  # fmt: skip
        super().__init__(invoker, session, deployment, invocation_id, status, eager_state_limit)
        self.pool = pool
        self.stream: H2Stream | None = None
        self.version = deployment.protocol if deployment is not None else 0
        self.closing = False  # the engine asked the SDK to suspend by ending its input
        self.proposed: set[int] = set()

    async def _exchange(self, deployment: Deployment) -> None:
        content_type = versions.invocation_content_type(self.version)
        parts = urlsplit(deployment.uri)
        path = f"{parts.path.rstrip('/')}/invoke/{self.target.service}/{self.target.handler}"
        self.stream = await self.pool.stream([
            (":method", "POST"), (":scheme", "http"), (":authority", parts.netloc),
            (":path", path), ("content-type", content_type), ("accept", content_type),
        ])  # fmt: skip
        try:
            await self._converse(self.stream, path)
        finally:
            stream, self.stream = self.stream, None
            stream.close()

    async def _converse(self, stream: H2Stream, path: str) -> None:
        stream.send(self._request_body(self.version))
        inactivity, abort = self._timeouts()
        silence = inactivity
        decoder = FrameDecoder()
        while True:
            try:
                event = await asyncio.wait_for(stream.events.get(), silence)
            except TimeoutError:
                if not self.closing:
                    self.closing = True  # asks the SDK to suspend
                    stream.end()
                    silence = abort
                    continue
                quiet = inactivity + abort
                raise TimeoutError(f"no message from the deployment for {quiet:.0f}s") from None
            if event is CLOSED:
                raise ConnectionError("the connection to the deployment closed")
            silence = inactivity
            if isinstance(event, h2.events.ResponseReceived):
                status = {bytes(k): bytes(v) for k, v in event.headers}.get(b":status")
                if status != b"200":
                    answered = (status or b"?").decode(errors="replace")
                    raise ConnectionError(f"POST {path} answered {answered}")
            elif isinstance(event, h2.events.DataReceived):
                stream.acknowledge(event.flow_controlled_length)
                for message, _ in decoder.feed(event.data):
                    if self._handle(message):
                        return
            elif isinstance(event, h2.events.StreamEnded):
                raise ProtocolError("the stream ended without End, Suspension or Error")
            elif isinstance(event, h2.events.StreamReset):
                raise ConnectionError(f"the deployment reset the stream ({event.error_code})")

    def _send(self, message: m.Frame) -> None:
        """Queues a notification; once the input is ending, the next attempt carries it."""
        if self.stream is not None and not self.closing:
            self.stream.send(encode_frame(message))

    # -- completions reach the open stream --------------------------------------------------

    def notify(self, index: int, seq: int, outcome: Outcome) -> None:
        if is_named_signal_slot(index):
            record = self.invoker.store.get(keys.completion(self.invocation_id, index))
            if record is not None and len(record) > 2:  # its name, stored with it
                self._send(codec.signal_notification(index, outcome, record[2]))
        elif is_signal_slot(index):
            self._send(codec.signal_notification(index, outcome))
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
