"""Shared HTTP/2 (h2c) connections to deployments: many attempts' streams on one socket.

One reader task per connection hands each stream's events to that stream's queue, and sends
what flow control lets through from every stream's outgoing buffer. A connection that fails
fails all its streams, and the pool opens a new one for the next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions

CLOSED = object()  # put on a stream's queue when its connection is gone


class H2Stream:
    """One request's stream: events in, bytes out."""

    def __init__(self, connection: H2Connection, stream_id: int) -> None:
        self.connection = connection
        self.id = stream_id
        self.events: asyncio.Queue[object] = asyncio.Queue()
        self.out = bytearray()
        self.ending = False
        self.ended = False

    def send(self, data: bytes) -> None:
        self.out += data
        self.connection.pump()

    def end(self) -> None:
        """Ends the request body once everything queued is sent."""
        self.ending = True
        self.connection.pump()

    def acknowledge(self, size: int) -> None:
        self.connection.conn.acknowledge_received_data(size, self.id)
        self.connection.flush()

    def close(self) -> None:
        """Forgets the stream, resetting it if it is still open."""
        self.connection.release(self)


class H2Connection:
    def __init__(self, uri: str) -> None:
        parts = urlsplit(uri)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.streams: dict[int, H2Stream] = {}
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task[None] | None = None
        self.alive = False

    async def connect(self) -> None:
        reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), 10
        )
        self.conn.initiate_connection()
        self.flush()
        self.alive = True
        self.reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    def has_room(self) -> bool:
        limit = self.conn.remote_settings.max_concurrent_streams
        return self.alive and self.conn.open_outbound_streams < limit

    def open_stream(self, headers: list[tuple[str, str]]) -> H2Stream:
        stream = H2Stream(self, self.conn.get_next_available_stream_id())
        self.conn.send_headers(stream.id, headers)
        self.streams[stream.id] = stream
        self.flush()
        return stream

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.writer is not None and not self.writer.is_closing():
            self.writer.write(data)

    def pump(self) -> None:
        """Sends what flow control allows from every stream, and due ends of streams."""
        if not self.alive:
            return
        for stream in list(self.streams.values()):
            while stream.out:
                window = min(
                    self.conn.local_flow_control_window(stream.id),
                    self.conn.max_outbound_frame_size,
                )
                if window <= 0:
                    break
                chunk = bytes(stream.out[:window])
                del stream.out[:window]
                self.conn.send_data(stream.id, chunk)
            if stream.ending and not stream.ended and not stream.out:
                self.conn.end_stream(stream.id)
                stream.ended = True
        self.flush()

    def release(self, stream: H2Stream) -> None:
        if self.streams.pop(stream.id, None) is None or not self.alive:
            return
        with contextlib.suppress(h2.exceptions.H2Error):  # already closed on both sides
            self.conn.reset_stream(stream.id)
        self.flush()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for event in self.conn.receive_data(data):
                    stream_id = getattr(event, "stream_id", 0)
                    if isinstance(event, h2.events.ConnectionTerminated):
                        return
                    if stream_id and stream_id in self.streams:
                        self.streams[stream_id].events.put_nowait(event)
                self.pump()
        except (OSError, h2.exceptions.H2Error):
            pass
        finally:
            self.alive = False
            for stream in self.streams.values():
                stream.events.put_nowait(CLOSED)
            self.streams.clear()
            if self.writer is not None:
                self.writer.close()

    async def close(self) -> None:
        self.alive = False
        if self.reader_task is not None:
            self.reader_task.cancel()
        if self.writer is not None:
            self.writer.close()


class H2Pool:
    """Connections to one deployment, opened as streams need room."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.connections: list[H2Connection] = []

    async def stream(self, headers: list[tuple[str, str]]) -> H2Stream:
        self.connections = [c for c in self.connections if c.alive]
        connection = next((c for c in self.connections if c.has_room()), None)
        if connection is None:
            connection = H2Connection(self.uri)
            await connection.connect()
            self.connections.append(connection)
        return connection.open_stream(headers)

    async def close(self) -> None:
        for connection in self.connections:
            await connection.close()
        self.connections.clear()
