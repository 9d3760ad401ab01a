"""Sends spans to an OpenTelemetry collector over OTLP/HTTP, in batches, from its own thread.

Recording a span costs the event loop one append; encoding and the HTTP exchange happen in a
worker thread once `max_batch` spans are waiting, or every `delay` seconds. Spans are
telemetry: when the collector is unreachable or answers an error the batch is dropped (and
logged once per outage), and beyond `max_queue` waiting spans new ones are dropped and counted,
so a slow collector never holds back invocations or grows memory without bound.
"""

from __future__ import annotations

import collections
import http.client
import logging
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

from .otlp_encoding import RequestEncoder
from .tracing import SpanRecord

log = logging.getLogger("headway.otlp")


class OtlpExporter:
    """A span sink for `Tracing` that exports to `endpoint` (a collector's base URL)."""

    def __init__(
        self,
        endpoint: str,
        resource: Mapping[str, object],
        *,
        max_batch: int = 512,
        max_queue: int = 16384,
        delay: float = 1.0,
        timeout: float = 10.0,
    ) -> None:
        url = urlsplit(endpoint.rstrip("/") + "/v1/traces")
        self._https = url.scheme == "https"
        self._host, self._path, self._timeout = url.netloc, url.path, timeout
        self._encoder = RequestEncoder(resource, "headway")
        self._max_batch, self._max_queue, self._delay = max_batch, max_queue, delay
        self._queue: collections.deque[SpanRecord] = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._connection: http.client.HTTPConnection | None = None
        self._failing = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="headway-otlp", daemon=True)
        self._thread.start()

    def add(self, span: SpanRecord) -> None:
        """Queues a finished span (any thread; never blocks)."""
        queue = self._queue
        if len(queue) >= self._max_queue:
            self.dropped += 1
            return
        queue.append(span)
        if len(queue) >= self._max_batch and not self._wake.is_set():
            self._wake.set()

    def shutdown(self) -> None:
        """Sends what is queued, then stops the thread; blocking."""
        self._stopping = True
        self._wake.set()
        self._thread.join(self._timeout + 5)
        if self.dropped:
            log.warning("%d spans were not exported", self.dropped)

    def _run(self) -> None:
        while not self._stopping:
            woken = self._wake.wait(self._delay)
            self._wake.clear()
            self._send_batches(partial=not woken)
        self._send_batches(partial=True)
        if self._connection is not None:
            self._connection.close()

    def _send_batches(self, partial: bool) -> None:
        """Sends full batches; the rest too if `partial` (the delay passed, or shutting down).
        Under load a remainder waits for the next full batch: one request per `max_batch`."""
        queue = self._queue
        while len(queue) >= self._max_batch or (partial and queue):
            batch = [queue.popleft() for _ in range(min(self._max_batch, len(queue)))]
            self._send(self._encoder.encode(batch), len(batch))

    def _send(self, body: bytes, count: int) -> None:
        try:
            if self._connection is None:
                kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                self._connection = kind(self._host, timeout=self._timeout)
            self._connection.request(
                "POST", self._path, body, {"Content-Type": "application/x-protobuf"}
            )
            response = self._connection.getresponse()
            response.read()
            if response.status >= 300:
                raise OSError(f"collector answered {response.status} {response.reason}")
        except (OSError, http.client.HTTPException) as e:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            self.dropped += count
            if not self._failing:
                log.warning("exporting spans to %s failed (%s); dropping them until it works",
                            self._host, e)  # fmt: skip
            self._failing = True
            return
        self._failing = False
