"""The process that exports an engine's spans over OTLP/HTTP (`python -m
headway.engine.otlp_process --help`; the engine's exporter starts it).

It reads batches of span facts (`spans.py`), msgpack-encoded, from its standard input, makes
their spans, encodes them (`otlp_encoding.py`) and posts one request per batch to the
collector. Making and encoding two spans per invocation is Python work the size of a good
part of the invocation itself; here it runs beside the engine, on another core, instead of
holding the engine's GIL. It stops at the end of its input (the engine closed it, or died)
and reports how many spans it dropped as its last line of output. Interrupts (a terminal's
Ctrl-C reaches every process of the group) are left to the engine, which then closes the
input: the spans still queued are sent first.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import signal
import sys
from urllib.parse import urlsplit

import msgpack

from .logs import LOG_FORMATS, LOG_LEVELS, configure_logs
from .otlp_encoding import RequestEncoder
from .spans import AttemptFinished, InvocationFinished

log = logging.getLogger("headway.otlp")


class Poster:
    """Posts encoded requests to a collector over one kept-alive connection. Spans are
    telemetry: a request the collector refuses or cannot take is dropped and counted (and
    logged once per outage), never retried, so a slow collector holds nothing back."""

    def __init__(self, endpoint: str, timeout: float) -> None:
        url = urlsplit(endpoint.rstrip("/") + "/v1/traces")
        self._https = url.scheme == "https"
        self._host, self._path, self._timeout = url.netloc, url.path, timeout
        self._connection: http.client.HTTPConnection | None = None
        self._failing = False
        self.dropped = 0

    def send(self, body: bytes, count: int) -> None:
        """Posts one request of `count` spans."""
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
            self.close()
            self.dropped += count
            if not self._failing:
                log.warning("exporting spans to %s failed (%s); dropping them until it works",
                            self._host, e)  # fmt: skip
            self._failing = True
            return
        self._failing = False

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m headway.engine.otlp_process",
        description="Exports the spans of the facts read from stdin (msgpack batches of "
        "(attempt facts, invocation facts)) to an OTLP/HTTP collector; an engine starts it.",
    )
    parser.add_argument("endpoint", help="the collector's base URL, e.g. http://collector:4318")
    parser.add_argument("--resource", default="{}", help="resource attributes, a JSON object")
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, s (10)")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logs(args.log_format, args.log_level)
    encoder = RequestEncoder(json.loads(args.resource), "headway")
    poster = Poster(args.endpoint, args.timeout)
    batches = msgpack.Unpacker(use_list=False)
    while data := os.read(sys.stdin.fileno(), 1 << 16):
        batches.feed(data)
        for attempts, invocations in batches:
            spans = [encoder.span(AttemptFinished(*fact).span()) for fact in attempts]
            spans += [
                encoder.span(span)
                for fact in invocations
                for span in InvocationFinished(*fact).spans()
            ]
            poster.send(encoder.request(spans), len(spans))
    poster.close()
    print(poster.dropped, flush=True)


if __name__ == "__main__":
    main()
