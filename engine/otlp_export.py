"""Sends an engine's spans to an OpenTelemetry collector over OTLP/HTTP, through a process of
its own (`otlp_process.py`).

Recording spans costs the event loop a small tuple per span and an append per committed
batch. A worker thread hands the queued facts to the exporting process in msgpack-encoded
batches, once `max_batch` are waiting or every `delay` seconds; that process makes the spans,
encodes them and talks to the collector, on another core and off this process's GIL. Spans
are telemetry: beyond `max_queue` waiting facts new ones are dropped and counted, and if the
exporting process dies it is started again (at most once a second), the batch it could not
take dropped and counted, so neither a slow collector nor a failed exporter holds back
invocations or grows memory without bound.
"""

from __future__ import annotations

import collections
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import msgpack

from .spans import AttemptFinished, InvocationFinished

log = logging.getLogger("headway.otlp")
_RESTART_EVERY = 1.0  # seconds at least between two starts of the exporting process


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
        log_format: str = "text",
        log_level: str = "info",
    ) -> None:
        """`log_format` and `log_level`: the exporting process's log lines (`logs.py`)."""
        self._command = [
            sys.executable, "-m", "headway.engine.otlp_process", endpoint,
            "--resource", json.dumps(dict(resource), default=str), "--timeout", str(timeout),
            "--log-format", log_format, "--log-level", log_level,
        ]  # fmt: skip
        self._timeout = timeout
        self._max_batch, self._max_queue, self._delay = max_batch, max_queue, delay
        self._attempts: collections.deque[AttemptFinished] = collections.deque()
        self._invocations: collections.deque[InvocationFinished] = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = -_RESTART_EVERY
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="headway-otlp", daemon=True)
        self._thread.start()

    def attempt_finished(self, fact: AttemptFinished) -> None:
        """Queues a finished attempt's fact (any thread; never blocks)."""
        self._queue(self._attempts, [fact])

    def invocations_finished(self, facts: list[InvocationFinished]) -> None:
        """Queues completed invocations' facts (any thread; never blocks)."""
        self._queue(self._invocations, facts)

    def _queue(
        self, queue: collections.deque[Any], facts: list[AttemptFinished] | list[InvocationFinished]
    ) -> None:
        """Queues as many of `facts` as `max_queue` has room for, and drops the rest."""
        waiting = len(self._attempts) + len(self._invocations)
        room = max(self._max_queue - waiting, 0)
        if room < len(facts):
            self.dropped += len(facts) - room
            facts = facts[:room]
        queue.extend(facts)
        if waiting + len(facts) >= self._max_batch and not self._wake.is_set():
            self._wake.set()

    def shutdown(self) -> None:
        """Sends what is queued, lets the exporting process finish, then stops; blocking."""
        self._stopping = True
        self._wake.set()
        self._thread.join(2 * self._timeout + 5)
        if self.dropped:
            log.warning("%d spans were not exported", self.dropped)

    def _run(self) -> None:
        while not self._stopping:
            woken = self._wake.wait(self._delay)
            self._wake.clear()
            self._send_batches(partial=not woken)
        self._send_batches(partial=True)
        self._finish()

    def _send_batches(self, partial: bool) -> None:
        """Sends full batches; the rest too if `partial` (the delay passed, or shutting down).
        Under load a remainder waits for the next full batch: one request per `max_batch`."""
        attempts, invocations, size = self._attempts, self._invocations, self._max_batch
        while len(attempts) + len(invocations) >= size or (partial and (attempts or invocations)):
            taken = [attempts.popleft() for _ in range(min(size, len(attempts)))]
            more = [invocations.popleft() for _ in range(min(size - len(taken), len(invocations)))]
            self._write(msgpack.packb((taken, more)), len(taken) + len(more))

    def _write(self, batch: bytes, count: int) -> None:
        process = self._running_process()
        if process is None or process.stdin is None:
            self.dropped += count
            return
        try:
            process.stdin.write(batch)
            process.stdin.flush()
        except OSError:  # it died since it was looked at: the next batch starts another
            self.dropped += count

    def _running_process(self) -> subprocess.Popen[bytes] | None:
        """The exporting process, started (again) if it is not running and was last started
        long enough ago; None while it may not be."""
        process = self._process
        if process is not None:
            if process.poll() is None:
                return process
            log.warning("the span exporting process exited (%s); starting another",
                        process.returncode)  # fmt: skip
            self._process = None
        if time.monotonic() - self._started_at < _RESTART_EVERY:
            return None
        self._started_at = time.monotonic()
        self._process = subprocess.Popen(
            self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        return self._process

    def _finish(self) -> None:
        """Closes the exporting process's input and waits for it to send what it has; adds
        the spans it dropped (its last line of output) to `dropped`."""
        process = self._process
        if process is None:
            return
        try:
            output, _ = process.communicate(timeout=2 * self._timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        if process.returncode == 0 and output.strip():
            self.dropped += int(output.split()[-1])
